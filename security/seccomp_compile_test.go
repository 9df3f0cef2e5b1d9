package security

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/stretchr/testify/require"
)

// vmFilter runs a compiled Program in golang.org/x/net/bpf's VM.
type vmFilter struct {
	t    testing.TB
	vm   *bpf.VM
	arch uint32
}

func newVM(t testing.TB, p *Program) *vmFilter {
	t.Helper()
	raw := make([]bpf.RawInstruction, len(p.Filter))
	for i, f := range p.Filter {
		raw[i] = bpf.RawInstruction{Op: f.Code, Jt: f.Jt, Jf: f.Jf, K: f.K}
	}
	insns, ok := bpf.Disassemble(raw)
	require.True(t, ok, "filter does not disassemble")
	vm, err := bpf.NewVM(insns)
	require.NoError(t, err)
	arch := archByGOARCH["amd64"].auditArch
	if p.Arch == "aarch64" {
		arch = archByGOARCH["arm64"].auditArch
	}
	return &vmFilter{t: t, vm: vm, arch: arch}
}

// run evaluates the filter for one system call. The VM loads words
// big-endian (network order), so every 32-bit word of seccomp_data is
// stored big-endian to give the VM the values the kernel would see.
func (v *vmFilter) run(arch uint32, nr uint32, args ...uint64) uint32 {
	v.t.Helper()
	data := make([]byte, 64)
	binary.BigEndian.PutUint32(data[0:], nr)
	binary.BigEndian.PutUint32(data[4:], arch)
	for i, a := range args {
		binary.BigEndian.PutUint32(data[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(data[20+8*i:], uint32(a>>32))
	}
	out, err := v.vm.Run(data)
	require.NoError(v.t, err)
	return uint32(out)
}

func (v *vmFilter) call(name string, args ...uint64) uint32 {
	v.t.Helper()
	nr, ok := syscallsX8664()[name]
	require.True(v.t, ok, name)
	return v.run(v.arch, nr, args...)
}

func errnoRet(e uint32) uint32 { return retErrno | e }

func compileDefault(t testing.TB, caps []string) *vmFilter {
	t.Helper()
	p, err := DefaultSeccomp().CompileWith(CompileOptions{GOARCH: "amd64", Caps: caps, KernelVersion: "6.18"})
	require.NoError(t, err)
	return newVM(t, p)
}

func TestDefaultSeccompDecisions(t *testing.T) {
	v := compileDefault(t, DefaultCapabilities().Bounding)
	const eperm, enosys = 1, 38
	cases := []struct {
		name string
		args []uint64
		want uint32
	}{
		{"read", nil, retAllow},
		{"getcwd", nil, retAllow},
		{"execve", nil, retAllow},
		{"chroot", nil, retAllow}, // CAP_SYS_CHROOT is a default capability
		{"mount", nil, errnoRet(eperm)},
		{"umount2", nil, errnoRet(eperm)},
		{"pivot_root", nil, errnoRet(eperm)},
		{"unshare", []uint64{0x10000000}, errnoRet(eperm)},
		{"setns", nil, errnoRet(eperm)},
		{"keyctl", nil, errnoRet(eperm)},
		{"add_key", nil, errnoRet(eperm)},
		{"request_key", nil, errnoRet(eperm)},
		{"ptrace", nil, errnoRet(eperm)},
		{"bpf", nil, errnoRet(eperm)},
		{"perf_event_open", nil, errnoRet(eperm)},
		{"kexec_load", nil, errnoRet(eperm)},
		{"kexec_file_load", nil, errnoRet(eperm)},
		{"open_by_handle_at", nil, errnoRet(eperm)},
		{"init_module", nil, errnoRet(eperm)},
		{"finit_module", nil, errnoRet(eperm)},
		{"reboot", nil, errnoRet(eperm)},
		{"clone3", nil, errnoRet(enosys)},
		{"clone", []uint64{0x11}, retAllow},                       // fork: SIGCHLD
		{"clone", []uint64{0x3d0f00}, retAllow},                   // pthread_create flags
		{"clone", []uint64{0x20011}, errnoRet(eperm)},             // CLONE_NEWNS
		{"clone", []uint64{0x10000011}, errnoRet(eperm)},          // CLONE_NEWUSER
		{"clone", []uint64{0x40000000}, errnoRet(eperm)},          // CLONE_NEWNET
		{"clone", []uint64{0x1_0000_0011}, retAllow},              // high word is not flags
		{"personality", []uint64{0}, retAllow},                    // PER_LINUX
		{"personality", []uint64{8}, retAllow},                    // UNAME26
		{"personality", []uint64{0xffffffff}, retAllow},           // query
		{"personality", []uint64{0x0040000}, errnoRet(eperm)},     // ADDR_NO_RANDOMIZE
		{"personality", []uint64{0x1_0000_0000}, errnoRet(eperm)}, // 64-bit compare
		{"personality", []uint64{0xffff_ffff_ffff_ffff}, errnoRet(eperm)},
		{"socket", []uint64{2}, retAllow},
		{"socket", []uint64{40}, errnoRet(eperm)}, // AF_VSOCK
		{"arch_prctl", nil, retAllow},
	}
	for _, c := range cases {
		require.Equal(t, c.want, v.call(c.name, c.args...), "%s(%#x)", c.name, c.args)
	}
	// Newer than the profile: ENOSYS. Above every name the profile lists.
	require.Equal(t, errnoRet(enosys), v.run(v.arch, 1000))
	require.Equal(t, errnoRet(enosys), v.run(v.arch, syscallsX8664()["listns"]+1))
	// nr -1 (a tracer skipping a call) is not x32 and is beyond the table.
	require.Equal(t, errnoRet(enosys), v.run(v.arch, 0xffffffff))
	// x32 and foreign architectures die.
	require.Equal(t, retKillProcess, v.run(v.arch, x32SyscallBit|39))
	require.Equal(t, retKillProcess, v.run(0x40000003 /* AUDIT_ARCH_I386 */, 20))
	// Gaps inside the table that the profile does not list are EPERM.
	require.Equal(t, errnoRet(eperm), v.run(v.arch, 400))
}

func TestDefaultSeccompCapabilityRules(t *testing.T) {
	v := compileDefault(t, DefaultCapabilities().WithAdd("SYS_ADMIN", "sys_ptrace").Bounding)
	require.Equal(t, retAllow, v.call("mount"))
	require.Equal(t, retAllow, v.call("unshare", 0x10000000))
	require.Equal(t, retAllow, v.call("clone", 0x20011))
	require.Equal(t, retAllow, v.call("clone3"))
	require.Equal(t, retAllow, v.call("ptrace"))
	require.Equal(t, errnoRet(1), v.call("keyctl"))

	none := compileDefault(t, nil)
	require.Equal(t, errnoRet(1), none.call("chroot"))
}

// reference evaluates an operator the way libseccomp defines it.
func reference(op Operator, arg, value, two uint64) bool {
	switch op {
	case OpEqualTo:
		return arg == value
	case OpNotEqual:
		return arg != value
	case OpLessThan:
		return arg < value
	case OpLessEqual:
		return arg <= value
	case OpGreaterThan:
		return arg > value
	case OpGreaterEqual:
		return arg >= value
	case OpMaskedEqual:
		return arg&value == two
	}
	panic(op)
}

func TestSeccompOperatorsAgainstReference(t *testing.T) {
	ops := []Operator{OpEqualTo, OpNotEqual, OpLessThan, OpLessEqual, OpGreaterThan, OpGreaterEqual, OpMaskedEqual}
	rng := rand.New(rand.NewSource(1))
	interesting := []uint64{0, 1, 2, 0xffffffff, 0x1_0000_0000, 0x1_0000_0001, 0xffffffff_00000000, 0xffffffff_ffffffff, 0x7fffffff_ffffffff, 0x80000000, 0x1_8000_0000}
	pick := func() uint64 {
		if rng.Intn(2) == 0 {
			return interesting[rng.Intn(len(interesting))]
		}
		// Values that share a half with another often.
		hi := uint64(rng.Intn(3))
		return hi<<32 | uint64(rng.Intn(4))
	}
	for _, op := range ops {
		for idx := uint(0); idx < 6; idx++ {
			value, two := pick(), pick()
			if op == OpMaskedEqual {
				two &= value
			}
			s := &Seccomp{DefaultAction: ActErrno, Syscalls: []Syscall{
				{Names: []string{"getcwd"}, Action: ActAllow, Args: []Arg{{Index: idx, Value: value, ValueTwo: two, Op: op}}},
			}}
			p, err := s.CompileWith(CompileOptions{GOARCH: "amd64"})
			require.NoError(t, err)
			v := newVM(t, p)
			for i := 0; i < 200; i++ {
				arg := pick()
				if i%3 == 0 {
					arg = value + uint64(rng.Intn(3)) - 1
				}
				args := make([]uint64, 6)
				for j := range args {
					args[j] = rng.Uint64()
				}
				args[idx] = arg
				want := errnoRet(1)
				if reference(op, arg, value, two) {
					want = retAllow
				}
				require.Equal(t, want, v.call("getcwd", args...), "%s arg%d=%#x value=%#x two=%#x", op, idx, arg, value, two)
			}
		}
	}
}

func TestSeccompArgumentAndOr(t *testing.T) {
	s := &Seccomp{DefaultAction: ActAllow, Syscalls: []Syscall{
		// AND: both must hold.
		{Names: []string{"write"}, Action: ActErrno, ErrnoRet: ptr(uint(5)), Args: []Arg{
			{Index: 0, Value: 2, Op: OpEqualTo}, {Index: 2, Value: 100, Op: OpGreaterThan}}},
		// Same index twice: OR (runc semantics).
		{Names: []string{"read"}, Action: ActErrno, ErrnoRet: ptr(uint(6)), Args: []Arg{
			{Index: 0, Value: 3, Op: OpEqualTo}, {Index: 0, Value: 4, Op: OpEqualTo}}},
	}}
	p, err := s.CompileWith(CompileOptions{GOARCH: "amd64"})
	require.NoError(t, err)
	v := newVM(t, p)
	require.Equal(t, errnoRet(5), v.call("write", 2, 0, 101))
	require.Equal(t, retAllow, v.call("write", 2, 0, 100))
	require.Equal(t, retAllow, v.call("write", 1, 0, 101))
	require.Equal(t, errnoRet(6), v.call("read", 3))
	require.Equal(t, errnoRet(6), v.call("read", 4))
	require.Equal(t, retAllow, v.call("read", 5))
	// default allow: no ENOSYS tail.
	require.Equal(t, retAllow, v.run(v.arch, 1000))
}

func TestSeccompSpecificRuleBeatsGeneral(t *testing.T) {
	s := &Seccomp{DefaultAction: ActErrno, Syscalls: []Syscall{
		{Names: []string{"kill"}, Action: ActAllow},
		{Names: []string{"kill"}, Action: ActErrno, ErrnoRet: ptr(uint(13)), Args: []Arg{{Index: 1, Value: 9, Op: OpEqualTo}}},
	}}
	p, err := s.CompileWith(CompileOptions{GOARCH: "amd64"})
	require.NoError(t, err)
	v := newVM(t, p)
	require.Equal(t, errnoRet(13), v.call("kill", 1, 9))
	require.Equal(t, retAllow, v.call("kill", 1, 15))
}

func TestSeccompActions(t *testing.T) {
	names := []string{"read", "write", "open", "close", "stat", "fstat", "lstat", "poll", "lseek"}
	actions := []Action{ActKill, ActKillThread, ActKillProcess, ActTrap, ActErrno, ActTrace, ActAllow, ActLog, ActNotify}
	want := []uint32{retKillThread, retKillThread, retKillProcess, retTrap, errnoRet(1), retTrace | 7, retAllow, retLog, retUserNotif}
	s := &Seccomp{DefaultAction: ActKillProcess}
	for i, a := range actions {
		r := Syscall{Names: []string{names[i]}, Action: a}
		if a == ActTrace {
			r.ErrnoRet = ptr(uint(7))
		}
		s.Syscalls = append(s.Syscalls, r)
	}
	p, err := s.CompileWith(CompileOptions{GOARCH: "amd64"})
	require.NoError(t, err)
	require.True(t, p.Listener)
	v := newVM(t, p)
	for i := range actions {
		require.Equal(t, want[i], v.call(names[i]), "%s", actions[i])
	}
	// mmap (9) is above every number the profile names (lseek, 8).
	require.Equal(t, errnoRet(38), v.call("mmap"))
	require.Equal(t, errnoRet(38), v.run(v.arch, 500))
}

// A profile with many argument rules needs jumps beyond 255 instructions;
// the assembler must bridge them and every rule must still work.
func TestSeccompLongJumps(t *testing.T) {
	s := &Seccomp{DefaultAction: ActErrno}
	var names []string
	for name, nr := range syscallsX8664() {
		if nr < 150 {
			names = append(names, name)
		}
	}
	for i, n := range names {
		s.Syscalls = append(s.Syscalls, Syscall{Names: []string{n}, Action: ActAllow, Args: []Arg{
			{Index: 0, Value: uint64(i), Op: OpEqualTo},
			{Index: 1, Value: 0xf0, ValueTwo: 0x10, Op: OpMaskedEqual},
			{Index: 2, Value: 1 << 40, Op: OpLessThan},
		}})
	}
	p, err := s.CompileWith(CompileOptions{GOARCH: "amd64"})
	require.NoError(t, err)
	require.True(t, len(p.Filter) > 2000, len(p.Filter))
	v := newVM(t, p)
	for i, n := range names {
		require.Equal(t, retAllow, v.call(n, uint64(i), 0x1f, 5), n)
		require.Equal(t, errnoRet(1), v.call(n, uint64(i)+1, 0x1f, 5), n)
		require.Equal(t, errnoRet(1), v.call(n, uint64(i), 0x2f, 5), n)
		require.Equal(t, errnoRet(1), v.call(n, uint64(i), 0x1f, 1<<40), n)
	}
}

func TestSeccompTooLarge(t *testing.T) {
	s := &Seccomp{DefaultAction: ActErrno}
	for i := 0; i < 600; i++ {
		s.Syscalls = append(s.Syscalls, Syscall{Names: []string{"ioctl"}, Action: ActAllow, Args: []Arg{
			{Index: 1, Value: uint64(i), Op: OpEqualTo}, {Index: 2, Value: uint64(i), Op: OpNotEqual}}})
	}
	_, err := s.CompileWith(CompileOptions{GOARCH: "amd64"})
	require.ErrorContains(t, err, "limit of 4096")
}

func TestSeccompArm64(t *testing.T) {
	p, err := DefaultSeccomp().CompileWith(CompileOptions{GOARCH: "arm64", KernelVersion: "6.1"})
	require.NoError(t, err)
	require.Equal(t, "aarch64", p.Arch)
	v := newVM(t, p)
	call := func(name string, args ...uint64) uint32 {
		nr, ok := syscallsAArch64()[name]
		require.True(t, ok, name)
		return v.run(v.arch, nr, args...)
	}
	require.Equal(t, retAllow, call("openat"))
	require.Equal(t, errnoRet(1), call("mount"))
	require.Equal(t, errnoRet(1), call("clone", 0x20011))
	require.Equal(t, retAllow, call("clone", 0x11))
	require.Equal(t, retKillProcess, v.run(archByGOARCH["amd64"].auditArch, 0))
	require.True(t, !slices.Contains(p.Unknown, "openat"))
	require.True(t, slices.Contains(p.Unknown, "open")) // arm64 has no open(2)
}

func TestLoadSeccompJSONDocker(t *testing.T) {
	profile := `{
	"defaultAction": "SCMP_ACT_ERRNO",
	"defaultErrnoRet": 1,
	"archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
	"syscalls": [
		{"names": ["read", "write", "not_a_real_call"], "action": "SCMP_ACT_ALLOW"},
		{"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
		{"names": ["vhangup"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.1"}},
		{"names": ["s390_runtime_instr"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["s390x"]}},
		{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42, "comment": "x"},
		{"name": "getpid", "action": "SCMP_ACT_ALLOW"}
	]}`
	s, err := LoadSeccompJSON([]byte(profile))
	require.NoError(t, err)
	p, err := s.CompileWith(CompileOptions{GOARCH: "amd64", KernelVersion: "6.18.44-fc"})
	require.NoError(t, err)
	require.Equal(t, []string{"not_a_real_call", "s390_runtime_instr"}, p.Unknown)
	v := newVM(t, p)
	require.Equal(t, retAllow, v.call("read"))
	require.Equal(t, retAllow, v.call("ptrace"))
	require.Equal(t, retAllow, v.call("getpid"))
	require.Equal(t, errnoRet(1), v.call("vhangup"))
	require.Equal(t, errnoRet(42), v.call("getcwd"))

	// The program survives a JSON round trip unchanged.
	b, err := json.Marshal(p)
	require.NoError(t, err)
	var back Program
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, p.Filter, back.Filter)
	require.Equal(t, p.Arch, back.Arch)
}

func TestLoadSeccompJSONUnconfinedAndErrors(t *testing.T) {
	s, err := LoadSeccompJSON([]byte(" unconfined\n"))
	require.NoError(t, err)
	require.True(t, s == nil)
	s, err = LoadSeccompJSON([]byte(`"unconfined"`))
	require.NoError(t, err)
	require.True(t, s == nil)
	p, err := s.Compile()
	require.NoError(t, err)
	require.True(t, p == nil)

	bad := map[string]string{
		`{"defaultAction": "SCMP_ACT_NOPE"}`:                                                                  "unknown action",
		`{"defaultAction": ""}`:                                                                               "missing action",
		`{"defaultAction": "SCMP_ACT_ALLOW", "defaultActionn": 1}`:                                            "unknown field",
		`{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 5000}`:                                        "above the largest errno",
		`{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}`:                             "unknown architecture",
		`{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]}`:                          "unknown flag",
		`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "X"}]}`:               "syscalls[0].action",
		`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}`:                     "no system call names",
		`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["Read!"], "action": "SCMP_ACT_ALLOW"}]}`: "not a system call name",
		`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}`: "index: 6",
		`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]}`: "unknown operator",
		`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 3}]}`:                                           "errnoRet is only meaningful",
		`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_FLY"]}}]}`:                       "unknown capability",
		`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "six"}}]}`:                        "minKernel",
		`not json`: "seccomp profile",
	}
	for in, want := range bad {
		_, err := LoadSeccompJSON([]byte(in))
		require.ErrorContains(t, err, want, "input %s", in)
	}
}

func TestSeccompFlagsAndListener(t *testing.T) {
	s := &Seccomp{DefaultAction: ActAllow, Flags: []string{"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"},
		ListenerPath: "/run/agent.sock", Syscalls: []Syscall{{Names: []string{"mkdir"}, Action: ActNotify}}}
	p, err := s.Compile()
	require.NoError(t, err)
	require.Equal(t, uint(2|4), p.Flags)
	require.True(t, p.Listener)
	require.Equal(t, "/run/agent.sock", p.ListenerPath)
}

func TestSeccompUnsupportedArch(t *testing.T) {
	_, err := DefaultSeccomp().CompileWith(CompileOptions{GOARCH: "mips"})
	require.ErrorContains(t, err, `"mips" is not supported`)
}

func TestSyscallTables(t *testing.T) {
	// Spot checks against well-known numbers.
	require.Equal(t, uint32(0), syscallsX8664()["read"])
	require.Equal(t, uint32(59), syscallsX8664()["execve"])
	require.Equal(t, uint32(435), syscallsX8664()["clone3"])
	require.Equal(t, uint32(221), syscallsAArch64()["execve"])
	require.Equal(t, uint32(56), syscallsAArch64()["openat"])
	for _, n := range defaultAllowed() {
		if _, ok := syscallsX8664()[n]; ok {
			continue
		}
		if _, ok := syscallsAArch64()[n]; ok {
			continue
		}
		// 32-bit-only names are fine; anything else would be a typo.
		require.True(t, strings.HasSuffix(n, "32") || strings.HasSuffix(n, "64") || strings.Contains(n, "time64") ||
			knownForeign[n], "default profile name %q is in no table", n)
	}
}

// Names of the default allow-list that exist only on 32-bit or other
// architectures.
var knownForeign = map[string]bool{
	"_llseek": true, "_newselect": true, "ipc": true, "mmap2": true, "recv": true, "send": true,
	"sigprocmask": true, "sigreturn": true, "socketcall": true, "ugetrlimit": true, "waitpid": true,
	"fadvise64_64": true, "stime": true,
}

func ptr[T any](v T) *T { return &v }

func BenchmarkCompileDefault(b *testing.B) {
	s := DefaultSeccomp()
	caps := DefaultCapabilities().Bounding
	runningKernel()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.CompileWith(CompileOptions{Caps: caps}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPrepareDefaultProfile(b *testing.B) {
	p := DefaultProfile()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Prepare(); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleSeccomp_Compile() {
	prog, err := DefaultSeccomp().CompileWith(CompileOptions{GOARCH: "amd64", Caps: DefaultCapabilities().Bounding})
	if err != nil {
		panic(err)
	}
	fmt.Println(prog.Arch, len(prog.Filter) > 0)
	// Output: x86_64 true
}
