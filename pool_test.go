package vessel_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/rootfs"
)

// poolConfig is a read-only busybox root with a writable tmpfs /tmp and
// /work, the shape a judge would use.
func poolConfig(t testing.TB) *vessel.Config {
	return newConfig().
		WithRootfs(rootfs.Dir(testutil.BusyboxRootfsCopy(t))).
		WithReadOnlyRootfs(true).
		WithTmpfs("/tmp", 16<<20).
		WithTmpfs("/work", 16<<20).
		WithPids(64)
}

func newPool(t testing.TB, cfg *vessel.Config, size int) *vessel.Pool {
	t.Helper()
	p, err := vessel.NewPool(cfg, size)
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// poolSh runs a shell script as a pooled job and returns its output.
func poolSh(t testing.TB, p *vessel.Pool, script string) (string, *vessel.ExitStatus) {
	t.Helper()
	var out syncBuffer
	cmd := vessel.Command("/bin/sh", "-c", script)
	cmd.Stdout, cmd.Stderr = &out, &out
	st, err := p.Run(context.Background(), cmd)
	if err != nil {
		t.Fatalf("Run %q: %v", script, err)
	}
	return out.String(), st
}

func TestPoolRunExitStatus(t *testing.T) {
	p := newPool(t, poolConfig(t), 1)
	out, st := poolSh(t, p, "echo hello; exit 3")
	if out != "hello\n" || st.Code != 3 {
		t.Fatalf("got %q, exit %v; want \"hello\\n\", exit 3", out, st)
	}
	out, st = poolSh(t, p, "id -u")
	if strings.TrimSpace(out) != "0" || !st.Success() {
		t.Fatalf("job user: %q (%v), want 0: jobs run as the config's user, not the idle one", out, st)
	}
}

// TestPoolJobsDoNotSeeEachOther runs two jobs in the same container (pool
// of one) and checks that the second sees neither the files nor the
// processes of the first, and that the container was reset, not replaced.
func TestPoolJobsDoNotSeeEachOther(t *testing.T) {
	p := newPool(t, poolConfig(t), 1)
	pc, err := p.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	firstID := pc.Container().ID()
	pc.Release()

	out, st := poolSh(t, p, `
		echo secret > /tmp/a; mkdir -p /work/d/e; echo x > /work/d/e/f; chmod 000 /work/d
		echo shm > /dev/shm/s; echo dev > /dev/leftover; echo 10.9.9.9 evil >> /etc/hosts
		chmod 700 /tmp
		(sleep 1000 &) ; sleep 1000 &
		echo started`)
	if !st.Success() || !strings.Contains(out, "started") {
		t.Fatalf("first job: %v %q", st, out)
	}
	out, st = poolSh(t, p, `
		ls -A /tmp /work /dev/shm; test -e /dev/leftover && echo LEFT-DEV
		grep -c evil /etc/hosts; stat -c %a /tmp
		for d in /proc/[0-9]*; do cat $d/comm; done | sort | tr '\n' ' '`)
	if !st.Success() && st.Code != 1 {
		t.Fatalf("second job: %v %q", st, out)
	}
	for _, leak := range []string{"a\n", "d\n", "s\n", "LEFT-DEV", "evil"} {
		if strings.Contains(out, leak) {
			t.Errorf("second job sees %q left by the first:\n%s", strings.TrimSpace(leak), out)
		}
	}
	if !strings.Contains(out, "\n0\n") {
		t.Errorf("/etc/hosts not restored:\n%s", out)
	}
	if !strings.Contains(out, "1777") {
		t.Errorf("/tmp mode not restored to 1777:\n%s", out)
	}
	// Processes: the idle PID 1 (vessel's, named vessel-idle), and this
	// job's shell and its pipeline; no sleep of the first
	// job, not even a zombie.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	procs := lines[len(lines)-1]
	if n := strings.Count(procs, "sleep"); n != 0 {
		t.Errorf("second job sees %d sleep processes of the first: %s", n, procs)
	}
	if n := strings.Count(procs, "vessel-idle"); n != 1 {
		t.Errorf("second job sees %d idle processes, want 1: %s", n, procs)
	}
	pc, err = p.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Release()
	if pc.Container().ID() != firstID {
		t.Errorf("container %s was replaced by %s: the reset should have cleaned it", firstID, pc.Container().ID())
	}
}

// TestPoolReplacesBrokenContainer kills the idle process (from the host): the
// container cannot be reused and a fresh one takes its place.
func TestPoolReplacesBrokenContainer(t *testing.T) {
	p := newPool(t, poolConfig(t), 1)
	pc, err := p.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	first := pc.Container()
	idle := first.State().Pid
	proc, err := pc.Exec(context.Background(), vessel.Command("/bin/sh", "-c", "kill -9 -1; true"))
	if err != nil {
		t.Fatal(err)
	}
	_ = proc.Wait()
	// The job's kill -9 -1 spares PID 1 of the container's pid namespace,
	// as any init: break the container from the host instead.
	if err := unix.Kill(idle, 0); err != nil {
		t.Fatalf("a job's kill -9 -1 killed the container's PID 1: %v", err)
	}
	if err := unix.Kill(idle, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	pc.Release()
	waitGone(t, idle)
	out, st := poolSh(t, p, "echo alive")
	if out != "alive\n" || !st.Success() {
		t.Fatalf("job after replacement: %q %v", out, st)
	}
	pc, err = p.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Release()
	if pc.Container() == first {
		t.Fatal("the broken container was handed out again")
	}
	// Retiring destroys it in the background.
	waitFor(t, func() bool { return first.State().Status == vessel.Destroyed })
}

// TestPoolClearsSysVIPC creates a shared memory segment, a message queue
// and a semaphore set, each alone, in a pooled container's IPC namespace
// and checks the reset removed it.
func TestPoolClearsSysVIPC(t *testing.T) {
	p := newPool(t, poolConfig(t), 1)
	for _, kind := range []struct {
		table  string
		create func() (int, error)
	}{
		{"shm", func() (int, error) { return unix.SysvShmGet(unix.IPC_PRIVATE, 4096, unix.IPC_CREAT|0o600) }},
		{"msg", func() (int, error) {
			id, _, e := unix.Syscall(unix.SYS_MSGGET, unix.IPC_PRIVATE, unix.IPC_CREAT|0o600, 0)
			return int(id), errnoOrNil(e)
		}},
		{"sem", func() (int, error) {
			id, _, e := unix.Syscall(unix.SYS_SEMGET, unix.IPC_PRIVATE, 2, unix.IPC_CREAT|0o600)
			return int(id), errnoOrNil(e)
		}},
	} {
		pc, err := p.Get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		initPid := pc.Container().State().InitPid
		count := func() int {
			n, err := inIPCNamespace(initPid, func() (int, error) {
				b, err := os.ReadFile("/proc/sysvipc/" + kind.table)
				return strings.Count(strings.TrimSpace(string(b)), "\n"), err
			})
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		if _, err := inIPCNamespace(initPid, kind.create); err != nil {
			t.Fatal(err)
		}
		if n := count(); n != 1 {
			t.Fatalf("%s: %d after creating one", kind.table, n)
		}
		pc.Release()
		if pc, err = p.Get(context.Background()); err != nil {
			t.Fatal(err)
		}
		if pc.Container().State().InitPid != initPid {
			t.Fatal("container was replaced, not reset")
		}
		if n := count(); n != 0 {
			t.Fatalf("%d of %s survived the reset", n, kind.table)
		}
		pc.Release()
	}
}

func errnoOrNil(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// inIPCNamespace runs f on a thread in the IPC namespace of pid.
func inIPCNamespace(pid int, f func() (int, error)) (int, error) {
	var n int
	err := namespaces.Do(namespaces.IPC, fmt.Sprintf("/proc/%d/ns/ipc", pid), func() error {
		var err error
		n, err = f()
		return err
	})
	return n, err
}

func TestPoolConcurrentJobs(t *testing.T) {
	p := newPool(t, poolConfig(t), 2)
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var out syncBuffer
			cmd := vessel.Command("/bin/sh", "-c", fmt.Sprintf("test ! -e /work/f || exit 9; echo %d > /work/f; cat /work/f", i))
			cmd.Stdout = &out
			st, err := p.Run(context.Background(), cmd)
			if err != nil {
				errs <- err
				return
			}
			if !st.Success() || strings.TrimSpace(out.String()) != strconv.Itoa(i) {
				errs <- fmt.Errorf("job %d: %v, output %q (exit 9: saw another job's file)", i, st, out.String())
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestPoolGetHonoursContext(t *testing.T) {
	p := newPool(t, poolConfig(t), 1)
	pc, err := p.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Get(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with every container busy and a cancelled context: %v, want context.Canceled", err)
	}
	pc.Release()
	pc.Release() // harmless
	if _, err := p.Run(context.Background(), vessel.Command("/bin/true")); err != nil {
		t.Fatal(err)
	}
}

func TestPoolRejectsWhatItCannotReset(t *testing.T) {
	root := testutil.BusyboxRootfsCopy(t)
	cases := []struct {
		name, field string
		cfg         *vessel.Config
		size        int
	}{
		{"writable rootfs", "readonly", newConfig().WithRootfs(rootfs.Dir(root)), 1},
		{"writable bind", "mounts[0]", newConfig().WithRootfs(rootfs.Dir(root)).WithReadOnlyRootfs(true).WithBind(t.TempDir(), "/data", false), 1},
		{"no cgroup", "cgroup.disabled", func() *vessel.Config {
			c := poolConfig(t)
			c.Cgroup.Disabled = true
			return c
		}(), 1},
		{"size", "pool.size", poolConfig(t), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := childPids()
			p, err := vessel.NewPool(c.cfg, c.size)
			if err == nil {
				p.Close()
				t.Fatal("NewPool accepted it")
			}
			var ce *vessel.ConfigError
			if !errors.As(err, &ce) || ce.Field != c.field {
				t.Fatalf("error %v, want a ConfigError for field %q", err, c.field)
			}
			if after := childPids(); len(after) > len(before) {
				t.Fatalf("processes started: %v", after)
			}
		})
	}
}

func TestPoolCloseLeavesNothing(t *testing.T) {
	cfg := poolConfig(t)
	p, err := vessel.NewPool(cfg, 1) // warm: sealed executable
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	before := snapshot(t)
	p, err = vessel.NewPool(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := p.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	busy, err := pc.Exec(context.Background(), vessel.Command("/bin/sleep", "1000"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Run(context.Background(), vessel.Command("/bin/true")); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := busy.Wait(); err == nil {
		t.Error("a job still running at Close was not killed")
	}
	if _, err := p.Get(context.Background()); !errors.Is(err, vessel.ErrPoolClosed) {
		t.Errorf("Get after Close: %v, want ErrPoolClosed", err)
	}
	before.assertUnchanged(t, snapshot(t))
}
