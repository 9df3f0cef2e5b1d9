package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Layout is how a host arranges its cgroup hierarchies.
type Layout string

const (
	// V1 has one cgroup v1 hierarchy per controller (or group of
	// controllers) and no cgroup2 hierarchy.
	V1 Layout = "v1"
	// Hybrid has cgroup v1 controller hierarchies and a cgroup2 hierarchy
	// (usually at /sys/fs/cgroup/unified) holding few or no controllers.
	Hybrid Layout = "hybrid"
	// V2 has only the unified cgroup2 hierarchy.
	V2 Layout = "v2"
)

// unifiedKey names the cgroup2 hierarchy in maps keyed by hierarchy, the
// way /proc/self/cgroup names it with an empty controller list.
const unifiedKey = "unified"

// hierarchy is one mounted cgroup hierarchy.
type hierarchy struct {
	// key is the controller list of the hierarchy as /proc/<pid>/cgroup
	// writes it ("cpu,cpuacct", "memory", "name=systemd"), or unifiedKey.
	key string
	// controllers are the v1 controllers bound to the hierarchy; for the
	// named systemd hierarchy, "name=systemd".
	controllers []string
	// mountpoint is where the hierarchy is mounted; root is the cgroup of
	// the hierarchy that appears at the mountpoint ("/" unless the mount is
	// a bind mount of a sub-cgroup, as inside some containers).
	mountpoint string
	root       string
}

func (h hierarchy) has(controller string) bool {
	for _, c := range h.controllers {
		if c == controller {
			return true
		}
	}
	return false
}

// system is what discover found: the layout and its hierarchies.
type system struct {
	layout  Layout
	v1      []hierarchy // sorted by key
	unified *hierarchy
}

// hierarchies returns every hierarchy, v1 first, the unified one last.
func (s *system) hierarchies() []hierarchy {
	out := append([]hierarchy(nil), s.v1...)
	if s.unified != nil {
		out = append(out, *s.unified)
	}
	return out
}

// v1For returns the v1 hierarchy holding controller.
func (s *system) v1For(controller string) (hierarchy, bool) {
	for _, h := range s.v1 {
		if h.has(controller) {
			return h, true
		}
	}
	return hierarchy{}, false
}

// Detect reports the cgroup layout of the calling process's mount namespace.
func Detect() (Layout, error) {
	s, err := currentSystem()
	if err != nil {
		return "", err
	}
	return s.layout, nil
}

// The host's cgroup mounts, read once per program: every container start
// needs them, and they do not move under a running program.
var (
	systemOnce sync.Once
	systemVal  *system
	systemErr  error
)

func currentSystem() (*system, error) {
	systemOnce.Do(func() { systemVal, systemErr = readSystem() })
	return systemVal, systemErr
}

func readSystem() (*system, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("cgroups: reading the mount table: %w", err)
	}
	defer f.Close()
	return discover(f)
}

// v1Controllers are the controllers (and the named systemd hierarchy) a
// Manager creates its cgroup in on v1 and hybrid hosts. Others (net_cls,
// perf_event, rdma...) are left alone: nothing here limits them.
var v1Controllers = []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "hugetlb", "name=systemd"}

// discover reads a mountinfo table and finds the cgroup hierarchies.
func discover(r io.Reader) (*system, error) {
	s := &system{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 6 || len(fields) < sep+4 {
			continue
		}
		fstype, superOpts := fields[sep+1], fields[sep+3]
		root, mountpoint := unescapeMount(fields[3]), unescapeMount(fields[4])
		switch fstype {
		case "cgroup2":
			if s.unified == nil {
				s.unified = &hierarchy{key: unifiedKey, mountpoint: mountpoint, root: root}
			}
		case "cgroup":
			var ctrls []string
			for _, o := range strings.Split(superOpts, ",") {
				for _, c := range v1Controllers {
					if o == c {
						ctrls = append(ctrls, c)
					}
				}
			}
			if len(ctrls) == 0 {
				continue
			}
			key := v1Key(ctrls)
			if seen[key] {
				continue // a second mount of the same hierarchy
			}
			seen[key] = true
			s.v1 = append(s.v1, hierarchy{key: key, controllers: ctrls, mountpoint: mountpoint, root: root})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cgroups: reading the mount table: %w", err)
	}
	sort.Slice(s.v1, func(i, j int) bool { return s.v1[i].key < s.v1[j].key })
	switch {
	case len(s.v1) > 0 && s.unified != nil:
		s.layout = Hybrid
	case len(s.v1) > 0:
		s.layout = V1
	case s.unified != nil:
		s.layout = V2
	default:
		return nil, errors.New("cgroups: no cgroup hierarchy is mounted")
	}
	return s, nil
}

// v1Key orders controllers the way /proc/<pid>/cgroup lists them: the
// kernel's controller order, named hierarchies last. Only the set matters
// to us, so sorted order (with name= last) is used on both sides.
func v1Key(ctrls []string) string {
	c := append([]string(nil), ctrls...)
	sort.Slice(c, func(i, j int) bool {
		ni, nj := strings.HasPrefix(c[i], "name="), strings.HasPrefix(c[j], "name=")
		if ni != nj {
			return nj
		}
		return c[i] < c[j]
	})
	return strings.Join(c, ",")
}

// unescapeMount undoes the octal escapes (\040 for space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// procCgroups reads /proc/<pid>/cgroup (pid 0: self) into a map from
// hierarchy key (as v1Key orders it, or unifiedKey) to cgroup path.
func procCgroups(pid int) (map[string]string, error) {
	p := "/proc/self/cgroup"
	if pid > 0 {
		p = "/proc/" + strconv.Itoa(pid) + "/cgroup"
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseProcCgroups(f)
}

func parseProcCgroups(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			out[unifiedKey] = parts[2]
			continue
		}
		var ctrls []string
		for _, c := range strings.Split(parts[1], ",") {
			for _, k := range v1Controllers {
				if c == k {
					ctrls = append(ctrls, c)
				}
			}
		}
		if len(ctrls) > 0 {
			out[v1Key(ctrls)] = parts[2]
		}
	}
	return out, sc.Err()
}

// dirOf returns the directory of cgroup path cg (as /proc/<pid>/cgroup
// writes it) in hierarchy h, or an error when the cgroup is outside what
// is mounted.
func (h hierarchy) dirOf(cg string) (string, error) {
	rel := cg
	if h.root != "/" {
		r, ok := strings.CutPrefix(cg, h.root)
		if !ok || (r != "" && !strings.HasPrefix(r, "/")) {
			return "", fmt.Errorf("cgroups: cgroup %s of hierarchy %s is outside its mount %s (root %s)", cg, h.key, h.mountpoint, h.root)
		}
		rel = r
	}
	return path.Join(h.mountpoint, "/"+rel), nil
}

// cgroupOf is the reverse of dirOf: the cgroup path of directory dir.
func (h hierarchy) cgroupOf(dir string) (string, bool) {
	rel, ok := strings.CutPrefix(dir, h.mountpoint)
	if !ok || (rel != "" && !strings.HasPrefix(rel, "/")) {
		return "", false
	}
	return path.Join(h.root, "/"+rel), true
}

// checkName validates a relative cgroup name like "vessel/job-42".
func checkName(field, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("cgroups: %s: must not be empty", field)
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("cgroups: %s %q: must be relative, like \"vessel/job-42\"", field, name)
	case strings.ContainsAny(name, "\x00\n:"):
		return fmt.Errorf("cgroups: %s %q: must not contain NUL, newline or ':'", field, name)
	}
	for _, part := range strings.Split(name, "/") {
		switch {
		case part == "" || part == "." || part == "..":
			return fmt.Errorf("cgroups: %s %q: empty, \".\" and \"..\" components are not allowed", field, name)
		case strings.HasPrefix(part, "cgroup."):
			return fmt.Errorf("cgroups: %s %q: a component may not start with \"cgroup.\"", field, name)
		case len(part) > 255:
			return fmt.Errorf("cgroups: %s %q: a component is longer than 255 bytes", field, name)
		}
	}
	return nil
}

// checkParent validates an explicit parent cgroup path like "/vessel".
func checkParent(parent string) error {
	if parent == "" {
		return nil
	}
	if !strings.HasPrefix(parent, "/") {
		return fmt.Errorf("cgroups: parent %q: must be an absolute cgroup path like \"/vessel\" (or empty for the calling process's cgroup)", parent)
	}
	if parent == "/" {
		return nil
	}
	return checkName("parent", strings.TrimPrefix(parent, "/"))
}
