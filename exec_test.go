package vessel_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/internal/probe"
	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/rootfs"
)

// execOut runs cmd in c with Exec and returns its standard output, its
// standard error and Wait's error.
func execOut(t testing.TB, c *vessel.Container, cmd *vessel.Cmd) (string, string, error) {
	t.Helper()
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	p, err := c.Exec(context.Background(), cmd)
	if err != nil {
		t.Fatalf("Exec %v: %v", cmd.Args, err)
	}
	err = p.Wait()
	return stdout.String(), stderr.String(), err
}

// execReport runs "probe report" (at probePath inside) in c with Exec.
func execReport(t testing.TB, c *vessel.Container, probePath string) *probe.Report {
	t.Helper()
	out, errOut, err := execOut(t, c, vessel.Command(probePath, "report"))
	if err != nil {
		t.Fatalf("exec probe report: %v\n%s%s", err, out, errOut)
	}
	return testutil.MustParseReport(t, []byte(out))
}

// waitComm returns pid's command name once it is want, or what it is
// after two seconds. A process is reported started when its execve is
// past the point of no return (its close-on-exec descriptors are closed
// then), a moment before the kernel gives the task its new name.
func waitComm(t testing.TB, pid int, want string) string {
	t.Helper()
	var comm string
	for deadline := time.Now().Add(2 * time.Second); ; {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		comm = strings.TrimSpace(string(b))
		if comm == want || time.Now().After(deadline) {
			return comm
		}
		time.Sleep(time.Millisecond)
	}
}

// nsInode returns the inode of /proc/PID/ns/KIND.
func nsInode(t testing.TB, pid int, kind string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/%s", pid, kind), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// statusField returns a field of /proc/PID/status.
func statusField(t testing.TB, pid int, field string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == field {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return ""
}

// waitGone waits until host process pid has ended (zombies count as ended).
func waitGone(t testing.TB, pid int) {
	t.Helper()
	waitFor(t, func() bool {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		return err != nil || strings.Contains(string(st), ") Z ")
	})
}

func TestExecOutputAndExitCode(t *testing.T) {
	c, _ := start(t, newConfig(), "sleep", "30")
	out, errOut, err := execOut(t, c, vessel.Command("/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2"))
	if err != nil || out != "to-stdout\n" || errOut != "to-stderr\n" {
		t.Fatalf("got %q %q %v", out, errOut, err)
	}
	for _, code := range []int{1, 42, 255} {
		var stdout syncBuffer
		cmd := vessel.Command("/bin/sh", "-c", fmt.Sprintf("echo code; exit %d", code))
		cmd.Stdout = &stdout
		p, err := c.Exec(context.Background(), cmd)
		if err != nil {
			t.Fatal(err)
		}
		if p.Pid() <= 0 {
			t.Errorf("Pid() = %d", p.Pid())
		}
		err = p.Wait()
		var ee *vessel.ExitError
		if !errors.As(err, &ee) || ee.Status.Code != code || ee.Status.Signal != 0 || !ee.Status.Exited() {
			t.Fatalf("exit %d: got %v", code, err)
		}
		if st := p.ExitStatus(); st == nil || st.Code != code {
			t.Fatalf("ExitStatus() = %+v", st)
		}
		if stdout.String() != "code\n" {
			t.Fatalf("stdout %q", stdout.String())
		}
		if err2 := p.Wait(); !errors.As(err2, &ee) || ee.Status.Code != code {
			t.Fatalf("second Wait: %v", err2)
		}
	}
	// The container's main process is unaffected by its exec'd processes.
	if st := c.State(); st.Status != vessel.Running {
		t.Fatalf("container %v after execs", st.Status)
	}
}

func TestExecExitBySignal(t *testing.T) {
	c, _ := start(t, newConfig(), "sleep", "30")
	_, _, err := execOut(t, c, vessel.Command("/bin/sh", "-c", "kill -TERM $$"))
	var ee *vessel.ExitError
	if !errors.As(err, &ee) || ee.Status.Signal != syscall.SIGTERM || ee.Status.Code != 128+15 || ee.Status.Exited() {
		t.Fatalf("got %v, want death by SIGTERM", err)
	}
	if errors.Is(err, vessel.ErrKilled) {
		t.Fatalf("%v reported as killed by vessel", err)
	}
	// Process.Signal reaches the exec'd process.
	var out syncBuffer
	cmd := vessel.Command("/bin/sh", "-c", "trap 'echo got-usr1; exit 9' USR1; echo ready; while :; do sleep 0.05; done")
	cmd.Stdout = &out
	p, err := c.Exec(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(out.String(), "ready") })
	if err := p.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	err = p.Wait()
	if !errors.As(err, &ee) || ee.Status.Code != 9 || !strings.Contains(out.String(), "got-usr1") {
		t.Fatalf("after SIGUSR1: %v, output %q", err, out.String())
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, vessel.ErrNotRunning) {
		t.Fatalf("Signal after exit: %v", err)
	}
}

func TestExecStdin(t *testing.T) {
	c, _ := start(t, newConfig(), "sleep", "30")
	// A reader goes through a pipe; a large input checks the copy ends
	// with EOF and nothing is lost.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	cmd := vessel.Command("/bin/sh", "-c", "wc -c")
	cmd.Stdin = bytes.NewReader(big)
	out, errOut, err := execOut(t, c, cmd)
	if err != nil || strings.TrimSpace(out) != fmt.Sprint(len(big)) {
		t.Fatalf("wc -c of 1 MiB: %q %q %v", out, errOut, err)
	}
	cmd = vessel.Command("cat")
	cmd.Stdin = strings.NewReader("line one\nline two\n")
	out, _, err = execOut(t, c, cmd)
	if err != nil || out != "line one\nline two\n" {
		t.Fatalf("cat: %q %v", out, err)
	}
	// An *os.File is passed as it is.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd = vessel.Command("/bin/sh", "-c", "read a; read b; echo \"$b $a\"")
	cmd.Stdin = r
	var stdout syncBuffer
	cmd.Stdout = &stdout
	p, err := c.Exec(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(w, "first")
	fmt.Fprintln(w, "second")
	w.Close()
	if err := p.Wait(); err != nil || stdout.String() != "second first\n" {
		t.Fatalf("os.File stdin: %q %v", stdout.String(), err)
	}
	// No stdin reads /dev/null: EOF at once.
	out, _, err = execOut(t, c, vessel.Command("/bin/sh", "-c", "cat; echo eof"))
	if err != nil || out != "eof\n" {
		t.Fatalf("nil stdin: %q %v", out, err)
	}
}

func TestExecEnvDirUser(t *testing.T) {
	c, _ := start(t, newConfig().WithEnv("FROM_CONTAINER=yes").WithWorkDir("/usr").WithUser(0, 0), "sleep", "30")
	script := `echo "env=$FROM_CONTAINER|$OVERRIDE|pwd=$(pwd)|$(id -u) $(id -g) $(id -G)"`
	// Defaults come from the container.
	out, errOut, err := execOut(t, c, vessel.Command("/bin/sh", "-c", script))
	if err != nil || strings.TrimSpace(out) != "env=yes||pwd=/usr|0 0 0" {
		t.Fatalf("defaults: %q %q %v", out, errOut, err)
	}
	// Every override applies; Env replaces the container's environment
	// (PATH still defaults, so "sh" is found).
	cmd := vessel.Command("sh", "-c", script)
	cmd.Env = []string{"OVERRIDE=over"}
	cmd.Dir = "/tmp"
	cmd.User = &vessel.User{UID: 1000, GID: 1001, Groups: []uint32{5, 27}}
	out, errOut, err = execOut(t, c, cmd)
	if err != nil || strings.TrimSpace(out) != "env=|over|pwd=/tmp|1000 1001 1001 5 27" {
		t.Fatalf("overrides: %q %q %v", out, errOut, err)
	}
	// A working directory that does not exist is a setup error.
	cmd = vessel.Command("true")
	cmd.Dir = "/no/such/dir"
	_, err = c.Exec(context.Background(), cmd)
	var se *vessel.SetupError
	if !errors.As(err, &se) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing dir: %v", err)
	}
}

func TestExecSameNamespaces(t *testing.T) {
	ids := []namespaces.IDMap{{ContainerID: 0, HostID: 200000, Size: 65536}}
	cases := []struct {
		name  string
		cfg   func() *vessel.Config
		probe string
	}{
		{"default", func() *vessel.Config { return withProbe(t, newConfig()) }, "/probe"},
		{"userns", func() *vessel.Config { return withProbe(t, newConfig().WithUserNamespace(ids, ids)) }, "/probe"},
		{"busybox", func() *vessel.Config {
			return newConfig().WithRootfs(rootfs.Dir(testutil.BusyboxRootfsCopy(t)))
		}, testutil.RootfsProbePath},
		{"busybox-userns", func() *vessel.Config {
			return newConfig().WithRootfs(rootfs.Dir(testutil.BusyboxRootfsCopy(t))).WithUserNamespace(ids, ids)
		}, testutil.RootfsProbePath},
		{"sharedpid", func() *vessel.Config { return withProbe(t, newConfig().WithSharedNamespace(namespaces.PID)) }, "/probe"},
		{"timens", func() *vessel.Config { return withProbe(t, newConfig().WithTimeNamespace(time.Hour, time.Hour)) }, "/probe"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := start(t, tc.cfg(), tc.probe, "sleep", "30")
			main := c.State().Pid
			r := execReport(t, c, tc.probe)
			if len(r.Namespaces) < 8 {
				t.Fatalf("report has only %d namespaces: %v", len(r.Namespaces), r.Namespaces)
			}
			for kind, ino := range r.Namespaces {
				if want := nsInode(t, main, kind); ino != want {
					t.Errorf("%s: exec'd process in %d, main process in %d", kind, ino, want)
				}
			}
			// The exec'd process joins the main process's pid namespace
			// (PID 1 there is the main process; its parent, the init, is
			// outside: ppid 0), in the container's cgroup (its namespace
			// root when it has one).
			if tc.name != "sharedpid" && (r.PPID != 0 || len(r.NSPID) != 1 || r.NSPID[0] < 2) {
				t.Errorf("exec'd process: ppid %d nspid %v", r.PPID, r.NSPID)
			}
			for _, cg := range r.Cgroups {
				if cg.Path != "/" {
					t.Errorf("exec'd process in cgroup %v %q, not the container's", cg.Controllers, cg.Path)
				}
			}
			if strings.HasPrefix(tc.name, "busybox") {
				if m, ok := r.MountAt("/"); !ok || !strings.Contains(m.Root, "rootfs-copy-") {
					t.Errorf("exec'd process's root is %+v, not the busybox rootfs", m)
				}
			}
			if strings.HasSuffix(tc.name, "userns") {
				if r.UID != 0 || len(r.UIDMap) != 1 || r.UIDMap[0] != (probe.IDMapEntry{Inside: 0, Outside: 200000, Count: 65536}) {
					t.Errorf("userns: uid %d uid_map %+v", r.UID, r.UIDMap)
				}
				if statusField(t, c.State().Pid, "Uid") != "200000\t200000\t200000\t200000" {
					t.Errorf("main process's host uid %q", statusField(t, c.State().Pid, "Uid"))
				}
			}
		})
	}
}

func TestExecSecurity(t *testing.T) {
	c, _ := start(t, withProbe(t, newConfig()), "/probe", "sleep", "30")
	main := c.State().Pid
	r := execReport(t, c, "/probe")
	if got, want := r.Capabilities.Effective.Hex, statusField(t, main, "CapEff"); got != want {
		t.Errorf("CapEff: exec'd %s, main %s", got, want)
	}
	if got, want := r.Capabilities.Bounding.Hex, statusField(t, main, "CapBnd"); got != want {
		t.Errorf("CapBnd: exec'd %s, main %s", got, want)
	}
	if r.Capabilities.Effective.Has("CAP_SYS_ADMIN") {
		t.Error("exec'd process has CAP_SYS_ADMIN")
	}
	if !r.NoNewPrivs || statusField(t, main, "NoNewPrivs") != "1" {
		t.Errorf("no_new_privs: exec'd %v, main %s", r.NoNewPrivs, statusField(t, main, "NoNewPrivs"))
	}
	if r.Seccomp != 2 || statusField(t, main, "Seccomp") != "2" {
		t.Errorf("seccomp: exec'd %d, main %s", r.Seccomp, statusField(t, main, "Seccomp"))
	}
	// The exec'd process cannot do what the profile forbids.
	out, _, _ := execOut(t, c, vessel.Command("/probe", "try", "mount", "/mnt", "tmpfs"))
	testutil.AssertDenied(t, testutil.MustParseTry(t, []byte(out)))
}

func TestExecTTY(t *testing.T) {
	c, _ := start(t, withProbe(t, newConfig()), "/probe", "sleep", "30")
	var out syncBuffer
	cmd := &vessel.Cmd{Args: []string{"/probe", "report"}, TTY: true, Stdout: &out}
	p, err := c.Exec(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	r := testutil.MustParseReport(t, []byte(out.String()))
	if !r.TTY.Stdin || !r.TTY.Stdout || !r.TTY.Stderr || !strings.HasPrefix(r.TTY.Name, "/dev/pts/") || r.TTY.ControllingTTY == 0 {
		t.Fatalf("tty %+v", r.TTY)
	}
	// The initial size, then Resize.
	out = syncBuffer{}
	pr, pw := ioPipe()
	defer pw.Close()
	cmd = &vessel.Cmd{Args: []string{"/bin/sh", "-c", "/probe tty-size; read x; /probe tty-size"}, TTY: true, Rows: 33, Cols: 111, Stdin: pr, Stdout: &out}
	p, err = c.Exec(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(out.String(), `"cols"`) })
	if !strings.Contains(out.String(), `{"rows":33,"cols":111}`) {
		t.Errorf("initial size: %q", out.String())
	}
	if err := p.Resize(40, 120); err != nil {
		t.Fatal(err)
	}
	pw.Write([]byte("go\n"))
	if err := p.Wait(); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), `{"rows":40,"cols":120}`) {
		t.Fatalf("size after Resize: %q", out.String())
	}
	// A process without a terminal cannot be resized.
	p, err = c.Exec(context.Background(), vessel.Command("true"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Resize(10, 10); err == nil {
		t.Error("Resize of a process without a terminal succeeded")
	}
	p.Wait()
}

func TestExecNotRunning(t *testing.T) {
	c, err := vessel.New(newID(t), newConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	if _, err := c.Exec(context.Background(), vessel.Command("true")); !errors.Is(err, vessel.ErrNotRunning) {
		t.Fatalf("Exec before Start: %v", err)
	}
	if err := c.Run(context.Background(), "true"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(context.Background(), vessel.Command("true")); !errors.Is(err, vessel.ErrNotRunning) {
		t.Fatalf("Exec after the container stopped: %v", err)
	}
	c.Destroy()
	if _, err := c.Exec(context.Background(), vessel.Command("true")); !errors.Is(err, vessel.ErrNotRunning) {
		t.Fatalf("Exec after Destroy: %v", err)
	}
	// No command is a config error.
	c2, _ := start(t, newConfig(), "sleep", "30")
	var ce *vessel.ConfigError
	if _, err := c2.Exec(context.Background(), &vessel.Cmd{}); !errors.As(err, &ce) {
		t.Fatalf("Exec of no command: %v", err)
	}
}

func TestExecMissingBinary(t *testing.T) {
	c, _ := start(t, newConfig(), "sleep", "30")
	for _, tc := range []struct {
		args  []string
		errno error
	}{
		{[]string{"/does/not/exist"}, fs.ErrNotExist},
		{[]string{"no-such-command-anywhere"}, fs.ErrNotExist},
		{[]string{"/etc/passwd"}, fs.ErrPermission},
	} {
		p, err := c.Exec(context.Background(), vessel.Command(tc.args[0], tc.args[1:]...))
		var se *vessel.SetupError
		if p != nil || !errors.As(err, &se) || se.Step != "exec" || !errors.Is(err, tc.errno) {
			t.Fatalf("%v: got %v (process %v), want SetupError{Step: exec} wrapping %v", tc.args, err, p, tc.errno)
		}
	}
	// The container still runs and still execs.
	if out, _, err := execOut(t, c, vessel.Command("echo", "still")); err != nil || out != "still\n" {
		t.Fatalf("exec after failures: %q %v", out, err)
	}
}

func TestExecContextCancel(t *testing.T) {
	c, _ := start(t, newConfig(), "sleep", "30")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := c.Exec(ctx, vessel.Command("sleep", "30"))
	if err != nil {
		t.Fatal(err)
	}
	pid := p.Pid()
	if comm := waitComm(t, pid, "sleep"); comm != "sleep" {
		t.Fatalf("Pid() %d is %q, not the exec'd sleep", pid, comm)
	}
	cancel()
	err = p.Wait()
	var ee *vessel.ExitError
	if !errors.Is(err, vessel.ErrKilled) || !errors.As(err, &ee) || ee.Status.Signal != syscall.SIGKILL {
		t.Fatalf("Wait after cancel: %v", err)
	}
	waitGone(t, pid)
	if st := c.State(); st.Status != vessel.Running {
		t.Fatalf("cancelling an exec stopped the container: %v", st.Status)
	}
}

func TestExecConcurrent(t *testing.T) {
	c, _ := start(t, newConfig(), "sleep", "30")
	const n = 50
	var wg sync.WaitGroup
	errs := make([]error, n)
	outs := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var out syncBuffer
			cmd := vessel.Command("/bin/sh", "-c", `echo "exec $0"; exit $(($0 % 3))`, fmt.Sprint(i))
			cmd.Stdout = &out
			p, err := c.Exec(context.Background(), cmd)
			if err != nil {
				errs[i] = err
				return
			}
			errs[i] = p.Wait()
			outs[i] = out.String()
		}(i)
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		var ee *vessel.ExitError
		switch {
		case i%3 == 0 && errs[i] != nil:
			t.Errorf("exec %d: %v", i, errs[i])
		case i%3 != 0 && (!errors.As(errs[i], &ee) || ee.Status.Code != i%3):
			t.Errorf("exec %d: got %v, want exit %d", i, errs[i], i%3)
		}
		if outs[i] != fmt.Sprintf("exec %d\n", i) {
			t.Errorf("exec %d: output %q", i, outs[i])
		}
	}
}

func TestExecDiesWithContainer(t *testing.T) {
	cases := []struct {
		name string
		cfg  *vessel.Config
		user *vessel.User
	}{
		{"newpid", newConfig(), nil},
		{"sharedpid", newConfig().WithSharedNamespace(namespaces.PID), nil},
		// A credential change clears the parent-death signal: the cgroup
		// must catch the process.
		{"sharedpid-user", newConfig().WithSharedNamespace(namespaces.PID), &vessel.User{UID: 1000, GID: 1000}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := start(t, tc.cfg, "sleep", "30")
			cmd := vessel.Command("/bin/sh", "-c", "sleep 30 & echo started; wait")
			cmd.User = tc.user
			var out syncBuffer
			cmd.Stdout = &out
			p, err := c.Exec(context.Background(), cmd)
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { return strings.Contains(out.String(), "started") })
			pid := p.Pid()
			grandchildren := childrenOf(pid)
			if len(grandchildren) != 1 {
				t.Fatalf("exec'd shell %d has children %v, want its sleep", pid, grandchildren)
			}
			if err := c.Kill(); err != nil {
				t.Fatal(err)
			}
			c.Wait()
			if err := p.Wait(); err == nil {
				t.Fatal("exec'd process exited 0 after the container was killed")
			}
			waitGone(t, pid)
			waitGone(t, grandchildren[0])
		})
	}
}

// childrenOf lists the host pids whose parent is pid.
func childrenOf(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(st)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) > 1 && f[1] == fmt.Sprint(pid) {
			var p int
			fmt.Sscan(e.Name(), &p)
			out = append(out, p)
		}
	}
	return out
}

func TestExecExtraFiles(t *testing.T) {
	c, _ := start(t, newConfig(), "sleep", "30")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := vessel.Command("/bin/sh", "-c", "echo via-fd3 >&3; echo via-fd4 >&4")
	cmd.ExtraFiles = []*os.File{w, w}
	p, err := c.Exec(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 64)
	n, _ := r.Read(b)
	if got := string(b[:n]); got != "via-fd3\nvia-fd4\n" {
		t.Fatalf("extra files got %q", got)
	}
	// Not started: no ExitStatus yet.
	p2, err := c.Exec(context.Background(), vessel.Command("sleep", "30"))
	if err != nil {
		t.Fatal(err)
	}
	if st := p2.ExitStatus(); st != nil {
		t.Errorf("ExitStatus of a running process: %+v", st)
	}
	p2.Signal(syscall.SIGKILL)
	p2.Wait()
}

func TestExecUnmappedUser(t *testing.T) {
	// Container root maps to the calling user only: uid 1000 does not exist
	// in the container's user namespace.
	c, _ := start(t, newConfig().WithUserNamespace(nil, nil), "sleep", "30")
	cmd := vessel.Command("true")
	cmd.User = &vessel.User{UID: 1000, GID: 1000}
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), cmd)
		done <- err
	}()
	select {
	case err := <-done:
		var se *vessel.SetupError
		if !errors.As(err, &se) {
			t.Fatalf("exec as an unmapped user: %v, want a SetupError", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Exec as an unmapped user did not return")
	}
	if out, _, err := execOut(t, c, vessel.Command("echo", "ok")); err != nil || out != "ok\n" {
		t.Fatalf("exec after the failure: %q %v", out, err)
	}
}

// TestExecPausedHonorsContext: Exec says cancelling ctx kills the process;
// while the container is paused the process cannot start, and Exec must
// still give up when ctx ends instead of blocking until Resume.
func TestExecPausedHonorsContext(t *testing.T) {
	c, _ := start(t, newConfig(), "sleep", "30")
	if err := c.Pause(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	type result struct {
		p   *vessel.Process
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := c.Exec(ctx, vessel.Command("echo", "hi"))
		done <- result{p, err}
	}()
	select {
	case r := <-done:
		if r.err == nil {
			r.p.Wait()
			t.Fatal("Exec in a paused container succeeded")
		}
		t.Logf("Exec in a paused container: %v", r.err)
	case <-time.After(5 * time.Second):
		c.Resume()
		r := <-done
		if r.p != nil {
			r.p.Wait()
		}
		t.Fatalf("Exec in a paused container ignored its context (cancelled after 300ms) and blocked until Resume (then returned %v)", r.err)
	}
	if err := c.Resume(); err != nil {
		t.Fatal(err)
	}
	if out, _, err := execOut(t, c, vessel.Command("echo", "after")); err != nil || out != "after\n" {
		t.Fatalf("exec after Resume: %q %v", out, err)
	}
}
