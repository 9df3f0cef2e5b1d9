package vessel_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/internal/child"
	"github.com/openvessel/vessel/internal/probe"
	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/network"
)

// spareInits lists this process's children that are spare inits (argv[0]
// "vessel-spare").
func spareInits(t testing.TB) []int {
	t.Helper()
	kids, err := testutil.Children(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for pid := range kids {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.HasPrefix(string(cmdline), "vessel-spare\x00") {
			pids = append(pids, pid)
		}
	}
	return pids
}

func newSpares(t testing.TB, n int) *vessel.Spares {
	t.Helper()
	sp, err := vessel.NewSpares(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

// readySpares returns a Spares with n spare inits of cfg's shape ready
// (a first container, which finds none, asks for them).
func readySpares(t testing.TB, n int, cfg *vessel.Config) *vessel.Spares {
	t.Helper()
	sp := newSpares(t, n)
	runOnceWith(t, cfg, sp, "/bin/true")
	waitSpares(t, sp)
	return sp
}

// newFromSpares is a container that takes its init from sp, destroyed at
// the end of the test.
func newFromSpares(t testing.TB, cfg *vessel.Config, sp *vessel.Spares) *vessel.Container {
	t.Helper()
	c, err := vessel.New(newID(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Destroy() })
	c.Spares = sp
	return c
}

func waitSpares(t testing.TB, sp *vessel.Spares) {
	t.Helper()
	if !sp.WaitReady(20 * time.Second) {
		t.Fatalf("spare inits not ready after 20 s: %+v", sp.Stats())
	}
}

// hostCgroups returns /proc/PID/cgroup as hierarchy → path.
func hostCgroups(t testing.TB, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.SplitN(l, ":", 3); len(f) == 3 {
			m[f[0]+":"+f[1]] = f[2]
		}
	}
	return m
}

// A container started from a spare init is as isolated as any: its own
// namespaces (not the spare's neighbours'), its cgroup in every hierarchy
// before it runs anything, its hostname, seccomp, and the caller's stdio.
func TestSparesStartFromSpare(t *testing.T) {
	cfg := withProbe(t, newConfig().WithHostname("spare-box").WithMemoryLimit(64<<20).WithPids(32))
	runOnce(t, cfg, "/bin/true") // what a first start keeps (the program's detached mount)
	before := testutil.SnapshotHost(t)
	sp := newSpares(t, 1)

	// None ready: the first start forks its own init, and asks for a spare.
	c1 := newFromSpares(t, cfg, sp)
	var out1 bytes.Buffer
	c1.Stdout = &out1
	if err := c1.Run(context.Background(), "/probe", "report"); err != nil {
		t.Fatalf("first run: %v\n%s", err, out1.String())
	}
	r1 := testutil.MustParseReport(t, out1.Bytes())
	if st := sp.Stats(); st.Used != 0 {
		t.Fatalf("first start took a spare: %+v", st)
	}
	waitSpares(t, sp)
	pids := spareInits(t)
	if len(pids) != 1 {
		t.Fatalf("spare inits running: %v, want 1", pids)
	}

	// The second takes it, and gets its stdio through the config.
	c2 := newFromSpares(t, cfg, sp)
	var out2, err2 bytes.Buffer
	c2.Stdin = strings.NewReader("hello\n")
	c2.Stdout, c2.Stderr = &out2, &err2
	if err := c2.Start(context.Background(), "/bin/sh", "-c", "read x; echo got:$x; echo to-stderr >&2; sleep 0.3; exec /probe report"); err != nil {
		t.Fatal(err)
	}
	st := c2.State()
	if st.InitPid != pids[0] {
		t.Fatalf("init %d, want the spare %d", st.InitPid, pids[0])
	}
	// From the host: the main process is in the container's cgroup in
	// every hierarchy, the init in none of those that hold limits (it
	// stays outside the workload's limits).
	for h, p := range hostCgroups(t, st.Pid) {
		if !strings.HasSuffix(p, "/vessel-test/"+c2.ID()) {
			t.Errorf("main process %d in %s cgroup %q, not the container's", st.Pid, h, p)
		}
	}
	assertInitOutsideLimits(t, c2)
	if err := c2.Wait(); err != nil {
		t.Fatalf("run from spare: %v\n%s\n%s", err, out2.String(), err2.String())
	}
	if !strings.Contains(out2.String(), "got:hello\n") || err2.String() != "to-stderr\n" {
		t.Fatalf("stdio: stdout %q stderr %q", out2.String(), err2.String())
	}
	r2 := testutil.MustParseReport(t, out2.Bytes())
	if got := sp.Stats(); got.Used != 1 {
		t.Fatalf("stats after the second start: %+v", got)
	}
	// From inside: the main process (exec'd by the shell) is PID 1, its
	// hostname, the root of its own cgroup namespace, seccomp filtering,
	// and namespaces of its own.
	if r2.PID != 1 || r2.PPID != 0 || len(r2.NSPID) != 1 || r2.Hostname != "spare-box" {
		t.Fatalf("inside: ppid %d nspid %v hostname %q", r2.PPID, r2.NSPID, r2.Hostname)
	}
	if r2.Seccomp != 2 || !r2.NoNewPrivs {
		t.Fatalf("inside: seccomp %d no_new_privs %v", r2.Seccomp, r2.NoNewPrivs)
	}
	// On a hybrid host the unified hierarchy (no controllers, no limits)
	// is not rooted there for a container from a spare: the spare stays
	// in the caller's cgroup there rather than pay a whole-process move.
	layout, err := cgroups.Detect()
	if err != nil {
		t.Fatal(err)
	}
	for _, cg := range r2.Cgroups {
		if layout == cgroups.Hybrid && len(cg.Controllers) == 0 {
			continue
		}
		if cg.Path != "/" {
			t.Fatalf("cgroup %v: %q inside, want its namespace root", cg.Controllers, cg.Path)
		}
	}
	for _, kind := range []string{"pid", "net", "mnt", "uts", "ipc", "cgroup"} {
		if r2.Namespaces[kind] == hostNS(t, kind) {
			t.Errorf("%s namespace %d is the host's", kind, r2.Namespaces[kind])
		}
	}
	if len(r1.Namespaces) != len(r2.Namespaces) {
		t.Errorf("namespaces: %v without a spare, %v from one", r1.Namespaces, r2.Namespaces)
	}

	// Its replacement starts once it has ended; Close stops the spares and
	// nothing is left behind.
	waitSpares(t, sp)
	if got := sp.Stats(); got.Ready != 1 || got.Started != 2 {
		t.Fatalf("after the second container: %+v", got)
	}
	c1.Destroy()
	c2.Destroy()
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	if left := spareInits(t); len(left) != 0 {
		t.Fatalf("spare inits left after Close: %v", left)
	}
	if got := sp.Stats(); got.Ready != 0 || got.Discarded != 1 {
		t.Fatalf("after Close: %+v", got)
	}
	testutil.AssertUnchanged(t, before, testutil.SnapshotHost(t))
}

// Containers running at the same time from spares share no namespace.
func TestSparesDistinctNamespaces(t *testing.T) {
	cfg := newConfig()
	sp := readySpares(t, 2, cfg)
	var inos []map[string]uint64
	for i := 0; i < 2; i++ {
		c := sleeper(t, cfg, sp)
		m := map[string]uint64{}
		for _, kind := range []string{"pid", "net", "mnt", "uts", "ipc", "cgroup"} {
			m[kind] = nsInode(t, c.State().Pid, kind)
		}
		inos = append(inos, m)
	}
	if got := sp.Stats(); got.Used != 2 {
		t.Fatalf("both should have taken spares: %+v", got)
	}
	for kind, ino := range inos[0] {
		if inos[1][kind] == ino {
			t.Errorf("two containers share %s:[%d]", kind, ino)
		}
	}
}

// The container's limits hold for an init that waited in the caller's
// cgroup: it is moved before it starts anything.
func TestSparesLimits(t *testing.T) {
	cfg := withProbe(t, newConfig().WithMemoryLimit(64<<20))
	sp := readySpares(t, 1, cfg)
	c := newFromSpares(t, cfg, sp)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err := c.Run(context.Background(), "/probe", "alloc", "200")
	if !errors.Is(err, vessel.ErrOOMKilled) {
		t.Fatalf("got %v, want ErrOOMKilled\n%s", err, out.String())
	}
	if got := sp.Stats(); got.Used != 1 {
		t.Fatalf("the container did not take the spare: %+v", got)
	}
}

// Only containers of the spare's shape take it; others start as usual.
func TestSparesShapes(t *testing.T) {
	full := newConfig()
	sp := readySpares(t, 1, full)
	pids := spareInits(t)
	// Different namespaces: not this shape; it gets a spare of its own
	// shape for next time.
	out, err := runWithSpares(t, newConfig().WithSharedNamespace(namespaces.Net), sp, "/bin/echo", "shared-net")
	if err != nil || out != "shared-net\n" {
		t.Fatalf("shared net: %v %q", err, out)
	}
	// Extra files are placed when the init forks: never from a spare.
	c := newFromSpares(t, full, sp)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c.ExtraFiles = []*os.File{w}
	err = c.Run(context.Background(), "/bin/sh", "-c", "echo extra >&3")
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, _ := r.Read(buf); string(buf[:n]) != "extra\n" {
		t.Fatalf("extra file got %q", buf[:n])
	}
	if got := sp.Stats(); got.Used != 0 {
		t.Fatalf("a container of another shape took a spare: %+v", got)
	}
	waitSpares(t, sp)
	if got, now := sp.Stats(), spareInits(t); got.Ready != 2 || len(now) != 2 || !containsInt(now, pids[0]) {
		t.Fatalf("spares after two shapes: %+v, pids %v (first %v)", got, now, pids)
	}
}

// A spare that died while waiting is noticed and thrown away; the
// container starts anyway.
func TestSparesDeadSpare(t *testing.T) {
	cfg := newConfig()
	sp := readySpares(t, 1, cfg)
	pids := spareInits(t)
	if len(pids) != 1 {
		t.Fatalf("spare inits: %v", pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Wait until every thread has exited (so its socket is closed): the
	// leader a zombie until the Spares reaps it, the others gone.
	for i := 0; i < 400; i++ {
		tasks, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pids[0]), "task"))
		if st := testutil.ProcState(pids[0]); st == "" || st == "Z" && len(tasks) <= 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	out, err := runWithSpares(t, cfg, sp, "/bin/echo", "still-starts")
	if err != nil || out != "still-starts\n" {
		t.Fatalf("after the spare died: %v %q", err, out)
	}
	if got := sp.Stats(); got.Used != 0 || got.Discarded != 1 {
		t.Fatalf("stats: %+v", got)
	}
}

// Create (the OCI created state) works from a spare: the process waits
// before execve until Start, with the caller's stdio.
func TestSparesCreateThenStart(t *testing.T) {
	cfg := newConfig()
	sp := readySpares(t, 1, cfg)
	c := newFromSpares(t, cfg, sp)
	var out bytes.Buffer
	c.Stdout = &out
	if err := c.Create(context.Background(), "/bin/echo", "created-then-started"); err != nil {
		t.Fatal(err)
	}
	if st := c.State(); st.Status != vessel.Waiting || out.Len() != 0 {
		t.Fatalf("after Create: %s, output %q", st.Status, out.String())
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(); err != nil || out.String() != "created-then-started\n" {
		t.Fatalf("after Start: %v %q", err, out.String())
	}
	if got := sp.Stats(); got.Used != 1 {
		t.Fatalf("Create did not take the spare: %+v", got)
	}
}

func TestNewSparesInvalid(t *testing.T) {
	for _, n := range []int{0, -1, 65} {
		_, err := vessel.NewSpares(n)
		var ce *vessel.ConfigError
		if !errors.As(err, &ce) || ce.Field != "spares" {
			t.Fatalf("NewSpares(%d): %v, want a ConfigError on spares", n, err)
		}
	}
}

func runWithSpares(t testing.TB, cfg *vessel.Config, sp *vessel.Spares, args ...string) (string, error) {
	t.Helper()
	c := newFromSpares(t, cfg, sp)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err := c.Run(context.Background(), args...)
	return out.String(), err
}

func containsInt(l []int, v int) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}

// ctlSocketInNetns fails the test unless the init's control socket is a
// unix socket of the init's own network namespace (CRIU finds the init's
// sockets through the namespaces it dumps).
func ctlSocketInNetns(t *testing.T, what string, initPid int) {
	t.Helper()
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", initPid, child.ControlFD))
	if err != nil {
		t.Fatal(err)
	}
	inode, ok := strings.CutPrefix(link, "socket:[")
	if !ok {
		t.Fatalf("%s: the init's fd %d is %q, not a socket", what, child.ControlFD, link)
	}
	inode = strings.TrimSuffix(inode, "]")
	table, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/unix", initPid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(table), "\n") {
		if f := strings.Fields(l); len(f) >= 7 && f[6] == inode {
			return
		}
	}
	t.Errorf("%s: the init's control socket (inode %s) is not in its network namespace", what, inode)
}

// sleeper starts cfg's container running sleep, from sp when not nil.
func sleeper(t *testing.T, cfg *vessel.Config, sp *vessel.Spares) *vessel.Container {
	t.Helper()
	c := newFromSpares(t, cfg, sp)
	if err := c.Start(context.Background(), "/bin/sleep", "1000"); err != nil {
		t.Fatal(err)
	}
	return c
}

// loopback returns the report's lo.
func loopback(t *testing.T, r *probe.Report) probe.Interface {
	t.Helper()
	lo, ok := r.Interface("lo")
	if !ok {
		t.Fatalf("no lo among %+v", r.Interfaces)
	}
	return lo
}

// A spare does its network namespace's work while it waits: its control
// socket moves into it, and its loopback comes up when its shape says so
// (network "none" keeps it down). A container joining another network
// namespace moves the socket again once there. Each is checked against a
// container started the usual way.
func TestSparesNetworkNamespaceWork(t *testing.T) {
	cfg := withProbe(t, newConfig())
	usual := sleeper(t, cfg, nil)
	ctlSocketInNetns(t, "usual start", usual.State().InitPid)
	if lo := loopback(t, execReport(t, usual, "/probe")); !lo.Up || !slices.Contains(lo.Addrs, "127.0.0.1/8") {
		t.Errorf("usual start: lo %+v, want up with 127.0.0.1/8", lo)
	}

	sp := readySpares(t, 1, cfg)
	c := sleeper(t, cfg, sp)
	ctlSocketInNetns(t, "from a spare", c.State().InitPid)
	if lo := loopback(t, execReport(t, c, "/probe")); !lo.Up || !slices.Contains(lo.Addrs, "127.0.0.1/8") {
		t.Errorf("from a spare: lo %+v, want up with 127.0.0.1/8", lo)
	}

	none := withProbe(t, newConfig().WithNetwork(network.None()))
	spNone := readySpares(t, 1, none)
	c = sleeper(t, none, spNone)
	ctlSocketInNetns(t, "network none, from a spare", c.State().InitPid)
	if lo := loopback(t, execReport(t, c, "/probe")); lo.Up {
		t.Errorf("network none, from a spare: lo %+v, want down", lo)
	}

	joined := withProbe(t, newConfig().WithNetwork(network.Netns(fmt.Sprintf("/proc/%d/ns/net", usual.State().Pid))))
	spJoined := readySpares(t, 1, joined)
	c = sleeper(t, joined, spJoined)
	st := c.State()
	ctlSocketInNetns(t, "joined network namespace, from a spare", st.InitPid)
	if a, b := nsInode(t, st.InitPid, "net"), nsInode(t, usual.State().Pid, "net"); a != b {
		t.Errorf("joined network namespace: the init is in net:[%d], not net:[%d]", a, b)
	}
	for what, s := range map[string]*vessel.Spares{"default": sp, "none": spNone, "joined": spJoined} {
		if got := s.Stats(); got.Used != 1 {
			t.Errorf("%s shape: the container did not take the spare: %+v", what, got)
		}
	}
}
