package oci

import (
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/rootfs"
)

// parsedMount is a spec mount read into vessel's form, with what rootfs.Mount
// has no field for kept aside.
type parsedMount struct {
	m     rootfs.Mount
	atime string // "", "relatime", "strictatime", "noatime", "nodiratime"
}

// propagations are the mount propagation options.
var propagations = []string{"private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable"}

// noopOptions are generic mount options that ask for the kernel's default.
var noopOptions = []string{"defaults", "async", "nomand", "noiversion", "nolazytime", "silent", "loud", "atime", "diratime"}

// unsupportedOptions are generic mount options vessel cannot apply yet.
var unsupportedOptions = []string{
	"sync", "dirsync", "mand", "lazytime", "iversion", "nosymfollow", "rnosymfollow",
	"remount", "idmap", "ridmap", "copy-symlink", "src-nofollow",
	"nostrictatime", "norelatime",
}

// atimeOptions set how access times are updated.
var atimeOptions = []string{"relatime", "strictatime", "noatime", "nodiratime"}

// dataOptions lists, per filesystem type, the filesystem options (passed to
// the kernel as they are) that vessel accepts. Types not listed accept any
// option that is not a generic mount option: their options belong to the
// filesystem, and the kernel checks them at mount time.
var dataOptions = map[string][]string{
	rootfs.TypeBind:   {},
	rootfs.TypeTmpfs:  {"uid", "gid", "nr_inodes", "nr_blocks", "huge", "mpol", "inode64", "inode32", "noswap", "quota", "usrquota", "grpquota"},
	rootfs.TypeDevpts: {"newinstance", "ptmxmode", "mode", "gid", "uid", "max"},
	rootfs.TypeProc:   {"hidepid", "subset", "gid"},
	rootfs.TypeSysfs:  {},
	rootfs.TypeMqueue: {},
}

// MountOptions lists the generic mount options FromSpec accepts, as
// `features` reports them (filesystem options such as size= or mode= of a
// tmpfs go to the kernel and are not listed).
func MountOptions() []string {
	out := []string{"bind", "rbind", "ro", "rro", "rw", "rrw", "nosuid", "rnosuid", "suid", "rsuid",
		"nodev", "rnodev", "dev", "rdev", "noexec", "rnoexec", "exec", "rexec",
		"relatime", "rrelatime", "strictatime", "rstrictatime", "tmpcopyup"}
	out = append(out, propagations...)
	out = append(out, noopOptions...)
	slices.Sort(out)
	return out
}

// parseMount reads mounts[i] of a spec; it reports problems through c and
// returns ok false when the mount cannot be used at all.
func (c *converter) parseMount(i int, sm specs.Mount) (parsedMount, bool) {
	field := fmt.Sprintf("mounts[%d]", i)
	var pm parsedMount
	m := &pm.m
	ok := true
	if len(sm.UIDMappings) > 0 || len(sm.GIDMappings) > 0 {
		c.unsupported(field+".uidMappings", "id-mapped mounts are not supported yet")
		ok = false
	}
	dst := sm.Destination
	switch {
	case dst == "":
		c.bad(field+".destination", "empty")
		ok = false
	case !path.IsAbs(dst):
		// The spec asks runtimes to treat a relative destination as
		// relative to "/" for compatibility.
		dst = "/" + dst
	}
	m.Destination = path.Clean(dst)
	if m.Destination == "/" {
		c.bad(field+".destination", "cannot mount over / (root.path is the root filesystem)")
		ok = false
	}
	bind := sm.Type == "bind" || sm.Type == "rbind"
	recursive := sm.Type == "rbind"
	for _, o := range sm.Options {
		switch o {
		case "bind":
			bind = true
		case "rbind":
			bind, recursive = true, true
		}
	}
	typ := sm.Type
	if bind {
		typ = rootfs.TypeBind
	} else if typ == "" || typ == "none" {
		c.bad(field+".type", "%q and no bind or rbind option: nothing to mount", sm.Type)
		return pm, false
	}
	m.Type = typ
	m.Source = sm.Source
	m.NonRecursive = bind && !recursive
	allowed, strict := dataOptions[typ]
	for _, o := range sm.Options {
		key, val, hasVal := strings.Cut(o, "=")
		switch {
		case o == "bind" || o == "rbind" || slices.Contains(noopOptions, o):
		case o == "rw" || o == "rrw":
			m.ReadOnly = false
		case o == "ro" || o == "rro":
			m.ReadOnly = true
		case o == "nosuid" || o == "rnosuid":
			m.NoSuid = true
		case o == "suid" || o == "rsuid":
			m.NoSuid = false
		case o == "nodev" || o == "rnodev":
			m.NoDev = true
		case o == "dev" || o == "rdev":
			m.NoDev = false
		case o == "noexec" || o == "rnoexec":
			m.NoExec = true
		case o == "exec" || o == "rexec":
			m.NoExec = false
		case slices.Contains(propagations, o):
			m.Propagation = o
		case slices.Contains(atimeOptions, o) || slices.Contains(atimeOptions, strings.TrimPrefix(o, "r")):
			pm.atime = o
			if !slices.Contains(atimeOptions, o) {
				pm.atime = o[1:]
			}
		case o == "tmpcopyup" && typ == rootfs.TypeTmpfs:
			m.CopyUp = true
		case o == "tmpcopyup":
			c.warn(field+".options", "tmpcopyup ignored: it applies to tmpfs mounts only (runc ignores it too)")
		case slices.Contains(unsupportedOptions, o):
			c.unsupported(field+".options", "option %q is not supported yet", o)
			ok = false
		case typ == rootfs.TypeTmpfs && hasVal && key == "size":
			n, err := rootfs.ParseSize(val)
			switch {
			case strings.HasSuffix(val, "%"):
				m.Data = append(m.Data, o) // a share of RAM: the kernel works it out
			case err != nil || n <= 0:
				c.bad(field+".options", "%q: size must be a positive number of bytes like 64m", o)
				ok = false
			default:
				m.Size = n
			}
		case typ == rootfs.TypeTmpfs && hasVal && key == "mode":
			mode, err := strconv.ParseUint(val, 8, 32)
			if err != nil || mode > 0o7777 || mode == 0 {
				c.bad(field+".options", "%q: mode must be octal permission bits like 1777", o)
				ok = false
				continue
			}
			m.Mode = uint32(mode)
		case strict && slices.Contains(allowed, key):
			m.Data = append(m.Data, o)
		case strict && bind:
			// A bind mount takes no filesystem data: runc passes it to
			// mount(2), which ignores it for binds (engines write mode=
			// and size= on binds of tmpfs-backed sources).
			c.warn(field+".options", "option %q ignored: a bind mount takes no filesystem options", o)
		case strict:
			c.bad(field+".options", "unknown option %q for a %s mount", o, typ)
			ok = false
		default:
			m.Data = append(m.Data, o)
		}
	}
	switch {
	case pm.atime == "" || pm.atime == "relatime" || pm.atime == "strictatime":
		// relatime is the kernel's default; strictatime (what engines put
		// on /dev and tmpfs) only changes when access times are written,
		// which no container relies on: both are accepted as the default.
	default:
		c.unsupported(field+".options", "option %q is not supported yet", pm.atime)
		ok = false
	}
	if bind {
		switch {
		case m.Source == "":
			c.bad(field+".source", "empty: a bind mount needs a host path")
			ok = false
		case !filepath.IsAbs(m.Source):
			m.Source = filepath.Join(c.bundle, m.Source)
		}
	}
	return pm, ok
}

// A systemMount is one of the mounts vessel makes by itself. standard
// reports whether a spec mount has the standard form (what `runc spec`
// writes, which is what vessel mounts), so that it can be folded into
// vessel's own.
type systemMount struct {
	spec     specs.Mount
	parent   string // folded only when the parent is vessel's too
	standard func(pm parsedMount) bool
}

func plain(m rootfs.Mount) bool {
	return len(m.Data) == 0 && m.Propagation == "" && m.Size == 0 && m.Mode == 0
}

var systemMounts = []systemMount{
	{
		spec: specs.Mount{Destination: "/proc", Type: "proc", Source: "proc"},
		standard: func(pm parsedMount) bool {
			m := pm.m
			return m.Type == rootfs.TypeProc && !m.ReadOnly && plain(m) && pm.atime != "strictatime"
		},
	},
	{
		spec: specs.Mount{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		standard: func(pm parsedMount) bool {
			m := pm.m
			// Any writable tmpfs /dev (engines differ in size and mode) is
			// vessel's own, with its default devices.
			return m.Type == rootfs.TypeTmpfs && !m.ReadOnly
		},
	},
	{
		spec:   specs.Mount{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		parent: "/dev",
		standard: func(pm parsedMount) bool {
			m := pm.m
			if m.Type != rootfs.TypeDevpts || !m.NoSuid || !m.NoExec || m.ReadOnly || m.Propagation != "" || pm.atime == "strictatime" {
				return false
			}
			data := map[string]bool{}
			for _, d := range m.Data {
				k, v, _ := strings.Cut(d, "=")
				if k == "mode" || k == "ptmxmode" {
					n, err := strconv.ParseUint(v, 8, 32)
					if err != nil {
						return false
					}
					d = fmt.Sprintf("%s=%04o", k, n)
				}
				data[d] = true
			}
			delete(data, "gid=5") // vessel sets it whenever gid 5 is mapped
			return len(data) == 3 && data["newinstance"] && data["ptmxmode=0666"] && data["mode=0620"]
		},
	},
	{
		spec:   specs.Mount{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		parent: "/dev",
		standard: func(pm parsedMount) bool {
			m := pm.m
			return m.Type == rootfs.TypeTmpfs && m.NoSuid && m.NoDev && m.NoExec && !m.ReadOnly &&
				m.Mode == 0o1777 && m.Size == 65536<<10 && len(m.Data) == 0 && m.Propagation == "" && pm.atime != "strictatime"
		},
	},
	{
		spec:   specs.Mount{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		parent: "/dev",
		standard: func(pm parsedMount) bool {
			m := pm.m
			return m.Type == rootfs.TypeMqueue && !m.ReadOnly && plain(m) && pm.atime != "strictatime"
		},
	},
	{
		spec: specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		standard: func(pm parsedMount) bool {
			m := pm.m
			return m.Type == rootfs.TypeSysfs && m.ReadOnly && plain(m) && pm.atime != "strictatime"
		},
	},
	{
		spec:   specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		parent: "/sys",
		standard: func(pm parsedMount) bool {
			m := pm.m
			// Whatever the engine asks, the container gets vessel's own
			// cgroup view: a read-only cgroup2 of its namespace on v2 hosts.
			return m.Type == "cgroup" || m.Type == "cgroup2"
		},
	},
}

func systemMountAt(dst string) *systemMount {
	for i := range systemMounts {
		if systemMounts[i].spec.Destination == dst {
			return &systemMounts[i]
		}
	}
	return nil
}

// mounts converts the spec's mounts, folding the standard system mounts
// into vessel's own (see the package documentation).
func (c *converter) mounts(list []specs.Mount) []rootfs.Mount {
	type entry struct {
		pm       parsedMount
		ok, fold bool
	}
	entries := make([]entry, len(list))
	// Destinations that vessel will mount as the spec gives them: a system
	// mount below one of those is not vessel's own either.
	userDst := map[string]bool{}
	seenSys := map[string]bool{}
	for i, sm := range list {
		e := &entries[i]
		e.pm, e.ok = c.parseMount(i, sm)
		dst := e.pm.m.Destination
		if sys := systemMountAt(dst); e.ok && sys != nil && !seenSys[dst] && sys.standard(e.pm) {
			e.fold = true
			seenSys[dst] = true
		} else if e.ok {
			userDst[dst] = true
		}
	}
	// A later mount on the destination of a standard one that vessel only
	// makes when nothing else is mounted there (/proc, /dev, /sys) turns
	// the standard one into an ordinary mount, so that both are applied
	// in order. Below /dev and /sys vessel's own are always made, and a
	// later mount simply goes on top.
	for i := range entries {
		e := &entries[i]
		if !e.fold || systemMountAt(e.pm.m.Destination).parent != "" {
			continue
		}
		for j := i + 1; j < len(entries); j++ {
			if entries[j].ok && entries[j].pm.m.Destination == e.pm.m.Destination {
				e.fold = false
				break
			}
		}
	}
	var out []rootfs.Mount
	userAt := map[string]int{}
	folded := map[string]bool{}
	for i := range entries {
		e := &entries[i]
		field := fmt.Sprintf("mounts[%d]", i)
		dst := e.pm.m.Destination
		if e.fold {
			if sys := systemMountAt(dst); sys.parent == "" || !userDst[sys.parent] {
				folded[dst] = true
				continue
			}
		}
		if !e.ok {
			continue
		}
		switch {
		case (e.pm.m.Type == "cgroup" || e.pm.m.Type == "cgroup2") && dst == "/sys/fs/cgroup":
			// Below a /sys of the spec's own (podman --privileged mounts a
			// read-write sysfs): on a cgroup v2 host the container gets its
			// cgroup2 view there, as vessel's own /sys would hold; the v1
			// hierarchies view of vessel's own /sys is not made below
			// another sysfs yet.
			if layout, err := cgroups.Detect(); err == nil && layout == cgroups.V2 {
				m := e.pm.m
				m.Type, m.Source, m.Data = "cgroup2", "cgroup", nil
				out = append(out, m)
				userAt[dst] = i
			} else {
				c.warn(field, "the cgroup mount is left out: below a sysfs of the spec's own, vessel mounts the container's cgroups on cgroup v2 hosts only")
			}
			continue
		case e.pm.m.Type == "cgroup":
			c.unsupported(field+".type", "cgroup (v1) mounts are not supported yet, except at /sys/fs/cgroup")
			continue
		case dst == "/dev" && e.pm.m.Type != rootfs.TypeBind:
			c.unsupported(field, "a /dev other than vessel's own (tmpfs nosuid,strictatime,mode=755,size=65536k) is not supported yet: the default devices would be missing")
			continue
		}
		// A mount on the destination of an earlier one goes on top of it,
		// in the spec's order, as runc applies it.
		if _, dup := userAt[dst]; dup || folded[dst] {
			e.pm.m.Stacked = true
		}
		userAt[dst] = i
		out = append(out, e.pm.m)
	}
	return out
}

// specMount is the reverse of parseMount.
func specMount(m rootfs.Mount) specs.Mount {
	sm := specs.Mount{Destination: m.Destination, Type: m.Type, Source: m.Source}
	var o []string
	if m.Type == rootfs.TypeBind {
		if m.NonRecursive {
			o = append(o, "bind")
		} else {
			o = append(o, "rbind")
		}
	}
	if m.ReadOnly {
		o = append(o, "ro")
	}
	if m.NoSuid {
		o = append(o, "nosuid")
	}
	if m.NoDev {
		o = append(o, "nodev")
	}
	if m.NoExec {
		o = append(o, "noexec")
	}
	if m.Mode != 0 {
		o = append(o, fmt.Sprintf("mode=%o", m.Mode))
	}
	if m.Size != 0 {
		o = append(o, fmt.Sprintf("size=%d", m.Size))
	}
	if m.Propagation != "" {
		o = append(o, m.Propagation)
	}
	sm.Options = append(o, m.Data...)
	return sm
}
