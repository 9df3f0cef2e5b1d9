package security

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/stretchr/testify/require"
)

// The real-kernel tests start this test binary again in "child" mode: it
// reads a childSpec, locks its thread, calls Apply and execs the target,
// as vessel's container init does. The target is usually this binary once
// more in "probe" mode, which reports what it sees as JSON on stdout.
const (
	envChild = "VESSEL_SECURITY_TEST_CHILD" // path of a childSpec JSON file
	envProbe = "VESSEL_SECURITY_TEST_PROBE" // probeSpec JSON
)

type childSpec struct {
	Prepared *Prepared  `json:"prepared"`
	Cred     Credential `json:"cred"`
	Argv     []string   `json:"argv"`
	Env      []string   `json:"env"`
	// ReportListener prints the seccomp listener's /proc/self/fd link
	// before execve.
	ReportListener bool `json:"reportListener"`
	// KeepIdentity uses ApplyToThread instead of Apply.
	KeepIdentity bool `json:"keepIdentity,omitempty"`
}

type probeSpec struct {
	// Mode "" runs every check; "getcwd" only calls getcwd; "x32" makes
	// an x32 system call.
	Mode    string   `json:"mode"`
	Create  []string `json:"create"`  // files to create
	Connect []int    `json:"connect"` // 127.0.0.1 TCP ports to connect to
	Bind    []int    `json:"bind"`    // 127.0.0.1 TCP ports to bind
}

type probeResult struct {
	Status map[string]string `json:"status"` // /proc/self/status fields
	Calls  map[string]string `json:"calls"`  // check -> "OK" or errno name
}

func TestMain(m *testing.M) {
	if path := os.Getenv(envChild); path != "" {
		runChild(path)
	}
	if spec := os.Getenv(envProbe); spec != "" {
		runProbe(spec)
	}
	os.Exit(m.Run())
}

func runChild(path string) {
	runtime.LockOSThread()
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "child: "+format+"\n", args...)
		os.Exit(97)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	var spec childSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		fail("%v", err)
	}
	apply := func() (int, error) { return Apply(spec.Prepared, spec.Cred) }
	if spec.KeepIdentity {
		apply = func() (int, error) { return ApplyToThread(spec.Prepared) }
	}
	fd, err := apply()
	if err != nil {
		fail("apply: %v", err)
	}
	if spec.ReportListener {
		link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
		fmt.Printf("listener %d %s %v\n", fd, link, err)
	}
	err = syscall.Exec(spec.Argv[0], spec.Argv, spec.Env)
	fail("exec %s: %v", spec.Argv[0], err)
}

func errnoName(e syscall.Errno) string {
	if e == 0 {
		return "OK"
	}
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return strconv.Itoa(int(e))
}

func runProbe(specJSON string) {
	var spec probeSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(98)
	}
	res := probeResult{Status: map[string]string{}, Calls: map[string]string{}}
	buf := make([]byte, 4096)
	getcwd := func() syscall.Errno {
		_, _, e := unix.RawSyscall(unix.SYS_GETCWD, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0)
		return e
	}
	switch spec.Mode {
	case "getcwd":
		res.Calls["getcwd"] = errnoName(getcwd())
		emit(res)
	case "x32":
		_, _, e := unix.RawSyscall(x32SyscallBit|unix.SYS_GETPID, 0, 0, 0)
		res.Calls["x32_getpid"] = errnoName(e)
		emit(res)
	}
	f, err := os.Open("/proc/self/status")
	if err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if ok {
				res.Status[k] = strings.TrimSpace(v)
			}
		}
		f.Close()
	}
	raw := func(name string, nr uintptr, args ...uintptr) {
		var a [6]uintptr
		copy(a[:], args)
		_, _, e := unix.RawSyscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5])
		res.Calls[name] = errnoName(e)
	}
	str := func(s string) uintptr { p, _ := unix.BytePtrFromString(s); return uintptr(unsafe.Pointer(p)) }
	res.Calls["getcwd"] = errnoName(getcwd())
	raw("keyctl", unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, uintptr(0xffffffff) /* KEY_SPEC_THREAD_KEYRING */, 0)
	raw("ptrace", unix.SYS_PTRACE, unix.PTRACE_PEEKDATA, 0x3ffffff0, 0, 0) // no such pid: ESRCH if allowed
	raw("mount", unix.SYS_MOUNT, str("none"), str("/nonexistent-vessel-probe"), str("tmpfs"), 0, 0)
	raw("personality_query", unix.SYS_PERSONALITY, 0xffffffff)
	raw("personality_addr_no_randomize", unix.SYS_PERSONALITY, 0x0040000 /* ADDR_NO_RANDOMIZE */)
	raw("socket_vsock", unix.SYS_SOCKET, unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	raw("nr1000", 1000)
	raw("pidfd_open", unix.SYS_PIDFD_OPEN, uintptr(os.Getpid()), 0)
	raw("clone3", unix.SYS_CLONE3, 0, 0)
	// clone(2) through os/exec: plain, and with a namespace flag.
	res.Calls["clone_plain"] = runTrue(0)
	res.Calls["clone_newns"] = runTrue(syscall.CLONE_NEWNS)
	res.Calls["clone_newuser"] = runTrue(syscall.CLONE_NEWUSER)
	for _, p := range spec.Create {
		fd, err := unix.Open(p, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		res.Calls["create:"+p] = errToName(err)
		if err == nil {
			unix.Close(fd)
		}
	}
	for _, port := range spec.Connect {
		res.Calls["connect:"+strconv.Itoa(port)] = tcp(port, false)
	}
	for _, port := range spec.Bind {
		res.Calls["bind:"+strconv.Itoa(port)] = tcp(port, true)
	}
	// Last: on success it would move this process into a new namespace.
	raw("unshare_newuser", unix.SYS_UNSHARE, unix.CLONE_NEWUSER)
	emit(res)
}

func errToName(err error) string {
	if err == nil {
		return "OK"
	}
	if e, ok := err.(syscall.Errno); ok {
		return errnoName(e)
	}
	var e syscall.Errno
	if ok := asErrno(err, &e); ok {
		return errnoName(e)
	}
	return err.Error()
}

func asErrno(err error, out *syscall.Errno) bool {
	for err != nil {
		if e, ok := err.(syscall.Errno); ok {
			*out = e
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

func runTrue(cloneflags uintptr) string {
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: cloneflags}
	return errToName(cmd.Run())
}

func tcp(port int, bind bool) string {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return errToName(err)
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
	if bind {
		return errToName(unix.Bind(fd, sa))
	}
	return errToName(unix.Connect(fd, sa))
}

func emit(res probeResult) {
	b, _ := json.Marshal(res)
	os.Stdout.Write(b)
	os.Exit(0)
}

// childRun describes one real-kernel run.
type childRun struct {
	prepared *Prepared
	cred     Credential
	probe    probeSpec
	argv     []string // default: this binary in probe mode
	exe      string   // binary to start (default os.Executable)
	listener bool
	// keepIdentity applies with ApplyToThread; groups are the child's
	// supplementary groups before it applies anything.
	keepIdentity bool
	groups       []uint32
}

type childOutcome struct {
	stdout, stderr string
	state          *os.ProcessState
	result         probeResult
}

func (r childRun) start(t *testing.T) childOutcome {
	t.Helper()
	exe := r.exe
	if exe == "" {
		var err error
		exe, err = os.Executable()
		require.NoError(t, err)
	}
	probeJSON, err := json.Marshal(r.probe)
	require.NoError(t, err)
	argv := r.argv
	if argv == nil {
		argv = []string{exe, "-test.run=^$"}
	}
	spec := childSpec{Prepared: r.prepared, Cred: r.cred, Argv: argv, ReportListener: r.listener, KeepIdentity: r.keepIdentity,
		Env: []string{envProbe + "=" + string(probeJSON), "PATH=/usr/bin:/bin"}}
	data, err := json.Marshal(spec)
	require.NoError(t, err)
	specPath := t.TempDir() + "/spec.json"
	require.NoError(t, os.WriteFile(specPath, data, 0o600))

	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = []string{envChild + "=" + specPath}
	if r.groups != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 0, Gid: 0, Groups: r.groups}}
	}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	_ = cmd.Run()
	o := childOutcome{stdout: out.String(), stderr: errb.String(), state: cmd.ProcessState}
	if strings.HasPrefix(o.stdout, "{") {
		require.NoError(t, json.Unmarshal([]byte(o.stdout), &o.result), o.stdout)
	}
	return o
}

// run is start plus the expectation that the probe finished normally.
func (r childRun) run(t *testing.T) probeResult {
	t.Helper()
	o := r.start(t)
	if !o.state.Success() || o.result.Calls == nil {
		t.Fatalf("child failed: %v\nstdout: %s\nstderr: %s", o.state, o.stdout, o.stderr)
	}
	return o.result
}

// capMask parses a CapXxx hex field of /proc/self/status.
func capMask(t *testing.T, res probeResult, field string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(res.Status[field], 16, 64)
	require.NoError(t, err, field)
	return v
}

func prepare(t *testing.T, p *Profile) *Prepared {
	t.Helper()
	prep, err := p.Prepare()
	require.NoError(t, err)
	// Everything must survive the trip to the child.
	b, err := json.Marshal(prep)
	require.NoError(t, err)
	var back Prepared
	require.NoError(t, json.Unmarshal(b, &back))
	return &back
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root: the project's tests run as root")
	}
}
