package vessel_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/rootfs"
)

// The workload owns its container: vessel's init is outside its pid
// namespace and its cgroup, so the workload's limits are its own and
// nothing it does can break the init.

// goCrash reports whether out holds a Go runtime crash dump (the init's).
func goCrash(out string) bool {
	for _, s := range []string{"runtime: ", "fatal error:", "goroutine ", "newosproc"} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}

// TestPidsLimitIsTheWorkloads: --pids 1 runs one process; --pids 20 lets
// the workload have exactly 20 tasks: its shell and 19 more, not one more.
func TestPidsLimitIsTheWorkloads(t *testing.T) {
	out, err := run(t, newConfig().WithPids(1), "/bin/echo", "ok")
	if err != nil || out != "ok\n" {
		t.Fatalf("pids 1: %q, %v", out, err)
	}
	// The shell and 19 sleeps fill 20 tasks: the 20th sleep cannot be
	// forked (the shell then gives up: "Cannot fork", "can't fork").
	out, err = run(t, newConfig().WithPids(20), "/bin/sh", "-c", `for i in $(seq 25); do sleep 30 & echo "started $i"; done`)
	if !strings.Contains(out, "started 19\n") || strings.Contains(out, "started 20\n") || !strings.Contains(strings.ToLower(out), "fork") || err == nil {
		t.Errorf("pids 20: the workload started other than 19 children: %v\n%s", err, out)
	}
	c, _ := start(t, newConfig().WithPids(20), "sleep", "30")
	st, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Pids.Current != 1 || st.Pids.Limit != 20 {
		t.Errorf("pids %+v: want the workload's one task of 20", st.Pids)
	}
	// The init is in none of the container's cgroups that hold limits.
	assertInitOutsideLimits(t, c)
}

// TestForkBombsAndOOMNeverBreakTheInit runs 50 fork bombs under a pids
// limit of 10 and 10 memory hogs under 8 and 48 MiB: each ends as the
// workload's failure (its timeout, the OOM killer), never as a crash of
// vessel's init; and an Exec into a container whose workload filled its
// pids limit still works once it has room.
func TestForkBombsAndOOMNeverBreakTheInit(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan error, 60)
	sem := make(chan struct{}, 4)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			out, err := run(t, newConfig().WithPids(10).WithTimeout(400*time.Millisecond), "/bin/sh", "-c", "b() { b | b & }; b; sleep 10")
			// It ends by its timeout, or earlier when its shell gives up
			// on a fork: the workload's failure either way.
			var ee *vessel.ExitError
			if (!errors.Is(err, vessel.ErrTimeout) && !errors.As(err, &ee)) || goCrash(out) {
				errs <- fmt.Errorf("fork bomb %d: %v\n%.400s", i, err, out)
			}
		}(i)
	}
	for i := 0; i < 10; i++ {
		mem := int64(8 << 20)
		if i%2 == 1 {
			mem = 48 << 20
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(i int, mem int64) {
			defer wg.Done()
			defer func() { <-sem }()
			cfg := withProbe(t, newConfig().WithMemoryLimit(mem).WithTimeout(20*time.Second))
			out, err := run(t, cfg, "/bin/sh", "-c", "/probe alloc 200 & /probe alloc 200 & /probe alloc 200; wait; exit 0")
			if goCrash(out) || (err != nil && !errors.Is(err, vessel.ErrOOMKilled) && !errors.Is(err, vessel.ErrTimeout)) {
				errs <- fmt.Errorf("memory hog %d (%d MiB): %v\n%.400s", i, mem>>20, err, out)
			}
			if strings.Contains(out, `"allocated_mb":200`) {
				errs <- fmt.Errorf("memory hog %d allocated 200 MiB under %d MiB", i, mem>>20)
			}
		}(i, mem)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// A long-lived container: a fork bomb exec'd into it fills its pids
	// limit; once its processes are gone, the init still serves an Exec.
	c, buf := newContainer(t, newConfig().WithPids(10))
	if err := c.Start(context.Background(), "sleep", "1000"); err != nil {
		t.Fatal(err)
	}
	bomb, err := c.Exec(context.Background(), vessel.Command("/bin/sh", "-c", "b() { b | b & }; b; sleep 1000"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		st, err := c.Stats()
		return err == nil && (st.Pids.Current >= 10 || (st.Pids.PeakKnown && st.Pids.Peak >= 10))
	})
	time.Sleep(300 * time.Millisecond)
	main := c.State().Pid
	// Frozen, the bomb cannot fork while its processes are killed.
	if err := c.Pause(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range cgroupPids(t, c) {
		if pid > 1 && pid != main {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
	if err := c.Resume(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		left := 0
		for _, pid := range cgroupPids(t, c) {
			if pid > 1 && pid != main {
				left++
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
		return left == 0
	})
	_ = bomb.Wait()
	out, errOut, err := execOut(t, c, vessel.Command("/bin/echo", "still served"))
	if err != nil || out != "still served\n" || goCrash(errOut+buf.String()) {
		t.Fatalf("exec after the limit was full: %q %q %v\n%s", out, errOut, err, buf.String())
	}
	if err := unix.Kill(c.State().InitPid, 0); err != nil {
		t.Fatalf("init: %v", err)
	}
}

// cgroupPids lists the processes of c's cgroup, read on the host.
func cgroupPids(t testing.TB, c *vessel.Container) []int {
	t.Helper()
	file := ""
	for h, p := range hostCgroups(t, c.State().Pid) {
		switch {
		case strings.HasSuffix(h, ":pids"):
			file = "/sys/fs/cgroup/pids" + p + "/cgroup.procs"
		case h == "0:" && file == "":
			file = "/sys/fs/cgroup" + p + "/cgroup.procs"
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		var pid int
		fmt.Sscan(f, &pid)
		pids = append(pids, pid)
	}
	return pids
}

// TestPID1SemanticsAsUnderRunc: the main process is PID 1; a kill -9 1
// from an exec'd process is ignored (the kernel protects a pid
// namespace's init from its own namespace), as under runc and Docker.
func TestPID1SemanticsAsUnderRunc(t *testing.T) {
	c, _ := start(t, newConfig(), "sleep", "30")
	out, errOut, err := execOut(t, c, vessel.Command("/bin/sh", "-c", "kill -9 1; echo rc=$?; cat /proc/1/comm"))
	if err != nil || !strings.Contains(out, "sleep") {
		t.Fatalf("exec: %q %q %v", out, errOut, err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := unix.Kill(c.State().Pid, 0); err != nil {
		t.Fatalf("the main process died of a kill -9 1 from inside: %v", err)
	}
	if c.State().Status != vessel.Running {
		t.Fatalf("status %v", c.State().Status)
	}
}

// TestCgroupViewInside: the container sees its own cgroups, read-only, at
// /sys/fs/cgroup on every layout (on v1 and hybrid hosts one directory a
// hierarchy, as runtimes mount them).
func TestCgroupViewInside(t *testing.T) {
	layout, err := cgroups.Detect()
	if err != nil {
		t.Fatal(err)
	}
	file := "/sys/fs/cgroup/memory/memory.limit_in_bytes"
	if layout == cgroups.V2 {
		file = "/sys/fs/cgroup/memory.max"
	}
	out, err := run(t, newConfig().WithMemoryLimit(64<<20), "/bin/sh", "-c", "cat "+file+"; touch /sys/fs/cgroup/x 2>&1; cat /proc/self/cgroup")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.HasPrefix(out, fmt.Sprint(64<<20)+"\n") {
		t.Errorf("limit inside: %q, want %d", out, 64<<20)
	}
	if !strings.Contains(out, "Read-only file system") {
		t.Errorf("/sys/fs/cgroup writable inside: %q", out)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.SplitN(l, ":", 3); len(f) == 3 && strings.HasPrefix(f[2], "/") && f[2] != "/" {
			t.Errorf("cgroup %q inside, want the namespace's root", l)
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup"); err != nil {
		t.Fatal(err)
	}
}

// assertInitOutsideLimits checks that c's init is in none of the
// container's cgroups that hold limits: every one but, on a hybrid host,
// the unified hierarchy's (which holds none; the init lives there).
func assertInitOutsideLimits(t *testing.T, c *vessel.Container) {
	t.Helper()
	layout, err := cgroups.Detect()
	if err != nil {
		t.Fatal(err)
	}
	for h, p := range hostCgroups(t, c.State().InitPid) {
		if layout == cgroups.Hybrid && strings.HasPrefix(h, "0:") {
			continue
		}
		if strings.HasSuffix(p, "/"+c.ID()) {
			t.Errorf("init in the container's %s cgroup %q", h, p)
		}
	}
}

// TestWorkdirCreated: a missing working directory of the main process is
// made (as docker makes WORKDIR), here in a copy-on-write layer.
func TestWorkdirCreated(t *testing.T) {
	cfg := newConfig().WithRootfs(rootfs.EphemeralOverlay(testutil.BusyboxRootfs(t)))
	cfg.Process.Dir = "/work/deep/er"
	out, err := run(t, cfg, "/bin/sh", "-c", "pwd")
	if err != nil || out != "/work/deep/er\n" {
		t.Fatalf("pwd: %q %v", out, err)
	}
}

// statusMasks reads the SigIgn and SigBlk lines of a /proc/PID/status.
func statusMasks(t *testing.T, status string) (ign, blk string) {
	t.Helper()
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, "SigIgn:"); ok {
			ign = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(l, "SigBlk:"); ok {
			blk = strings.TrimSpace(v)
		}
	}
	if ign == "" || blk == "" {
		t.Fatalf("no SigIgn/SigBlk in:\n%s", status)
	}
	return ign, blk
}

// TestWorkloadStartsWithDefaultSignals: the init ignores the signals it
// forwards until it catches them (a start does not wait for that), and
// none of it reaches a process it starts: the main process and an Exec'd
// one start with no signal ignored and none blocked, as under runc.
func TestWorkloadStartsWithDefaultSignals(t *testing.T) {
	const none = "0000000000000000"
	out, err := run(t, newConfig(), "/bin/cat", "/proc/self/status")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if ign, blk := statusMasks(t, out); ign != none || blk != none {
		t.Errorf("main process: SigIgn %s SigBlk %s, want none", ign, blk)
	}
	c, _ := start(t, newConfig(), "sleep", "30")
	stdout, stderr, err := execOut(t, c, vessel.Command("/bin/cat", "/proc/self/status"))
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if ign, blk := statusMasks(t, stdout); ign != none || blk != none {
		t.Errorf("exec'd process: SigIgn %s SigBlk %s, want none", ign, blk)
	}
}

// TestInitSurvivesSignalsAtStart: SIGTERM, SIGINT and SIGHUP sent to the
// init as soon as Start returns, before it catches them, do not end it
// (it ignores them until then): the container runs on and still answers.
func TestInitSurvivesSignalsAtStart(t *testing.T) {
	for i := 0; i < 5; i++ {
		c, _ := start(t, newConfig(), "sleep", "30")
		pid := c.State().InitPid
		for _, s := range []unix.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP} {
			if err := unix.Kill(pid, s); err != nil {
				t.Fatalf("kill init %d: %v", pid, err)
			}
		}
		time.Sleep(50 * time.Millisecond)
		if st := c.State(); st.Status != vessel.Running {
			t.Fatalf("run %d: after signals to the init the container is %v", i, st.Status)
		}
		out, _, err := execOut(t, c, vessel.Command("/bin/echo", "alive"))
		if err != nil || out != "alive\n" {
			t.Fatalf("run %d: exec after signals to the init: %q, %v", i, out, err)
		}
		if err := c.Destroy(); err != nil {
			t.Fatal(err)
		}
	}
}

// freezerStates says, for each freezer the process pid is under (the
// cgroup2 one of its unified cgroup, the v1 freezer controller's), whether
// it is frozen.
func freezerStates(t *testing.T, pid int) map[string]bool {
	t.Helper()
	layout, err := cgroups.Detect()
	if err != nil {
		t.Fatal(err)
	}
	v2root := "/sys/fs/cgroup"
	if layout == cgroups.Hybrid {
		v2root = "/sys/fs/cgroup/unified"
	}
	out := map[string]bool{}
	for h, p := range hostCgroups(t, pid) {
		switch {
		case p == "/":
			// A root cgroup has no freezer.
		case strings.HasPrefix(h, "0:") && layout != cgroups.V1:
			b, err := os.ReadFile(v2root + p + "/cgroup.events")
			if err != nil {
				t.Fatal(err)
			}
			out["cgroup2 "+p] = strings.Contains(string(b), "frozen 1")
		case strings.Contains(h, "freezer"):
			b, err := os.ReadFile("/sys/fs/cgroup/freezer" + p + "/freezer.state")
			if err != nil {
				t.Fatal(err)
			}
			out["freezer "+p] = strings.TrimSpace(string(b)) != "THAWED"
		}
	}
	return out
}

// TestPauseFreezesTheWorkloadAlone: Pause freezes every process of the
// workload and none of vessel's init (which on a hybrid host shares the
// container's unified cgroup, so the v1 freezer is used there); a paused
// container is still killed at once.
func TestPauseFreezesTheWorkloadAlone(t *testing.T) {
	c, _ := start(t, newConfig(), "/bin/sh", "-c", "sleep 30 & sleep 30")
	if err := c.Pause(); err != nil {
		t.Fatal(err)
	}
	frozen := false
	for f, on := range freezerStates(t, c.State().Pid) {
		frozen = frozen || on
		t.Logf("workload: %s frozen %v", f, on)
	}
	if !frozen {
		t.Error("the workload's PID 1 is under no frozen freezer")
	}
	for f, on := range freezerStates(t, c.State().InitPid) {
		if on {
			t.Errorf("Pause froze vessel's init: %s", f)
		}
	}
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	var ee *vessel.ExitError
	if err := c.Wait(); !errors.As(err, &ee) || ee.Status.Signal != unix.SIGKILL {
		t.Fatalf("Wait after Kill of a paused container: %v", err)
	}
}

// TestExecSeccompOneFilter: under the default profile the main process
// and an Exec'd one each run under exactly one seccomp filter: the main
// process loads it itself, an Exec'd one inherits it from the init's main
// thread, which carries it once the main process has started (where
// nothing needs clone3, as with the default configuration).
func TestExecSeccompOneFilter(t *testing.T) {
	c, _ := start(t, withProbe(t, newConfig()), "/probe", "sleep", "30")
	// The init carries it: its processes are not forked into a cgroup2
	// cgroup with clone3 (on a hybrid host the init is in the container's
	// unified cgroup; on a v2 host, with the container's own cgroup
	// namespace, clone3 is not used: see Config.Clone3).
	want := "Seccomp:\t2"
	waitFor(t, func() bool {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.State().InitPid))
		return err == nil && strings.Contains(string(st), want+"\n")
	})
	for i := 0; i < 2; i++ {
		r := execReport(t, c, "/probe")
		if r.Seccomp != 2 || r.SeccompFilters != 1 {
			t.Errorf("exec %d: seccomp mode %d with %d filters, want mode 2 with one", i, r.Seccomp, r.SeccompFilters)
		}
	}
	r := report(t, newConfig())
	if r.Seccomp != 2 || r.SeccompFilters != 1 {
		t.Errorf("main process: seccomp mode %d with %d filters, want mode 2 with one", r.Seccomp, r.SeccompFilters)
	}
}

// TestExecStageWithNoPendingSignals: a process started through the exec
// stage (here for a small RLIMIT_NOFILE) with RLIMIT_SIGPENDING 0 starts.
// The stage sets that limit after its credentials: Go's setgroups signals
// each of the stage's threads with a real-time signal, which the limit
// (the user's queued signals, host-wide) would refuse, and the stage
// would wait for them forever.
func TestExecStageWithNoPendingSignals(t *testing.T) {
	cfg := newConfig().WithOpenFiles(64).WithPendingSignals(0).WithTimeout(20 * time.Second)
	out, err := run(t, cfg, "/bin/cat", "/proc/self/limits")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if f := strings.Fields(out[strings.Index(out, "Max pending signals"):]); len(f) < 5 || f[3] != "0" || f[4] != "0" {
		t.Fatalf("pending signals limit: %v\n%s", f, out)
	}
}

// failingWriter fails every write, as a closed network connection would.
type failingWriter struct{}

var errWriterFailed = errors.New("writer failed")

func (failingWriter) Write([]byte) (int, error) { return 0, errWriterFailed }

// TestWaitReportsOutputCopyErrors: as os/exec's Wait, a container's and
// an Exec'd process's Wait return the error of a failed copy of their
// output when they succeeded, for a fresh init and one from a spare.
func TestWaitReportsOutputCopyErrors(t *testing.T) {
	for _, spare := range []bool{false, true} {
		c, err := vessel.New(fmt.Sprintf("t%d-copyerr-%v", os.Getpid(), spare), newConfig())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Destroy() })
		if spare {
			sp := newSpares(t, 1)
			sp.WaitReady(5 * time.Second)
			c.Spares = sp
		}
		c.Stdout = failingWriter{}
		if err := c.Run(context.Background(), "/bin/echo", "hello"); !errors.Is(err, errWriterFailed) {
			t.Errorf("spare %v: Run with a failing Stdout: %v, want the writer's error", spare, err)
		}
	}
	c, _ := start(t, newConfig(), "sleep", "30")
	cmd := vessel.Command("/bin/echo", "hello")
	cmd.Stdout = failingWriter{}
	p, err := c.Exec(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); !errors.Is(err, errWriterFailed) {
		t.Errorf("Exec with a failing Stdout: %v, want the writer's error", err)
	}
}
