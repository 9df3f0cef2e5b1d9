package security

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// dockerDefaultMask is the CapEff a default Docker container shows.
const dockerDefaultMask = 0x00000000a80425fb

func TestApplyDefaultProfile(t *testing.T) {
	requireRoot(t)
	res := childRun{prepared: prepare(t, DefaultProfile())}.run(t)

	for _, f := range []string{"CapBnd", "CapEff", "CapPrm"} {
		require.Equal(t, uint64(dockerDefaultMask), capMask(t, res, f), f)
	}
	require.Equal(t, uint64(0), capMask(t, res, "CapInh"))
	require.Equal(t, uint64(0), capMask(t, res, "CapAmb"))
	require.Equal(t, "1", res.Status["NoNewPrivs"])
	require.Equal(t, "2", res.Status["Seccomp"])
	require.Equal(t, "1", res.Status["Seccomp_filters"])

	want := map[string]string{
		"getcwd":                        "OK",
		"keyctl":                        "EPERM",
		"ptrace":                        "EPERM",
		"mount":                         "EPERM",
		"personality_query":             "OK",
		"personality_addr_no_randomize": "EPERM",
		"socket_vsock":                  "EPERM",
		"nr1000":                        "ENOSYS",
		"pidfd_open":                    "OK",
		"clone3":                        "ENOSYS",
		"clone_plain":                   "OK",
		"clone_newns":                   "EPERM",
		"clone_newuser":                 "EPERM",
		"unshare_newuser":               "EPERM",
	}
	for k, v := range want {
		require.Equal(t, v, res.Calls[k], k)
	}
}

// The same checks with no filter show that the EPERMs above come from the
// filter, not from the kernel's own permission checks.
func TestApplyWithoutSeccompKernelAnswersDiffer(t *testing.T) {
	requireRoot(t)
	p := DefaultProfile()
	p.Seccomp = nil
	res := childRun{prepared: prepare(t, p)}.run(t)
	require.Equal(t, "0", res.Status["Seccomp"])
	require.Equal(t, "ESRCH", res.Calls["ptrace"])
	require.Equal(t, "OK", res.Calls["personality_addr_no_randomize"])
	require.Equal(t, "OK", res.Calls["clone_newuser"])
	require.True(t, res.Calls["keyctl"] != "EPERM", res.Calls["keyctl"])
	require.True(t, res.Calls["socket_vsock"] != "EPERM", res.Calls["socket_vsock"])
	require.True(t, res.Calls["clone3"] != "ENOSYS", res.Calls["clone3"])
}

// mount with CAP_SYS_ADMIN held but a filter compiled as if it were not:
// the kernel would answer ENOENT, the filter answers EPERM.
func TestApplyMountDeniedByFilterNotByCapability(t *testing.T) {
	requireRoot(t)
	p := DefaultProfile()
	p.Capabilities = p.Capabilities.WithAdd("SYS_ADMIN")
	prep := prepare(t, p)
	prog, err := DefaultSeccomp().CompileWith(CompileOptions{Caps: DefaultCapabilities().Bounding})
	require.NoError(t, err)
	prep.Seccomp = prog
	res := childRun{prepared: prep}.run(t)
	require.Equal(t, "EPERM", res.Calls["mount"])

	prep.Seccomp = nil
	res = childRun{prepared: prep}.run(t)
	require.Equal(t, "ENOENT", res.Calls["mount"])
}

// Numbers above the profile's highest answer ENOSYS even where the kernel
// implements them; known-but-unlisted numbers answer EPERM.
func TestApplyNewerThanProfileIsENOSYS(t *testing.T) {
	requireRoot(t)
	s := DefaultSeccomp()
	pidfdOpen, ok := SyscallNumber("pidfd_open")
	require.True(t, ok)
	for i := range s.Syscalls {
		var kept []string
		for _, n := range s.Syscalls[i].Names {
			if nr, ok := SyscallNumber(n); !ok || nr < pidfdOpen {
				kept = append(kept, n)
			}
		}
		s.Syscalls[i].Names = kept
	}
	s.Syscalls = slicesDeleteEmpty(s.Syscalls)
	p := DefaultProfile()
	p.Seccomp = s
	res := childRun{prepared: prepare(t, p)}.run(t)
	require.Equal(t, "ENOSYS", res.Calls["pidfd_open"])
	require.Equal(t, "EPERM", res.Calls["keyctl"])
	require.Equal(t, "OK", res.Calls["getcwd"])
}

func slicesDeleteEmpty(in []Syscall) []Syscall {
	var out []Syscall
	for _, r := range in {
		if len(r.Names) > 0 {
			out = append(out, r)
		}
	}
	return out
}

func TestApplyCapDropAll(t *testing.T) {
	requireRoot(t)
	p := DefaultProfile()
	p.Capabilities = p.Capabilities.WithDrop("ALL")
	res := childRun{prepared: prepare(t, p)}.run(t)
	for _, f := range []string{"CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"} {
		require.Equal(t, uint64(0), capMask(t, res, f), f)
	}
}

func TestApplyNoNewPrivsOffLoadsFilterEarly(t *testing.T) {
	requireRoot(t)
	p := DefaultProfile()
	p.NoNewPrivileges = false
	res := childRun{prepared: prepare(t, p)}.run(t)
	require.Equal(t, "0", res.Status["NoNewPrivs"])
	require.Equal(t, "2", res.Status["Seccomp"])
	require.Equal(t, uint64(dockerDefaultMask), capMask(t, res, "CapEff"))
	require.Equal(t, "EPERM", res.Calls["keyctl"])
}

func TestApplyCustomErrno(t *testing.T) {
	requireRoot(t)
	s, err := LoadSeccompJSON([]byte(`{"defaultAction": "SCMP_ACT_ALLOW",
		"syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}]}`))
	require.NoError(t, err)
	p := DefaultProfile()
	p.Seccomp = s
	res := childRun{prepared: prepare(t, p), probe: probeSpec{Mode: "getcwd"}}.run(t)
	require.Equal(t, strconv.Itoa(42), errnoNumber(res.Calls["getcwd"]))
}

func errnoNumber(name string) string {
	for e := syscall.Errno(1); e < 200; e++ {
		if errnoName(e) == name {
			return strconv.Itoa(int(e))
		}
	}
	return name
}

func killedBy(t *testing.T, o childOutcome, sig syscall.Signal) {
	t.Helper()
	ws, ok := o.state.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != sig {
		t.Fatalf("want death by %v, got %v\nstdout: %s\nstderr: %s", sig, o.state, o.stdout, o.stderr)
	}
}

func TestApplyKillActions(t *testing.T) {
	requireRoot(t)
	for _, action := range []Action{ActKillProcess, ActKill} {
		t.Run(string(action), func(t *testing.T) {
			s := &Seccomp{DefaultAction: ActAllow, Syscalls: []Syscall{{Names: []string{"getcwd"}, Action: action}}}
			p := DefaultProfile()
			p.Seccomp = s
			run := childRun{prepared: prepare(t, p), probe: probeSpec{Mode: "getcwd"}}
			if action == ActKill {
				// Thread kill only ends a single-threaded program.
				run.argv = []string{"/bin/pwd"}
			}
			killedBy(t, run.start(t), syscall.SIGSYS)
		})
	}
}

func TestApplyX32Killed(t *testing.T) {
	requireRoot(t)
	if runtime.GOARCH != "amd64" {
		t.Skip("x32 exists only on x86_64")
	}
	killedBy(t, childRun{prepared: prepare(t, DefaultProfile()), probe: probeSpec{Mode: "x32"}}.start(t), syscall.SIGSYS)
	// Without the filter the kernel itself answers.
	p := DefaultProfile()
	p.Seccomp = nil
	res := childRun{prepared: prepare(t, p), probe: probeSpec{Mode: "x32"}}.run(t)
	require.True(t, res.Calls["x32_getpid"] != "", res.Calls)
}

func TestApplyListener(t *testing.T) {
	requireRoot(t)
	s := &Seccomp{DefaultAction: ActAllow, Syscalls: []Syscall{{Names: []string{"mknodat"}, Action: ActNotify}}}
	p := DefaultProfile()
	p.Seccomp = s
	o := childRun{prepared: prepare(t, p), listener: true, argv: []string{"/bin/true"}}.start(t)
	require.True(t, o.state.Success(), o.stderr)
	require.True(t, strings.Contains(o.stdout, "anon_inode:seccomp notify"), o.stdout)
}

// A non-root user keeps one capability through execve via the ambient set.
func TestApplyUserWithAmbientCapability(t *testing.T) {
	requireRoot(t)
	exe := copyTestBinary(t)
	caps := &Capabilities{
		Bounding:    []string{"CAP_NET_BIND_SERVICE", "CAP_CHOWN"},
		Permitted:   []string{"net_bind_service"},
		Effective:   []string{"NET_BIND_SERVICE"},
		Inheritable: []string{"CAP_NET_BIND_SERVICE"},
		Ambient:     []string{"CAP_NET_BIND_SERVICE"},
	}
	p := DefaultProfile()
	p.Capabilities = caps
	port := freePrivilegedPort(t)
	res := childRun{
		prepared: prepare(t, p),
		cred:     Credential{UID: 1000, GID: 1000, Groups: []uint32{1000, 2345}},
		exe:      exe,
		argv:     []string{exe, "-test.run=^$"},
		probe:    probeSpec{Bind: []int{port}},
	}.run(t)
	const nbs = 1 << 10
	require.Equal(t, "1000\t1000\t1000\t1000", res.Status["Uid"])
	require.Equal(t, "1000\t1000\t1000\t1000", res.Status["Gid"])
	require.Equal(t, "1000 2345", res.Status["Groups"])
	require.Equal(t, uint64(nbs|1), capMask(t, res, "CapBnd"))
	require.Equal(t, uint64(nbs), capMask(t, res, "CapAmb"))
	require.Equal(t, uint64(nbs), capMask(t, res, "CapPrm"))
	require.Equal(t, uint64(nbs), capMask(t, res, "CapEff"))
	require.Equal(t, uint64(nbs), capMask(t, res, "CapInh"))
	require.Equal(t, "OK", res.Calls["bind:"+strconv.Itoa(port)])

	// Without the ambient capability the same user cannot bind the port.
	caps2 := *caps
	caps2.Ambient = nil
	p.Capabilities = &caps2
	res = childRun{prepared: prepare(t, p), cred: Credential{UID: 1000, GID: 1000}, exe: exe,
		argv: []string{exe, "-test.run=^$"}, probe: probeSpec{Bind: []int{port}}}.run(t)
	require.Equal(t, uint64(0), capMask(t, res, "CapEff"))
	require.Equal(t, "EACCES", res.Calls["bind:"+strconv.Itoa(port)])
	require.Equal(t, "", res.Status["Groups"])
}

func TestApplySecurebits(t *testing.T) {
	requireRoot(t)
	p := DefaultProfile()
	p.Securebits = []string{"SECBIT_NOROOT", "SECBIT_NOROOT_LOCKED"}
	res := childRun{prepared: prepare(t, p)}.run(t)
	// With NOROOT, root gains nothing from the file at execve: only what
	// it had (nothing inheritable, no ambient) is left.
	require.Equal(t, uint64(dockerDefaultMask), capMask(t, res, "CapBnd"))
	require.Equal(t, uint64(0), capMask(t, res, "CapEff"))
	require.Equal(t, uint64(0), capMask(t, res, "CapPrm"))
}

// copyTestBinary puts this test binary where uid 1000 can execute it.
func copyTestBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	dir, err := os.MkdirTemp("", "vessel-security-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	dst := filepath.Join(dir, "probe")
	in, err := os.Open(self)
	require.NoError(t, err)
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(out, in)
	require.NoError(t, err)
	require.NoError(t, out.Close())
	return dst
}

// freePrivilegedPort finds a port below 1024 nobody listens on (loopback).
func freePrivilegedPort(t *testing.T) int {
	t.Helper()
	for port := 1001; port < 1024; port++ {
		l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free port below 1024 on loopback")
	return 0
}

func TestApplyLandlock(t *testing.T) {
	requireRoot(t)
	abi := LandlockABI()
	// The development and CI machines have Landlock built in and enabled.
	require.True(t, abi >= 1, "Landlock ABI", abi)
	allowed := t.TempDir()
	denied := t.TempDir()
	lOK, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer lOK.Close()
	lNo, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer lNo.Close()
	portOK := lOK.Addr().(*net.TCPAddr).Port
	portNo := lNo.Addr().(*net.TCPAddr).Port

	p := DefaultProfile()
	p.NoNewPrivileges = false // Landlock turns it on by itself
	p.Landlock = &Landlock{
		Enabled:    true,
		ReadExec:   []string{"/"},
		ReadWrite:  []string{allowed, "/dev/null"},
		ConnectTCP: []uint16{uint16(portOK)},
	}
	res := childRun{prepared: prepare(t, p), probe: probeSpec{
		Create:  []string{allowed + "/ok", denied + "/no"},
		Connect: []int{portOK, portNo},
	}}.run(t)
	require.Equal(t, "1", res.Status["NoNewPrivs"])
	require.Equal(t, "OK", res.Calls["create:"+allowed+"/ok"])
	require.Equal(t, "EACCES", res.Calls["create:"+denied+"/no"])
	_, err = os.Stat(denied + "/no")
	require.True(t, os.IsNotExist(err), "file outside the ruleset was created")
	if abi >= 4 {
		require.Equal(t, "OK", res.Calls["connect:"+strconv.Itoa(portOK)])
		require.Equal(t, "EACCES", res.Calls["connect:"+strconv.Itoa(portNo)])
	}
	// exec of the probe itself shows ReadExec on "/" works, and the
	// filter still loads after Landlock.
	require.Equal(t, "2", res.Status["Seccomp"])
}

// SECCOMP_FILTER_FLAG_TSYNC, when a profile asks for it, works with the Go
// runtime's threads, also together with a notify listener.
func TestApplyTSync(t *testing.T) {
	requireRoot(t)
	p := DefaultProfile()
	p.Seccomp.Flags = []string{"SECCOMP_FILTER_FLAG_TSYNC"}
	res := childRun{prepared: prepare(t, p)}.run(t)
	require.Equal(t, "2", res.Status["Seccomp"])
	require.Equal(t, "EPERM", res.Calls["keyctl"])

	p.Seccomp.Syscalls = append(p.Seccomp.Syscalls, Syscall{Names: []string{"mknodat"}, Action: ActNotify})
	o := childRun{prepared: prepare(t, p), listener: true, argv: []string{"/bin/true"}}.start(t)
	require.True(t, o.state.Success(), o.stderr)
	require.True(t, strings.Contains(o.stdout, "anon_inode:seccomp notify"), o.stdout)
}

// TestApplyToThreadKeepsIdentity: the profile applies as with Apply, the
// uid and gid stay, and the supplementary groups the process had are gone
// from the thread that execs.
func TestApplyToThreadKeepsIdentity(t *testing.T) {
	requireRoot(t)
	res := childRun{prepared: prepare(t, DefaultProfile()), keepIdentity: true, groups: []uint32{5, 27}}.run(t)
	for _, f := range []string{"CapBnd", "CapEff", "CapPrm"} {
		require.Equal(t, uint64(dockerDefaultMask), capMask(t, res, f), f)
	}
	require.Equal(t, "1", res.Status["NoNewPrivs"])
	require.Equal(t, "2", res.Status["Seccomp"])
	require.Equal(t, "0\t0\t0\t0", res.Status["Uid"])
	require.Equal(t, "0\t0\t0\t0", res.Status["Gid"])
	require.Equal(t, "", res.Status["Groups"])
	require.Equal(t, "EPERM", res.Calls["mount"])
}
