package oci

import (
	"os"
	"path"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/limits"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/rootfs"
	"github.com/openvessel/vessel/security"
)

// ToSpec writes cfg as an OCI runtime spec that FromSpec maps back to an
// equal Config when cfg is in the explicit form FromSpec produces. Defaults
// that vessel fills in (nil masked or read-only paths, a nil security
// profile, an empty working directory) are written out explicitly, so they
// come back as explicit values. Docker-style seccomp conditions
// (includes/excludes) are resolved against the profile's bounding set, the
// native architecture and the running kernel, as Docker does when it writes
// a spec.
//
// Config fields the specification cannot express (a host root, Timeout,
// CPUTime, Privileged, Landlock, securebits, a disabled cgroup) are errors
// naming the Config field.
func ToSpec(cfg *vessel.Config) (*specs.Spec, error) {
	if cfg == nil {
		return nil, &FieldError{Field: "config", Reason: "nil"}
	}
	var p problems
	s := &specs.Spec{Version: specs.Version, Hostname: cfg.Hostname, Domainname: cfg.Domainname}
	switch cfg.Rootfs.Kind {
	case rootfs.KindDir:
		s.Root = &specs.Root{Path: cfg.Rootfs.Path, Readonly: cfg.ReadOnly}
		if extra := (rootfs.Root{Kind: rootfs.KindDir, Path: cfg.Rootfs.Path}); !reflect.DeepEqual(cfg.Rootfs, extra) {
			p.unsupported("rootfs", "only a plain directory root has an OCI form (no layer, quota, store or ref)")
		}
	default:
		p.unsupported("rootfs", "a %q root has no OCI form (OCI roots are directories)", cfg.Rootfs.Kind)
	}
	if cfg.Timeout != 0 {
		p.unsupported("timeout", "has no OCI form")
	}
	if cfg.CPUTime != 0 {
		p.unsupported("cpuTime", "has no OCI form")
	}
	if cfg.Privileged {
		p.unsupported("privileged", "has no OCI form (bind the host's /dev and give every capability instead)")
	}
	if cfg.Cgroup.Disabled {
		p.unsupported("cgroup.disabled", "OCI containers always have a cgroup")
	}

	prof := cfg.Security
	if prof == nil {
		prof = security.DefaultProfile()
	}
	if prof.Landlock != nil && prof.Landlock.Enabled {
		p.unsupported("security.landlock", "has no OCI form")
	}
	if len(prof.Securebits) > 0 {
		p.unsupported("security.securebits", "has no OCI form")
	}
	pc := cfg.Process
	if len(pc.Args) == 0 {
		p.bad("process.args", "empty: an OCI spec names the command (set Config.Process.Args)")
	}
	dir := pc.Dir
	if dir == "" {
		dir = "/"
	}
	proc := &specs.Process{
		Terminal: pc.TTY,
		User: specs.User{
			UID: pc.User.UID, GID: pc.User.GID, AdditionalGids: slices.Clone(pc.User.Groups), Umask: clonePtr(pc.Umask),
		},
		Args:            slices.Clone(pc.Args),
		Env:             slices.Clone(pc.Env),
		Cwd:             dir,
		NoNewPrivileges: prof.NoNewPrivileges,
		OOMScoreAdj:     clonePtr(cfg.OOMScoreAdj),
	}
	if pc.Rows != 0 || pc.Cols != 0 {
		proc.ConsoleSize = &specs.Box{Height: uint(pc.Rows), Width: uint(pc.Cols)}
	}
	if caps := prof.Capabilities; caps != nil {
		proc.Capabilities = &specs.LinuxCapabilities{
			Bounding:    slices.Clone(caps.Bounding),
			Effective:   slices.Clone(caps.Effective),
			Permitted:   slices.Clone(caps.Permitted),
			Inheritable: slices.Clone(caps.Inheritable),
			Ambient:     slices.Clone(caps.Ambient),
		}
	}
	for _, r := range cfg.Rlimits {
		proc.Rlimits = append(proc.Rlimits, specs.POSIXRlimit{Type: r.Type, Soft: r.Soft, Hard: r.Hard})
	}
	s.Process = proc

	ns := cfg.Namespaces
	l := &specs.Linux{
		UIDMappings:   specIDMaps(cfg.UIDMappings),
		GIDMappings:   specIDMaps(cfg.GIDMappings),
		MaskedPaths:   slices.Clone(cfg.MaskedPaths),
		ReadonlyPaths: slices.Clone(cfg.ReadOnlyPaths),
		Resources:     p.specResources(cfg.Resources),
	}
	if cfg.MaskedPaths == nil {
		l.MaskedPaths = slices.Clone(rootfs.DefaultMaskedPaths)
	}
	if cfg.ReadOnlyPaths == nil {
		l.ReadonlyPaths = slices.Clone(rootfs.DefaultReadonlyPaths)
	}
	for _, n := range ns {
		l.Namespaces = append(l.Namespaces, specs.LinuxNamespace{Type: specs.LinuxNamespaceType(n.Kind), Path: n.Path})
	}
	if t := cfg.TimeOffsets; !t.IsZero() {
		l.TimeOffsets = map[string]specs.LinuxTimeOffset{}
		if t.Monotonic != 0 {
			l.TimeOffsets["monotonic"] = specTimeOffset(t.Monotonic)
		}
		if t.Boottime != 0 {
			l.TimeOffsets["boottime"] = specTimeOffset(t.Boottime)
		}
	}
	if len(cfg.Sysctls) > 0 {
		l.Sysctl = make(map[string]string, len(cfg.Sysctls))
		for k, v := range cfg.Sysctls {
			l.Sysctl[k] = v
		}
	}
	switch cg := cfg.Cgroup; {
	case cg.Parent == "" && cg.Name == "":
	case cg.Parent == "":
		l.CgroupsPath = cg.Name
	default:
		l.CgroupsPath = path.Join(cg.Parent, cg.Name)
	}
	if prof.Seccomp != nil {
		l.Seccomp = specSeccomp(prof.Seccomp, prof.Capabilities)
	}
	l.RootfsPropagation = cfg.RootPropagation
	for _, d := range cfg.Devices {
		mode := os.FileMode(d.Mode)
		l.Devices = append(l.Devices, specs.LinuxDevice{Path: d.Path, Type: d.Type, Major: d.Major, Minor: d.Minor,
			FileMode: &mode, UID: limits.Ptr(d.UID), GID: limits.Ptr(d.GID)})
	}
	s.Linux = l
	s.Mounts = specMounts(cfg)
	s.Annotations = specAnnotations(cfg)
	if err := p.err(); err != nil {
		return nil, err
	}
	return s, nil
}

func specIDMaps(in []namespaces.IDMap) []specs.LinuxIDMapping {
	var out []specs.LinuxIDMapping
	for _, m := range in {
		out = append(out, specs.LinuxIDMapping{ContainerID: m.ContainerID, HostID: m.HostID, Size: m.Size})
	}
	return out
}

func specTimeOffset(d time.Duration) specs.LinuxTimeOffset {
	secs := int64(d / time.Second)
	nsec := int64(d % time.Second)
	if nsec < 0 {
		secs--
		nsec += int64(time.Second)
	}
	return specs.LinuxTimeOffset{Secs: secs, Nanosecs: uint32(nsec)}
}

// specMounts lists the system mounts vessel makes for cfg in their
// standard form, then cfg's own mounts.
func specMounts(cfg *vessel.Config) []specs.Mount {
	ns := cfg.Namespaces
	if !ns.IsNew(namespaces.Mount) && cfg.Rootfs.Kind != rootfs.KindDir {
		return nil
	}
	covered := map[string]bool{}
	for _, m := range cfg.Mounts {
		covered[path.Clean(m.Destination)] = true
	}
	var out []specs.Mount
	for _, sys := range systemMounts {
		dst := sys.spec.Destination
		if covered[dst] || (sys.parent != "" && covered[sys.parent]) {
			continue
		}
		switch dst {
		case "/dev/mqueue":
			if !ns.IsNew(namespaces.IPC) && ns.IsNew(namespaces.User) {
				continue
			}
		case "/sys/fs/cgroup":
			if !ns.IsNew(namespaces.Cgroup) {
				continue
			}
		}
		m := sys.spec
		m.Options = slices.Clone(m.Options)
		out = append(out, m)
	}
	for _, m := range cfg.Mounts {
		out = append(out, specMount(m))
	}
	return out
}

// specSeccomp writes a vessel seccomp profile in OCI form, resolving
// Docker's conditional rules.
func specSeccomp(s *security.Seccomp, caps *security.Capabilities) *specs.LinuxSeccomp {
	out := &specs.LinuxSeccomp{
		DefaultAction:    specs.LinuxSeccompAction(s.DefaultAction),
		DefaultErrnoRet:  clonePtr(s.DefaultErrnoRet),
		ListenerPath:     s.ListenerPath,
		ListenerMetadata: s.ListenerMetadata,
	}
	arches := slices.Clone(s.Architectures)
	for _, m := range s.ArchMap {
		arches = append(arches, m.Architecture)
		arches = append(arches, m.SubArchitectures...)
	}
	for _, a := range arches {
		if !slices.Contains(out.Architectures, specs.Arch(a)) {
			out.Architectures = append(out.Architectures, specs.Arch(a))
		}
	}
	for _, f := range s.Flags {
		out.Flags = append(out.Flags, specs.LinuxSeccompFlag(f))
	}
	bounding := map[string]bool{}
	if caps == nil {
		caps = security.AllCapabilities()
	}
	for _, c := range caps.Bounding {
		bounding[canonicalCap(c)] = true
	}
	for _, r := range s.Syscalls {
		if !conditionHolds(r.Includes, r.Excludes, bounding) {
			continue
		}
		names := slices.Clone(r.Names)
		if r.Name != "" {
			names = append([]string{r.Name}, names...)
		}
		sc := specs.LinuxSyscall{Names: names, Action: specs.LinuxSeccompAction(r.Action), ErrnoRet: clonePtr(r.ErrnoRet)}
		for _, a := range r.Args {
			sc.Args = append(sc.Args, specs.LinuxSeccompArg{Index: a.Index, Value: a.Value, ValueTwo: a.ValueTwo, Op: specs.LinuxSeccompOperator(a.Op)})
		}
		out.Syscalls = append(out.Syscalls, sc)
	}
	return out
}

func canonicalCap(name string) string {
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	return n
}

// nativeArches are the names Docker profiles use for this architecture.
func nativeArches() []string {
	switch runtime.GOARCH {
	case "amd64":
		return []string{"amd64", "x86_64"}
	case "arm64":
		return []string{"arm64", "aarch64"}
	}
	return []string{runtime.GOARCH}
}

// conditionHolds evaluates Docker's includes/excludes for a container with
// the bounding set caps on this machine.
func conditionHolds(in, ex *security.Filter, caps map[string]bool) bool {
	native := nativeArches()
	archIn := func(list []string) bool {
		return slices.ContainsFunc(list, func(a string) bool { return slices.Contains(native, strings.ToLower(a)) })
	}
	if in != nil {
		for _, c := range in.Caps {
			if !caps[canonicalCap(c)] {
				return false
			}
		}
		if len(in.Arches) > 0 && !archIn(in.Arches) {
			return false
		}
		if in.MinKernel != "" && !kernelAtLeast(in.MinKernel) {
			return false
		}
	}
	if ex != nil {
		for _, c := range ex.Caps {
			if caps[canonicalCap(c)] {
				return false
			}
		}
		if len(ex.Arches) > 0 && archIn(ex.Arches) {
			return false
		}
	}
	return true
}

func kernelAtLeast(want string) bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	have, ok1 := majorMinor(unix.ByteSliceToString(u.Release[:]))
	need, ok2 := majorMinor(want)
	if !ok1 || !ok2 {
		return false
	}
	return have[0] > need[0] || (have[0] == need[0] && have[1] >= need[1])
}

func majorMinor(v string) ([2]int, bool) {
	var out [2]int
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return out, false
	}
	for i := range 2 {
		n, digits := 0, 0
		for _, ch := range parts[i] {
			if ch < '0' || ch > '9' {
				break
			}
			n, digits = n*10+int(ch-'0'), digits+1
		}
		if digits == 0 {
			return out, false
		}
		out[i] = n
	}
	return out, true
}
