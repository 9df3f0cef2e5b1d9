package cgroups

import (
	"os"
	"path/filepath"
)

// Hierarchy is one cgroup hierarchy mounted on the host, as a container's
// view of its own cgroups reproduces it.
type Hierarchy struct {
	// Name is its directory below the cgroup mount point ("memory",
	// "cpu,cpuacct", "systemd", "unified").
	Name string
	// V2 marks the cgroup2 hierarchy.
	V2 bool
	// Controllers are the v1 controllers bound to it ("name=systemd" for
	// a named one).
	Controllers []string
	// Links are the names beside it that are symbolic links to it ("cpu"
	// and "cpuacct" for "cpu,cpuacct").
	Links []string
}

// V1Hierarchies lists the hierarchies of a v1 or hybrid host mounted
// below its cgroup mount point (nil on a unified v2 host).
func V1Hierarchies() ([]Hierarchy, error) {
	sys, err := currentSystem()
	if err != nil {
		return nil, err
	}
	if sys.layout == V2 {
		return nil, nil
	}
	var out []Hierarchy
	for _, h := range sys.hierarchies() {
		dir := filepath.Dir(h.mountpoint)
		hy := Hierarchy{Name: filepath.Base(h.mountpoint), V2: h.key == unifiedKey, Controllers: h.controllers}
		if ents, err := os.ReadDir(dir); err == nil {
			for _, e := range ents {
				if e.Type()&os.ModeSymlink == 0 {
					continue
				}
				if t, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && filepath.Base(t) == hy.Name {
					hy.Links = append(hy.Links, e.Name())
				}
			}
		}
		out = append(out, hy)
	}
	return out, nil
}
