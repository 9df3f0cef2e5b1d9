package oci

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/limits"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/rootfs"
	"github.com/openvessel/vessel/security"
)

// roundTrip checks FromSpec(ToSpec(cfg)) == cfg.
func roundTrip(t *testing.T, cfg *vessel.Config) *specs.Spec {
	t.Helper()
	s, err := ToSpec(cfg)
	if err != nil {
		t.Fatalf("ToSpec: %v", err)
	}
	back, err := FromSpec(s, "/elsewhere")
	if err != nil {
		t.Fatalf("FromSpec(ToSpec(cfg)): %v", err)
	}
	if !reflect.DeepEqual(back, cfg) {
		t.Errorf("round trip changed the Config:\n got %+v\nwant %+v", back, cfg)
		if !reflect.DeepEqual(back.Resources, cfg.Resources) {
			t.Errorf("resources: got %+v want %+v", back.Resources, cfg.Resources)
		}
		if !reflect.DeepEqual(back.Security, cfg.Security) {
			t.Errorf("security: got %+v want %+v", back.Security, cfg.Security)
		}
		if !reflect.DeepEqual(back.Mounts, cfg.Mounts) {
			t.Errorf("mounts: got %+v want %+v", back.Mounts, cfg.Mounts)
		}
	}
	return s
}

func TestRoundTripFromSpec(t *testing.T) {
	for name, s := range map[string]*specs.Spec{"default": DefaultSpec(), "full": fullSpec()} {
		t.Run(name, func(t *testing.T) {
			cfg, err := FromSpec(s, "/bundle")
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, cfg)
		})
	}
}

func TestRoundTripBuiltConfig(t *testing.T) {
	cfg := &vessel.Config{
		Rootfs:        rootfs.Dir("/srv/root"),
		ReadOnly:      true,
		Mounts:        []rootfs.Mount{rootfs.BindRO("/etc", "/host-etc"), rootfs.Tmpfs("/tmp", 8<<20), {Type: "bind", Source: "/a", Destination: "/b", NonRecursive: true, NoExec: true, Propagation: "shared"}},
		MaskedPaths:   []string{"/proc/kcore"},
		ReadOnlyPaths: []string{},
		Namespaces:    namespaces.All(),
		UIDMappings:   []namespaces.IDMap{{ContainerID: 0, HostID: 1 << 20, Size: 1000}},
		GIDMappings:   []namespaces.IDMap{{ContainerID: 0, HostID: 1 << 20, Size: 1000}},
		TimeOffsets:   namespaces.TimeOffsets{Monotonic: -1500 * time.Millisecond, Boottime: 42 * time.Hour},
		Hostname:      "h",
		Domainname:    "d",
		Process: vessel.ProcessConfig{
			Args: []string{"/bin/app", "-v"}, Env: []string{"A=b"}, Dir: "/work",
			User: vessel.User{UID: 7, GID: 8, Groups: []uint32{9}}, Umask: ptr(uint32(0o027)), TTY: true, Rows: 24, Cols: 80,
		},
		Sysctls: map[string]string{"kernel.msgmax": "8192"},
		Security: &security.Profile{
			Capabilities:    security.DefaultCapabilities(),
			NoNewPrivileges: true,
			Seccomp: &security.Seccomp{DefaultAction: security.ActErrno, Syscalls: []security.Syscall{
				{Names: []string{"read"}, Action: security.ActAllow},
				{Names: []string{"kill"}, Action: security.ActErrno, ErrnoRet: ptr(uint(13)), Args: []security.Arg{{Index: 1, Value: 9, Op: security.OpEqualTo}}},
			}},
		},
		Resources: &limits.Resources{
			Memory:  &limits.Memory{Limit: ptr(int64(1 << 30)), Swap: ptr(int64(-1))},
			CPU:     &limits.CPU{CPUs: ptr(1.5), Shares: ptr(uint64(512)), Cpuset: "0"},
			Pids:    &limits.Pids{Max: ptr(int64(64))},
			IO:      &limits.IO{Weight: ptr(uint16(500)), WriteBps: []limits.DeviceRate{{Major: 253, Minor: 1, Rate: 10 << 20}}},
			HugeTLB: []limits.HugeTLB{{PageSize: "1GB", Limit: 1 << 30}},
			Devices: cgroups.DefaultDevices(),
		},
		Cgroup:      vessel.CgroupConfig{Name: "vessel-test/rt"},
		Rlimits:     []limits.Rlimit{{Type: "RLIMIT_NPROC", Soft: 100, Hard: 200}},
		OOMScoreAdj: ptr(-10),
	}
	s := roundTrip(t, cfg)
	if got := *s.Linux.Resources.CPU.Quota; got != 150000 {
		t.Errorf("quota = %d, want 150000", got)
	}
	if len(s.Linux.Resources.Devices) != 1 {
		t.Errorf("the default allows should be left implicit in the spec, got %+v", s.Linux.Resources.Devices)
	}
	if off := s.Linux.TimeOffsets["monotonic"]; off.Secs != -2 || off.Nanosecs != 500_000_000 {
		t.Errorf("monotonic offset = %+v, want -2s + 500ms", off)
	}
}

func TestToSpecNewConfig(t *testing.T) {
	// A Config from NewConfig relies on vessel's defaults; ToSpec writes
	// them out, and Docker's conditional seccomp rules are resolved.
	cfg := vessel.NewConfig().WithRootfs(rootfs.Dir("/srv/root")).WithHostname("x").WithArgs("sh")
	s, err := ToSpec(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Linux.MaskedPaths, rootfs.DefaultMaskedPaths) || !reflect.DeepEqual(s.Linux.ReadonlyPaths, rootfs.DefaultReadonlyPaths) {
		t.Errorf("default paths not written: %v %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	if s.Linux.Seccomp == nil || !s.Process.NoNewPrivileges || s.Process.Capabilities == nil {
		t.Fatalf("the default profile is not written out: %+v", s.Process)
	}
	for i, r := range s.Linux.Seccomp.Syscalls {
		for _, n := range r.Names {
			if n == "chroot" { // allowed by a rule that needs CAP_SYS_CHROOT, which the default set has
				t.Logf("syscalls[%d] allows chroot", i)
				goto found
			}
		}
	}
	t.Error("the CAP_SYS_CHROOT rule of the default profile was dropped although the bounding set has the capability")
found:
	for _, r := range s.Linux.Seccomp.Syscalls {
		for _, n := range r.Names {
			if n == "reboot" {
				t.Error("the reboot rule needs CAP_SYS_BOOT, which the default set lacks, but it was kept")
			}
		}
	}
	cfg2, err := FromSpec(s, "/")
	if err != nil {
		t.Fatalf("FromSpec(ToSpec(NewConfig())): %v", err)
	}
	if _, err := cfg2.Security.Prepare(); err != nil {
		t.Errorf("the resolved profile does not compile: %v", err)
	}
	var dsts []string
	for _, m := range s.Mounts {
		dsts = append(dsts, m.Destination)
	}
	if want := []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"}; !reflect.DeepEqual(dsts, want) {
		t.Errorf("system mounts = %v, want %v", dsts, want)
	}
}

func TestToSpecErrors(t *testing.T) {
	base := func() *vessel.Config { return vessel.NewConfig().WithRootfs(rootfs.Dir("/r")).WithArgs("sh") }
	for _, tc := range []struct {
		name  string
		cfg   *vessel.Config
		field string
	}{
		{"host root", vessel.NewConfig().WithArgs("sh"), "rootfs"},
		{"no args", vessel.NewConfig().WithRootfs(rootfs.Dir("/r")), "process.args"},
		{"root with quota", func() *vessel.Config { c := base(); c.Rootfs.Quota = 1 << 20; return c }(), "rootfs"},
		{"timeout", base().WithTimeout(time.Second), "timeout"},
		{"cpu time", base().WithCPUTime(time.Second), "cpuTime"},
		{"privileged", base().WithPrivileged(true), "privileged"},
		{"no cgroup", func() *vessel.Config { c := base(); c.Cgroup.Disabled = true; return c }(), "cgroup.disabled"},
		{"landlock", base().WithSecurity(&security.Profile{Landlock: &security.Landlock{Enabled: true, ReadOnly: []string{"/"}}}), "security.landlock"},
		{"securebits", base().WithSecurity(&security.Profile{Securebits: []string{"SECBIT_NOROOT"}}), "security.securebits"},
		{"devices without the default allows", base().WithResources(&limits.Resources{Devices: []limits.DeviceRule{{Type: "a", Major: -1, Minor: -1, Access: "rwm"}}}), "resources.devices"},
		// WithCPUs(0) fails at New; the struct can still hold a zero quota.
		{"zero cpus", base().WithResources(&limits.Resources{CPU: &limits.CPU{CPUs: limits.Ptr(0.0)}}), "resources.cpu.cpus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ToSpec(tc.cfg)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Errorf("ToSpec error = %v, want one naming %s", err, tc.field)
			}
		})
	}
	if _, err := ToSpec(nil); err == nil {
		t.Error("ToSpec(nil) succeeded")
	}
}
