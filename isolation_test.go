package vessel_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
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

// withProbe binds the static probe into the container at /probe.
func withProbe(t testing.TB, cfg *vessel.Config) *vessel.Config {
	return cfg.WithBind(testutil.BuildProbe(t), "/probe", true)
}

// report runs "probe report" in a container made from cfg.
func report(t testing.TB, cfg *vessel.Config) *probe.Report {
	t.Helper()
	out, err := run(t, withProbe(t, cfg), "/probe", "report")
	if err != nil {
		t.Fatalf("probe report: %v\n%s", err, out)
	}
	return testutil.MustParseReport(t, []byte(out))
}

// try runs "probe try ACTION ARGS" in a container made from cfg.
func try(t testing.TB, cfg *vessel.Config, action string, args ...string) *probe.TryResult {
	t.Helper()
	out, _ := run(t, withProbe(t, cfg), append([]string{"/probe", "try", action}, args...)...)
	return testutil.MustParseTry(t, []byte(out))
}

func hostNS(t testing.TB, kind string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/"+kind, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestPIDNamespace(t *testing.T) {
	r := report(t, newConfig())
	// The probe, the main process, is PID 1 of its own pid namespace;
	// its parent (vessel's init) is outside it, so ppid 0.
	if r.PID != 1 || r.PPID != 0 || len(r.NSPID) != 1 || r.NSPID[0] != 1 {
		t.Fatalf("new pid ns: pid %d ppid %d nspid %v", r.PID, r.PPID, r.NSPID)
	}
	if r.Namespaces["pid"] == hostNS(t, "pid") {
		t.Fatal("pid namespace is the host's")
	}
	if r.ProcCount != 1 {
		t.Fatalf("container sees %d processes, want only itself (nothing of vessel)", r.ProcCount)
	}
	r = report(t, newConfig().WithSharedNamespace(namespaces.PID))
	if r.Namespaces["pid"] != hostNS(t, "pid") || r.PPID == 1 {
		t.Fatalf("shared pid ns: %d vs host %d, nspid %v", r.Namespaces["pid"], hostNS(t, "pid"), r.NSPID)
	}
	if r.ProcCount < 10 {
		t.Fatalf("shared pid ns sees only %d processes", r.ProcCount)
	}
}

func TestUTSNamespace(t *testing.T) {
	host, _ := os.Hostname()
	r := report(t, newConfig().WithHostname("box-42").WithDomainname("example.test"))
	if r.Hostname != "box-42" || r.Domainname != "example.test" {
		t.Fatalf("hostname %q domain %q", r.Hostname, r.Domainname)
	}
	if strings.TrimSpace(r.EtcHostname) != "box-42" || !strings.Contains(r.EtcHosts, "box-42") || !strings.Contains(r.EtcHosts, "localhost") {
		t.Fatalf("/etc/hostname %q /etc/hosts %q", r.EtcHostname, r.EtcHosts)
	}
	if h, _ := os.Hostname(); h != host {
		t.Fatalf("host hostname changed to %q", h)
	}
	r = report(t, newConfig().WithSharedNamespace(namespaces.UTS))
	if r.Hostname != host || r.Namespaces["uts"] != hostNS(t, "uts") {
		t.Fatalf("shared uts: %q", r.Hostname)
	}
}

func TestIPCNamespace(t *testing.T) {
	r := report(t, newConfig())
	if r.Namespaces["ipc"] == hostNS(t, "ipc") {
		t.Fatal("ipc namespace is the host's")
	}
	// A System V segment made on the host is invisible inside.
	id, err := unix.SysvShmGet(unix.IPC_PRIVATE, 4096, unix.IPC_CREAT|0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.SysvShmCtl(id, unix.IPC_RMID, nil)
	out, err := run(t, newConfig(), "cat", "/proc/sysvipc/shm")
	if err != nil || strings.Contains(out, fmt.Sprintf(" %d ", id)) {
		t.Fatalf("host shm %d visible inside: %v\n%s", id, err, out)
	}
	out, _ = run(t, newConfig().WithSharedNamespace(namespaces.IPC), "cat", "/proc/sysvipc/shm")
	if !strings.Contains(out, fmt.Sprintf(" %d ", id)) {
		t.Fatalf("host shm %d not visible with a shared ipc ns:\n%s", id, out)
	}
}

func TestNetNamespace(t *testing.T) {
	r := report(t, newConfig())
	if r.Namespaces["net"] == hostNS(t, "net") {
		t.Fatal("net namespace is the host's")
	}
	if len(r.Interfaces) != 1 || r.Interfaces[0].Name != "lo" || !r.Interfaces[0].Up {
		t.Fatalf("interfaces %+v, want only lo, up", r.Interfaces)
	}
	r = report(t, newConfig().WithSharedNamespace(namespaces.Net))
	if r.Namespaces["net"] != hostNS(t, "net") || len(r.Interfaces) < 2 {
		t.Fatalf("shared net: %+v", r.Interfaces)
	}
}

func TestCgroupNamespace(t *testing.T) {
	r := report(t, newConfig())
	if r.Namespaces["cgroup"] == hostNS(t, "cgroup") {
		t.Fatal("cgroup namespace is the host's")
	}
	for _, c := range r.Cgroups {
		if c.Path != "/" {
			t.Fatalf("cgroup %v: path %q, want / (the namespace root)", c.Controllers, c.Path)
		}
	}
}

func TestUserNamespace(t *testing.T) {
	cfg := newConfig().WithUserNamespace(
		[]namespaces.IDMap{{ContainerID: 0, HostID: 200000, Size: 65536}},
		[]namespaces.IDMap{{ContainerID: 0, HostID: 200000, Size: 65536}})
	r := report(t, cfg)
	if r.UID != 0 || r.EUID != 0 || r.GID != 0 {
		t.Fatalf("ids inside: uid %d gid %d", r.UID, r.GID)
	}
	if len(r.UIDMap) != 1 || r.UIDMap[0] != (probe.IDMapEntry{Inside: 0, Outside: 200000, Count: 65536}) {
		t.Fatalf("uid_map %+v", r.UIDMap)
	}
	if r.Namespaces["user"] == hostNS(t, "user") {
		t.Fatal("user namespace is the host's")
	}
	// From the host, the process runs as the mapped id.
	c, _ := start(t, cfg, "sleep", "30")
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.State().Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(st), "Uid:\t200000\t200000\t200000\t200000") {
		t.Fatalf("host view of the process:\n%s", st)
	}
	// Default mapping: container root is the calling user.
	r = report(t, newConfig().WithUserNamespace(nil, nil))
	if len(r.UIDMap) != 1 || r.UIDMap[0].Outside != uint32(os.Geteuid()) || r.UIDMap[0].Count != 1 {
		t.Fatalf("default uid_map %+v", r.UIDMap)
	}
}

func TestTimeNamespace(t *testing.T) {
	var before unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &before)
	cfg := withProbe(t, newConfig().WithTimeNamespace(48*time.Hour, 72*time.Hour))
	out, err := run(t, cfg, "/probe", "report")
	// Every kernel with time namespaces: the init forks without CLONE_VM,
	// which kernels before 6.3 refused into a new time namespace.
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	r := testutil.MustParseReport(t, []byte(out))
	var after unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &after)
	mono := r.Clocks.Monotonic.Duration()
	lo := time.Duration(before.Nano()) + 48*time.Hour
	hi := time.Duration(after.Nano()) + 48*time.Hour
	if mono < lo || mono > hi {
		t.Fatalf("monotonic inside %v, want between %v and %v", mono, lo, hi)
	}
	if boot := r.Clocks.Boottime.Duration(); boot < 72*time.Hour {
		t.Fatalf("boottime inside %v, want over 72h", boot)
	}
	if r.Namespaces["time"] == hostNS(t, "time") {
		t.Fatal("time namespace is the host's")
	}
}

// kernelAtLeast compares the running kernel's version.
func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	var ma, mi int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &ma, &mi)
	return ma > major || (ma == major && mi >= minor)
}

func TestJoinNamespaces(t *testing.T) {
	a, _ := start(t, newConfig().WithHostname("joined-host"), "sleep", "30")
	pid := a.State().Pid
	cfg := newConfig().
		WithNamespace(namespaces.Net, fmt.Sprintf("/proc/%d/ns/net", pid)).
		WithNamespace(namespaces.UTS, fmt.Sprintf("/proc/%d/ns/uts", pid)).
		WithNamespace(namespaces.IPC, fmt.Sprintf("/proc/%d/ns/ipc", pid)).
		WithNamespace(namespaces.PID, fmt.Sprintf("/proc/%d/ns/pid", pid))
	cfg.Hostname = ""
	r := report(t, cfg)
	want := func(kind string) uint64 {
		var st unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/%s", pid, kind), &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	for _, k := range []string{"net", "uts", "ipc", "pid"} {
		if r.Namespaces[k] != want(k) {
			t.Errorf("%s: joined %d, want %d", k, r.Namespaces[k], want(k))
		}
	}
	if r.Hostname != "joined-host" {
		t.Errorf("hostname in joined uts %q", r.Hostname)
	}
	// In the joined pid namespace the probe sees the first container's
	// sleep (PID 1 there) and itself, and nothing of vessel.
	if r.ProcCount != 2 {
		t.Errorf("joined pid ns shows %d processes", r.ProcCount)
	}
}

func TestJoinMountNamespaceBindFile(t *testing.T) {
	// A namespace kept alive by a bind mount, as `ip netns add` does.
	a, _ := start(t, newConfig(), "sleep", "30")
	dir := t.TempDir()
	nsFile := dir + "/net"
	if err := os.WriteFile(nsFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(fmt.Sprintf("/proc/%d/ns/net", a.State().Pid), nsFile, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(nsFile, unix.MNT_DETACH)
	r := report(t, newConfig().WithNamespace(namespaces.Net, nsFile))
	var st unix.Stat_t
	unix.Stat(nsFile, &st)
	if r.Namespaces["net"] != st.Ino {
		t.Fatalf("net ns %d, want %d from %s", r.Namespaces["net"], st.Ino, nsFile)
	}
}

func mountAt(t *testing.T, r *probe.Report, p string) probe.Mount {
	t.Helper()
	m, ok := r.MountAt(p)
	if !ok {
		t.Fatalf("nothing mounted at %s; mounts: %v", p, mountPoints(r))
	}
	return m
}

func mountPoints(r *probe.Report) []string {
	var out []string
	for _, m := range r.Mounts {
		out = append(out, m.MountPoint)
	}
	return out
}

func hasOpt(m probe.Mount, o string) bool {
	for _, x := range m.Options {
		if x == o {
			return true
		}
	}
	return false
}

func TestSystemMounts(t *testing.T) {
	r := report(t, newConfig())
	if m := mountAt(t, r, "/proc"); m.FSType != "proc" || !hasOpt(m, "nosuid") {
		t.Errorf("/proc: %+v", m)
	}
	if m := mountAt(t, r, "/sys"); m.FSType != "sysfs" || !m.ReadOnly {
		t.Errorf("/sys: %+v", m)
	}
	if m := mountAt(t, r, "/dev"); m.FSType != "tmpfs" {
		t.Errorf("/dev: %+v", m)
	}
	if m := mountAt(t, r, "/dev/pts"); m.FSType != "devpts" {
		t.Errorf("/dev/pts: %+v", m)
	}
	if m := mountAt(t, r, "/dev/shm"); m.FSType != "tmpfs" {
		t.Errorf("/dev/shm: %+v", m)
	}
	if m := mountAt(t, r, "/dev/mqueue"); m.FSType != "mqueue" {
		t.Errorf("/dev/mqueue: %+v", m)
	}
	// The host root is read-only; /tmp and /run are private tmpfs.
	if m := mountAt(t, r, "/"); !m.ReadOnly {
		t.Errorf("/ is writable: %+v", m)
	}
	if m := mountAt(t, r, "/usr"); !m.ReadOnly {
		t.Errorf("/usr (host) is writable: %+v", m)
	}
	for _, p := range []string{"/tmp", "/run"} {
		if m := mountAt(t, r, p); m.FSType != "tmpfs" || m.ReadOnly {
			t.Errorf("%s: %+v", p, m)
		}
	}
	// Propagation is private: no mount is shared with the host.
	for _, m := range r.Mounts {
		for _, o := range m.Optional {
			if strings.HasPrefix(o, "shared:") || strings.HasPrefix(o, "master:") {
				t.Errorf("mount %s propagates: %v", m.MountPoint, m.Optional)
			}
		}
	}
	// The old root is gone: no mount sits outside the container's tree
	// (nothing at the staging point, no host /proc or /dev duplicates).
	seen := map[string]int{}
	for _, m := range r.Mounts {
		seen[m.MountPoint]++
	}
	for p, n := range seen {
		if n > 1 && p != "/proc/sys" {
			t.Errorf("%s mounted %d times (old root leaking?)", p, n)
		}
	}
	out, err := run(t, newConfig(), "/bin/sh", "-c",
		"ls /dev; for f in /dev/fd /dev/stdin /dev/stdout /dev/stderr /dev/ptmx; do readlink $f; done; echo x > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c && echo ok")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue",
		"/proc/self/fd\n/proc/self/fd/0\n/proc/self/fd/1\n/proc/self/fd/2\npts/ptmx", "4\n4\nok"} {
		if !strings.Contains(out, want) {
			t.Errorf("/dev lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "sda") || strings.Contains(out, "vda") || strings.Contains(out, "kmsg") {
		t.Errorf("host devices visible:\n%s", out)
	}
}

func TestMaskedAndReadonlyPaths(t *testing.T) {
	r := report(t, newConfig())
	masked := 0
	for _, p := range rootfs.DefaultMaskedPaths {
		fi, err := os.Stat(p)
		if err != nil {
			continue // not in this kernel
		}
		masked++
		m := mountAt(t, r, p)
		if fi.IsDir() && (m.FSType != "tmpfs" || !m.ReadOnly) {
			t.Errorf("%s not masked by a read-only tmpfs: %+v", p, m)
		}
		if !fi.IsDir() && m.FSType != "devtmpfs" && m.FSType != "tmpfs" {
			t.Errorf("%s not masked by /dev/null: %+v", p, m)
		}
	}
	if masked < 3 {
		t.Fatalf("only %d masked paths exist on this host", masked)
	}
	if tr := try(t, newConfig(), "open", "/proc/keys", "r"); tr.OK && !strings.HasPrefix(tr.Object, "chardev 1:3") {
		t.Errorf("/proc/keys readable as %q", tr.Object)
	}
	for _, p := range []string{"/proc/sys", "/proc/bus", "/proc/irq", "/proc/fs"} {
		if m := mountAt(t, r, p); !m.ReadOnly {
			t.Errorf("%s writable: %+v", p, m)
		}
	}
	// Read-only mount; in a rootless container the files also belong to
	// the host's root, so permission is refused even earlier.
	if tr := try(t, newConfig(), "write-procsys", "/proc/sys/kernel/domainname", "x"); tr.OK || (tr.ErrnoName != "EROFS" && !(os.Geteuid() != 0 && tr.ErrnoName == "EACCES")) {
		t.Errorf("writing /proc/sys: %+v", tr)
	}
	// Custom lists replace the defaults.
	r = report(t, newConfig().WithMaskedPaths("/proc/cpuinfo").WithReadOnlyPaths("/proc/bus"))
	if m := mountAt(t, r, "/proc/cpuinfo"); m.FSType == "proc" {
		t.Errorf("/proc/cpuinfo not masked: %+v", m)
	}
	if _, ok := r.MountAt("/proc/sys"); ok {
		t.Error("/proc/sys still read-only with a custom list")
	}
}

func TestBindAndTmpfsMounts(t *testing.T) {
	rw, ro := t.TempDir(), t.TempDir()
	os.WriteFile(ro+"/f", []byte("host data"), 0o644)
	cfg := newConfig().WithBind(rw, "/data/rw", false).WithBind(ro, "/data/ro", true).WithTmpfs("/scratch", 1<<20)
	out, err := run(t, cfg, "/bin/sh", "-c", `echo inside > /data/rw/new && cat /data/ro/f && echo
		if echo x > /data/ro/g 2>/dev/null; then echo ro-writable; fi
		dd if=/dev/zero of=/scratch/big bs=64k count=40 2>&1 | grep -o "No space left"
		grep " /scratch " /proc/self/mountinfo`)
	if err == nil || !strings.Contains(out, "host data") {
		t.Logf("output: %s (err %v)", out, err)
	}
	if b, _ := os.ReadFile(rw + "/new"); string(b) != "inside\n" {
		t.Errorf("rw bind: host sees %q", b)
	}
	if strings.Contains(out, "ro-writable") {
		t.Error("read-only bind was writable")
	}
	if _, err := os.Stat(ro + "/g"); err == nil {
		t.Error("file appeared in the read-only source")
	}
	if !strings.Contains(out, "No space left") || !strings.Contains(out, "size=1024k") {
		t.Errorf("tmpfs size not enforced:\n%s", out)
	}
	// Recursive binds carry submounts; norecursive ones do not.
	sub := rw + "/sub"
	os.Mkdir(sub, 0o755)
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(sub, unix.MNT_DETACH)
	r := report(t, newConfig().WithBind(rw, "/rec", true))
	if m := mountAt(t, r, "/rec/sub"); m.FSType != "tmpfs" || !m.ReadOnly {
		t.Errorf("recursive read-only bind: submount %+v", m)
	}
	m := rootfs.BindRO(rw, "/norec")
	m.NonRecursive = true
	r = report(t, newConfig().WithMount(m))
	if _, ok := r.MountAt("/norec/sub"); ok {
		t.Error("non-recursive bind carried a submount")
	}
}

func TestDirRootfsAndReadonly(t *testing.T) {
	root := testutil.BusyboxRootfsCopy(t)
	cfg := newConfig().WithRootfs(rootfs.Dir(root)).WithHostname("bb")
	out, err := run(t, cfg, "/bin/sh", "-c", "echo written > /hello && cat /etc/hostname && ls /bin/busybox")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if b, _ := os.ReadFile(root + "/hello"); string(b) != "written\n" || !strings.Contains(out, "bb") {
		t.Fatalf("rootfs write: %q, out %q", b, out)
	}
	r := report(t, newConfig().WithRootfs(rootfs.Dir(root)))
	// The mount's root is the directory within its filesystem: the whole
	// path here, a suffix of it where the path crosses a mount (a guest
	// whose /tmp is a tmpfs).
	if m := mountAt(t, r, "/"); !strings.HasSuffix(root, m.Root) || len(m.Root) < len("/rootfs-copy") {
		t.Errorf("/ is %+v, want the bind of %s", m, root)
	}
	// The host's mounts are not there.
	for _, m := range r.Mounts {
		if strings.HasPrefix(m.MountPoint, "/work") || m.MountPoint == "/usr" {
			t.Errorf("host mount %s visible", m.MountPoint)
		}
	}
	tr := try(t, newConfig().WithRootfs(rootfs.Dir(root)).WithReadOnlyRootfs(true), "open", "/newfile", "create")
	if tr.OK || tr.ErrnoName != "EROFS" {
		t.Errorf("read-only root: %+v", tr)
	}
}

func TestSymlinkMountTargetStaysInside(t *testing.T) {
	// A rootfs whose /evil points at the host's /tmp must not make vessel
	// mount over the host's directory.
	root := testutil.BusyboxRootfsCopy(t)
	outside := t.TempDir()
	if err := os.Symlink(outside, root+"/evil"); err != nil {
		t.Fatal(err)
	}
	cfg := newConfig().WithRootfs(rootfs.Dir(root)).WithTmpfs("/evil/x", 0)
	out, err := run(t, cfg, "/bin/sh", "-c", "echo hi > /evil/x/f")
	// The symlink resolves inside the root, where its target is missing:
	// the start fails with a SetupError naming the path, and nothing
	// appears in the host directory it pointed to.
	var se *vessel.SetupError
	if err == nil || !errors.As(err, &se) || !strings.Contains(se.Path, "/evil") {
		t.Fatalf("got %v (%s), want a SetupError for /evil/x", err, out)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("mount point created outside the rootfs through a symlink: %v", ents)
	}
	// With the target present inside, the mount lands inside.
	if err := os.MkdirAll(root+outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, cfg, "/bin/sh", "-c", "echo hi > /evil/x/f && grep -c ' '"+outside+"/x /proc/self/mountinfo"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("host directory touched: %v", ents)
	}
}

func TestTTY(t *testing.T) {
	cfg := withProbe(t, newConfig().WithTTY(true))
	cfg.Process.Rows, cfg.Process.Cols = 33, 111
	c, err := vessel.New(newID(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	var out bytes.Buffer
	c.Stdout = &out
	if err := c.Run(context.Background(), "/probe", "report"); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	r := testutil.MustParseReport(t, out.Bytes())
	if !r.TTY.Stdin || !r.TTY.Stdout || !r.TTY.Stderr || !strings.HasPrefix(r.TTY.Name, "/dev/pts/") || r.TTY.ControllingTTY == 0 {
		t.Fatalf("tty %+v", r.TTY)
	}
	// Resize reaches the process.
	c2, err := vessel.New(newID(t), withProbe(t, newConfig().WithTTY(true)))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Destroy()
	pr, pw := ioPipe()
	var out2 syncBuffer
	c2.Stdin, c2.Stdout = pr, &out2
	if err := c2.Start(context.Background(), "/bin/sh", "-c", "read x; stty size"); err != nil {
		t.Fatal(err)
	}
	if err := c2.Resize(40, 120); err != nil {
		t.Fatal(err)
	}
	pw.Write([]byte("go\n"))
	if err := c2.Wait(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out2.String(), "40 120") {
		t.Fatalf("stty size after resize: %q", out2.String())
	}
	_ = syscall.SIGWINCH
}
