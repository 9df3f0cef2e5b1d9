package vessel_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/rootfs"
	"github.com/openvessel/vessel/security"
)

var idSeq int

func newID(t testing.TB) string {
	idSeq++
	return fmt.Sprintf("t%d-%d", os.Getpid(), idSeq)
}

// start creates and starts a container, destroying it at test end.
func start(t testing.TB, cfg *vessel.Config, args ...string) (*vessel.Container, *bytes.Buffer) {
	t.Helper()
	c, err := vessel.New(newID(t), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Destroy() })
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(context.Background(), args...); err != nil {
		t.Fatalf("Start %v: %v", args, err)
	}
	return c, &out
}

// run runs a command in a container and returns its output and error.
func run(t testing.TB, cfg *vessel.Config, args ...string) (string, error) {
	t.Helper()
	c, err := vessel.New(newID(t), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer c.Destroy()
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err = c.Run(context.Background(), args...)
	return out.String(), err
}

func TestExitCode(t *testing.T) {
	for _, code := range []int{0, 1, 7, 255} {
		_, err := run(t, newConfig(), "/bin/sh", "-c", fmt.Sprintf("exit %d", code))
		if code == 0 {
			if err != nil {
				t.Fatalf("exit 0: %v", err)
			}
			continue
		}
		var ee *vessel.ExitError
		if !errors.As(err, &ee) || ee.Status.Code != code || ee.Status.Signal != 0 {
			t.Fatalf("exit %d: got %v", code, err)
		}
	}
}

func TestExitBySignal(t *testing.T) {
	// A real fault: the main process is PID 1 of its pid namespace, which
	// ignores a SIGSEGV sent to it (kill -SEGV $$ from a shell), as any
	// container's PID 1 does under runc.
	_, err := run(t, withProbe(t, newConfig()), "/probe", "signal", "SEGV")
	var ee *vessel.ExitError
	if !errors.As(err, &ee) || ee.Status.Signal != syscall.SIGSEGV || ee.Status.Code != 128+11 {
		t.Fatalf("got %v, want killed by SIGSEGV", err)
	}
	if ee.Status.Exited() {
		t.Fatal("Exited() true for a signal death")
	}
}

func TestSignalForwarded(t *testing.T) {
	c, out := start(t, newConfig(), "/bin/sh", "-c", "trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.05; done")
	waitFor(t, func() bool { return strings.Contains(out.String(), "ready") })
	if err := c.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := c.Wait()
	var ee *vessel.ExitError
	if !errors.As(err, &ee) || ee.Status.Code != 3 || !strings.Contains(out.String(), "got-term") {
		t.Fatalf("got %v, output %q", err, out.String())
	}
}

// The init passes on what is sent to its own pid: the usual signals at
// once (ABRT included, which would otherwise kill the Go runtime), a
// real-time one once the container has run for a moment.
func TestInitForwardsSignals(t *testing.T) {
	c, out := start(t, newConfig(), "/bin/sh", "-c",
		"trap 'echo got-usr1' USR1; trap 'echo got-abrt' ABRT; trap 'echo got-35' 35; echo ready; while :; do sleep 0.01; done")
	waitFor(t, func() bool { return strings.Contains(out.String(), "ready") })
	initPid := c.State().InitPid
	for _, tc := range []struct {
		sig  syscall.Signal
		want string
	}{{syscall.SIGUSR1, "got-usr1"}, {syscall.SIGABRT, "got-abrt"}, {syscall.Signal(35), "got-35"}} {
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(out.String(), tc.want) {
			if time.Now().After(deadline) {
				t.Fatalf("%v sent to the init (pid %d) never reached the main process: %q", tc.sig, initPid, out.String())
			}
			if err := syscall.Kill(initPid, tc.sig); err != nil {
				t.Fatalf("kill %d %v: %v", initPid, tc.sig, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if st := c.State(); st.Status != vessel.Running {
		t.Fatalf("container %s after the signals", st.Status)
	}
}

func TestExecErrorsAreTyped(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		errno error
	}{
		{[]string{"/does/not/exist"}, fs.ErrNotExist},
		{[]string{"no-such-command-anywhere"}, fs.ErrNotExist},
		{[]string{"/etc/passwd"}, fs.ErrPermission},
	} {
		c, err := vessel.New(newID(t), newConfig())
		if err != nil {
			t.Fatal(err)
		}
		err = c.Start(context.Background(), tc.args...)
		var se *vessel.SetupError
		if !errors.As(err, &se) || se.Step != "exec" || !errors.Is(err, tc.errno) {
			t.Fatalf("%v: got %v, want SetupError{Step: exec} wrapping %v", tc.args, err, tc.errno)
		}
		if st := c.State(); st.Status != vessel.Created || st.Pid != 0 {
			t.Fatalf("state after failed start: %+v", st)
		}
		c.Destroy()
	}
}

// A failure inside an exec stage (Create holds the process in one) is
// passed on by the init as it came: the caller gets the stage's step,
// path and errno as one *SetupError.
func TestCreateErrorFromExecStageIsTyped(t *testing.T) {
	c, err := vessel.New(newID(t), newConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	err = c.Create(context.Background(), "/does/not/exist")
	var se *vessel.SetupError
	if !errors.As(err, &se) || se.Step != "exec" || se.Path != "/does/not/exist" || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %#v (%v), want SetupError{Step: exec, Path: /does/not/exist} wrapping ENOENT", err, err)
	}
	if st := c.State(); st.Status != vessel.Created || st.Pid != 0 {
		t.Fatalf("state after failed create: %+v", st)
	}
}

func TestStateTransitions(t *testing.T) {
	c, err := vessel.New(newID(t), newConfig())
	if err != nil {
		t.Fatal(err)
	}
	if st := c.State(); st.Status != vessel.Created {
		t.Fatalf("new: %v", st.Status)
	}
	if err := c.Wait(); !errors.Is(err, vessel.ErrNotStarted) {
		t.Fatalf("Wait before Start: %v", err)
	}
	if err := c.Start(context.Background(), "sleep", "30"); err != nil {
		t.Fatal(err)
	}
	st := c.State()
	if st.Status != vessel.Running || st.Pid <= 0 || st.InitPid <= 0 || st.Pid == st.InitPid {
		t.Fatalf("running: %+v", st)
	}
	// The reported pid is the host pid of the user's process.
	if comm := waitComm(t, st.Pid, "sleep"); comm != "sleep" {
		t.Fatalf("pid %d is %q, not sleep", st.Pid, comm)
	}
	if err := c.Start(context.Background(), "true"); !errors.Is(err, vessel.ErrAlreadyStarted) {
		t.Fatalf("second Start: %v", err)
	}
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	err = c.Wait()
	if !errors.Is(err, vessel.ErrKilled) {
		t.Fatalf("Wait after Kill: %v", err)
	}
	if st := c.State(); st.Status != vessel.Stopped || st.Exit == nil || st.Exit.Signal != syscall.SIGKILL {
		t.Fatalf("stopped: %+v", st)
	}
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
	if err := c.Destroy(); err != nil {
		t.Fatalf("second Destroy: %v", err)
	}
	if st := c.State(); st.Status != vessel.Destroyed {
		t.Fatalf("destroyed: %v", st.Status)
	}
	if err := c.Start(context.Background(), "true"); !errors.Is(err, vessel.ErrDestroyed) {
		t.Fatalf("Start after Destroy: %v", err)
	}
}

func TestTimeout(t *testing.T) {
	_, err := run(t, newConfig().WithTimeout(200*time.Millisecond), "sleep", "30")
	if !errors.Is(err, vessel.ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
}

func TestStdioAndEnv(t *testing.T) {
	c, err := vessel.New(newID(t), newConfig().WithEnv("GREETING=hi there").WithWorkDir("/usr"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	var out, errb bytes.Buffer
	c.Stdin = strings.NewReader("from stdin\n")
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(context.Background(), "/bin/sh", "-c", `read l; echo "$l|$GREETING|$(pwd)|$(umask)"; echo oops >&2`); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != "from stdin|hi there|/usr|0022" {
		t.Fatalf("stdout %q", got)
	}
	if strings.TrimSpace(errb.String()) != "oops" {
		t.Fatalf("stderr %q", errb.String())
	}
}

func TestUserGroupsUmask(t *testing.T) {
	out, err := run(t, newConfig().WithUser(1000, 1001).WithGroups(5, 27).WithUmask(0o077),
		"/bin/sh", "-c", "id -u; id -g; id -G; umask")
	if err != nil {
		t.Fatal(err, out)
	}
	if got := strings.Fields(out); strings.Join(got, " ") != "1000 1001 1001 5 27 0077" {
		t.Fatalf("got %q", out)
	}
}

func TestExtraFiles(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := vessel.New(newID(t), newConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	c.ExtraFiles = []*os.File{w}
	if err := c.Start(context.Background(), "/bin/sh", "-c", "echo via-fd3 >&3"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	line, _ := bufio.NewReader(r).ReadString('\n')
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	if line != "via-fd3\n" {
		t.Fatalf("fd 3 got %q", line)
	}
}

func TestBadConfigs(t *testing.T) {
	dir := t.TempDir()
	if _, err := run(t, newConfig(), "/bin/true"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		cfg   *vessel.Config
		field string
	}{
		{"relative rootfs", newConfig().WithRootfs(rootfs.Dir("relative/root")), "rootfs.path"},
		{"missing rootfs", newConfig().WithRootfs(rootfs.Dir(dir + "/nope")), "rootfs.path"},
		{"overlapping mounts", newConfig().WithTmpfs("/data", 0).WithBind(dir, "/data/", false), "mounts[1].destination"},
		{"mount over root", newConfig().WithTmpfs("/", 0), "mounts[0].destination"},
		{"bind missing source", newConfig().WithBind(dir+"/missing", "/x", false), "mounts[0].source"},
		{"unknown ns path", newConfig().WithNamespace(namespaces.Net, "/proc/self/ns/nope"), "namespaces[network].path"},
		{"wrong ns kind", newConfig().WithNamespace(namespaces.Net, "/proc/self/ns/uts"), "namespaces[network].path"},
		{"uid map without userns", func() *vessel.Config {
			c := newConfig()
			c.UIDMappings = []namespaces.IDMap{{ContainerID: 0, HostID: 100000, Size: 1}}
			return c
		}(), "uidMappings"},
		{"hostname without uts", newConfig().WithSharedNamespace(namespaces.UTS).WithHostname("x"), "hostname"},
		{"bad env", newConfig().WithEnv("NOEQUALS"), "process.env[1]"},
		{"relative workdir", newConfig().WithWorkDir("tmp"), "process.cwd"},
		{"time offsets without time ns", func() *vessel.Config {
			c := newConfig()
			c.TimeOffsets.Monotonic = time.Hour
			return c
		}(), "timeOffsets"},
		{"unknown capability", newConfig().WithCapAdd("CAP_NOPE"), "security.capabilities.bounding"},
		{"seccomp rule without syscalls", newConfig().WithSeccomp(&security.Seccomp{DefaultAction: security.ActAllow,
			Syscalls: []security.Syscall{{Action: security.ActErrno}}}), "security.seccomp.syscalls[0]"},
		{"overlapping id maps", newConfig().WithUserNamespace([]namespaces.IDMap{{ContainerID: 0, HostID: 1000, Size: 10}, {ContainerID: 5, HostID: 2000, Size: 10}}, nil), "uidMappings[1]"},
	}
	before := snapshot(t)
	for _, tc := range cases {
		_, err := vessel.New("bad", tc.cfg)
		var ce *vessel.ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("%s: got %v, want a ConfigError for field %s", tc.name, err, tc.field)
		}
	}
	if _, err := vessel.New("bad id!", newConfig()); err == nil {
		t.Error("bad id accepted")
	}
	// No command at all is an error at Start, and leaves nothing.
	c, err := vessel.New(newID(t), newConfig())
	if err != nil {
		t.Fatal(err)
	}
	var ce *vessel.ConfigError
	if err := c.Start(context.Background()); !errors.As(err, &ce) || ce.Field != "process.args" {
		t.Errorf("Start without args: %v", err)
	}
	before.assertUnchanged(t, snapshot(t))
}

func TestSetupErrorFromChild(t *testing.T) {
	// A bind onto a path that cannot become a mount point: the rootfs is a
	// directory where /etc is a regular file.
	root := t.TempDir()
	if err := os.WriteFile(root+"/etc", []byte("not a dir"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, newConfig(), "/bin/true"); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t)
	c, err := vessel.New(newID(t), newConfig().WithRootfs(rootfs.Dir(root)).WithBind(t.TempDir(), "/etc/sub", false))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Start(context.Background(), "/bin/true")
	var se *vessel.SetupError
	if !errors.As(err, &se) || !strings.Contains(se.Path, "/etc") {
		t.Fatalf("got %v, want a SetupError about /etc", err)
	}
	if se.Step == "" {
		t.Fatalf("no step in %#v", se)
	}
	c.Destroy()
	before.assertUnchanged(t, snapshot(t))
}

func TestContextCancelKillsTree(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c, err := vessel.New(newID(t), newConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	var out bytes.Buffer
	c.Stdout = &out
	script := `for i in $(seq 50); do sleep 1000 & done; echo spawned; wait`
	if err := c.Start(ctx, "/bin/sh", "-c", script); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(out.String(), "spawned") })
	pidns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", c.State().Pid))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(procsInPidNS(pidns)); n != 51 {
		t.Fatalf("%d processes in the container, want 50 sleeps + sh (and no vessel process)", n)
	}
	cancel()
	if err := c.Wait(); !errors.Is(err, vessel.ErrKilled) {
		t.Fatalf("Wait: %v", err)
	}
	waitFor(t, func() bool { return len(procsInPidNS(pidns)) == 0 })
}

// procsInPidNS lists host pids whose pid namespace is ns.
func procsInPidNS(ns string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err == nil && l == ns {
			// Zombies waiting for a reaper are gone for our purpose.
			if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(string(st), ") Z ") {
				continue
			}
			out = append(out, pid)
		}
	}
	return out
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestParentKilledLeavesNothing starts a container from a helper process,
// SIGKILLs the helper, and checks that the container's processes die.
func TestParentKilledLeavesNothing(t *testing.T) {
	for _, mode := range []string{"sleep", "sleep-sharedpid"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command("/proc/self/exe", "-test.run=^$")
			cmd.Env = append(os.Environ(), "VESSEL_TEST_HELPER="+mode)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var pid int
			if _, err := fmt.Fscan(stdout, &pid); err != nil {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("helper: %v", err)
			}
			pidfd, err := unix.PidfdOpen(pid, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(pidfd)
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, 10000)
			if err != nil || n != 1 {
				t.Fatalf("container process %d still alive 10s after its parent was killed (%v)", pid, err)
			}
			// The dead parent could not remove the container's cgroup:
			// DestroyStale does, by id.
			cc := newConfig().Cgroup
			if err := vessel.DestroyStale(helperID(cmd.Process.Pid), cc); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat("/sys/fs/cgroup/pids/vessel-test/" + helperID(cmd.Process.Pid)); err == nil {
				t.Fatal("stale cgroup still there after DestroyStale")
			}
		})
	}
}

// runHelper is the helper process: it starts a container and prints the
// host pid of its main process, then waits to be killed.
func runHelper(mode string) int {
	if mode == "nested" {
		return runNestedHelper()
	}
	cfg := newConfig()
	if mode == "sleep-sharedpid" {
		cfg.WithSharedNamespace(namespaces.PID)
	}
	c, err := vessel.New(helperID(os.Getpid()), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := c.Start(context.Background(), "sleep", "1000"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(c.State().Pid)
	select {}
}

func helperID(pid int) string { return fmt.Sprintf("helper-%d", pid) }

// A start that fails in a phase after the init runs (here prepare: a
// createRuntime hook exits 1) undoes every phase done: the init is
// killed, the cgroup is removed, nothing is left on the host, the
// container can start again, and its id is free for another.
func TestStartFailureAfterTheInitLeavesNothing(t *testing.T) {
	if _, err := run(t, newConfig(), "/bin/true"); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t)
	id := newID(t)
	cfg := newConfig()
	cfg.Hooks = &vessel.Hooks{CreateRuntime: []vessel.Hook{{Path: "/bin/false", Args: []string{"false"}}}}
	c, err := vessel.New(id, cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Start(context.Background(), "/bin/true")
	var se *vessel.SetupError
	if !errors.As(err, &se) || se.Step != "createRuntime hook" {
		t.Fatalf("got %v, want a SetupError of the createRuntime hook", err)
	}
	if st := c.State(); st.Status != vessel.Created || st.Pid != 0 {
		t.Fatalf("state after the failed start: %+v", st)
	}
	if left := leftoverInits(t, id); len(left) > 0 {
		t.Fatalf("init processes left: %v", left)
	}
	before.assertUnchanged(t, snapshot(t))
	// Once more, the same container: the same failure, not "id in use".
	if err := c.Start(context.Background(), "/bin/true"); !errors.As(err, &se) || se.Step != "createRuntime hook" {
		t.Fatalf("second start: %v", err)
	}
	c.Destroy()
	if _, err := run(t, newConfig(), "/bin/true"); err != nil {
		t.Fatal(err)
	}
	c2, err := vessel.New(id, newConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Destroy()
	if err := c2.Run(context.Background(), "/bin/true"); err != nil {
		t.Fatalf("the id after the failed start: %v", err)
	}
}
