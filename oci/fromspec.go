package oci

import (
	"fmt"
	"math"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/fielderr"
	"github.com/openvessel/vessel/limits"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/rootfs"
	"github.com/openvessel/vessel/security"
)

// FromSpec converts the Linux part of an OCI runtime spec into a vessel
// Config. bundleDir is the bundle directory: a relative root.path and
// relative bind mount sources are resolved against it.
//
// Every field is either mapped or reported: the error joins one
// *FieldError per field vessel cannot honour or finds invalid, each naming
// the field's JSON path. Fields that only a running system can check (that
// a bind source or namespace file exists, that a page size is supported)
// are left to vessel.New, which validates the Config.
//
// The Config is explicit where vessel has defaults: masked and read-only
// paths, the security profile and the namespace set are exactly the
// spec's, an absent list meaning none. Hooks are not part of the Config;
// see HooksOf.
func FromSpec(spec *specs.Spec, bundleDir string) (*vessel.Config, error) {
	cfg, _, err := FromSpecWarnings(spec, bundleDir)
	return cfg, err
}

// FromSpecWarnings is FromSpec that also returns the fields it ignored on
// purpose, where runc ignores them too (kernel memory limits, filesystem
// options on bind mounts, ambient capabilities the kernel would refuse),
// one "field: reason" line each, for the caller to log.
func FromSpecWarnings(spec *specs.Spec, bundleDir string) (*vessel.Config, []string, error) {
	if spec == nil {
		return nil, nil, &FieldError{Field: "spec", Reason: "nil"}
	}
	var p problems
	if bundleDir == "" {
		bundleDir = "."
	}
	bundle, err := filepath.Abs(bundleDir)
	if err != nil {
		return nil, nil, &FieldError{Field: "bundle", Reason: err.Error()}
	}
	c := &converter{problems: &p, bundle: bundle}
	cfg := &vessel.Config{
		Namespaces:    namespaces.Set{},
		MaskedPaths:   []string{},
		ReadOnlyPaths: []string{},
	}
	c.version(spec.Version)
	c.validateStrings(spec)
	c.validateUTSNames(spec)
	for _, o := range []struct {
		field string
		set   bool
	}{
		{"solaris", spec.Solaris != nil}, {"windows", spec.Windows != nil},
		{"vm", spec.VM != nil}, {"zos", spec.ZOS != nil}, {"freebsd", spec.FreeBSD != nil},
	} {
		if o.set {
			c.unsupported(o.field, "vessel runs Linux containers only")
		}
	}
	c.root(spec.Root, cfg)
	c.process(spec.Process, cfg)
	cfg.Hostname = spec.Hostname
	cfg.Domainname = spec.Domainname
	c.linux(spec.Linux, cfg)
	c.annotations(spec.Annotations, cfg)
	cfg.Mounts = c.mounts(spec.Mounts)
	if _, err := HooksOf(spec); err != nil {
		p.errs = append(p.errs, err)
	}
	if err := p.err(); err != nil {
		return nil, p.warns, err
	}
	return cfg, p.warns, nil
}

type converter struct {
	*problems
	bundle string
}

func (c *converter) version(v string) {
	if v == "" {
		return // runc accepts a spec without a version; so do we
	}
	if major, _, _ := strings.Cut(v, "."); major != "1" {
		c.unsupported("ociVersion", "%q: vessel reads runtime-spec 1.x (it implements %s)", v, specs.Version)
	}
}

func (c *converter) root(r *specs.Root, cfg *vessel.Config) {
	if r == nil {
		c.bad("root", "missing: a Linux container needs a root filesystem")
		return
	}
	if r.Path == "" {
		c.bad("root.path", "empty")
		return
	}
	p := r.Path
	if !filepath.IsAbs(p) {
		p = filepath.Join(c.bundle, p)
	}
	cfg.Rootfs = rootfs.Dir(filepath.Clean(p))
	cfg.ReadOnly = r.Readonly
}

func (c *converter) process(pr *specs.Process, cfg *vessel.Config) {
	if pr == nil {
		c.bad("process", "missing: nothing to run")
		return
	}
	if len(pr.Args) == 0 {
		c.bad("process.args", "empty: nothing to run")
	}
	if pr.CommandLine != "" {
		c.unsupported("process.commandLine", "a Windows field")
	}
	if pr.User.Username != "" {
		c.unsupported("process.user.username", "a Windows field (give uid and gid)")
	}
	if pr.Cwd == "" {
		c.bad("process.cwd", "empty (it must be an absolute path)")
	} else if !path.IsAbs(pr.Cwd) {
		c.bad("process.cwd", "%q is not absolute", pr.Cwd)
	}
	p := vessel.ProcessConfig{
		Args: slices.Clone(pr.Args),
		Env:  slices.Clone(pr.Env),
		Dir:  pr.Cwd,
		User: vessel.User{UID: pr.User.UID, GID: pr.User.GID, Groups: slices.Clone(pr.User.AdditionalGids)},
		TTY:  pr.Terminal,
	}
	for i, e := range pr.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			c.bad(fmt.Sprintf("process.env[%d]", i), "%q is not KEY=VALUE", e)
		}
	}
	if pr.User.Umask != nil {
		if *pr.User.Umask > 0o777 {
			c.bad("process.user.umask", "%#o is not a permission mask", *pr.User.Umask)
		}
		u := *pr.User.Umask
		p.Umask = &u
	}
	if b := pr.ConsoleSize; b != nil {
		if b.Height > math.MaxUint16 || b.Width > math.MaxUint16 {
			c.bad("process.consoleSize", "%dx%d is larger than a terminal can be (65535)", b.Width, b.Height)
		} else {
			p.Rows, p.Cols = uint16(b.Height), uint16(b.Width)
		}
	}
	cfg.Process = p

	prof := &security.Profile{NoNewPrivileges: pr.NoNewPrivileges}
	if caps := pr.Capabilities; caps != nil {
		// runc ignores names it does not know (a newer kernel's, or a
		// mistake) with a warning; so does vessel.
		known := func(set string, names []string) []string {
			if names == nil {
				return nil
			}
			out := make([]string, 0, len(names))
			for _, n := range names {
				if _, err := security.ParseCapability(n); err != nil {
					c.warn("process.capabilities."+set, "%s ignored: not a capability this build knows (runc ignores it too)", n)
					continue
				}
				out = append(out, n)
			}
			return out
		}
		caps = &specs.LinuxCapabilities{
			Bounding: known("bounding", caps.Bounding), Effective: known("effective", caps.Effective),
			Permitted: known("permitted", caps.Permitted), Inheritable: known("inheritable", caps.Inheritable),
			Ambient: known("ambient", caps.Ambient),
		}
		prof.Capabilities = &security.Capabilities{
			Bounding:    caps.Bounding,
			Effective:   caps.Effective,
			Permitted:   caps.Permitted,
			Inheritable: caps.Inheritable,
		}
		// runc raises each ambient capability and ignores the kernel's
		// refusal, which comes for one not both permitted and inheritable
		// (`runc spec` itself writes such a list): the same set results
		// from raising only those the kernel allows.
		for _, a := range caps.Ambient {
			if slices.Contains(caps.Permitted, a) && slices.Contains(caps.Inheritable, a) {
				prof.Capabilities.Ambient = append(prof.Capabilities.Ambient, a)
			} else {
				c.warn("process.capabilities.ambient", "%s not raised: it is not both permitted and inheritable (the kernel refuses it; runc ignores that)", a)
			}
		}
		if err := prof.Capabilities.Validate(); err != nil {
			c.fieldErr("process.", err)
		}
	}
	cfg.Security = prof

	seen := map[string]int{}
	for i, r := range pr.Rlimits {
		field := fmt.Sprintf("process.rlimits[%d]", i)
		rl := limits.Rlimit{Type: r.Type, Soft: r.Soft, Hard: r.Hard}
		if err := rl.Validate(); err != nil {
			c.bad(field, "%v", err)
			continue
		}
		if j, ok := seen[r.Type]; ok {
			c.bad(field+".type", "%s is already set by process.rlimits[%d]", r.Type, j)
			continue
		}
		seen[r.Type] = i
		cfg.Rlimits = append(cfg.Rlimits, rl)
	}
	if pr.OOMScoreAdj != nil {
		v := *pr.OOMScoreAdj
		if v < -1000 || v > 1000 {
			c.bad("process.oomScoreAdj", "%d is outside -1000..1000", v)
		}
		cfg.OOMScoreAdj = &v
	}
	if pr.ApparmorProfile != "" {
		c.unsupported("process.apparmorProfile", "vessel does not apply AppArmor profiles (got %q)", pr.ApparmorProfile)
	}
	if pr.SelinuxLabel != "" {
		c.unsupported("process.selinuxLabel", "vessel does not apply SELinux labels (got %q)", pr.SelinuxLabel)
	}
	if pr.Scheduler != nil {
		c.unsupported("process.scheduler", "scheduling policies are not supported yet")
	}
	if pr.IOPriority != nil {
		c.unsupported("process.ioPriority", "I/O priorities are not supported yet")
	}
	if pr.ExecCPUAffinity != nil {
		c.unsupported("process.execCPUAffinity", "CPU affinity at exec is not supported yet")
	}
}

// fieldErr records an error of a subpackage's validation, whose fields
// are relative to prefix ("capabilities.bounding"), with the full path.
func (c *converter) fieldErr(prefix string, err error) {
	c.errs = append(c.errs, fielderr.Split(fielderr.Prefix(prefix, err))...)
}

func splitJoined(err error) []error { return fielderr.Split(err) }

func (c *converter) linux(l *specs.Linux, cfg *vessel.Config) {
	if l == nil {
		return // no namespaces of its own, no limits: allowed by the spec
	}
	c.namespaces(l.Namespaces, cfg)
	cfg.UIDMappings = idMaps(l.UIDMappings)
	cfg.GIDMappings = idMaps(l.GIDMappings)
	c.timeOffsets(l.TimeOffsets, cfg)
	if len(l.Sysctl) > 0 {
		cfg.Sysctls = make(map[string]string, len(l.Sysctl))
		for k, v := range l.Sysctl {
			cfg.Sysctls[k] = v
		}
	}
	cfg.Resources = c.resources(l.Resources)
	cfg.Cgroup = c.cgroupsPath(l.CgroupsPath)
	c.devices(l.Devices, cfg)
	if len(l.NetDevices) > 0 {
		c.unsupported("linux.netDevices", "moving host network devices into the container is not supported yet")
	}
	if l.Seccomp != nil {
		if cfg.Security == nil {
			cfg.Security = &security.Profile{}
		}
		cfg.Security.Seccomp = c.seccomp(l.Seccomp)
	}
	switch l.RootfsPropagation {
	case "", "private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable":
		cfg.RootPropagation = l.RootfsPropagation
	default:
		c.bad("linux.rootfsPropagation", "unknown mode %q", l.RootfsPropagation)
	}
	cfg.MaskedPaths = c.absPaths("linux.maskedPaths", l.MaskedPaths)
	cfg.ReadOnlyPaths = c.absPaths("linux.readonlyPaths", l.ReadonlyPaths)
	if l.MountLabel != "" {
		c.unsupported("linux.mountLabel", "vessel does not apply SELinux labels (got %q)", l.MountLabel)
	}
	if l.IntelRdt != nil {
		c.unsupported("linux.intelRdt", "Intel RDT (resctrl) is not supported yet")
	}
	if l.MemoryPolicy != nil {
		c.unsupported("linux.memoryPolicy", "NUMA memory policies are not supported yet")
	}
	if l.Personality != nil {
		c.unsupported("linux.personality", "execution domains (personality) are not supported yet")
	}
}

func (c *converter) absPaths(field string, ps []string) []string {
	out := make([]string, 0, len(ps))
	for i, p := range ps {
		if !path.IsAbs(p) {
			c.bad(fmt.Sprintf("%s[%d]", field, i), "%q is not absolute", p)
			continue
		}
		out = append(out, p)
	}
	return out
}

func (c *converter) namespaces(list []specs.LinuxNamespace, cfg *vessel.Config) {
	seen := map[namespaces.Kind]int{}
	for i, n := range list {
		field := fmt.Sprintf("linux.namespaces[%d]", i)
		k := namespaces.Kind(n.Type)
		if !k.Valid() {
			c.bad(field+".type", "unknown namespace type %q", n.Type)
			continue
		}
		if j, ok := seen[k]; ok {
			c.bad(field+".type", "%s is already listed at linux.namespaces[%d]", k, j)
			continue
		}
		seen[k] = i
		if n.Path != "" && !filepath.IsAbs(n.Path) {
			c.bad(field+".path", "%q is not absolute", n.Path)
			continue
		}
		cfg.Namespaces = append(cfg.Namespaces, namespaces.Namespace{Kind: k, Path: n.Path})
	}
}

func idMaps(in []specs.LinuxIDMapping) []namespaces.IDMap {
	if len(in) == 0 {
		return nil
	}
	out := make([]namespaces.IDMap, len(in))
	for i, m := range in {
		out[i] = namespaces.IDMap{ContainerID: m.ContainerID, HostID: m.HostID, Size: m.Size}
	}
	return out
}

func (c *converter) timeOffsets(offs map[string]specs.LinuxTimeOffset, cfg *vessel.Config) {
	for _, clock := range sortedKeys(offs) {
		o := offs[clock]
		field := "linux.timeOffsets." + clock
		if o.Nanosecs >= 1e9 {
			c.bad(field+".nanosecs", "%d is not below one second", o.Nanosecs)
			continue
		}
		const maxSecs = math.MaxInt64/int64(time.Second) - 1
		if o.Secs > maxSecs || o.Secs < -maxSecs {
			c.bad(field+".secs", "%d seconds does not fit a time offset (±%d)", o.Secs, maxSecs)
			continue
		}
		d := time.Duration(o.Secs)*time.Second + time.Duration(o.Nanosecs)
		switch clock {
		case "monotonic":
			cfg.TimeOffsets.Monotonic = d
		case "boottime":
			cfg.TimeOffsets.Boottime = d
		default:
			c.bad("linux.timeOffsets", "unknown clock %q (want monotonic or boottime)", clock)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// cgroupsPath maps linux.cgroupsPath: an absolute path is placed from the
// root of every hierarchy (Parent "/"), a relative one below the calling
// program's own cgroup (Parent ""), as the spec says.
func (c *converter) cgroupsPath(p string) vessel.CgroupConfig {
	if p == "" {
		return vessel.CgroupConfig{}
	}
	if strings.Contains(p, ":") {
		c.unsupported("linux.cgroupsPath", "%q: the systemd form slice:prefix:name is not supported yet", p)
		return vessel.CgroupConfig{}
	}
	clean := path.Clean(p)
	if clean != strings.TrimSuffix(p, "/") || strings.Contains(p, "..") {
		c.bad("linux.cgroupsPath", "%q is not a clean path (use %q)", p, clean)
		return vessel.CgroupConfig{}
	}
	if path.IsAbs(clean) {
		if clean == "/" {
			c.bad("linux.cgroupsPath", "the root cgroup cannot be a container's")
			return vessel.CgroupConfig{}
		}
		return vessel.CgroupConfig{Parent: "/", Name: strings.TrimPrefix(clean, "/")}
	}
	return vessel.CgroupConfig{Name: clean}
}

// devices maps linux.devices to device nodes created in the container
// and, as runc does, to device cgroup rules that allow their use: after the
// spec's own rules (or a deny-all when it has none) and the default
// devices, one rwm rule per node.
func (c *converter) devices(devs []specs.LinuxDevice, cfg *vessel.Config) {
	if len(devs) == 0 {
		return
	}
	var allows []limits.DeviceRule
	seen := map[string]int{}
	for i, d := range devs {
		field := fmt.Sprintf("linux.devices[%d]", i)
		p := path.Clean(d.Path)
		switch {
		case d.Path == "" || !path.IsAbs(d.Path) || p == "/":
			c.bad(field+".path", "%q must be an absolute path below /", d.Path)
			continue
		case strings.HasPrefix(p, "/proc/") || strings.HasPrefix(p, "/sys/"):
			c.bad(field+".path", "%s: a device node cannot be created in /proc or /sys", p)
			continue
		}
		if j, ok := seen[p]; ok {
			c.bad(field+".path", "%s is already created by linux.devices[%d]", p, j)
			continue
		}
		seen[p] = i
		dev := rootfs.Device{Path: p, Type: d.Type, Major: d.Major, Minor: d.Minor, Mode: 0o666}
		switch d.Type {
		case "c", "u", "b":
			if d.Major < 0 || d.Minor < 0 || d.Major > 0xfff || d.Minor > 0xfffff {
				c.bad(field, "device number %d:%d is out of range", d.Major, d.Minor)
				continue
			}
		case "p":
		default:
			c.bad(field+".type", "%q is not c, u, b or p", d.Type)
			continue
		}
		if d.FileMode != nil {
			// The spec's fileMode is the raw mode_t, as runc passes it to
			// mknod: permission, setuid, setgid and sticky bits.
			dev.Mode = uint32(*d.FileMode) & 0o7777
		}
		if d.UID != nil {
			dev.UID = *d.UID
		}
		if d.GID != nil {
			dev.GID = *d.GID
		}
		cfg.Devices = append(cfg.Devices, dev)
		if d.Type != "p" {
			typ := d.Type
			if typ == "u" {
				typ = "c"
			}
			allows = append(allows, limits.DeviceRule{Allow: true, Type: typ, Major: d.Major, Minor: d.Minor, Access: "rwm"})
		}
	}
	if len(allows) == 0 {
		return
	}
	if cfg.Resources == nil {
		cfg.Resources = &limits.Resources{}
	}
	rules := cfg.Resources.Devices
	if len(rules) == 0 {
		rules = cgroups.DefaultDevices()
	}
	// The allows go before the default ones that end the list (the same
	// access, and the list keeps the form ToSpec reads back); a rule the
	// defaults already hold is not repeated.
	defaults := defaultDeviceAllows()
	head := slices.Clone(rules[:len(rules)-len(defaults)])
	for _, a := range allows {
		if !slices.Contains(defaults, a) && !slices.Contains(head, a) {
			head = append(head, a)
		}
	}
	cfg.Resources.Devices = append(head, defaults...)
}

// notifyRefused are the system calls a process may make after its
// seccomp filter is loaded and before its execve, in vessel's exec stage:
// dropping privileges (the filter comes first when the process keeps no
// CAP_SYS_ADMIN and no_new_privs is off, as under runc), sending the
// listener and waiting to be started (sendmsg, recvmsg, close), the
// execve, and the Go runtime's own (threads, memory, signals, sleeps).
// Notified, they would wait for an agent that has not got the listener.
var notifyRefused = []string{
	"capset", "clock_nanosleep", "clone", "clone3", "close", "execve", "execveat", "exit",
	"exit_group", "futex", "getpid", "gettid", "landlock_add_rule", "landlock_create_ruleset",
	"landlock_restrict_self", "madvise", "mmap", "mprotect", "munmap", "nanosleep", "prctl",
	"recvmsg", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sched_yield", "sendmsg",
	"setgid", "setgroups", "setresgid", "setresuid", "setuid", "sigaltstack", "tgkill", "write",
}

func (c *converter) seccomp(s *specs.LinuxSeccomp) *security.Seccomp {
	out := &security.Seccomp{
		DefaultAction:    security.Action(s.DefaultAction),
		DefaultErrnoRet:  clonePtr(s.DefaultErrnoRet),
		ListenerPath:     s.ListenerPath,
		ListenerMetadata: s.ListenerMetadata,
	}
	for _, a := range s.Architectures {
		out.Architectures = append(out.Architectures, string(a))
	}
	for _, f := range s.Flags {
		out.Flags = append(out.Flags, string(f))
	}
	if s.DefaultAction == specs.ActNotify {
		c.bad("linux.seccomp.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action (as under runc): the process's own start would wait for the agent that has not got the listener yet")
	}
	notify := false
	for i, r := range s.Syscalls {
		if r.Action == specs.ActNotify {
			notify = true
			for _, n := range r.Names {
				if slices.Contains(notifyRefused, n) {
					c.bad(fmt.Sprintf("linux.seccomp.syscalls[%d].names", i), "SCMP_ACT_NOTIFY on %s: vessel makes that call between loading the filter and execve, before the agent has the listener (calls that cannot be notified: %s)", n, strings.Join(notifyRefused, ", "))
				}
			}
		}
		sc := security.Syscall{Names: slices.Clone(r.Names), Action: security.Action(r.Action), ErrnoRet: clonePtr(r.ErrnoRet)}
		for _, a := range r.Args {
			sc.Args = append(sc.Args, security.Arg{Index: a.Index, Value: a.Value, ValueTwo: a.ValueTwo, Op: security.Operator(a.Op)})
		}
		out.Syscalls = append(out.Syscalls, sc)
	}
	if notify && s.ListenerPath == "" {
		c.bad("linux.seccomp.listenerPath", "empty, but syscalls use SCMP_ACT_NOTIFY: nothing would answer the notified calls")
	}
	if err := out.Validate(); err != nil {
		c.fieldErr("linux.", err)
	}
	return out
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
