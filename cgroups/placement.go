package cgroups

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/openvessel/vessel/limits"
)

// Placement says where a container's cgroup goes, in the terms a caller
// configures (vessel.CgroupConfig): an exact Path, or Group/Name below
// Parent.
type Placement struct {
	// Path, when set, is the cgroup's exact absolute path in every
	// hierarchy ("/jobs/42"), overriding the other fields.
	Path string
	// Parent is Options.Parent: empty for the caller's own cgroup.
	Parent string
	// Group is the directory containers go under (DefaultGroup when
	// empty); Name the container's own (its id when empty).
	Group, Name string
}

// DefaultGroup is the group a container's cgroup goes under when its
// Placement names none: $VESSEL_CGROUP_GROUP, else "vessel".
func DefaultGroup() string {
	if g := os.Getenv("VESSEL_CGROUP_GROUP"); g != "" {
		return g
	}
	return "vessel"
}

// Options returns the Options of container id's cgroup placed by p, with
// the limits r (nil: none).
func (p Placement) Options(id string, r *limits.Resources) Options {
	if clean := strings.Trim(path.Clean("/"+p.Path), "/"); p.Path != "" && clean != "" {
		return Options{Name: clean, Parent: "/", Resources: r}
	}
	group, name := p.Group, p.Name
	if group == "" {
		group = DefaultGroup()
	}
	if name == "" {
		name = id
	}
	return Options{Name: group + "/" + name, Parent: p.Parent, Resources: r}
}

// DestroyStale removes the cgroup opts names, killing any process still in
// it, when the program that made it died without destroying it. It is not
// an error when there is nothing there.
func DestroyStale(opts Options) error {
	m, err := Load(opts)
	if err != nil {
		if errors.Is(err, ErrNotExist) || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return m.Destroy()
}
