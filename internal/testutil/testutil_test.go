package testutil

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/openvessel/vessel/internal/probe"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	if os.Getenv("VESSEL_TESTUTIL_HELPER") == "requireroot" {
		// Re-executed as an unprivileged user by TestRequireRootFailsForNonRoot.
		os.Exit(m.Run())
	}
	Main(m)
}

// fakeTB records failures instead of failing the real test.
type fakeTB struct {
	testing.TB
	errors []string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Errorf(format string, a ...any) {
	f.errors = append(f.errors, fmt.Sprintf(format, a...))
}
func (f *fakeTB) Fatalf(format string, a ...any) {
	f.errors = append(f.errors, fmt.Sprintf(format, a...))
}

func TestBuildProbeIsStaticAndShared(t *testing.T) {
	RequireRoot(t)
	p1, p2 := BuildProbe(t), BuildProbe(t)
	if p1 != p2 {
		t.Fatalf("BuildProbe built twice: %s, %s", p1, p2)
	}
	f, err := elf.Open(p1)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("probe is dynamically linked (%v)", p.Type)
		}
	}
	st, err := os.Stat(p1)
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("probe mode: %v %v", st.Mode(), err)
	}
	if d, err := os.Stat(filepath.Dir(p1)); err != nil || d.Mode().Perm() != 0o755 {
		t.Errorf("shared dir mode: %v %v", d.Mode(), err)
	}
	out := RunProbe(t, "help")
	if !strings.Contains(string(out), "report") || !strings.Contains(string(out), "try") {
		t.Errorf("probe help: %s", out)
	}
}

func TestModuleRoot(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if !isVesselRoot(root) {
		t.Errorf("ModuleRoot() = %s, which is not the vessel module", root)
	}
	if isVesselRoot(t.TempDir()) {
		t.Error("an empty directory passes as the module root")
	}
}

func TestBusyboxRootfs(t *testing.T) {
	RequireRoot(t)
	root := BusyboxRootfs(t)
	if again := BusyboxRootfs(t); again != root {
		t.Errorf("BusyboxRootfs built twice: %s, %s", root, again)
	}
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{{"bin/busybox", 0o755}, {"bin/probe", 0o755}, {"tmp", os.ModeDir | os.ModeSticky | 0o777},
		{"proc", os.ModeDir | 0o555}, {"dev", os.ModeDir | 0o755}, {"sys", os.ModeDir | 0o555}, {"etc/passwd", 0o644}} {
		st, err := os.Lstat(filepath.Join(root, c.path))
		if err != nil || st.Mode() != c.mode {
			t.Errorf("%s: mode %v (%v), want %v", c.path, st.Mode(), err, c.mode)
		}
	}
	for _, applet := range []string{"sh", "ls", "cat", "echo", "sleep", "true", "false", "id", "hostname", "mount", "ps"} {
		if l, err := os.Readlink(filepath.Join(root, "bin", applet)); err != nil || l != "busybox" {
			t.Errorf("bin/%s -> %q (%v), want busybox", applet, l, err)
		}
	}
	if st, err := os.Stat(filepath.Join(root, "home/user")); err != nil || st.Sys().(*syscall.Stat_t).Uid != UserUID {
		t.Errorf("home/user not owned by %d: %v", UserUID, err)
	}
	// It works as a root: busybox's sh and id, and the probe, run in it.
	cmd := exec.Command("/bin/sh", "-c", "id -un; id -u user; ls /proc | wc -l; /bin/probe exit 3; echo $?")
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sh in the rootfs: %v\n%s", err, out)
	}
	if got := strings.Fields(string(out)); len(got) != 4 || got[0] != "root" || got[1] != "1000" || got[2] != "0" || got[3] != "3" {
		t.Errorf("sh in the rootfs printed %q, want root, 1000, an empty /proc (0) and 3", out)
	}
}

func TestBusyboxRootfsCopy(t *testing.T) {
	RequireRoot(t)
	shared := BusyboxRootfs(t)
	var copyPath string
	t.Run("copy", func(t *testing.T) {
		copyPath = BusyboxRootfsCopy(t)
		if copyPath == shared {
			t.Fatal("the copy is the shared rootfs")
		}
		if err := os.WriteFile(filepath.Join(copyPath, "tmp/x"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(shared, "tmp/x")); !os.IsNotExist(err) {
			t.Error("writing the copy changed the shared rootfs")
		}
		for _, p := range []string{"tmp", "bin/sh", "bin/probe", "home/user", "root"} {
			a, err1 := os.Lstat(filepath.Join(shared, p))
			b, err2 := os.Lstat(filepath.Join(copyPath, p))
			if err1 != nil || err2 != nil || a.Mode() != b.Mode() ||
				a.Sys().(*syscall.Stat_t).Uid != b.Sys().(*syscall.Stat_t).Uid {
				t.Errorf("%s differs in the copy: %v %v / %v %v", p, a.Mode(), err1, b.Mode(), err2)
			}
		}
	})
	if _, err := os.Stat(copyPath); !os.IsNotExist(err) {
		t.Errorf("copy %s not removed after its test: %v", copyPath, err)
	}
}

func TestBusyboxMissing(t *testing.T) {
	t.Setenv("VESSEL_BUSYBOX", "/nonexistent/busybox")
	_, err := buildBusyboxRootfs("/nonexistent/probe")
	if err == nil || !strings.Contains(err.Error(), "apt-get install -y busybox-static") {
		t.Errorf("error %v, want one that says how to install busybox", err)
	}
}

func TestParseHelpers(t *testing.T) {
	out := []byte("some banner\n{\"action\":\"mount\",\"args\":[],\"ok\":false,\"errno\":1,\"errnoName\":\"EPERM\",\"step\":\"mount\",\"detail\":\"x\"}\n")
	r, err := ParseTry(out)
	if err != nil || r.Action != "mount" || r.Errno != 1 || r.OK {
		t.Errorf("ParseTry: %+v %v", r, err)
	}
	for _, bad := range []string{"", "not json", `{"action":"x","surprise":1}`, `{"ok":true}`} {
		if _, err := ParseTry([]byte(bad)); err == nil {
			t.Errorf("ParseTry(%q): no error", bad)
		}
	}
	if _, err := ParseReport([]byte(`{"pid":1,"unknown_field":2}`)); err == nil {
		t.Error("ParseReport accepted an unknown field")
	}
	rep, err := ParseReport([]byte(`{"pid":7,"errors":{"etc_hosts":"open /etc/hosts: no such file"}}`))
	if err != nil || rep.PID != 7 || rep.Err("etc_hosts") == nil || rep.Err("pid") != nil {
		t.Errorf("ParseReport: %+v %v", rep, err)
	}
	ls, err := ParseLs([]byte(`[{"name":"a","type":"file","mode":"0644","uid":0,"gid":0,"size":1}]`))
	if err != nil || len(ls) != 1 || ls[0].Name != "a" {
		t.Errorf("ParseLs: %+v %v", ls, err)
	}
}

func TestAssertDeniedAndAllowed(t *testing.T) {
	denied := &probe.TryResult{Action: "mount", Errno: int(unix.EPERM), ErrnoName: "EPERM", Step: "mount"}
	allowed := &probe.TryResult{Action: "mount", OK: true}
	refused := &probe.TryResult{Action: "umount", Refused: true}
	cases := []struct {
		name  string
		check func(tb *fakeTB)
		fails bool
	}{
		{"denied", func(tb *fakeTB) { AssertDenied(tb, denied) }, false},
		{"denied with errno", func(tb *fakeTB) { AssertDenied(tb, denied, unix.EACCES, unix.EPERM) }, false},
		{"denied other errno", func(tb *fakeTB) { AssertDenied(tb, denied, unix.EACCES) }, true},
		{"allowed is not denied", func(tb *fakeTB) { AssertDenied(tb, allowed) }, true},
		{"refused is not denied", func(tb *fakeTB) { AssertDenied(tb, refused) }, true},
		{"allowed", func(tb *fakeTB) { AssertAllowed(tb, allowed) }, false},
		{"denied is not allowed", func(tb *fakeTB) { AssertAllowed(tb, denied) }, true},
		{"refused is not allowed", func(tb *fakeTB) { AssertAllowed(tb, refused) }, true},
	}
	for _, c := range cases {
		tb := &fakeTB{TB: t}
		c.check(tb)
		if failed := len(tb.errors) > 0; failed != c.fails {
			t.Errorf("%s: failed=%v (%v), want %v", c.name, failed, tb.errors, c.fails)
		}
	}
	tb := &fakeTB{TB: t}
	AssertDenied(tb, denied, unix.EACCES)
	if len(tb.errors) != 1 || !strings.Contains(tb.errors[0], "EPERM") || !strings.Contains(tb.errors[0], "EACCES") {
		t.Errorf("message %q should name the errno got and wanted", tb.errors)
	}
}

func TestReadCounter(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c")
	if err := os.WriteFile(p, []byte(fmt.Sprintf("%0*d\n", probe.CounterWidth, 42)), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := ReadCounter(p); err != nil || n != 42 {
		t.Errorf("ReadCounter = %d, %v", n, err)
	}
	if err := os.WriteFile(p, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCounter(p); err == nil {
		t.Error("no error for a garbage counter")
	}
	if _, err := ReadCounter(p + ".missing"); err == nil {
		t.Error("no error for a missing counter")
	}
}

func TestHostMarker(t *testing.T) {
	var path string
	t.Run("marker", func(t *testing.T) {
		path = HostMarker(t)
		b, err := os.ReadFile(path)
		if err != nil || !strings.Contains(string(b), filepath.Base(path)) || !strings.HasPrefix(path, "/tmp/") {
			t.Errorf("marker %s: %q %v", path, b, err)
		}
	})
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("marker %s not removed: %v", path, err)
	}
}

func TestHostStateDetectsLeaks(t *testing.T) {
	RequireRoot(t)
	// Other test binaries may mount and create links on this host at the
	// same time: compare only what this test touches.
	mnt := t.TempDir()
	onlyOurs := []DiffOption{
		IgnoreMounts(func(mp string) bool { return mp != mnt }),
		IgnoreLinks(func(string) bool { return true }),
	}
	before := SnapshotHost(t)
	if d := before.Diff(SnapshotHost(t), onlyOurs...); len(d) != 0 {
		t.Fatalf("two snapshots in a row differ: %v", d)
	}
	if before.MountCount == 0 || before.MountPoints["/proc"] == 0 || len(before.Links) == 0 || len(before.FDs) < 3 {
		t.Fatalf("implausible snapshot: %+v", before)
	}

	f, err := os.Open("/etc/hostname")
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(BuildProbe(t), "sleep", "30")
	if err := child.Start(); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	during := SnapshotHost(t)
	_ = unix.Unmount(mnt, 0)
	f.Close()

	d := strings.Join(before.Diff(during), "\n")
	for _, want := range []string{
		"mount count", "+ mount " + mnt + " (tmpfs) x1", "-> /etc/hostname",
		fmt.Sprintf("+ child process %d probe", child.Process.Pid),
	} {
		if !strings.Contains(d, want) {
			t.Errorf("diff lacks %q:\n%s", want, d)
		}
	}
	tb := &fakeTB{TB: t}
	AssertUnchanged(tb, before, during)
	if len(tb.errors) != 1 || !strings.Contains(tb.errors[0], "host state changed") {
		t.Errorf("AssertUnchanged did not fail: %v", tb.errors)
	}
	// With the mount ignored, only the fd and child remain.
	d2 := before.Diff(during, IgnoreMounts(func(mp string) bool { return mp == mnt }))
	if strings.Contains(strings.Join(d2, "\n"), "mount") {
		t.Errorf("IgnoreMounts left mount lines: %v", d2)
	}

	// Killed and reaped, the child is gone; the state is back to before.
	_ = child.Process.Kill()
	_ = child.Wait()
	AssertUnchanged(t, before, SnapshotHost(t), onlyOurs...)
}

func TestHostStateDiffLinks(t *testing.T) {
	before := HostState{Links: []string{"eth0", "lo"}, NetNS: []string{}, Children: map[int]string{5: "old (S)"}}
	after := HostState{Links: []string{"lo", "veth-x", "vessel-br0"}, NetNS: []string{"vessel-1"}, Children: map[int]string{}}
	d := strings.Join(before.Diff(after), "\n")
	for _, want := range []string{"+ link veth-x", "+ link vessel-br0", "- link eth0", "+ netns vessel-1"} {
		if !strings.Contains(d, want) {
			t.Errorf("diff lacks %q:\n%s", want, d)
		}
	}
	if strings.Contains(d, "old") {
		t.Errorf("a child that exited counts as a difference:\n%s", d)
	}
	d = strings.Join(before.Diff(after, IgnoreLinks(func(n string) bool { return !strings.HasPrefix(n, "vessel-") })), "\n")
	if strings.Contains(d, "veth-x") || strings.Contains(d, "eth0") || !strings.Contains(d, "vessel-br0") {
		t.Errorf("IgnoreLinks: %s", d)
	}
}

func TestRequireRootHelperProcess(t *testing.T) {
	if os.Getenv("VESSEL_TESTUTIL_HELPER") != "requireroot" {
		return // only meaningful when re-executed by TestRequireRootFailsForNonRoot
	}
	RequireRoot(t)
	t.Log("RequireRoot did not stop a non-root test")
}

func TestRequireRootFailsForNonRoot(t *testing.T) {
	RequireRoot(t)
	// Run this test binary as an unprivileged user; it must fail, not skip.
	dir, err := sharedDir()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "testutil.test")
	if _, err := os.Stat(bin); os.IsNotExist(err) {
		if err := copyFile(os.Args[0], bin, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-test.run=^TestRequireRootHelperProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "VESSEL_TESTUTIL_HELPER=requireroot")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: UserUID, Gid: UserGID, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if exitCode(err) != 1 || !strings.Contains(string(out), "must run as root") || !strings.Contains(string(out), "--- FAIL") {
		t.Errorf("non-root run: %v\n%s", err, out)
	}
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err == nil {
		return 0
	}
	return -1
}

// The nop program is a valid static executable that exits 0 and touches
// nothing else: run on the host, it reports success and prints nothing.
func TestNopELFRunsAndExitsZero(t *testing.T) {
	b, err := NopELF()
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not an ELF file: %v", err)
	}
	if f.Type != elf.ET_EXEC || len(f.Progs) != 1 || f.Progs[0].Type != elf.PT_LOAD {
		t.Fatalf("want one PT_LOAD in an ET_EXEC, got type %v, %d program headers", f.Type, len(f.Progs))
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("nop has an interpreter")
		}
	}
	p := filepath.Join(t.TempDir(), "nop")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(p).CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Fatalf("nop: err %v, output %q", err, out)
	}
	// And in the rootfs, where the benchmarks run it.
	root := BusyboxRootfs(t)
	got, err := os.ReadFile(filepath.Join(root, RootfsNopPath))
	if err != nil || string(got) != string(b) {
		t.Fatalf("rootfs %s: %v (%d bytes, want %d)", RootfsNopPath, err, len(got), len(b))
	}
}

// TestAssertUnchangedScopesToVessel: by default the leak check sees mounts
// under vessel's directories and this test's own temporary directories,
// and vessel-named links and network namespaces, and nothing else on the
// host: not another test binary's temporary directories either.
func TestAssertUnchangedScopesToVessel(t *testing.T) {
	tmp := os.TempDir()
	mine := filepath.Join(tmp, "TestAssertUnchangedScopesToVessel123", "001")
	sub := filepath.Join(tmp, "TestAssertUnchangedScopesToVesselsub456", "001", "m")
	before := HostState{
		MountCount:  2,
		MountPoints: map[string]int{"/": 1, "/proc": 1},
		MountTypes:  map[string]string{},
		Links:       []string{"eth0", "lo"},
		NetNS:       []string{},
	}
	foreign := HostState{
		MountCount: 7,
		MountPoints: map[string]int{"/": 1, "/proc": 1, "/var/lib/containers/storage/overlay/x/merged": 1, "/run/netns/netns-1234": 1, "/run/netns": 1,
			filepath.Join(tmp, "BenchmarkCheckpointVsRunc851413761", "007", "criu-root"): 1, filepath.Join(tmp, "TestOther99", "001"): 1},
		MountTypes: map[string]string{},
		Links:      []string{"eth0", "lo", "podman0", "veth1234"},
		NetNS:      []string{"netns-1234"},
	}
	tb := &fakeTB{TB: t}
	AssertUnchanged(tb, before, foreign)
	if len(tb.errors) != 0 {
		t.Errorf("other programs' mounts and links failed the leak check: %v", tb.errors)
	}

	ours := HostState{
		MountCount: 8,
		MountPoints: map[string]int{"/": 1, "/proc": 1, mine: 1, sub: 1, filepath.Join(tmp, "vessel-bench-42", "root"): 1,
			"/run/vessel/network/ns/a": 1, "/var/lib/vessel/layers/x": 1, "/run/netns/vck-a-1": 1},
		MountTypes: map[string]string{},
		Links:      []string{"eth0", "lo", "vessel0", "vx12ab", "vt-br"},
		NetNS:      []string{"vessel-1"},
	}
	tb = &fakeTB{TB: t}
	AssertUnchanged(tb, before, ours)
	if len(tb.errors) != 1 {
		t.Fatalf("vessel's own mounts and links did not fail the leak check: %v", tb.errors)
	}
	for _, want := range []string{"+ mount " + mine, "+ mount " + sub, "+ mount " + filepath.Join(tmp, "vessel-bench-42", "root"),
		"+ mount /run/vessel/network/ns/a", "+ mount /var/lib/vessel/layers/x",
		"+ mount /run/netns/vck-a-1", "+ link vessel0", "+ link vx12ab", "+ link vt-br", "+ netns vessel-1"} {
		if !strings.Contains(tb.errors[0], want) {
			t.Errorf("leak report lacks %q:\n%s", want, tb.errors[0])
		}
	}
	if strings.Contains(tb.errors[0], "mount count") {
		t.Errorf("the whole host's mount count was compared:\n%s", tb.errors[0])
	}

	// A caller's own scope replaces the default.
	tb = &fakeTB{TB: t}
	AssertUnchanged(tb, before, foreign, IgnoreMounts(func(mp string) bool { return mp != "/run/netns" }))
	if len(tb.errors) != 1 || !strings.Contains(tb.errors[0], "+ mount /run/netns ") {
		t.Errorf("IgnoreMounts did not replace the default scope: %v", tb.errors)
	}
}

func TestDiskTempDirIsRemoved(t *testing.T) {
	var dir string
	t.Run("inner", func(t *testing.T) {
		dir = DiskTempDir(t)
		if !strings.HasPrefix(dir, "/var/tmp/vessel-test-") {
			t.Errorf("DiskTempDir = %s, want one under /var/tmp", dir)
		}
		// A read-only directory with a file in it, as a layer has.
		if err := os.MkdirAll(dir+"/ro/sub", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dir+"/ro/sub/f", nil, 0o444); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir+"/ro", 0o555); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s is left after its test: %v", dir, err)
	}
}
