package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/limits"
)

// The test binary doubles as the processes put in cgroups: with
// childEnv set, TestMain runs one of these instead of the tests.
const childEnv = "VESSEL_CGROUPS_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode, os.Args[1:]))
	}
	code := m.Run()
	// The cpuset parents Destroy keeps.
	if err := RemoveGroup("vessel-test"); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// runChild waits for a line on stdin (the parent has placed it in the
// cgroup by then), then does what mode says.
func runChild(mode string, args []string) int {
	in := bufio.NewReader(os.Stdin)
	in.ReadString('\n')
	switch mode {
	case "alloc": // allocate and touch args[0] MiB
		mib, _ := strconv.Atoi(args[0])
		var keep [][]byte
		for i := 0; i < mib; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		fmt.Println("allocated", len(keep))
		return 0
	case "busy": // spin on every CPU until killed
		for i := 0; i < 3; i++ {
			go func() {
				//lint:ignore SA5002 the helper burns CPU on purpose (the cpu limit tests measure it)
				for {
				}
			}()
		}
		//lint:ignore SA5002 the helper burns CPU on purpose (the cpu limit tests measure it)
		for {
		}
	case "fork": // start sleepers until the kernel refuses
		for i := 0; i < 200; i++ {
			_, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "60"}, &syscall.ProcAttr{})
			if err != nil {
				fmt.Printf("after %d: %v\n", i, errors.Is(err, syscall.EAGAIN))
				return 0
			}
		}
		fmt.Println("never refused")
		return 0
	case "open", "open-ro": // open args[0] once per input line
		flags := os.O_RDWR
		if mode == "open-ro" {
			flags = os.O_RDONLY
		}
		for {
			f, err := os.OpenFile(args[0], flags, 0)
			if err == nil {
				f.Close()
				fmt.Println("ok")
			} else {
				fmt.Println(errors.Is(err, fs.ErrPermission))
			}
			if _, err := in.ReadString('\n'); err != nil {
				return 0
			}
		}
	}
	return 2
}

// child is a started test-binary child with its stdin and stdout.
type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startChild(t *testing.T, attr *syscall.SysProcAttr, mode string, args ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), childEnv+"="+mode, "GOMAXPROCS=2")
	cmd.SysProcAttr = attr
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, in: in, out: bufio.NewReader(out)}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return c
}

func (c *child) send(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(c.in, "go\n"); err != nil {
		t.Fatal(err)
	}
}

func (c *child) line(t *testing.T) string {
	t.Helper()
	s, err := c.out.ReadString('\n')
	if err != nil {
		t.Fatalf("reading child output: %v", err)
	}
	return strings.TrimSpace(s)
}

var testSeq int

// newManager creates a cgroup under vessel-test and removes it (checking
// that nothing is left) when the test ends.
func newManager(t *testing.T, res *limits.Resources) *Manager {
	t.Helper()
	testSeq++
	m, err := New(Options{Name: fmt.Sprintf("vessel-test/%s-%d-%d", t.Name(), os.Getpid(), testSeq), Resources: res})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Destroy(); err != nil {
			t.Errorf("Destroy: %v", err)
		}
		for _, d := range m.State().Dirs {
			if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s left behind", d)
			}
		}
	})
	return m
}

func TestDetect(t *testing.T) {
	l, err := Detect()
	if err != nil {
		t.Fatal(err)
	}
	// Compare with what the filesystems at the usual places say.
	var st unix.Statfs_t
	want := V1
	if unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		want = V2
	} else if unix.Statfs("/sys/fs/cgroup/unified", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		want = Hybrid
	}
	if l != want {
		t.Errorf("Detect() = %s, the mounts say %s", l, want)
	}
}

func TestCreateDestroy(t *testing.T) {
	m := newManager(t, nil)
	st := m.State()
	if st.Layout != m.Layout() || len(st.Dirs) == 0 {
		t.Fatalf("state: %+v", st)
	}
	for key, d := range st.Dirs {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			t.Errorf("%s: %s not created: %v", key, d, err)
		}
	}
	if m.Layout() != V1 {
		if _, ok := st.Dirs[unifiedKey]; !ok {
			t.Error("no cgroup in the unified hierarchy")
		}
	}
	// A second Create of the same name fails and leaves the first intact.
	again, err := New(Options{Name: m.name})
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Create(); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second Create: %v", err)
	}
	for _, d := range st.Dirs {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("failed Create removed %s", d)
		}
	}
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	if err := m.Destroy(); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
	if _, err := Open(st); !errors.Is(err, ErrNotExist) {
		t.Errorf("Open after Destroy: %v", err)
	}
}

func TestCreateDestroyCycles(t *testing.T) {
	parents := map[string]string{}
	for i := 0; i < 200; i++ {
		m, err := New(Options{Name: fmt.Sprintf("vessel-test/cycle-%d-%d", os.Getpid(), i)})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Create(); err != nil {
			t.Fatal(err)
		}
		if err := m.Destroy(); err != nil {
			t.Fatal(err)
		}
		for k := range m.dirs {
			parents[k] = m.base(k)
		}
	}
	for k, base := range parents {
		entries, _ := filepath.Glob(filepath.Join(base, "vessel-test", "cycle-*"))
		if len(entries) > 0 {
			t.Errorf("%s: %d cgroups left, like %s", k, len(entries), entries[0])
		}
	}
}

func TestOpenStale(t *testing.T) {
	m, err := New(Options{Name: fmt.Sprintf("vessel-test/stale-%d", os.Getpid())})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Destroy() })
	c := startChild(t, nil, "open", "/dev/null")
	if err := m.Add(c.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	// As if the controlling program had died: another Manager, from the
	// saved state and from the name, finds the cgroup and destroys it.
	byName, err := Load(Options{Name: m.name})
	if err != nil {
		t.Fatal(err)
	}
	if pids, err := byName.Pids(); err != nil || len(pids) != 1 || pids[0] != c.cmd.Process.Pid {
		t.Errorf("Pids via Load = %v, %v", pids, err)
	}
	opened, err := Open(m.State())
	if err != nil {
		t.Fatal(err)
	}
	go c.cmd.Wait() // reap the killed child so that its cgroup empties
	if err := opened.Destroy(); err != nil {
		t.Fatal(err)
	}
	for _, d := range m.State().Dirs {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left behind", d)
		}
	}
	if _, err := Load(Options{Name: m.name}); !errors.Is(err, ErrNotExist) {
		t.Errorf("Load after Destroy: %v", err)
	}
	bad := m.State()
	bad.Dirs = map[string]string{"memory": "/etc"}
	if _, err := Open(bad); err == nil {
		t.Error("Open accepted a directory outside the cgroup mounts")
	}
}

func TestMemoryOOM(t *testing.T) {
	m := newManager(t, &limits.Resources{Memory: &limits.Memory{Limit: limits.Ptr[int64](32 << 20)}})
	c := startChild(t, nil, "alloc", "256")
	if err := m.Add(c.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	c.send(t)
	err := c.cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child over its memory limit: %v, want killed by SIGKILL", err)
	}
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Memory.OOMKills < 1 {
		t.Errorf("OOMKills = %d, want >= 1", st.Memory.OOMKills)
	}
	if n, err := m.OOMKilled(); err != nil || n != st.Memory.OOMKills {
		t.Errorf("OOMKilled() = %d, %v", n, err)
	}
	if st.Memory.PeakSource == "" || st.Memory.Peak < 16<<20 || st.Memory.Peak > 33<<20 {
		t.Errorf("memory peak %d from %q, want 16..33 MiB", st.Memory.Peak, st.Memory.PeakSource)
	}
	if st.Memory.Limit != 32<<20 {
		t.Errorf("memory limit in stats = %d", st.Memory.Limit)
	}
}

func TestUpdateRaisesMemoryLive(t *testing.T) {
	m := newManager(t, &limits.Resources{Memory: &limits.Memory{Limit: limits.Ptr[int64](32 << 20)}})
	c := startChild(t, nil, "alloc", "64")
	if err := m.Add(c.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := m.Update(&limits.Resources{Memory: &limits.Memory{Limit: limits.Ptr[int64](256 << 20)}}); err != nil {
		t.Fatal(err)
	}
	c.send(t)
	if got := c.line(t); got != "allocated 64" {
		t.Errorf("child printed %q", got)
	}
	if err := c.cmd.Wait(); err != nil {
		t.Errorf("child with the raised limit: %v", err)
	}
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Memory.Limit != 256<<20 || st.Memory.OOMKills != 0 || st.Memory.Peak < 64<<20 {
		t.Errorf("after update: %+v", st.Memory)
	}
	// Invalid updates are refused and change nothing.
	if err := m.Update(&limits.Resources{Memory: &limits.Memory{Limit: limits.Ptr[int64](-5)}}); err == nil || !strings.Contains(err.Error(), "memory.limit") {
		t.Errorf("bad update: %v", err)
	}
	if st, _ := m.Stats(); st.Memory.Limit != 256<<20 {
		t.Errorf("bad update changed the limit to %d", st.Memory.Limit)
	}
}

func TestPidsLimit(t *testing.T) {
	m := newManager(t, nil)
	c := startChild(t, nil, "fork")
	if err := m.Add(c.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	// Limit once the child's runtime threads exist: room for 5 sleepers.
	time.Sleep(50 * time.Millisecond)
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	max := int64(st.Pids.Current) + 5
	if err := m.Update(&limits.Resources{Pids: &limits.Pids{Max: limits.Ptr(max)}}); err != nil {
		t.Fatal(err)
	}
	c.send(t)
	// pids.max counts threads too, and the child's runtime may start one
	// more meanwhile: EAGAIN after 1 to 5 sleepers.
	var n int
	var eagain bool
	if got := c.line(t); !func() bool { _, err := fmt.Sscanf(got, "after %d: %t", &n, &eagain); return err == nil }() || !eagain || n < 1 || n > 5 {
		t.Errorf("fork loop: %q, want EAGAIN after 1..5 sleepers", got)
	}
	st, err = m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if int64(st.Pids.Current) > max || st.Pids.Limit != uint64(max) {
		t.Errorf("pids %+v, max %d", st.Pids, max)
	}
	c.cmd.Wait()
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	if pids, _ := m.Pids(); len(alive(pids)) != 0 {
		t.Errorf("sleepers survived Kill: %v", pids)
	}
}

func cpuUsage(t *testing.T, m *Manager) time.Duration {
	t.Helper()
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st.CPU.Total
}

// waitCPU waits until the cgroup has used d more CPU time: a thawed busy
// process does so quickly, even on a machine busy with other work.
func waitCPU(t *testing.T, m *Manager, d time.Duration) {
	t.Helper()
	u0 := cpuUsage(t, m)
	deadline := time.Now().Add(10 * time.Second)
	for cpuUsage(t, m)-u0 < d {
		if time.Now().After(deadline) {
			t.Fatalf("thawed busy child used less than %v of CPU in 10s", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCPUQuota(t *testing.T) {
	m := newManager(t, &limits.Resources{CPU: &limits.CPU{CPUs: limits.Ptr(0.5)}})
	c := startChild(t, nil, "busy")
	if err := m.Add(c.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	c.send(t)
	time.Sleep(200 * time.Millisecond)
	u0, t0 := cpuUsage(t, m), time.Now()
	time.Sleep(2 * time.Second)
	cores := float64(cpuUsage(t, m)-u0) / float64(time.Since(t0))
	if cores < 0.3 || cores > 0.7 {
		t.Errorf("busy child with cpus=0.5 used %.2f cores", cores)
	}
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.CPU.ThrottledPeriods == 0 || st.CPU.User == 0 {
		t.Errorf("cpu stats: %+v", st.CPU)
	}
}

func TestFreezeThaw(t *testing.T) {
	m := newManager(t, nil)
	c := startChild(t, nil, "busy")
	if err := m.Add(c.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	c.send(t)
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	if f, err := m.Frozen(); err != nil || !f {
		t.Errorf("Frozen() = %v, %v after Freeze", f, err)
	}
	u0 := cpuUsage(t, m)
	time.Sleep(300 * time.Millisecond)
	if d := cpuUsage(t, m) - u0; d > 5*time.Millisecond {
		t.Errorf("frozen busy child used %v of CPU in 300ms", d)
	}
	if err := m.Thaw(); err != nil {
		t.Fatal(err)
	}
	if f, err := m.Frozen(); err != nil || f {
		t.Errorf("Frozen() = %v, %v after Thaw", f, err)
	}
	waitCPU(t, m, 100*time.Millisecond)
}

func TestFreezeV1(t *testing.T) {
	m := newManager(t, nil)
	dir, ok := m.v1Dir("freezer")
	if !ok {
		if m.Layout() == V2 {
			return // no v1 freezer on v2 hosts: TestFreezeThaw covers cgroup.freeze
		}
		t.Fatal("no v1 freezer")
	}
	c := startChild(t, nil, "busy")
	if err := m.Add(c.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	c.send(t)
	if err := freezeV1(dir, true); err != nil {
		t.Fatal(err)
	}
	u0 := cpuUsage(t, m)
	time.Sleep(300 * time.Millisecond)
	if d := cpuUsage(t, m) - u0; d > 5*time.Millisecond {
		t.Errorf("v1-frozen busy child used %v of CPU", d)
	}
	if err := freezeV1(dir, false); err != nil {
		t.Fatal(err)
	}
	waitCPU(t, m, 100*time.Millisecond)
}

func TestKill(t *testing.T) {
	m := newManager(t, nil)
	cmd := exec.Command("/bin/sh", "-c", "read x; sleep 100 & sleep 100 & exec sleep 100")
	in, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if err := m.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	io.WriteString(in, "go\n")
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids, err := m.Pids()
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes in the cgroup: %v, want 3", pids)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("sh after Kill: %v", err)
	}
	if pids, _ := m.Pids(); len(alive(pids)) != 0 {
		t.Errorf("alive after Kill: %v", pids)
	}
}

func TestKillFallback(t *testing.T) {
	// The freeze-signal-thaw path of v1 hosts and old kernels: use a
	// Manager that only knows the v1 hierarchies.
	m := newManager(t, nil)
	if m.Layout() == V2 {
		return // covered by TestKill through cgroup.kill
	}
	c := startChild(t, nil, "fork")
	if err := m.Add(c.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	c.send(t)
	c.line(t)
	v1only := &Manager{sys: m.sys, name: m.name, dirs: map[string]string{}, fd: -1}
	for k, d := range m.dirs {
		if k != unifiedKey {
			v1only.dirs[k] = d
		}
	}
	if pids, _ := v1only.Pids(); len(pids) < 2 {
		t.Fatalf("want the child and its sleepers in the cgroup, have %v", pids)
	}
	go c.cmd.Wait()
	if err := v1only.Kill(); err != nil {
		t.Fatal(err)
	}
	if pids, _ := m.Pids(); len(alive(pids)) != 0 {
		t.Errorf("alive after the fallback kill: %v", pids)
	}
}

func TestCloneIntoCgroup(t *testing.T) {
	m := newManager(t, nil)
	fd, ok := m.FD()
	if !ok {
		if m.Layout() == V1 {
			return // no cgroup2 hierarchy to clone into
		}
		t.Fatal("FD() not available")
	}
	c := startChild(t, &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}, "open", "/dev/null")
	pid := c.cmd.Process.Pid
	cur, err := procCgroups(pid)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := m.hierarchy(unifiedKey)
	want, _ := h.cgroupOf(m.dirs[unifiedKey])
	if cur[unifiedKey] != want {
		t.Fatalf("cloned child is in %q, want %q", cur[unifiedKey], want)
	}
	if err := m.Add(pid); err != nil {
		t.Fatal(err)
	}
	cur, _ = procCgroups(pid)
	for key, dir := range m.dirs {
		h, _ := m.hierarchy(key)
		if w, _ := h.cgroupOf(dir); cur[key] != w {
			t.Errorf("%s: child in %q, want %q", key, cur[key], w)
		}
	}
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if pids, err := m.Pids(); err != nil || len(pids) != 1 || pids[0] != pid || st.Pids.Current < 1 {
		t.Errorf("Pids() = %v, %v; pids.current = %d", pids, err, st.Pids.Current)
	}
	if m.Layout() != V1 && (st.PSI == nil || st.PSI.CPU == nil || st.PSI.Memory == nil || st.PSI.IO == nil) {
		t.Errorf("no PSI from the cgroup2 hierarchy: %+v", st.PSI)
	}
}

func TestDevicesV1(t *testing.T) {
	m := newManager(t, &limits.Resources{Devices: []limits.DeviceRule{{Allow: true, Type: "c", Major: 1, Minor: 5, Access: "rwm"}}})
	if _, ok := m.v1Dir("devices"); !ok {
		if m.Layout() == V2 {
			return // TestDeviceFilterEBPF covers v2
		}
		t.Fatal("no v1 devices controller")
	}
	null := startChild(t, nil, "open", "/dev/null")
	zero := startChild(t, nil, "open", "/dev/zero")
	for _, c := range []*child{null, zero} {
		if err := m.Add(c.cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
		c.send(t)
	}
	if got := null.line(t); got != "true" {
		t.Errorf("open /dev/null with only /dev/zero allowed: %q, want permission denied", got)
	}
	if got := zero.line(t); got != "ok" {
		t.Errorf("open /dev/zero: %q", got)
	}
	// Update replaces the rules: now the defaults, which allow /dev/null.
	if err := m.Update(&limits.Resources{Devices: DefaultDevices()}); err != nil {
		t.Fatal(err)
	}
	null.send(t)
	if got := null.line(t); got != "ok" {
		t.Errorf("open /dev/null with the default rules: %q", got)
	}
}

func TestDeviceFilterEBPF(t *testing.T) {
	// The v2 device program, on the cgroup2 side of this host (on hybrid
	// hosts the v1 devices controller, allowing everything here, is not in
	// the way).
	m := newManager(t, nil)
	dir, ok := m.dirs[unifiedKey]
	if !ok {
		return // v1 host: no cgroup2 hierarchy to attach to
	}
	deny := []limits.DeviceRule{{Allow: true, Type: "c", Major: 1, Minor: 5, Access: "rwm"}}
	if err := attachDeviceFilter(dir, deny); err != nil {
		t.Fatal(err)
	}
	fd, _ := m.FD()
	null := startChild(t, &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}, "open", "/dev/null")
	null.send(t)
	if got := null.line(t); got != "true" {
		t.Errorf("open /dev/null under the eBPF filter: %q, want permission denied", got)
	}
	for i := 0; i < 2; i++ {
		if err := attachDeviceFilter(dir, DefaultDevices()); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := deviceFilterCount(dir); err != nil || n != 1 {
		t.Errorf("%d device programs attached after replacing, want 1 (%v)", n, err)
	}
	null.send(t)
	if got := null.line(t); got != "ok" {
		t.Errorf("open /dev/null after replacing the filter: %q", got)
	}
}

func TestV2ControllerErrors(t *testing.T) {
	m := newManager(t, nil)
	if m.Layout() != Hybrid {
		return // the hybrid unified hierarchy is where controllers are missing
	}
	// Limits whose controller is neither a v1 hierarchy nor available in
	// the unified one give a clear error and create nothing.
	for _, key := range []string{"memory", "pids"} {
		if _, ok := m.sys.v1For(key); !ok {
			t.Fatalf("hybrid host without v1 %s", key)
		}
	}
	fake := &Manager{sys: &system{layout: V2, unified: m.sys.unified}, name: m.name + "-v2", dirs: map[string]string{unifiedKey: m.dirs[unifiedKey] + "-v2"}, fd: -1,
		res: &limits.Resources{Pids: &limits.Pids{Max: limits.Ptr[int64](10)}}}
	err := fake.Create()
	if err == nil || !strings.Contains(err.Error(), "pids controller is not available") {
		t.Errorf("pids on a unified hierarchy without it: %v", err)
	}
	if _, err := os.Stat(fake.dirs[unifiedKey]); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("failed Create left %s", fake.dirs[unifiedKey])
		fake.Destroy()
	}
}

// TestDeviceFilterRuleSemantics: the v2 device program decides as the v1
// controller does: the last matching rule wins, wildcards match any
// number, type "a" any type, and a rule matches only requests whose
// accesses it all lists; what no rule matches is denied.
func TestDeviceFilterRuleSemantics(t *testing.T) {
	m := newManager(t, nil)
	dir, ok := m.dirs[unifiedKey]
	if !ok {
		return // v1 host: no cgroup2 hierarchy to attach to
	}
	if err := attachDeviceFilter(dir, DefaultDevices()); err != nil {
		t.Fatal(err)
	}
	fd, _ := m.FD()
	attr := func() *syscall.SysProcAttr { return &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd} }
	nullRW := startChild(t, attr(), "open", "/dev/null")
	nullRO := startChild(t, attr(), "open-ro", "/dev/null")
	zeroRW := startChild(t, attr(), "open", "/dev/zero")
	for _, c := range []*child{nullRW, nullRO, zeroRW} {
		c.send(t)
		if got := c.line(t); got != "ok" {
			t.Fatalf("with the default rules: %q", got)
		}
	}
	w := limits.Wildcard
	cases := []struct {
		name                   string
		rules                  []limits.DeviceRule
		nullRW, nullRO, zeroRW bool
	}{
		{"read only", []limits.DeviceRule{{Allow: true, Type: "c", Major: 1, Minor: 3, Access: "r"}}, false, true, false},
		{"later deny wins", []limits.DeviceRule{{Allow: true, Type: "c", Major: 1, Minor: w, Access: "rwm"}, {Type: "c", Major: 1, Minor: 3, Access: "rwm"}}, false, false, true},
		{"later allow wins", []limits.DeviceRule{{Type: "c", Major: 1, Minor: 3, Access: "rwm"}, {Allow: true, Type: "c", Major: w, Minor: w, Access: "rw"}}, true, true, true},
		{"other type", []limits.DeviceRule{{Allow: true, Type: "b", Major: w, Minor: w, Access: "rwm"}}, false, false, false},
		{"any type", []limits.DeviceRule{{Allow: true, Type: "a", Major: w, Minor: w, Access: "rw"}}, true, true, true},
		{"none", nil, false, false, false},
	}
	for _, tc := range cases {
		if err := attachDeviceFilter(dir, tc.rules); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for _, x := range []struct {
			c    *child
			want bool
			what string
		}{{nullRW, tc.nullRW, "/dev/null rw"}, {nullRO, tc.nullRO, "/dev/null ro"}, {zeroRW, tc.zeroRW, "/dev/zero rw"}} {
			x.c.send(t)
			want := "true" // permission denied
			if x.want {
				want = "ok"
			}
			if got := x.c.line(t); got != want {
				t.Errorf("%s: %s: %q, want %q", tc.name, x.what, got, want)
			}
		}
	}
	if n, err := deviceFilterCount(dir); err != nil || n != 1 {
		t.Errorf("%d device programs attached, want 1 (%v)", n, err)
	}
	if _, err := deviceProgram([]limits.DeviceRule{{Type: "x", Access: "r"}}); err == nil {
		t.Error("type x accepted")
	}
	if _, err := deviceProgram([]limits.DeviceRule{{Type: "c", Access: "q"}}); err == nil {
		t.Error("access q accepted")
	}
}

// Destroy removes a cgroup that still has processes and a sub-cgroup in
// every hierarchy: the quick rmdir fails there, and the full path kills
// and removes bottom-up without leaving anything.
func TestDestroyPopulated(t *testing.T) {
	m := newManager(t, nil)
	cmd := exec.Command("/bin/sleep", "100")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if err := m.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	st := m.State()
	for _, d := range st.Dirs {
		if err := os.Mkdir(filepath.Join(d, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("sleep after Destroy: %v", err)
	}
	for key, d := range st.Dirs {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %s still there after Destroy (%v)", key, d, err)
		}
	}
}

// Destroy keeps the parents of a cgroup in a v1 cpuset hierarchy only
// (see Destroy) and removes them everywhere else; RemoveGroup then removes
// the kept ones and any other empty cgroup of the group, except above a
// cgroup that still holds a process.
func TestCpusetParentsKeptUntilRemoveGroup(t *testing.T) {
	group := fmt.Sprintf("vessel-test/kept-%d", os.Getpid())
	m, err := New(Options{Name: group + "/leaf"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	st := m.State()
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	cpusetParent := ""
	for key, d := range st.Dirs {
		parent := filepath.Dir(d)
		_, err := os.Stat(parent)
		h, _ := m.hierarchy(key)
		if key != unifiedKey && h.has("cpuset") {
			cpusetParent = parent
			if err != nil {
				t.Errorf("%s: parent %s removed: %v", key, parent, err)
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: parent %s left behind (%v)", key, parent, err)
		}
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %s left behind", key, d)
		}
	}
	if layout, _ := Detect(); layout != V2 && cpusetParent == "" {
		t.Fatalf("layout %s: no cpuset hierarchy among %v", layout, st.Dirs)
	}

	// An empty cgroup another runtime left in the group (it removed only
	// its own cgroup, not the group it made for it), in every hierarchy.
	var foreign []string
	for _, d := range st.Dirs {
		f := filepath.Join(filepath.Dir(d), "foreign")
		if err := os.MkdirAll(f, 0o755); err != nil {
			t.Fatal(err)
		}
		foreign = append(foreign, f)
	}

	// A cgroup holding a process below the group keeps it.
	busy, err := New(Options{Name: group + "/busy"})
	if err != nil {
		t.Fatal(err)
	}
	if err := busy.Create(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sleep", "100")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if err := busy.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	busy.Settled()
	if err := RemoveGroup(group); err != nil {
		t.Fatal(err)
	}
	for _, d := range busy.State().Dirs {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("RemoveGroup removed %s, which holds a process: %v", d, err)
		}
	}
	for _, f := range foreign {
		if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("RemoveGroup left the empty %s (%v)", f, err)
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if err := busy.Destroy(); err != nil {
		t.Fatal(err)
	}
	if err := RemoveGroup(group); err != nil {
		t.Fatal(err)
	}
	if cpusetParent != "" {
		if _, err := os.Stat(cpusetParent); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("RemoveGroup left %s (%v)", cpusetParent, err)
		}
	}
	for _, d := range busy.State().Dirs {
		if _, err := os.Stat(filepath.Dir(d)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left behind", filepath.Dir(d))
		}
	}
	if err := RemoveGroup("/abs"); err == nil {
		t.Error("RemoveGroup accepted an absolute path")
	}
}

// TestRemoveGroupSparesStartingCgroups: a cgroup is empty from Create
// until its container's processes join it (Settled); a RemoveGroup of its
// group meanwhile, from this or another program, waits for that instead
// of removing it, then removes it once it is empty and settled.
func TestRemoveGroupSparesStartingCgroups(t *testing.T) {
	group := fmt.Sprintf("vessel-test/starting-%d", os.Getpid())
	m, err := New(Options{Name: group + "/c"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Destroy() })
	done := make(chan error, 1)
	go func() { done <- RemoveGroup(group) }()
	time.Sleep(300 * time.Millisecond)
	for _, d := range m.State().Dirs {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("RemoveGroup took %s while its container was starting: %v", d, err)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("RemoveGroup returned while a container of its group was starting: %v", err)
	default:
	}
	m.Settled()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, d := range m.State().Dirs {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("RemoveGroup left the settled, empty %s (%v)", d, err)
		}
	}
	// Another program's RemoveGroup waits the same way: the lock is a
	// flock, held by an open file, not by this process (another open of
	// the directory here meets it as another program's would).
	m2, err := New(Options{Name: group + "/c2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m2.Destroy() })
	tryExclusive := func() error {
		fd, err := unix.Open(filepath.Dir(m2.State().Dirs[lockKey(m2.dirs)]), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
	}
	if err := tryExclusive(); err != unix.EWOULDBLOCK {
		t.Fatalf("the group's directory is not locked while a container of it starts: %v", err)
	}
	m2.Settled()
	if err := tryExclusive(); err != nil {
		t.Fatalf("the group's directory is still locked once settled: %v", err)
	}
}
