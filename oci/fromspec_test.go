package oci

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/limits"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/rootfs"
	"github.com/openvessel/vessel/security"
)

func ptr[T any](v T) *T { return &v }

// baseSpec is DefaultSpec, without a terminal, for mutation by the tests.
func baseSpec() *specs.Spec {
	s := DefaultSpec()
	s.Process.Terminal = false
	return s
}

func mustFromSpec(t *testing.T, s *specs.Spec) *vessel.Config {
	t.Helper()
	cfg, err := FromSpec(s, "/bundle")
	if err != nil {
		t.Fatalf("FromSpec: %v", err)
	}
	return cfg
}

func TestFromSpecDefault(t *testing.T) {
	cfg := mustFromSpec(t, baseSpec())
	if want := rootfs.Dir("/bundle/rootfs"); !reflect.DeepEqual(cfg.Rootfs, want) {
		t.Errorf("Rootfs = %+v, want %+v", cfg.Rootfs, want)
	}
	if !cfg.ReadOnly {
		t.Error("Readonly = false, want true")
	}
	if cfg.Hostname != "vessel" {
		t.Errorf("Hostname = %q", cfg.Hostname)
	}
	wantNS := namespaces.Set{{Kind: namespaces.PID}, {Kind: namespaces.Net}, {Kind: namespaces.IPC}, {Kind: namespaces.UTS}, {Kind: namespaces.Mount}, {Kind: namespaces.Cgroup}}
	if !reflect.DeepEqual(cfg.Namespaces, wantNS) {
		t.Errorf("Namespaces = %v, want %v", cfg.Namespaces, wantNS)
	}
	if len(cfg.Mounts) != 0 {
		t.Errorf("the standard mounts should fold into vessel's own, got Mounts %+v", cfg.Mounts)
	}
	caps := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	wantSec := &security.Profile{NoNewPrivileges: true, Capabilities: &security.Capabilities{Bounding: caps, Effective: caps, Permitted: caps}}
	if !reflect.DeepEqual(cfg.Security, wantSec) {
		t.Errorf("Security = %+v, want %+v", cfg.Security, wantSec)
	}
	if want := []limits.Rlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 1024}}; !reflect.DeepEqual(cfg.Rlimits, want) {
		t.Errorf("Rlimits = %v, want %v", cfg.Rlimits, want)
	}
	if cfg.Resources == nil || !reflect.DeepEqual(cfg.Resources.Devices, cgroups.DefaultDevices()) {
		t.Errorf("device rules = %+v, want cgroups.DefaultDevices()", cfg.Resources)
	}
	if !reflect.DeepEqual(cfg.ReadOnlyPaths, rootfs.DefaultReadonlyPaths) {
		t.Errorf("ReadOnlyPaths = %v", cfg.ReadOnlyPaths)
	}
	if !reflect.DeepEqual(cfg.MaskedPaths, DefaultSpec().Linux.MaskedPaths) {
		t.Errorf("MaskedPaths = %v", cfg.MaskedPaths)
	}
	if cfg.Process.Dir != "/" || !reflect.DeepEqual(cfg.Process.Args, []string{"sh"}) || cfg.Process.TTY {
		t.Errorf("Process = %+v", cfg.Process)
	}
}

// fullSpec sets a value in every field FromSpec maps.
func fullSpec() *specs.Spec {
	s := baseSpec()
	s.Root = &specs.Root{Path: "/abs/root"}
	s.Domainname = "example.org"
	p := s.Process
	p.Terminal = true
	p.ConsoleSize = &specs.Box{Height: 40, Width: 120}
	p.User = specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{5, 6}, Umask: ptr(uint32(0o077))}
	p.Env = []string{"A=1", "PATH=/bin"}
	p.Cwd = "/home"
	p.OOMScoreAdj = ptr(500)
	p.NoNewPrivileges = false
	p.Capabilities = &specs.LinuxCapabilities{
		Bounding: []string{"CAP_NET_ADMIN", "CAP_KILL"}, Effective: []string{"CAP_KILL"}, Permitted: []string{"CAP_KILL"},
		Inheritable: []string{"CAP_KILL"}, Ambient: []string{"CAP_KILL"},
	}
	p.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 10, Hard: 20}, {Type: "RLIMIT_CORE", Soft: 0, Hard: 0}}
	l := s.Linux
	l.Namespaces = append(l.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace}, specs.LinuxNamespace{Type: specs.TimeNamespace})
	l.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	l.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}}
	l.TimeOffsets = map[string]specs.LinuxTimeOffset{"monotonic": {Secs: -5, Nanosecs: 250}, "boottime": {Secs: 3600}}
	l.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
	l.CgroupsPath = "/machine/c1"
	l.MaskedPaths = nil
	l.ReadonlyPaths = []string{"/proc/sys"}
	l.Resources = &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: ptr(int64(256 << 20)), Reservation: ptr(int64(128 << 20)), Swap: ptr(int64(512 << 20)), UseHierarchy: ptr(true)},
		CPU:    &specs.LinuxCPU{Shares: ptr(uint64(1024)), Quota: ptr(int64(50000)), Period: ptr(uint64(200000)), Cpus: "0-1", Mems: "0"},
		Pids:   &specs.LinuxPids{Limit: ptr(int64(0))},
		BlockIO: &specs.LinuxBlockIO{
			Weight:                  ptr(uint16(300)),
			ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 1 << 20}},
			ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 16}, Rate: 100}},
		},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}},
		Devices:        []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}, {Allow: true, Type: "c", Major: ptr(int64(10)), Minor: ptr(int64(200)), Access: "rw"}},
	}
	l.Devices = []specs.LinuxDevice{{Path: "/dev/null", Type: "c", Major: 1, Minor: 3, FileMode: ptr(os.FileMode(0o666)), UID: ptr(uint32(0))}}
	l.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno, DefaultErrnoRet: ptr(uint(1)),
		Architectures: []specs.Arch{specs.ArchX86_64}, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog},
		Syscalls: []specs.LinuxSyscall{{Names: []string{"read", "write"}, Action: specs.ActAllow},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 8, Op: specs.OpEqualTo}}}},
	}
	l.RootfsPropagation = "rprivate"
	s.Mounts = append(s.Mounts,
		specs.Mount{Destination: "/data", Type: "bind", Source: "/srv", Options: []string{"rbind", "ro", "nosuid", "rslave"}},
		specs.Mount{Destination: "/scratch", Type: "tmpfs", Source: "tmpfs", Options: []string{"nodev", "size=1048576", "mode=700", "uid=1000"}},
	)
	s.Hooks = &specs.Hooks{Poststart: []specs.Hook{{Path: "/bin/true", Args: []string{"true"}, Timeout: ptr(5)}}}
	return s
}

func TestFromSpecMappings(t *testing.T) {
	s := fullSpec()
	cfg := mustFromSpec(t, s)

	if cfg.Rootfs.Path != "/abs/root" || cfg.ReadOnly {
		t.Errorf("root: %+v readonly %v", cfg.Rootfs, cfg.ReadOnly)
	}
	if cfg.Domainname != "example.org" {
		t.Errorf("Domainname = %q", cfg.Domainname)
	}
	wantProc := vessel.ProcessConfig{
		Args: []string{"sh"}, Env: []string{"A=1", "PATH=/bin"}, Dir: "/home",
		User: vessel.User{UID: 1000, GID: 1001, Groups: []uint32{5, 6}}, Umask: ptr(uint32(0o077)),
		TTY: true, Rows: 40, Cols: 120,
	}
	if !reflect.DeepEqual(cfg.Process, wantProc) {
		t.Errorf("Process = %+v\nwant %+v", cfg.Process, wantProc)
	}
	if cfg.OOMScoreAdj == nil || *cfg.OOMScoreAdj != 500 {
		t.Errorf("OOMScoreAdj = %v", cfg.OOMScoreAdj)
	}
	if cfg.Security.NoNewPrivileges || !reflect.DeepEqual(cfg.Security.Capabilities.Ambient, []string{"CAP_KILL"}) ||
		!reflect.DeepEqual(cfg.Security.Capabilities.Bounding, []string{"CAP_NET_ADMIN", "CAP_KILL"}) ||
		!reflect.DeepEqual(cfg.Security.Capabilities.Inheritable, []string{"CAP_KILL"}) {
		t.Errorf("Security = %+v caps %+v", cfg.Security, cfg.Security.Capabilities)
	}
	if want := []limits.Rlimit{{Type: "RLIMIT_NOFILE", Soft: 10, Hard: 20}, {Type: "RLIMIT_CORE"}}; !reflect.DeepEqual(cfg.Rlimits, want) {
		t.Errorf("Rlimits = %v", cfg.Rlimits)
	}
	if !cfg.Namespaces.IsNew(namespaces.User) || !cfg.Namespaces.IsNew(namespaces.Time) {
		t.Errorf("Namespaces = %v", cfg.Namespaces)
	}
	if want := []namespaces.IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}; !reflect.DeepEqual(cfg.UIDMappings, want) {
		t.Errorf("UIDMappings = %v", cfg.UIDMappings)
	}
	if want := []namespaces.IDMap{{ContainerID: 0, HostID: 200000, Size: 65536}}; !reflect.DeepEqual(cfg.GIDMappings, want) {
		t.Errorf("GIDMappings = %v", cfg.GIDMappings)
	}
	if want := (namespaces.TimeOffsets{Monotonic: -5*time.Second + 250, Boottime: time.Hour}); cfg.TimeOffsets != want {
		t.Errorf("TimeOffsets = %+v, want %+v", cfg.TimeOffsets, want)
	}
	if !reflect.DeepEqual(cfg.Sysctls, map[string]string{"net.ipv4.ip_forward": "1"}) {
		t.Errorf("Sysctls = %v", cfg.Sysctls)
	}
	if want := (vessel.CgroupConfig{Parent: "/", Name: "machine/c1"}); cfg.Cgroup != want {
		t.Errorf("Cgroup = %+v, want %+v", cfg.Cgroup, want)
	}
	if cfg.MaskedPaths == nil || len(cfg.MaskedPaths) != 0 {
		t.Errorf("MaskedPaths = %#v, want empty and not nil (nil would mean vessel's defaults)", cfg.MaskedPaths)
	}
	if !reflect.DeepEqual(cfg.ReadOnlyPaths, []string{"/proc/sys"}) {
		t.Errorf("ReadOnlyPaths = %v", cfg.ReadOnlyPaths)
	}
	r := cfg.Resources
	wantMem := &limits.Memory{Limit: ptr(int64(256 << 20)), Reservation: ptr(int64(128 << 20)), Swap: ptr(int64(512 << 20))}
	if !reflect.DeepEqual(r.Memory, wantMem) {
		t.Errorf("Memory = %+v", r.Memory)
	}
	wantCPU := &limits.CPU{Shares: ptr(uint64(1024)), CPUs: ptr(0.25), Period: ptr(uint64(200000)), Cpuset: "0-1", Mems: "0"}
	if !reflect.DeepEqual(r.CPU, wantCPU) {
		t.Errorf("CPU = %+v, want %+v", r.CPU, wantCPU)
	}
	if r.Pids == nil || r.Pids.Max == nil || *r.Pids.Max != limits.Unlimited {
		t.Errorf("Pids = %+v, want unlimited for limit 0", r.Pids)
	}
	wantIO := &limits.IO{Weight: ptr(uint16(300)), ReadBps: []limits.DeviceRate{{Major: 8, Minor: 0, Rate: 1 << 20}}, WriteIOPS: []limits.DeviceRate{{Major: 8, Minor: 16, Rate: 100}}}
	if !reflect.DeepEqual(r.IO, wantIO) {
		t.Errorf("IO = %+v", r.IO)
	}
	if want := []limits.HugeTLB{{PageSize: "2MB", Limit: 4 << 20}}; !reflect.DeepEqual(r.HugeTLB, want) {
		t.Errorf("HugeTLB = %v", r.HugeTLB)
	}
	wantDev := append([]limits.DeviceRule{
		{Allow: false, Type: "a", Major: -1, Minor: -1, Access: "rwm"},
		{Allow: true, Type: "c", Major: 10, Minor: 200, Access: "rw"},
	}, cgroups.DefaultDevices()[1:]...)
	if !reflect.DeepEqual(r.Devices, wantDev) {
		t.Errorf("Devices = %v\nwant %v", r.Devices, wantDev)
	}
	sc := cfg.Security.Seccomp
	if sc == nil || sc.DefaultAction != security.ActErrno || *sc.DefaultErrnoRet != 1 ||
		!reflect.DeepEqual(sc.Architectures, []string{"SCMP_ARCH_X86_64"}) || !reflect.DeepEqual(sc.Flags, []string{"SECCOMP_FILTER_FLAG_LOG"}) ||
		len(sc.Syscalls) != 2 || !reflect.DeepEqual(sc.Syscalls[1].Args, []security.Arg{{Index: 0, Value: 8, Op: security.OpEqualTo}}) {
		t.Errorf("Seccomp = %+v", sc)
	}
	if _, err := sc.Compile(); err != nil {
		t.Errorf("the converted seccomp profile does not compile: %v", err)
	}
}

func TestFromSpecCPUDetails(t *testing.T) {
	for _, tc := range []struct {
		name string
		cpu  specs.LinuxCPU
		want limits.CPU
	}{
		{"quota unlimited", specs.LinuxCPU{Quota: ptr(int64(-1))}, limits.CPU{CPUs: ptr(-1.0)}},
		{"quota default period", specs.LinuxCPU{Quota: ptr(int64(150000))}, limits.CPU{CPUs: ptr(1.5)}},
		{"quota zero is unset", specs.LinuxCPU{Quota: ptr(int64(0))}, limits.CPU{}},
		{"shares zero is unset", specs.LinuxCPU{Shares: ptr(uint64(0))}, limits.CPU{}},
		{"shares as runc writes them", specs.LinuxCPU{Shares: ptr(uint64(512))}, limits.CPU{Shares: ptr(uint64(512))}},
		{"shares below min", specs.LinuxCPU{Shares: ptr(uint64(1))}, limits.CPU{Shares: ptr(uint64(2))}},
		{"shares above max", specs.LinuxCPU{Shares: ptr(uint64(1 << 30))}, limits.CPU{Shares: ptr(uint64(262144))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := baseSpec()
			s.Linux.Resources.CPU = &tc.cpu
			cfg := mustFromSpec(t, s)
			if !reflect.DeepEqual(*cfg.Resources.CPU, tc.want) {
				t.Errorf("CPU = %+v, want %+v", *cfg.Resources.CPU, tc.want)
			}
		})
	}
}

func TestWeightSharesInverse(t *testing.T) {
	for w := uint64(1); w <= 10000; w++ {
		if got := cgroups.WeightFromShares(sharesFromWeight(w)); got != w {
			t.Fatalf("WeightFromShares(sharesFromWeight(%d)) = %d", w, got)
		}
	}
	if s := sharesFromWeight(10000); s != 262144 {
		t.Errorf("sharesFromWeight(10000) = %d, want 262144", s)
	}
	if s := sharesFromWeight(1); s != 2 {
		t.Errorf("sharesFromWeight(1) = %d, want 2", s)
	}
}

func TestFromSpecCgroupsPath(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want vessel.CgroupConfig
	}{
		{"", vessel.CgroupConfig{}},
		{"/a", vessel.CgroupConfig{Parent: "/", Name: "a"}},
		{"/a/b/c", vessel.CgroupConfig{Parent: "/", Name: "a/b/c"}},
		{"x/y", vessel.CgroupConfig{Name: "x/y"}},
	} {
		s := baseSpec()
		s.Linux.CgroupsPath = tc.in
		if got := mustFromSpec(t, s).Cgroup; got != tc.want {
			t.Errorf("cgroupsPath %q: Cgroup = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestFromSpecMounts(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   specs.Mount
		want rootfs.Mount
	}{
		{"rbind ro", specs.Mount{Destination: "/data", Type: "bind", Source: "/srv", Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec", "rslave"}},
			rootfs.Mount{Type: "bind", Source: "/srv", Destination: "/data", ReadOnly: true, NoSuid: true, NoDev: true, NoExec: true, Propagation: "rslave"}},
		{"bind option only", specs.Mount{Destination: "/data", Type: "none", Source: "/srv", Options: []string{"bind", "rw"}},
			rootfs.Mount{Type: "bind", Source: "/srv", Destination: "/data", NonRecursive: true}},
		{"bind type without options", specs.Mount{Destination: "/data", Type: "bind", Source: "/srv"},
			rootfs.Mount{Type: "bind", Source: "/srv", Destination: "/data", NonRecursive: true}},
		{"relative source and destination", specs.Mount{Destination: "data/", Source: "vol", Options: []string{"rbind", "private"}},
			rootfs.Mount{Type: "bind", Source: "/bundle/vol", Destination: "/data", Propagation: "private"}},
		{"last of ro and rw wins", specs.Mount{Destination: "/d", Source: "/s", Options: []string{"rbind", "ro", "rw", "suid", "dev", "exec", "rro"}},
			rootfs.Mount{Type: "bind", Source: "/s", Destination: "/d", ReadOnly: true}},
		{"tmpfs size and mode", specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "size=64m", "mode=1770", "uid=1000", "relatime"}},
			rootfs.Mount{Type: "tmpfs", Source: "tmpfs", Destination: "/tmp", NoSuid: true, NoDev: true, Size: 64 << 20, Mode: 0o1770, Data: []string{"uid=1000"}}},
		{"tmpfs size in bytes and percent", specs.Mount{Destination: "/run", Type: "tmpfs", Options: []string{"size=50%"}},
			rootfs.Mount{Type: "tmpfs", Destination: "/run", Data: []string{"size=50%"}}},
		{"proc elsewhere", specs.Mount{Destination: "/mnt/proc", Type: "proc", Source: "proc", Options: []string{"hidepid=2"}},
			rootfs.Mount{Type: "proc", Source: "proc", Destination: "/mnt/proc", Data: []string{"hidepid=2"}}},
		{"sysfs read-write at /sys", specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs"},
			rootfs.Mount{Type: "sysfs", Source: "sysfs", Destination: "/sys"}},
		{"devpts other options", specs.Mount{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"newinstance", "ptmxmode=0600", "max=10"}},
			rootfs.Mount{Type: "devpts", Source: "devpts", Destination: "/dev/pts", Data: []string{"newinstance", "ptmxmode=0600", "max=10"}}},
		{"mqueue", specs.Mount{Destination: "/mq", Type: "mqueue", Source: "mqueue", Options: []string{"ro"}},
			rootfs.Mount{Type: "mqueue", Source: "mqueue", Destination: "/mq", ReadOnly: true}},
		{"cgroup2 elsewhere", specs.Mount{Destination: "/cg", Type: "cgroup2", Source: "cgroup", Options: []string{"nsdelegate"}},
			rootfs.Mount{Type: "cgroup2", Source: "cgroup", Destination: "/cg", Data: []string{"nsdelegate"}}},
		{"overlay passes options", specs.Mount{Destination: "/o", Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/a", "upperdir=/b", "workdir=/c", "nodev"}},
			rootfs.Mount{Type: "overlay", Source: "overlay", Destination: "/o", NoDev: true, Data: []string{"lowerdir=/a", "upperdir=/b", "workdir=/c"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := baseSpec()
			s.Mounts = append(s.Mounts, tc.in)
			if tc.in.Destination == "/sys" || tc.in.Destination == "/dev/pts" {
				s.Mounts = dropMount(s.Mounts, tc.in.Destination)
			}
			if tc.in.Destination == "/sys" {
				s.Mounts = dropMount(s.Mounts, "/sys/fs/cgroup")
			}
			cfg := mustFromSpec(t, s)
			if len(cfg.Mounts) != 1 || !reflect.DeepEqual(cfg.Mounts[0], tc.want) {
				t.Errorf("Mounts = %+v\nwant [%+v]", cfg.Mounts, tc.want)
			}
		})
	}
}

// dropMount removes the first mount at dst.
func dropMount(ms []specs.Mount, dst string) []specs.Mount {
	var out []specs.Mount
	dropped := false
	for _, m := range ms {
		if m.Destination == dst && !dropped {
			dropped = true
			continue
		}
		out = append(out, m)
	}
	return out
}

func TestFromSpecFoldsStandardMountVariants(t *testing.T) {
	s := baseSpec()
	for i := range s.Mounts {
		m := &s.Mounts[i]
		switch m.Destination {
		case "/dev/pts":
			m.Options = []string{"nosuid", "noexec", "newinstance", "ptmxmode=666", "mode=620"} // rootless form, short modes
		case "/proc":
			m.Options = []string{"nosuid", "nodev", "noexec", "relatime"}
		case "/sys/fs/cgroup":
			m.Type = "cgroup2"
		}
	}
	if cfg := mustFromSpec(t, s); len(cfg.Mounts) != 0 {
		t.Errorf("Mounts = %+v, want all folded", cfg.Mounts)
	}
}

func TestFromSpecBindOverDev(t *testing.T) {
	s := baseSpec()
	s.Mounts = []specs.Mount{{Destination: "/dev", Type: "bind", Source: "/dev", Options: []string{"rbind"}}, {Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}}}
	cfg := mustFromSpec(t, s)
	if len(cfg.Mounts) != 2 || cfg.Mounts[1].Destination != "/dev/pts" {
		t.Errorf("with the host's /dev bound, /dev/pts must be mounted as given, got %+v", cfg.Mounts)
	}
}

func TestFromSpecErrors(t *testing.T) {
	for _, tc := range []struct {
		name        string
		mutate      func(s *specs.Spec)
		field       string
		unsupported bool
	}{
		{"nil process", func(s *specs.Spec) { s.Process = nil }, "process", false},
		{"nil root", func(s *specs.Spec) { s.Root = nil }, "root", false},
		{"empty root path", func(s *specs.Spec) { s.Root.Path = "" }, "root.path", false},
		{"version 2", func(s *specs.Spec) { s.Version = "2.0.0" }, "ociVersion", true},
		{"windows section", func(s *specs.Spec) { s.Windows = &specs.Windows{} }, "windows", true},
		{"solaris section", func(s *specs.Spec) { s.Solaris = &specs.Solaris{} }, "solaris", true},
		{"vm section", func(s *specs.Spec) { s.VM = &specs.VM{} }, "vm", true},
		{"empty args", func(s *specs.Spec) { s.Process.Args = nil }, "process.args", false},
		{"relative cwd", func(s *specs.Spec) { s.Process.Cwd = "home" }, "process.cwd", false},
		{"empty cwd", func(s *specs.Spec) { s.Process.Cwd = "" }, "process.cwd", false},
		{"bad env", func(s *specs.Spec) { s.Process.Env = []string{"NOEQUALS"} }, "process.env[0]", false},
		{"bad umask", func(s *specs.Spec) { s.Process.User.Umask = ptr(uint32(0o1000)) }, "process.user.umask", false},
		{"username", func(s *specs.Spec) { s.Process.User.Username = "bob" }, "process.user.username", true},
		{"command line", func(s *specs.Spec) { s.Process.CommandLine = "cmd.exe" }, "process.commandLine", true},
		{"console too large", func(s *specs.Spec) { s.Process.ConsoleSize = &specs.Box{Height: 70000, Width: 80} }, "process.consoleSize", false},
		{"effective not permitted", func(s *specs.Spec) { s.Process.Capabilities.Effective = []string{"CAP_SYS_ADMIN"} }, "process.capabilities.effective", false},
		{"unknown rlimit", func(s *specs.Spec) { s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_FOO"}} }, "process.rlimits[0]", false},
		{"rlimit soft above hard", func(s *specs.Spec) {
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 2, Hard: 1}}
		}, "process.rlimits[0]", false},
		{"duplicate rlimit", func(s *specs.Spec) { s.Process.Rlimits = append(s.Process.Rlimits, s.Process.Rlimits[0]) }, "process.rlimits[1].type", false},
		{"oom score", func(s *specs.Spec) { s.Process.OOMScoreAdj = ptr(1001) }, "process.oomScoreAdj", false},
		{"apparmor", func(s *specs.Spec) { s.Process.ApparmorProfile = "docker-default" }, "process.apparmorProfile", true},
		{"selinux", func(s *specs.Spec) { s.Process.SelinuxLabel = "system_u:system_r:container_t:s0" }, "process.selinuxLabel", true},
		{"scheduler", func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedFIFO} }, "process.scheduler", true},
		{"io priority", func(s *specs.Spec) { s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE} }, "process.ioPriority", true},
		{"exec cpu affinity", func(s *specs.Spec) { s.Process.ExecCPUAffinity = &specs.CPUAffinity{Final: "0"} }, "process.execCPUAffinity", true},
		{"mount without destination", func(s *specs.Spec) { s.Mounts = append(s.Mounts, specs.Mount{Type: "tmpfs"}) }, "mounts[7].destination", false},
		{"mount over root", func(s *specs.Spec) { s.Mounts = append(s.Mounts, specs.Mount{Destination: "/", Type: "tmpfs"}) }, "mounts[7].destination", false},
		{"mount type none without bind", func(s *specs.Spec) { s.Mounts = append(s.Mounts, specs.Mount{Destination: "/x", Type: "none"}) }, "mounts[7].type", false},
		{"bind without source", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/x", Options: []string{"rbind"}})
		}, "mounts[7].source", false},
		{"unknown tmpfs option", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/x", Type: "tmpfs", Options: []string{"frobnicate"}})
		}, "mounts[7].options", false},
		{"bad tmpfs size", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/x", Type: "tmpfs", Options: []string{"size=lots"}})
		}, "mounts[7].options", false},
		{"bad tmpfs mode", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/x", Type: "tmpfs", Options: []string{"mode=999"}})
		}, "mounts[7].options", false},
		{"sync option", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/x", Type: "tmpfs", Options: []string{"sync"}})
		}, "mounts[7].options", true},
		{"noatime option", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/x", Type: "tmpfs", Options: []string{"noatime"}})
		}, "mounts[7].options", true},
		{"idmapped mount", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/x", Source: "/y", Options: []string{"rbind"}, UIDMappings: []specs.LinuxIDMapping{{Size: 1}}})
		}, "mounts[7].uidMappings", true},
		{"cgroup v1 elsewhere", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/cg", Type: "cgroup", Source: "cgroup"})
		}, "mounts[7].type", true},
		{"unknown namespace", func(s *specs.Spec) { s.Linux.Namespaces[0].Type = "pidz" }, "linux.namespaces[0].type", false},
		{"duplicate namespace", func(s *specs.Spec) { s.Linux.Namespaces = append(s.Linux.Namespaces, s.Linux.Namespaces[0]) }, "linux.namespaces[6].type", false},
		{"relative namespace path", func(s *specs.Spec) { s.Linux.Namespaces[1].Path = "proc/1/ns/net" }, "linux.namespaces[1].path", false},
		{"unknown clock", func(s *specs.Spec) { s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"realtime": {Secs: 1}} }, "linux.timeOffsets", false},
		{"nanosecs overflow", func(s *specs.Spec) {
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Nanosecs: 1e9}}
		}, "linux.timeOffsets.boottime.nanosecs", false},
		{"secs overflow", func(s *specs.Spec) {
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"monotonic": {Secs: 1 << 62}}
		}, "linux.timeOffsets.monotonic.secs", false},
		{"systemd cgroups path", func(s *specs.Spec) { s.Linux.CgroupsPath = "system.slice:vessel:c1" }, "linux.cgroupsPath", true},
		{"unclean cgroups path", func(s *specs.Spec) { s.Linux.CgroupsPath = "/a/../b" }, "linux.cgroupsPath", false},
		{"root cgroup", func(s *specs.Spec) { s.Linux.CgroupsPath = "/" }, "linux.cgroupsPath", false},
		{"net devices", func(s *specs.Spec) { s.Linux.NetDevices = map[string]specs.LinuxNetDevice{"eth1": {}} }, "linux.netDevices", true},
		{"rootfs propagation unknown", func(s *specs.Spec) { s.Linux.RootfsPropagation = "weird" }, "linux.rootfsPropagation", false},
		{"relative masked path", func(s *specs.Spec) { s.Linux.MaskedPaths = []string{"proc/kcore"} }, "linux.maskedPaths[0]", false},
		{"relative readonly path", func(s *specs.Spec) { s.Linux.ReadonlyPaths = []string{"proc"} }, "linux.readonlyPaths[0]", false},
		{"mount label", func(s *specs.Spec) { s.Linux.MountLabel = "system_u:object_r:container_file_t:s0" }, "linux.mountLabel", true},
		{"intel rdt", func(s *specs.Spec) { s.Linux.IntelRdt = &specs.LinuxIntelRdt{ClosID: "x"} }, "linux.intelRdt", true},
		{"memory policy", func(s *specs.Spec) { s.Linux.MemoryPolicy = &specs.LinuxMemoryPolicy{Mode: specs.MpolBind, Nodes: "0"} }, "linux.memoryPolicy", true},
		{"personality", func(s *specs.Spec) { s.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32} }, "linux.personality", true},
		{"ptys annotation", func(s *specs.Spec) { s.Annotations = map[string]string{AnnotationPtys: "0"} }, "annotations." + AnnotationPtys, false},
		{"shm annotation", func(s *specs.Spec) { s.Annotations = map[string]string{AnnotationShmSize: "1k"} }, "annotations." + AnnotationShmSize, false},
		{"usage sampling annotation", func(s *specs.Spec) { s.Annotations = map[string]string{AnnotationUsageSampling: "1ms"} }, "annotations." + AnnotationUsageSampling, false},
		{"no hierarchy", func(s *specs.Spec) { s.Linux.Resources.Memory = &specs.LinuxMemory{UseHierarchy: ptr(false)} }, "linux.resources.memory.useHierarchy", true},
		{"check before update", func(s *specs.Spec) { s.Linux.Resources.Memory = &specs.LinuxMemory{CheckBeforeUpdate: ptr(true)} }, "linux.resources.memory.checkBeforeUpdate", true},
		{"cpu burst", func(s *specs.Spec) { s.Linux.Resources.CPU = &specs.LinuxCPU{Burst: ptr(uint64(1))} }, "linux.resources.cpu.burst", true},
		{"cpu realtime runtime", func(s *specs.Spec) { s.Linux.Resources.CPU = &specs.LinuxCPU{RealtimeRuntime: ptr(int64(1))} }, "linux.resources.cpu.realtimeRuntime", true},
		{"cpu realtime period", func(s *specs.Spec) { s.Linux.Resources.CPU = &specs.LinuxCPU{RealtimePeriod: ptr(uint64(1))} }, "linux.resources.cpu.realtimePeriod", true},
		{"cpu idle", func(s *specs.Spec) { s.Linux.Resources.CPU = &specs.LinuxCPU{Idle: ptr(int64(1))} }, "linux.resources.cpu.idle", true},
		{"blkio leaf weight", func(s *specs.Spec) { s.Linux.Resources.BlockIO = &specs.LinuxBlockIO{LeafWeight: ptr(uint16(10))} }, "linux.resources.blockIO.leafWeight", true},
		{"blkio weight device", func(s *specs.Spec) {
			s.Linux.Resources.BlockIO = &specs.LinuxBlockIO{WeightDevice: []specs.LinuxWeightDevice{{Weight: ptr(uint16(10))}}}
		}, "linux.resources.blockIO.weightDevice", true},
		{"net cls", func(s *specs.Spec) { s.Linux.Resources.Network = &specs.LinuxNetwork{ClassID: ptr(uint32(1))} }, "linux.resources.network", true},
		{"rdma", func(s *specs.Spec) { s.Linux.Resources.Rdma = map[string]specs.LinuxRdma{"mlx": {}} }, "linux.resources.rdma", true},
		{"unified", func(s *specs.Spec) { s.Linux.Resources.Unified = map[string]string{"memory.high": "1"} }, "linux.resources.unified", true},
		{"bad device rule", func(s *specs.Spec) {
			s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Type: "x", Access: "rwm"}}
		}, "linux.resources.devices[0]", false},
		{"seccomp notify without listener", func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"mount"}, Action: specs.ActNotify}}}
		}, "linux.seccomp.listenerPath", false},
		{"seccomp notify on the stage's calls", func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/run/l.sock", Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir", "sendmsg"}, Action: specs.ActNotify}}}
		}, "linux.seccomp.syscalls[0].names", false},
		{"seccomp notify default", func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActNotify, ListenerPath: "/run/l.sock"}
		}, "linux.seccomp.defaultAction", false},
		{"seccomp bad action", func(s *specs.Spec) { s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_DANCE"} }, "linux.seccomp.defaultAction", false},
		{"seccomp bad operator", func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 0, Op: "SCMP_CMP_SOMETIMES"}}}}}
		}, "linux.seccomp.syscalls[0].args[0].op", false},
		{"hook relative path", func(s *specs.Spec) { s.Hooks = &specs.Hooks{Poststart: []specs.Hook{{Path: "hook.sh"}}} }, "hooks.poststart[0].path", false},
		{"hook zero timeout", func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/true", Timeout: ptr(0)}}}
		}, "hooks.createRuntime[0].timeout", false},
		{"hook bad env", func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{Prestart: []specs.Hook{{Path: "/bin/true", Env: []string{"=x"}}}}
		}, "hooks.prestart[0].env[0]", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := baseSpec()
			tc.mutate(s)
			cfg, err := FromSpec(s, "/bundle")
			if err == nil {
				t.Fatalf("FromSpec succeeded (Config %+v), want an error naming %s", cfg, tc.field)
			}
			var fe *FieldError
			found := false
			for _, e := range splitJoined(err) {
				if errors.As(e, &fe) && fe.Field == tc.field {
					found = true
					if got := errors.Is(e, ErrNotSupported); got != tc.unsupported {
						t.Errorf("errors.Is(%v, ErrNotSupported) = %v, want %v", e, got, tc.unsupported)
					}
				}
			}
			if !found {
				t.Errorf("error %q does not name field %s", err, tc.field)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error text %q does not contain %s", err, tc.field)
			}
		})
	}
}

// TestFromSpecWhatRuncAccepts converts fields that runc honours (or ignores
// with a warning) and vessel once refused.
func TestFromSpecWhatRuncAccepts(t *testing.T) {
	t.Run("runc spec ambient capabilities", func(t *testing.T) {
		s := baseSpec()
		s.Process.Capabilities.Ambient = []string{"CAP_KILL", "CAP_AUDIT_WRITE"}
		s.Process.Capabilities.Inheritable = []string{"CAP_KILL"}
		cfg, warns, err := FromSpecWarnings(s, "/bundle")
		require.NoError(t, err)
		assert.Equal(t, []string{"CAP_KILL"}, cfg.Security.Capabilities.Ambient)
		require.Len(t, warns, 1)
		assert.Contains(t, warns[0], "CAP_AUDIT_WRITE")
	})
	t.Run("unknown capability", func(t *testing.T) {
		s := baseSpec()
		s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_FLY")
		cfg, warns, err := FromSpecWarnings(s, "/bundle")
		require.NoError(t, err)
		assert.NotContains(t, cfg.Security.Capabilities.Bounding, "CAP_FLY")
		require.Len(t, warns, 1)
		assert.Contains(t, warns[0], "CAP_FLY")
	})
	t.Run("stacked mounts", func(t *testing.T) {
		s := baseSpec()
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/x", Type: "tmpfs"}, specs.Mount{Destination: "/x/", Type: "tmpfs", Options: []string{"size=1m"}})
		cfg := mustFromSpec(t, s)
		require.Len(t, cfg.Mounts, 2)
		assert.False(t, cfg.Mounts[0].Stacked)
		assert.True(t, cfg.Mounts[1].Stacked)
		assert.Equal(t, int64(1<<20), cfg.Mounts[1].Size)
	})
	t.Run("containerd sandbox shm bind on the standard /dev/shm", func(t *testing.T) {
		s := baseSpec()
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/dev/shm", Type: "bind", Source: "/run/sandbox/shm", Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}})
		cfg := mustFromSpec(t, s)
		require.Len(t, cfg.Mounts, 1)
		assert.Equal(t, "/dev/shm", cfg.Mounts[0].Destination)
		assert.True(t, cfg.Mounts[0].Stacked && cfg.Mounts[0].ReadOnly)
	})
	t.Run("second /proc", func(t *testing.T) {
		s := baseSpec()
		s.Mounts = append(s.Mounts, s.Mounts[0])
		cfg := mustFromSpec(t, s)
		require.Len(t, cfg.Mounts, 2, "the standard /proc is applied as a mount of its own when another goes on top")
		assert.Equal(t, []string{"/proc", "/proc"}, []string{cfg.Mounts[0].Destination, cfg.Mounts[1].Destination})
		assert.True(t, cfg.Mounts[1].Stacked)
	})
	t.Run("bind data options", func(t *testing.T) {
		s := baseSpec()
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/x", Source: "/y", Options: []string{"rbind", "size=1", "mode=755"}})
		cfg, warns, err := FromSpecWarnings(s, "/bundle")
		require.NoError(t, err)
		assert.Empty(t, cfg.Mounts[0].Data)
		assert.Len(t, warns, 2)
	})
	t.Run("tmpcopyup", func(t *testing.T) {
		s := baseSpec()
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "tmpcopyup"}})
		cfg := mustFromSpec(t, s)
		assert.True(t, cfg.Mounts[0].CopyUp)
	})
	t.Run("devices", func(t *testing.T) {
		s := baseSpec()
		s.Linux.Resources.Devices = nil
		s.Linux.Devices = []specs.LinuxDevice{
			{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229},
			{Path: "/dev/null", Type: "c", Major: 1, Minor: 3, FileMode: ptr(os.FileMode(0o600)), UID: ptr(uint32(7)), GID: ptr(uint32(8))},
			{Path: "/dev/fifo", Type: "p", FileMode: ptr(os.FileMode(0o640))},
			{Path: "/dev/loop9", Type: "b", Major: 7, Minor: 9},
		}
		cfg := mustFromSpec(t, s)
		assert.Equal(t, []rootfs.Device{
			{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, Mode: 0o666},
			{Path: "/dev/null", Type: "c", Major: 1, Minor: 3, Mode: 0o600, UID: 7, GID: 8},
			{Path: "/dev/fifo", Type: "p", Mode: 0o640},
			{Path: "/dev/loop9", Type: "b", Major: 7, Minor: 9, Mode: 0o666},
		}, cfg.Devices)
		want := append([]limits.DeviceRule{
			cgroups.DefaultDevices()[0],
			{Allow: true, Type: "c", Major: 10, Minor: 229, Access: "rwm"},
			{Allow: true, Type: "b", Major: 7, Minor: 9, Access: "rwm"},
		}, cgroups.DefaultDevices()[1:]...)
		assert.Equal(t, want, cfg.Resources.Devices, "deny-all, the nodes' allows, the default allows (/dev/null's is one of them)")
	})
	t.Run("rootfs propagation", func(t *testing.T) {
		for _, mode := range []string{"shared", "rslave", "private"} {
			s := baseSpec()
			s.Linux.RootfsPropagation = mode
			assert.Equal(t, mode, mustFromSpec(t, s).RootPropagation)
		}
	})
	t.Run("memory knobs", func(t *testing.T) {
		s := baseSpec()
		s.Linux.Resources.Memory = &specs.LinuxMemory{Kernel: ptr(int64(1 << 20)), KernelTCP: ptr(int64(1 << 20)), Swappiness: ptr(uint64(10)), DisableOOMKiller: ptr(true)}
		cfg, warns, err := FromSpecWarnings(s, "/bundle")
		require.NoError(t, err)
		assert.Equal(t, &limits.Memory{KernelTCP: ptr(int64(1 << 20)), Swappiness: ptr(uint64(10)), DisableOOMKiller: true}, cfg.Resources.Memory)
		assert.Len(t, warns, 1, "kernel is ignored with a warning")
	})
	t.Run("podman --privileged: read-write sysfs and a cgroup mount", func(t *testing.T) {
		s := baseSpec()
		s.Mounts[5].Options = []string{"nosuid", "noexec", "nodev", "rw"}
		s.Mounts[6].Options = []string{"nosuid", "noexec", "nodev", "relatime", "rw"}
		cfg, warns, err := FromSpecWarnings(s, "/bundle")
		require.NoError(t, err)
		layout, err := cgroups.Detect()
		require.NoError(t, err)
		if layout == cgroups.V2 {
			require.Len(t, cfg.Mounts, 2)
			assert.Equal(t, "cgroup2", cfg.Mounts[1].Type)
		} else {
			require.Len(t, cfg.Mounts, 1, "the sysfs; the cgroup v1 mount is left out")
			assert.Len(t, warns, 1)
		}
		assert.Equal(t, "/sys", cfg.Mounts[0].Destination)
	})
	t.Run("no namespaces at all", func(t *testing.T) {
		s := baseSpec()
		s.Linux.Namespaces = nil
		cfg := mustFromSpec(t, s)
		assert.Empty(t, cfg.Namespaces)
	})
}

func TestFromSpecReportsEveryProblem(t *testing.T) {
	s := baseSpec()
	s.Linux.IntelRdt = &specs.LinuxIntelRdt{}
	s.Process.ApparmorProfile = "x"
	s.Linux.Personality = &specs.LinuxPersonality{}
	_, err := FromSpec(s, "/bundle")
	if n := len(splitJoined(err)); n != 3 {
		t.Errorf("got %d errors, want 3: %v", n, err)
	}
}

func TestFromSpecNilAndNoLinux(t *testing.T) {
	if _, err := FromSpec(nil, "/b"); err == nil {
		t.Error("FromSpec(nil) succeeded")
	}
	s := baseSpec()
	s.Linux = nil
	s.Mounts = nil
	cfg := mustFromSpec(t, s)
	if len(cfg.Namespaces) != 0 || cfg.Resources != nil {
		t.Errorf("a spec without linux gave namespaces %v resources %+v", cfg.Namespaces, cfg.Resources)
	}
}

func TestFromSpecRelativeBundle(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	cfg, err := FromSpec(baseSpec(), "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Rootfs.Path != dir+"/rootfs" {
		t.Errorf("root path = %q, want %q", cfg.Rootfs.Path, dir+"/rootfs")
	}
}

// TestFromSpecBeancounterLimits: the TCP buffer limit and vessel's
// annotations for the limits the runtime spec has no field for.
func TestFromSpecBeancounterLimits(t *testing.T) {
	s := baseSpec()
	s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: ptr(int64(64 << 20)), KernelTCP: ptr(int64(1 << 20))}
	s.Annotations = map[string]string{AnnotationPtys: "8", AnnotationShmSize: "2M", AnnotationUsageSampling: "500ms"}
	cfg, err := FromSpec(s, "/bundle")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Resources.Memory.KernelTCP; got == nil || *got != 1<<20 {
		t.Errorf("KernelTCP %v, want 1 MiB", got)
	}
	if cfg.Ptys != 8 || cfg.ShmSize != 2<<20 || cfg.UsageSampling != 500*time.Millisecond {
		t.Errorf("Ptys %d ShmSize %d UsageSampling %v, want 8, 2 MiB, 500ms", cfg.Ptys, cfg.ShmSize, cfg.UsageSampling)
	}
	// And back.
	back, err := ToSpec(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Linux.Resources.Memory.KernelTCP; got == nil || *got != 1<<20 {
		t.Errorf("ToSpec: kernelTCP %v", got)
	}
	want := map[string]string{AnnotationPtys: "8", AnnotationShmSize: "2097152", AnnotationUsageSampling: "500ms"}
	for k, v := range want {
		if back.Annotations[k] != v {
			t.Errorf("ToSpec: annotation %s = %q, want %q", k, back.Annotations[k], v)
		}
	}
}

// TestMountOptionsAreAccepted checks that features' list is exact: every
// option it names converts, and one it leaves out is refused.
func TestMountOptionsAreAccepted(t *testing.T) {
	for _, o := range MountOptions() {
		s := baseSpec()
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/x", Type: "tmpfs", Source: "tmpfs", Options: []string{o}})
		if o == "bind" || o == "rbind" {
			s.Mounts[len(s.Mounts)-1].Source = "/srv"
		}
		_, err := FromSpec(s, "/bundle")
		assert.NoError(t, err, "option %q is listed by features", o)
	}
	assert.NotContains(t, MountOptions(), "noatime")
	s := baseSpec()
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/x", Type: "tmpfs", Options: []string{"noatime"}})
	_, err := FromSpec(s, "/bundle")
	assert.ErrorIs(t, err, ErrNotSupported)
}
