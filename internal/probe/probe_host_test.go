package probe_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/internal/probe"
	"github.com/openvessel/vessel/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// runProbe runs the probe with attr and returns stdout; a non-zero exit
// fails the test.
func runProbe(t *testing.T, attr *syscall.SysProcAttr, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(testutil.BuildProbe(t), args...)
	cmd.SysProcAttr = attr
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("probe %v: %v\n%s%s", args, err, stdout.String(), stderr.String())
	}
	return stdout.Bytes()
}

func try(t *testing.T, attr *syscall.SysProcAttr, args ...string) *probe.TryResult {
	t.Helper()
	return testutil.MustParseTry(t, runProbe(t, attr, append([]string{"try"}, args...)...))
}

func selfNS(t *testing.T) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	entries, err := os.ReadDir("/proc/self/ns")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		l, err := os.Readlink("/proc/self/ns/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		_, ino, err := probe.ParseNamespaceLink(l)
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = ino
	}
	return out
}

func TestReportOnHostMatchesTestProcess(t *testing.T) {
	testutil.RequireRoot(t)
	bin := testutil.BuildProbe(t)
	dir := t.TempDir()

	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()

	cmd := exec.Command(bin, "report")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "VESSEL_PROBE_TEST_MARK=42")
	cmd.Stdin = tty
	// An inherited descriptor without close-on-exec must be reported.
	extra, err := os.Open(filepath.Join("/proc/self/status"))
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	cmd.ExtraFiles = []*os.File{extra}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr

	var before, after unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &before)
	if err := cmd.Run(); err != nil {
		t.Fatalf("probe report: %v\n%s", err, stderr.String())
	}
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &after)
	r := testutil.MustParseReport(t, stdout.Bytes())

	if len(r.Errors) != 0 {
		t.Errorf("report has read errors on the host: %v", r.Errors)
	}
	if r.PPID != os.Getpid() || r.PID != cmd.Process.Pid {
		t.Errorf("pid %d ppid %d, want %d and %d", r.PID, r.PPID, cmd.Process.Pid, os.Getpid())
	}
	if len(r.NSPID) != 1 || r.NSPID[0] != r.PID {
		t.Errorf("nspid %v, want [%d]", r.NSPID, r.PID)
	}
	if r.UID != os.Getuid() || r.EUID != os.Geteuid() || r.GID != os.Getgid() || r.EGID != os.Getegid() {
		t.Errorf("ids %d/%d/%d/%d", r.UID, r.EUID, r.GID, r.EGID)
	}
	groups, _ := unix.Getgroups()
	sort.Ints(groups)
	sort.Ints(r.Groups)
	if fmt.Sprint(groups) != fmt.Sprint(r.Groups) {
		t.Errorf("groups %v, want %v", r.Groups, groups)
	}
	host, _ := os.Hostname()
	if r.Hostname != host {
		t.Errorf("hostname %q, want %q", r.Hostname, host)
	}
	if r.Cwd != dir {
		t.Errorf("cwd %q, want %q", r.Cwd, dir)
	}
	if r.Exe != bin {
		t.Errorf("exe %q, want %q", r.Exe, bin)
	}
	mask := unix.Umask(0)
	unix.Umask(mask)
	if r.Umask != fmt.Sprintf("%04o", mask) {
		t.Errorf("umask %q, want %04o", r.Umask, mask)
	}
	found := false
	for _, e := range r.Env {
		found = found || e == "VESSEL_PROBE_TEST_MARK=42"
	}
	if !found {
		t.Error("env lacks VESSEL_PROBE_TEST_MARK=42")
	}
	for _, m := range []struct {
		file string
		got  []probe.IDMapEntry
	}{{"/proc/self/uid_map", r.UIDMap}, {"/proc/self/gid_map", r.GIDMap}} {
		b, err := os.ReadFile(m.file)
		if err != nil {
			t.Fatal(err)
		}
		want, err := probe.ParseIDMap(string(b))
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(want) != fmt.Sprint(m.got) || len(want) == 0 {
			t.Errorf("%s: got %v, want %v", m.file, m.got, want)
		}
	}
	if r.Setgroups != "allow" {
		t.Errorf("setgroups %q", r.Setgroups)
	}
	if ns := selfNS(t); fmt.Sprint(ns) != fmt.Sprint(r.Namespaces) || len(ns) < 8 {
		t.Errorf("namespaces %v, want %v", r.Namespaces, ns)
	}
	cgText, _ := os.ReadFile("/proc/self/cgroup")
	wantCg, _ := probe.ParseCgroup(string(cgText))
	if fmt.Sprint(wantCg) != fmt.Sprint(r.Cgroups) {
		t.Errorf("cgroups %v, want %v", r.Cgroups, wantCg)
	}
	status := probe.ParseStatus(string(mustRead(t, "/proc/self/status")))
	if want, _ := probe.ParseCapSet(status["CapEff"]); r.Capabilities.Effective.Hex != want.Hex {
		t.Errorf("CapEff %s, want %s", r.Capabilities.Effective.Hex, want.Hex)
	}
	if want, _ := probe.ParseCapSet(status["CapBnd"]); r.Capabilities.Bounding.Hex != want.Hex || !r.Capabilities.Bounding.Has("CAP_SYS_ADMIN") {
		t.Errorf("CapBnd %s, want %s", r.Capabilities.Bounding.Hex, want.Hex)
	}
	if r.NoNewPrivs != (status["NoNewPrivs"] == "1") || strconv.Itoa(r.Seccomp) != status["Seccomp"] {
		t.Errorf("no_new_privs %v seccomp %d, status says %s %s", r.NoNewPrivs, r.Seccomp, status["NoNewPrivs"], status["Seccomp"])
	}
	if abi, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION); errno != 0 || int(abi) != r.LandlockABI {
		t.Errorf("landlock ABI %d, test process sees %d (%v)", r.LandlockABI, abi, errno)
	}
	if r.Dumpable != 1 {
		t.Errorf("dumpable %d, want 1", r.Dumpable)
	}
	if m, ok := r.MountAt("/proc"); !ok || m.FSType != "proc" {
		t.Errorf("no proc mount at /proc: %+v", m)
	}
	if _, ok := r.MountAt("/"); !ok {
		t.Error("no mount at /")
	}
	var nofile unix.Rlimit
	_ = unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile)
	if got := r.Rlimits["RLIMIT_NOFILE"]; got.Max != nofile.Max || len(r.Rlimits) != 16 {
		t.Errorf("RLIMIT_NOFILE %+v, want max %d; %d limits", got, nofile.Max, len(r.Rlimits))
	}
	if adj := strings.TrimSpace(string(mustRead(t, "/proc/self/oom_score_adj"))); strconv.Itoa(r.OOMScoreAdj) != adj {
		t.Errorf("oom_score_adj %d, want %s", r.OOMScoreAdj, adj)
	}
	mono := r.Clocks.Monotonic.Duration()
	if mono < time.Duration(before.Nano()) || mono > time.Duration(after.Nano()) {
		t.Errorf("monotonic %v not between %v and %v", mono, time.Duration(before.Nano()), time.Duration(after.Nano()))
	}
	if r.Clocks.Boottime.Duration() < mono {
		t.Errorf("boottime %v before monotonic %v", r.Clocks.Boottime.Duration(), mono)
	}
	lo, ok := r.Interface("lo")
	if !ok || !lo.Up || !lo.Loopback || !contains(lo.Addrs, "127.0.0.1/8") {
		t.Errorf("lo: %+v", lo)
	}
	if hosts := string(mustRead(t, "/etc/hosts")); r.EtcHosts != hosts {
		t.Errorf("etc_hosts %q, want %q", r.EtcHosts, hosts)
	}
	if !r.TTY.Stdin || r.TTY.Stdout || r.TTY.Name != tty.Name() {
		t.Errorf("tty %+v, want stdin a tty named %s and stdout not", r.TTY, tty.Name())
	}
	if got := r.FDs[3]; got != "/proc/"+strconv.Itoa(os.Getpid())+"/status" {
		t.Errorf("fd 3 -> %q, want the inherited /proc/<test pid>/status", got)
	}
	// Besides 0-3 the probe inherits what the test process itself inherited
	// without close-on-exec (os/exec does not close those).
	want := map[int]bool{0: true, 1: true, 2: true, 3: true}
	for fd := range openFDs(t) {
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			want[fd] = true
		}
	}
	for fd := range r.FDs {
		if !want[fd] {
			t.Errorf("fd %d -> %s reported, but it was not inherited", fd, r.FDs[fd])
		}
	}
	for fd := range want {
		if _, ok := r.FDs[fd]; !ok {
			t.Errorf("inherited fd %d not reported", fd)
		}
	}
	if r.ProcCount < 2 || r.NumCPU < 1 || r.CPUsAllowed == "" || r.Kernel == "" {
		t.Errorf("proc_count %d num_cpu %d cpus_allowed %q kernel %q", r.ProcCount, r.NumCPU, r.CPUsAllowed, r.Kernel)
	}
}

func TestReportInNewNamespaces(t *testing.T) {
	testutil.RequireRoot(t)
	out := runProbe(t, &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUTS | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		Credential:  &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
	}, "report")
	r := testutil.MustParseReport(t, out)
	host := selfNS(t)
	for _, ns := range []string{"uts", "pid_for_children", "net", "user"} {
		if r.Namespaces[ns] == host[ns] {
			t.Errorf("namespace %s not new: %d", ns, r.Namespaces[ns])
		}
	}
	if r.Namespaces["mnt"] != host["mnt"] {
		t.Errorf("mount namespace changed without CLONE_NEWNS")
	}
	if r.PID != 1 || len(r.NSPID) != 2 || r.NSPID[1] != 1 {
		t.Errorf("pid %d nspid %v, want 1 and [host 1]", r.PID, r.NSPID)
	}
	if want := []probe.IDMapEntry{{Inside: 0, Outside: 100000, Count: 65536}}; fmt.Sprint(r.UIDMap) != fmt.Sprint(want) {
		t.Errorf("uid_map %v, want %v", r.UIDMap, want)
	}
	if len(r.Interfaces) != 1 || r.Interfaces[0].Name != "lo" || r.Interfaces[0].Up {
		t.Errorf("interfaces %+v, want only lo, down", r.Interfaces)
	}
	if r.UID != 0 || !r.Capabilities.Effective.Has("CAP_SYS_ADMIN") {
		t.Errorf("uid %d caps %v: want root with a full set in the new user namespace", r.UID, r.Capabilities.Effective.Names)
	}
}

// checkNoLeaks snapshots the test process and /tmp now and, when the test
// ends, fails it if the probe left a mount under dir or /mnt, a scratch
// directory in /tmp, a descriptor or a child process behind.
func checkNoLeaks(t *testing.T, dir string) {
	t.Helper()
	testutil.BuildProbe(t) // build first: the build's own descriptors are not a leak
	before := testutil.SnapshotHost(t)
	scratch := func() []string {
		m, _ := filepath.Glob("/tmp/vessel-probe-*")
		return m
	}
	scratchBefore := fmt.Sprint(scratch())
	t.Cleanup(func() {
		testutil.AssertUnchanged(t, before, testutil.SnapshotHost(t),
			testutil.IgnoreMounts(func(mp string) bool { return !strings.HasPrefix(mp, dir) && mp != "/mnt" }),
			testutil.IgnoreLinks(func(string) bool { return true }))
		if got := fmt.Sprint(scratch()); got != scratchBefore {
			t.Errorf("scratch directories in /tmp: before %s, after %s", scratchBefore, got)
		}
	})
}

func TestTryOnHost(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	checkNoLeaks(t, dir)

	// Refusals that keep the host intact.
	for _, a := range []string{"umount", "pivot_root"} {
		r := try(t, nil, a)
		if !r.Refused || r.OK {
			t.Errorf("%s on the host: %+v, want refused", a, r)
		}
	}
	if r := try(t, nil, "syscall", strconv.Itoa(unix.SYS_EXIT_GROUP)); !r.Refused {
		t.Errorf("syscall exit_group: %+v, want refused", r)
	}

	testutil.AssertAllowed(t, try(t, nil, "syscall", strconv.Itoa(unix.SYS_GETPID)))
	testutil.AssertDenied(t, try(t, nil, "syscall", "100000"), unix.ENOSYS)
	testutil.AssertDenied(t, try(t, nil, "write-exe", "/proc/self/exe"), unix.ETXTBSY)
	testutil.AssertDenied(t, try(t, nil, "open", filepath.Join(dir, "missing")), unix.ENOENT)

	created := filepath.Join(dir, "created")
	testutil.AssertAllowed(t, try(t, nil, "open", created, "create"))
	if _, err := os.Stat(created); err != nil {
		t.Errorf("open create did not create the file: %v", err)
	}
	if r := try(t, nil, "open", created, "r"); !r.OK || r.Object != "regular" || r.FS == "" {
		t.Errorf("open r: %+v", r)
	}
	testutil.AssertDenied(t, try(t, nil, "open", created, "excl"), unix.EEXIST)
	testutil.AssertAllowed(t, try(t, nil, "mkdir", filepath.Join(dir, "d")))
	testutil.AssertAllowed(t, try(t, nil, "rename", filepath.Join(dir, "d"), filepath.Join(dir, "e")))
	testutil.AssertAllowed(t, try(t, nil, "remove", filepath.Join(dir, "e")))
	if _, err := os.Stat(filepath.Join(dir, "e")); !os.IsNotExist(err) {
		t.Errorf("remove left the directory: %v", err)
	}

	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.AssertAllowed(t, try(t, nil, "mount", mnt))
	if strings.Contains(string(mustRead(t, "/proc/self/mountinfo")), " "+mnt+" ") {
		t.Errorf("try mount left %s mounted", mnt)
	}

	if r := try(t, nil, "mknod", dir); !r.OK || r.Object != "chardev 1:3" {
		t.Errorf("mknod: %+v", r)
	}
	if r := try(t, nil, "read-root", "/proc/self/root/etc/hosts"); !r.OK || r.Data != string(mustRead(t, "/etc/hosts")) {
		t.Errorf("read-root: %+v", r)
	}
	if r := try(t, nil, "write-procsys", "/proc/sys/kernel/hostname"); !r.OK || r.FS != "proc" {
		t.Errorf("write-procsys (current value back): %+v", r)
	}
	if r := try(t, nil, "open_by_handle_at", dir); !r.OK || r.Object != "dir" {
		t.Errorf("open_by_handle_at: %+v", r)
	}
	testutil.AssertAllowed(t, try(t, nil, "unshare-ns", "net,uts,ipc"))
	testutil.AssertAllowed(t, try(t, nil, "unshare-user"))
	testutil.AssertAllowed(t, try(t, nil, "clone-ns", "pid,mnt,user"))
	testutil.AssertAllowed(t, try(t, nil, "sethostname"))
	testutil.AssertDenied(t, try(t, nil, "kill", "2147483647", "0"), unix.ESRCH)
	testutil.AssertAllowed(t, try(t, nil, "exec", "/bin/true"))
	testutil.AssertDenied(t, try(t, nil, "exec", filepath.Join(dir, "nothing")), unix.ENOENT)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testutil.AssertAllowed(t, try(t, nil, "connect", l.Addr().String()))
	port := l.Addr().(*net.TCPAddr).Port
	testutil.AssertDenied(t, try(t, nil, "bind", strconv.Itoa(port), "127.0.0.1"), unix.EADDRINUSE)
	l.Close()
	testutil.AssertDenied(t, try(t, nil, "connect", l.Addr().String(), "1"), unix.ECONNREFUSED)
	testutil.AssertAllowed(t, try(t, nil, "bind", "0", "127.0.0.1"))
}

func TestTryPtraceLeavesTargetRunning(t *testing.T) {
	testutil.RequireRoot(t)
	target := exec.Command(testutil.BuildProbe(t), "sleep", "30")
	if err := target.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = target.Process.Kill(); _ = target.Wait() }()
	pid := strconv.Itoa(target.Process.Pid)
	testutil.AssertAllowed(t, try(t, nil, "ptrace-attach", pid))
	stat := string(mustRead(t, "/proc/"+pid+"/stat"))
	fields := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:])
	if fields[0] == "t" || fields[0] == "T" {
		t.Errorf("target left stopped: %s", stat)
	}
	status := probe.ParseStatus(string(mustRead(t, "/proc/"+pid+"/status")))
	if status["TracerPid"] != "0" {
		t.Errorf("target still traced by %s", status["TracerPid"])
	}
}

// unprivileged runs the probe as the busybox rootfs's user account.
var unprivileged = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: testutil.UserUID, Gid: testutil.UserGID, Groups: []uint32{}}}

func TestTryDeniedForUnprivilegedUser(t *testing.T) {
	testutil.RequireRoot(t)
	// A directory the user can reach (t.TempDir's parent is 0700).
	dir, err := os.MkdirTemp("", "vessel-probe-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.AssertDenied(t, try(t, unprivileged, "mount", dir), unix.EPERM)
	testutil.AssertDenied(t, try(t, unprivileged, "unshare-ns", "net"), unix.EPERM)
	testutil.AssertDenied(t, try(t, unprivileged, "sethostname"), unix.EPERM)
	testutil.AssertDenied(t, try(t, unprivileged, "settime"), unix.EPERM)
	testutil.AssertDenied(t, try(t, unprivileged, "raw-socket"), unix.EPERM)
	testutil.AssertDenied(t, try(t, unprivileged, "chown", dir, "0", "0"), unix.EPERM)
	testutil.AssertDenied(t, try(t, unprivileged, "setuid", "0"), unix.EPERM)
	testutil.AssertDenied(t, try(t, unprivileged, "mknod", "/tmp"), unix.EPERM)
	testutil.AssertDenied(t, try(t, unprivileged, "open_by_handle_at", "/"), unix.EPERM)
	testutil.AssertDenied(t, try(t, unprivileged, "write-procsys", "/proc/sys/kernel/hostname"), unix.EACCES)
	testutil.AssertDenied(t, try(t, unprivileged, "read-root", "/proc/1/root/etc/hostname"), unix.EACCES)
	testutil.AssertDenied(t, try(t, unprivileged, "ptrace-attach", strconv.Itoa(os.Getpid())), unix.EPERM)
	testutil.AssertDenied(t, try(t, unprivileged, "bind", "80", "127.0.0.1"), unix.EACCES)
}

func TestTryChrootEscape(t *testing.T) {
	testutil.RequireRoot(t)
	rootfs := testutil.BusyboxRootfsCopy(t)
	marker := testutil.HostMarker(t)
	run := func(attr *syscall.SysProcAttr, args ...string) *probe.TryResult {
		t.Helper()
		attr.Chroot = rootfs
		cmd := exec.Command(testutil.RootfsProbePath, append([]string{"try"}, args...)...)
		cmd.SysProcAttr = attr
		cmd.Dir = "/"
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("probe try %v in a chroot: %v\n%s", args, err, out)
		}
		return testutil.MustParseTry(t, out)
	}
	// The marker is not visible in the chroot...
	testutil.AssertDenied(t, run(&syscall.SysProcAttr{}, "read-root", marker), unix.ENOENT)
	// ...but a plain chroot does not hold root: the classic escape finds it.
	r := run(&syscall.SysProcAttr{}, "chroot-escape", marker)
	testutil.AssertAllowed(t, r)
	if !strings.Contains(r.Detail, "visible before: false, after: true") {
		t.Errorf("chroot-escape detail: %s", r.Detail)
	}
	// Without CAP_SYS_CHROOT the first chroot fails.
	testutil.AssertDenied(t, run(&syscall.SysProcAttr{Credential: unprivileged.Credential}, "chroot-escape", marker), unix.EPERM)
	// With a marker that exists nowhere the sequence runs but finds nothing.
	testutil.AssertDenied(t, run(&syscall.SysProcAttr{}, "chroot-escape", marker+"-absent"), unix.ENOENT)
}

func TestTryInPrivateMountNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	checkNoLeaks(t, "/tmp/vessel-probe-")
	attr := func() *syscall.SysProcAttr { return &syscall.SysProcAttr{Unshareflags: unix.CLONE_NEWNS} }
	r := try(t, attr(), "pivot_root")
	testutil.AssertAllowed(t, r)
	testutil.AssertAllowed(t, try(t, attr(), "umount", "/"))
	ra := try(t, attr(), "release-agent")
	if !ra.OK || ra.FS != "cgroup" {
		t.Errorf("release-agent as host root in a private mount namespace: %+v", ra)
	}
	// In a user namespace the kernel must refuse the release_agent write
	// (CVE-2022-0492) or the mount itself.
	userns := &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
	}
	testutil.AssertDenied(t, try(t, userns, "release-agent"), unix.EPERM)
}

func TestWorkloadCommands(t *testing.T) {
	testutil.RequireRoot(t)
	bin := testutil.BuildProbe(t)
	dir := t.TempDir()

	cmd := exec.Command(bin, "echo")
	cmd.Stdin = strings.NewReader("hello\nworld\n")
	if out, err := cmd.Output(); err != nil || string(out) != "hello\nworld\n" {
		t.Errorf("echo: %q %v", out, err)
	}
	f := filepath.Join(dir, "f")
	runProbe(t, nil, "write", f, "content")
	if out := runProbe(t, nil, "cat", f); string(out) != "content" {
		t.Errorf("cat: %q", out)
	}
	entries, err := testutil.ParseLs(runProbe(t, nil, "ls", dir))
	if err != nil || len(entries) != 1 || entries[0].Name != "f" || entries[0].Type != "file" || entries[0].Size != 7 || entries[0].Mode != "0644" {
		t.Errorf("ls: %+v %v", entries, err)
	}
	if err := exec.Command(bin, "exit", "7").Run(); exitCode(err) != 7 {
		t.Errorf("exit 7: %v", err)
	}
	if err := exec.Command(bin, "nonsense").Run(); exitCode(err) != 2 {
		t.Errorf("unknown command: %v, want exit status 2", err)
	}
	for _, sig := range []syscall.Signal{unix.SIGTERM, unix.SIGSEGV, unix.SIGKILL, unix.SIGABRT} {
		err := exec.Command(bin, "signal", unix.SignalName(sig)).Run()
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Errorf("signal %v: %v", sig, err)
			continue
		}
		if ws := ee.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != sig {
			t.Errorf("signal %v: exit %v, want death by that signal", sig, ws)
		}
	}

	// spawn: the children are ours' grandchildren and exist while it runs.
	sp := exec.Command(bin, "spawn", "3", "30")
	stdout, err := sp.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	startGroup(t, sp)
	var spawned struct {
		PID  int   `json:"pid"`
		PIDs []int `json:"pids"`
	}
	if err := json.NewDecoder(stdout).Decode(&spawned); err != nil {
		t.Fatal(err)
	}
	if len(spawned.PIDs) != 3 {
		t.Errorf("spawn printed %+v", spawned)
	}
	for _, p := range spawned.PIDs {
		st := string(mustRead(t, "/proc/"+strconv.Itoa(p)+"/stat"))
		if !strings.Contains(st, " "+strconv.Itoa(sp.Process.Pid)+" ") {
			t.Errorf("child %d is not a child of spawn %d: %s", p, sp.Process.Pid, st)
		}
	}
	killGroup(t, sp)

	// count: the counter advances and the file stays one fixed-width line.
	cf := filepath.Join(dir, "counter")
	cnt := exec.Command(bin, "count", cf)
	if err := cnt.Start(); err != nil {
		t.Fatal(err)
	}
	first := waitCounter(t, cf, 1)
	second := waitCounter(t, cf, first+1)
	_ = cnt.Process.Kill()
	_ = cnt.Wait()
	if b := mustRead(t, cf); len(b) != probe.CounterWidth+1 {
		t.Errorf("counter file %q: want %d bytes", b, probe.CounterWidth+1)
	}
	if second <= first {
		t.Errorf("counter did not advance: %d then %d", first, second)
	}
	// A restarted counter continues from the file.
	cnt = exec.Command(bin, "count", cf)
	if err := cnt.Start(); err != nil {
		t.Fatal(err)
	}
	last := waitCounter(t, cf, second+1)
	_ = cnt.Process.Kill()
	_ = cnt.Wait()
	if last <= second {
		t.Errorf("restarted counter %d, want > %d", last, second)
	}

	out := runProbe(t, nil, "alloc", "8", "0")
	if strings.TrimSpace(string(out)) != `{"allocated_mb":8}` {
		t.Errorf("alloc: %q", out)
	}
	var spin struct {
		UserSec float64 `json:"user_sec"`
	}
	if err := json.Unmarshal(runProbe(t, nil, "spin", "0.3"), &spin); err != nil || spin.UserSec <= 0 {
		t.Errorf("spin: %+v %v", spin, err)
	}

	// tty-size reads the window size of the terminal on stdin.
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 33, Cols: 101}); err != nil {
		t.Fatal(err)
	}
	ts := exec.Command(bin, "tty-size")
	ts.Stdin = tty
	if out, err := ts.Output(); err != nil || strings.TrimSpace(string(out)) != `{"rows":33,"cols":101}` {
		t.Errorf("tty-size: %q %v", out, err)
	}

	// trap prints the signal it got.
	tr := exec.Command(bin, "trap", "USR1", "HUP")
	trOut, err := tr.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(trOut)
	if line, err := br.ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("trap: %q %v", line, err)
	}
	_ = tr.Process.Signal(unix.SIGUSR1)
	rest, _ := io.ReadAll(br)
	if err := tr.Wait(); err != nil || strings.TrimSpace(string(rest)) != "SIGUSR1" {
		t.Errorf("trap: %q %v", rest, err)
	}
}

func TestForkbombStopsAtTaskLimit(t *testing.T) {
	testutil.RequireRoot(t)
	// RLIMIT_NPROC bounds the user's tasks the way a pids cgroup bounds the
	// container's; run as a user with no other processes.
	cmd := exec.Command(testutil.BuildProbe(t), "forkbomb", "200")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 64123, Gid: 64123}}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// Apply the limit to the child only, through prlimit after start would
	// race; instead lower it around Start (children inherit it at fork).
	var old unix.Rlimit
	_ = unix.Getrlimit(unix.RLIMIT_NPROC, &old)
	lim := unix.Rlimit{Cur: 40, Max: old.Max}
	if err := unix.Setrlimit(unix.RLIMIT_NPROC, &lim); err != nil {
		t.Fatal(err)
	}
	startGroup(t, cmd)
	_ = unix.Setrlimit(unix.RLIMIT_NPROC, &old)
	defer killGroup(t, cmd)
	var res struct {
		Started   int    `json:"started"`
		ErrnoName string `json:"errnoName"`
	}
	if err := json.NewDecoder(stdout).Decode(&res); err != nil {
		t.Fatal(err)
	}
	if res.Started >= 200 || res.Started < 1 || res.ErrnoName != "EAGAIN" {
		t.Errorf("forkbomb under a 40 task limit: %+v, want stopped early by EAGAIN", res)
	}
}

// startGroup starts cmd as the leader of a new process group, with the test
// process as child subreaper so that the group's orphans are reaped here by
// killGroup rather than left to the host's init.
func startGroup(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	var was int32
	if _, _, errno := unix.Syscall(unix.SYS_PRCTL, unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&was)), 0); errno != 0 {
		t.Fatal(errno)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, uintptr(was), 0, 0, 0) })
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

// killGroup kills cmd's process group, reaps cmd and every orphan of the
// group, and checks that nothing of it is left.
func killGroup(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	pgid := cmd.Process.Pid
	_ = unix.Kill(-pgid, unix.SIGKILL)
	_ = cmd.Wait()
	for {
		if _, err := unix.Wait4(-pgid, nil, 0, nil); err == unix.ECHILD {
			break
		} else if err != nil && err != unix.EINTR {
			t.Errorf("reaping process group %d: %v", pgid, err)
			break
		}
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		st := string(b)
		f := strings.Fields(st[strings.LastIndexByte(st, ')')+1:])
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) {
			t.Errorf("process %s of group %d left behind: %s", e.Name(), pgid, st)
		}
	}
}

func waitCounter(t *testing.T, path string, atLeast int64) int64 {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if n, err := testutil.ReadCounter(path); err == nil && n >= atLeast {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("counter in %s never reached %d", path, atLeast)
	return 0
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

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openFDs(t *testing.T) map[int]bool {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]bool{}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil {
			out[fd] = true
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
