package vessel_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/internal/probe"
	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/rootfs"
	"github.com/openvessel/vessel/security"
)

// These tests check the security profile from inside containers with the
// probe. To stay fast, each container runs a shell script that calls the
// probe many times; every call's output is framed by marker lines so that
// one container answers a whole battery.

// dockerDefaultCaps is Docker's default capability set, which vessel's
// default profile must match exactly.
var dockerDefaultCaps = []string{
	"CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_MKNOD", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP",
	"CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT",
}

// usernsRanges maps container ids 0-65535 to host ids 200000-265535.
func usernsRanges() []namespaces.IDMap {
	return []namespaces.IDMap{{ContainerID: 0, HostID: 200000, Size: 65536}}
}

// probeStep is one probe invocation of a script: its name and its
// arguments (after the probe's path). Shell, when set, is a shell command
// run instead, with the probe's path in $P.
type probeStep struct {
	name  string
	args  []string
	shell string
}

// stepResult is what one step printed and its exit status.
type stepResult struct {
	out string
	rc  int
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// probeScript builds the shell script that runs the steps in order.
func probeScript(probePath string, steps []probeStep) string {
	var b strings.Builder
	fmt.Fprintf(&b, "P=%s\n", shQuote(probePath))
	for _, s := range steps {
		fmt.Fprintf(&b, "echo %s\n", shQuote("@@begin "+s.name))
		if s.shell != "" {
			fmt.Fprintf(&b, "%s\n", s.shell)
		} else {
			b.WriteString(`"$P"`)
			for _, a := range s.args {
				b.WriteString(" " + shQuote(a))
			}
			b.WriteString(" 2>&1\n")
		}
		b.WriteString("echo \"@@rc $?\"\n")
	}
	return b.String()
}

// parseSteps splits a script's output into the steps' results.
func parseSteps(out string) map[string]*stepResult {
	res := map[string]*stepResult{}
	var cur *stepResult
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "@@begin "):
			cur = &stepResult{rc: -1}
			res[strings.TrimPrefix(line, "@@begin ")] = cur
		case strings.HasPrefix(line, "@@rc ") && cur != nil:
			cur.rc, _ = strconv.Atoi(strings.TrimPrefix(line, "@@rc "))
			cur = nil
		case cur != nil:
			cur.out += line + "\n"
		}
	}
	return res
}

// runStepsErr runs the steps in one container made from cfg (which must
// provide /bin/sh and the probe at probePath) and returns their results,
// the container's output and the error of Run. Extra files become
// descriptors 3, 4...
func runStepsErr(t testing.TB, cfg *vessel.Config, probePath string, steps []probeStep, extra ...*os.File) (map[string]*stepResult, string, error) {
	t.Helper()
	c, err := vessel.New(newID(t), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer c.Destroy()
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	c.ExtraFiles = extra
	err = c.Run(context.Background(), "/bin/sh", "-c", probeScript(probePath, steps))
	return parseSteps(out.String()), out.String(), err
}

// runSteps is runStepsErr for a container that must run every step.
func runSteps(t testing.TB, cfg *vessel.Config, probePath string, steps []probeStep, extra ...*os.File) map[string]*stepResult {
	t.Helper()
	res, out, err := runStepsErr(t, cfg, probePath, steps, extra...)
	if err != nil {
		t.Fatalf("script container: %v\n%s", err, out)
	}
	for _, s := range steps {
		if res[s.name] == nil || res[s.name].rc < 0 {
			t.Fatalf("step %q did not run to its end; output:\n%s", s.name, out)
		}
	}
	return res
}

// tryOf parses a step's "probe try" output.
func tryOf(t testing.TB, res map[string]*stepResult, name string) *probe.TryResult {
	t.Helper()
	r, err := testutil.ParseTry([]byte(res[name].out))
	if err != nil {
		t.Fatalf("step %s (exit %d): %v", name, res[name].rc, err)
	}
	return r
}

// reportOf parses a step's "probe report" output.
func reportOf(t testing.TB, res map[string]*stepResult, name string) *probe.Report {
	t.Helper()
	r, err := testutil.ParseReport([]byte(res[name].out))
	if err != nil {
		t.Fatalf("step %s (exit %d): %v", name, res[name].rc, err)
	}
	return r
}

func tryStep(name string, args ...string) probeStep {
	return probeStep{name: name, args: append([]string{"try"}, args...)}
}

func describeTry(r *probe.TryResult) string {
	if r.OK {
		return "ALLOWED: " + r.Detail
	}
	if r.Refused {
		return "REFUSED BY PROBE: " + r.Detail
	}
	return fmt.Sprintf("denied %s at %q: %s", r.ErrnoName, r.Step, r.Detail)
}

// exeSum is the SHA-256 of the test binary, the program every container
// re-executes as its init.
func exeSum(t testing.TB) [32]byte {
	t.Helper()
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

func sortedNames(names []string) []string {
	out := slices.Clone(names)
	slices.Sort(out)
	return out
}

// checkDefaultCaps checks a report's capability sets against Docker's.
func checkDefaultCaps(t *testing.T, r *probe.Report) {
	t.Helper()
	c := r.Capabilities
	for _, set := range []struct {
		name string
		s    probe.CapSet
	}{{"bounding", c.Bounding}, {"effective", c.Effective}, {"permitted", c.Permitted}} {
		if got := sortedNames(set.s.Names); !slices.Equal(got, dockerDefaultCaps) {
			t.Errorf("%s set %v (%s), want Docker's 14 %v", set.name, got, set.s.Hex, dockerDefaultCaps)
		}
	}
	if c.Inheritable.Mask() != 0 || c.Ambient.Mask() != 0 {
		t.Errorf("inheritable %v ambient %v, want both empty", c.Inheritable.Names, c.Ambient.Names)
	}
}

func TestSecurityDefaultProfileInside(t *testing.T) {
	nr := func(name string) string {
		n, ok := security.SyscallNumber(name)
		if !ok {
			t.Fatalf("security.SyscallNumber does not know %s", name)
		}
		return strconv.Itoa(int(n))
	}
	steps := []probeStep{
		{name: "report", args: []string{"report"}},
		// clone3 keeps its flags in memory the filter cannot read: it
		// answers ENOSYS so that libc falls back to clone.
		tryStep("clone3", "syscall", nr("clone3")),
		// Docker's default profile denies io_uring since moby 25.0
		// (io_uring bypasses the filter for the operations it runs and has
		// been a steady source of kernel exploits).
		tryStep("io_uring_setup", "syscall", nr("io_uring_setup")),
		tryStep("keyctl", "keyctl"),
		tryStep("keyctl-nr", "syscall", nr("keyctl")),
		tryStep("unshare-user", "unshare-user"),
		tryStep("unshare-mnt", "unshare-ns", "mnt"),
		tryStep("clone-newnet", "clone-ns", "net"),
		tryStep("syscall-1000", "syscall", "1000"),
		tryStep("syscall-600", "syscall", "600"),
		// The probe itself is an ordinary, dumpable process.
		tryStep("self-root", "read-root", "/proc/self/root/etc/hostname"),
	}
	x32 := runtime.GOARCH == "amd64"
	if x32 {
		// An x32 system call (getpid with bit 30): the filter kills the
		// process rather than let another numbering through.
		steps = append(steps, tryStep("x32-getpid", "syscall", "0x40000027"))
	}
	res := runSteps(t, withProbe(t, newConfig()), "/probe", steps)
	r := reportOf(t, res, "report")
	checkDefaultCaps(t, r)
	if !r.NoNewPrivs {
		t.Error("no_new_privs is off in the default profile")
	}
	if r.Seccomp != 2 || r.SeccompFilters < 1 {
		t.Errorf("seccomp mode %d with %d filters, want mode 2 (filter)", r.Seccomp, r.SeccompFilters)
	}
	if r.UID != 0 || r.EUID != 0 {
		t.Errorf("default process runs as uid %d/%d, want root", r.UID, r.EUID)
	}
	if r.Dumpable != 1 {
		t.Errorf("the probe (an ordinary program after execve) has dumpable %d, want 1", r.Dumpable)
	}
	for name, want := range map[string]syscall.Errno{
		"keyctl": unix.EPERM, "keyctl-nr": unix.EPERM, "unshare-user": unix.EPERM,
		"unshare-mnt": unix.EPERM, "clone-newnet": unix.EPERM,
		"syscall-1000": unix.ENOSYS, "syscall-600": unix.ENOSYS, "clone3": unix.ENOSYS,
		"io_uring_setup": unix.EPERM,
	} {
		t.Run(name, func(t *testing.T) { testutil.AssertDenied(t, tryOf(t, res, name), want) })
	}
	if rc := res["x32-getpid"]; x32 && rc.rc != 128+int(unix.SIGSYS) {
		t.Errorf("x32 system call: probe exit status %d, want %d (killed by SIGSYS); output %q", rc.rc, 128+int(unix.SIGSYS), rc.out)
	}
	if self := tryOf(t, res, "self-root"); !self.OK {
		t.Errorf("control: /proc/self/root of the probe unreadable: %s", describeTry(self))
	}

	// With a user namespace: the same profile, and the id map shows.
	ucfg := withProbe(t, newConfig().WithUserNamespace(usernsRanges(), usernsRanges()))
	ures := runSteps(t, ucfg, "/probe", []probeStep{{name: "report", args: []string{"report"}}})
	ur := reportOf(t, ures, "report")
	if len(ur.UIDMap) != 1 || ur.UIDMap[0] != (probe.IDMapEntry{Inside: 0, Outside: 200000, Count: 65536}) {
		t.Errorf("uid_map %+v, want 0 200000 65536", ur.UIDMap)
	}
	if len(ur.GIDMap) != 1 || ur.GIDMap[0] != (probe.IDMapEntry{Inside: 0, Outside: 200000, Count: 65536}) {
		t.Errorf("gid_map %+v, want 0 200000 65536", ur.GIDMap)
	}
	checkDefaultCaps(t, ur)
	if !ur.NoNewPrivs || ur.Seccomp != 2 {
		t.Errorf("user namespace: no_new_privs %v seccomp %d, want true and 2", ur.NoNewPrivs, ur.Seccomp)
	}
}

// escapeCase is one action of the escape battery and what the profile
// must answer.
type escapeCase struct {
	name string
	args []string // after "probe try"
	// errnos the denial may carry (nil: any denial).
	errnos []syscall.Errno
	// allow: the profile grants this on purpose (asserted allowed).
	allow bool
}

var (
	eperm  = []syscall.Errno{unix.EPERM}
	eaccPr = []syscall.Errno{unix.EACCES, unix.EPERM}
	roErr  = []syscall.Errno{unix.EROFS, unix.EACCES, unix.EPERM}
)

// escapeBattery is the list of escape attempts every default container
// must refuse. marker is a host file the container must not reach.
func escapeBattery(marker string) []escapeCase {
	sysrq := roErr
	if _, err := os.Stat("/proc/sysrq-trigger"); err != nil {
		// This kernel has no magic SysRq: the file is missing inside too.
		sysrq = []syscall.Errno{unix.ENOENT}
	}
	return []escapeCase{
		{name: "mount-tmpfs", args: []string{"mount"}, errnos: eperm},
		{name: "umount-root", args: []string{"umount", "/"}, errnos: eperm},
		{name: "pivot_root", args: []string{"pivot_root"}, errnos: eperm},
		// chroot is allowed (CAP_SYS_CHROOT), but climbing out of the
		// chroot stops at the container's root: the marker stays unseen.
		{name: "chroot-escape", args: []string{"chroot-escape", marker}, errnos: []syscall.Errno{unix.ENOENT}},
		// mknod c 1:3 in /tmp: CAP_MKNOD is granted, /tmp is nodev.
		{name: "mknod", args: []string{"mknod"}, errnos: eaccPr},
		{name: "open_by_handle_at", args: []string{"open_by_handle_at", "/"}, errnos: eperm},
		{name: "open_by_handle_at-shocker", args: []string{"open_by_handle_at", "/", "shocker"}, errnos: eperm},
		{name: "ptrace-pid1", args: []string{"ptrace-attach", "1"}, errnos: eperm},
		{name: "write-sysrq-trigger", args: []string{"write-sysrq"}, errnos: sysrq},
		{name: "write-procsys-hostname", args: []string{"write-procsys"}, errnos: roErr},
		{name: "write-procsys-core_pattern", args: []string{"write-procsys", "/proc/sys/kernel/core_pattern"}, errnos: roErr},
		{name: "write-sys", args: []string{"write-sys"}, errnos: roErr},
		{name: "keyctl", args: []string{"keyctl"}, errnos: eperm},
		{name: "unshare-user", args: []string{"unshare-user"}, errnos: eperm},
		{name: "cgroup-v1-release_agent", args: []string{"release-agent"}, errnos: eperm},
		// PID 1 is the workload's own main process (vessel's init is not
		// in its pid namespace): through its /proc entries the host's
		// files stay out of reach and its executable unwritable.
		{name: "read-pid1-root-marker", args: []string{"read-root", "/proc/1/root" + marker}, errnos: []syscall.Errno{unix.ENOENT, unix.EACCES, unix.EPERM}},
		{name: "write-exe-pid1", args: []string{"write-exe", "/proc/1/exe"}, errnos: []syscall.Errno{unix.ETXTBSY, unix.EROFS, unix.EACCES, unix.EPERM}},
		{name: "write-exe-self", args: []string{"write-exe", "/proc/self/exe"}, errnos: []syscall.Errno{unix.ETXTBSY, unix.EROFS, unix.EACCES, unix.EPERM}},
		{name: "settime", args: []string{"settime"}, errnos: eperm},
		{name: "sethostname", args: []string{"sethostname"}, errnos: eperm},
		{name: "dmesg", args: []string{"dmesg"}, errnos: eperm},
		// Docker's default set holds CAP_NET_RAW, in the container's own
		// network namespace: a raw socket is allowed on purpose.
		{name: "raw-socket", args: []string{"raw-socket"}, allow: true},
	}
}

// checkBattery runs the battery's cases against results and reports each.
func checkBattery(t *testing.T, cases []escapeCase, res map[string]*stepResult) {
	t.Helper()
	var table strings.Builder
	for _, c := range cases {
		r := tryOf(t, res, c.name)
		fmt.Fprintf(&table, "  %-28s %s\n", c.name, describeTry(r))
		t.Run(c.name, func(t *testing.T) {
			if c.allow {
				testutil.AssertAllowed(t, r)
				return
			}
			testutil.AssertDenied(t, r, c.errnos...)
		})
	}
	// Shown with -v, and with any failure.
	t.Logf("every action's result:\n%s", table.String())
}

func batterySteps(cases []escapeCase) []probeStep {
	steps := make([]probeStep, len(cases))
	for i, c := range cases {
		steps[i] = tryStep(c.name, c.args...)
	}
	return steps
}

func TestEscapeBatteryDefaultProfile(t *testing.T) {
	marker := testutil.HostMarker(t)
	before := exeSum(t)
	cases := escapeBattery(marker)
	steps := append(batterySteps(cases), probeStep{name: "ls-dev", args: []string{"ls", "/dev"}})
	res := runSteps(t, withProbe(t, newConfig()), "/probe", steps)
	checkBattery(t, cases, res)
	if after := exeSum(t); after != before {
		t.Error("the host binary (the test program) changed while the battery ran")
	}
	ents, err := testutil.ParseLs([]byte(res["ls-dev"].out))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Type == "blockdev" || e.Name == "kmsg" || e.Name == "mem" || e.Name == "kvm" {
			t.Errorf("host device /dev/%s (%s %s) in a default container", e.Name, e.Type, e.Dev)
		}
	}
}

func TestEscapeBatteryUserNamespace(t *testing.T) {
	marker := testutil.HostMarker(t)
	before := exeSum(t)
	cases := escapeBattery(marker)
	for i := range cases {
		if cases[i].name == "mknod" {
			// No device node can be made inside a user namespace.
			cases[i].errnos = eperm
		}
	}
	cfg := withProbe(t, newConfig().WithUserNamespace(usernsRanges(), usernsRanges()))
	res := runSteps(t, cfg, "/probe", batterySteps(cases))
	checkBattery(t, cases, res)
	if after := exeSum(t); after != before {
		t.Error("the host binary (the test program) changed while the battery ran")
	}
}

// TestEscapeBatterySharedPIDAndUTS shares the host's pid and uts
// namespaces: the host's processes are visible, but their /proc entries
// must stay closed, and the host's hostname must stay unchanged.
func TestEscapeBatterySharedPIDAndUTS(t *testing.T) {
	marker := testutil.HostMarker(t)
	before := exeSum(t)
	host, _ := os.Hostname()
	self := strconv.Itoa(os.Getpid())
	cases := []escapeCase{
		{name: "read-host-root-marker", args: []string{"read-root", "/proc/" + self + "/root" + marker}, errnos: eaccPr},
		{name: "read-host-cwd", args: []string{"read-root", "/proc/" + self + "/cwd"}, errnos: eaccPr},
		{name: "read-host-environ", args: []string{"read-root", "/proc/" + self + "/environ"}, errnos: eaccPr},
		{name: "read-host-mem", args: []string{"read-root", "/proc/" + self + "/mem"}, errnos: eaccPr},
		{name: "write-host-exe", args: []string{"write-exe", "/proc/" + self + "/exe"}, errnos: eaccPr},
		{name: "ptrace-host", args: []string{"ptrace-attach", self}, errnos: eperm},
		{name: "setns-host", args: []string{"setns-pid1", "mnt,net,ipc,cgroup", self}, errnos: eaccPr},
		{name: "sethostname-shared-uts", args: []string{"sethostname", "vessel-escaped"}, errnos: eperm},
	}
	cfg := withProbe(t, newConfig().WithSharedNamespace(namespaces.PID).WithSharedNamespace(namespaces.UTS))
	res := runSteps(t, cfg, "/probe", batterySteps(cases))
	checkBattery(t, cases, res)
	if h, _ := os.Hostname(); h != host {
		t.Errorf("host hostname changed from %q to %q", host, h)
		_ = unix.Sethostname([]byte(host))
	}
	if after := exeSum(t); after != before {
		t.Error("the host binary (the test program) changed while the battery ran")
	}
}

// TestEscapeDirRootfs runs escapes in a container whose root is a
// directory of the host's disk (a busybox tree): there, unlike under the
// host root's nodev tmpfs /tmp, device nodes are possible.
//
// CAP_MKNOD is in the default set, as in Docker, so the container can
// create a node for any host device. Docker makes such nodes useless with
// its device cgroup (every device denied but null, zero, full, random,
// urandom, tty, console, ptmx and pts); here too they must not open.
// /dev/kmsg (c 1:11) is the host's kernel log: reading it bypasses
// dmesg_restrict, writing it forges host log lines (nothing is written
// here: the probe only opens it).
func TestEscapeDirRootfs(t *testing.T) {
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		t.Fatal(err)
	}
	marker := testutil.HostMarker(t)
	root := testutil.BusyboxRootfsCopy(t)
	cfg := newConfig().WithRootfs(rootfs.Dir(root))
	res := runSteps(t, cfg, testutil.RootfsProbePath, []probeStep{
		tryStep("chroot-escape", "chroot-escape", marker),
		tryStep("read-pid1-root-marker", "read-root", "/proc/1/root"+marker),
		{name: "mknod-kmsg", shell: "mknod /hostkmsg c 1 11"},
		tryStep("read-kmsg", "read-root", "/hostkmsg"),
		tryStep("write-kmsg", "open", "/hostkmsg", "w"),
		{name: "mknod-disk", shell: fmt.Sprintf("mknod /hostdisk b %d %d", unix.Major(st.Dev), unix.Minor(st.Dev))},
		tryStep("read-disk", "read-root", "/hostdisk"),
		// A node of an allowed device still works.
		{name: "mknod-null", shell: "mknod /mynull c 1 3"},
		tryStep("open-null", "open", "/mynull", "rw"),
	})
	testutil.AssertDenied(t, tryOf(t, res, "chroot-escape"), unix.ENOENT)
	testutil.AssertDenied(t, tryOf(t, res, "read-pid1-root-marker"), unix.ENOENT, unix.EACCES, unix.EPERM)
	for _, step := range []string{"mknod-kmsg", "mknod-disk", "mknod-null"} {
		if res[step].rc != 0 {
			t.Logf("%s: exit %d %s (denied at mknod: fine)", step, res[step].rc, strings.TrimSpace(res[step].out))
		}
	}
	for _, name := range []string{"read-kmsg", "write-kmsg", "read-disk"} {
		r := tryOf(t, res, name)
		t.Logf("%s: %s", name, describeTry(r))
		if r.OK && name == "read-kmsg" {
			t.Errorf("the host's kernel log is readable through a device node made in the container: %.200q", r.Data)
		}
		testutil.AssertDenied(t, r, unix.EPERM, unix.EACCES, unix.ENOENT)
	}
	if res["mknod-null"].rc == 0 {
		testutil.AssertAllowed(t, tryOf(t, res, "open-null"))
	}
}

// callerBounding is the bounding set of the test process: every
// capability a container started by it can hold.
func callerBounding(t testing.TB) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
	}
	t.Fatal("no CapBnd in /proc/self/status")
	return 0
}

func TestSecurityPrivileged(t *testing.T) {
	lastCap, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		t.Fatal(err)
	}
	last, _ := strconv.Atoi(strings.TrimSpace(string(lastCap)))
	kernelAll := uint64(1)<<uint(last+1) - 1
	// "Every capability" is every one the caller can pass on: all the
	// kernel's, unless the test runs with a reduced bounding set.
	want := callerBounding(t) & kernelAll
	steps := []probeStep{
		{name: "report", args: []string{"report"}},
		{name: "ls-dev", args: []string{"ls", "/dev"}},
		tryStep("mount", "mount"),
	}
	res, out, err := runStepsErr(t, withProbe(t, newConfig().WithPrivileged(true)), "/probe", steps)
	if err != nil {
		missing := probe.CapNames(kernelAll &^ want)
		t.Errorf("WithPrivileged(true) does not start: %v\n%s\nthe calling process lacks %v in its bounding set; a privileged container must get the capabilities the caller has, not fail", err, out, missing)
		// Check the rest of privileged mode with the capabilities the
		// caller does have.
		p := security.Privileged()
		p.Capabilities = p.Capabilities.WithDrop(missing...)
		res = runSteps(t, withProbe(t, newConfig().WithPrivileged(true).WithSecurity(p)), "/probe", steps)
	}
	r := reportOf(t, res, "report")
	c := r.Capabilities
	for _, set := range []struct {
		name string
		s    probe.CapSet
	}{{"bounding", c.Bounding}, {"effective", c.Effective}, {"permitted", c.Permitted}} {
		if set.s.Mask() != want {
			t.Errorf("privileged %s set %s, want every capability the caller has (%016x)", set.name, set.s.Hex, want)
		}
	}
	if r.Seccomp != 0 {
		t.Errorf("privileged container has seccomp mode %d, want 0", r.Seccomp)
	}
	if r.NoNewPrivs {
		t.Error("privileged container has no_new_privs")
	}
	ents, err := testutil.ParseLs([]byte(res["ls-dev"].out))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name)
	}
	found := 0
	for _, n := range []string{"kmsg", "vda", "sda", "nvme0n1", "mem"} {
		if _, err := os.Stat("/dev/" + n); err == nil {
			if !slices.Contains(names, n) {
				t.Errorf("privileged /dev lacks the host's %s: %v", n, names)
			}
			found++
		}
	}
	if found == 0 {
		t.Fatalf("the host has none of kmsg, vda, sda, nvme0n1, mem to compare with")
	}
	testutil.AssertAllowed(t, tryOf(t, res, "mount"))
}

func TestCapabilitiesDropAddInside(t *testing.T) {
	res := runSteps(t, withProbe(t, newConfig().WithCapDrop("ALL")), "/probe", []probeStep{
		{name: "report", args: []string{"report"}},
		tryStep("raw-socket", "raw-socket"),
		tryStep("chown", "chown", "/tmp", "1", "1"),
	})
	r := reportOf(t, res, "report")
	c := r.Capabilities
	for _, set := range []probe.CapSet{c.Bounding, c.Effective, c.Permitted, c.Inheritable, c.Ambient} {
		if set.Mask() != 0 {
			t.Errorf("cap-drop ALL: a set still holds %v (%s)", set.Names, set.Hex)
		}
	}
	if r.Seccomp != 2 || !r.NoNewPrivs {
		t.Errorf("cap-drop ALL: seccomp %d no_new_privs %v, want the rest of the default profile", r.Seccomp, r.NoNewPrivs)
	}
	testutil.AssertDenied(t, tryOf(t, res, "raw-socket"), unix.EPERM)
	testutil.AssertDenied(t, tryOf(t, res, "chown"), unix.EPERM)

	res = runSteps(t, withProbe(t, newConfig().WithCapAdd("NET_ADMIN")), "/probe", []probeStep{
		{name: "report", args: []string{"report"}},
	})
	c = reportOf(t, res, "report").Capabilities
	want := sortedNames(append(slices.Clone(dockerDefaultCaps), "CAP_NET_ADMIN"))
	for _, set := range []probe.CapSet{c.Bounding, c.Effective, c.Permitted} {
		if got := sortedNames(set.Names); !slices.Equal(got, want) {
			t.Errorf("cap-add NET_ADMIN: set %v, want %v", got, want)
		}
	}

	// The default profile's seccomp rules follow the capabilities, as
	// Docker's do: with CAP_SYS_ADMIN added, mount is let through.
	res = runSteps(t, withProbe(t, newConfig().WithCapAdd("SYS_ADMIN")), "/probe", []probeStep{
		tryStep("mount", "mount"),
		tryStep("keyctl", "keyctl"),
	})
	testutil.AssertAllowed(t, tryOf(t, res, "mount"))
	testutil.AssertDenied(t, tryOf(t, res, "keyctl"), unix.EPERM)

	// A non-root user keeps the bounding set but holds no capability.
	res = runSteps(t, withProbe(t, newConfig().WithUser(testutil.UserUID, testutil.UserGID)), "/probe", []probeStep{
		{name: "report", args: []string{"report"}},
		tryStep("raw-socket", "raw-socket"),
	})
	r = reportOf(t, res, "report")
	c = r.Capabilities
	if got := sortedNames(c.Bounding.Names); !slices.Equal(got, dockerDefaultCaps) {
		t.Errorf("uid %d: bounding set %v, want Docker's 14", r.UID, got)
	}
	for _, set := range []probe.CapSet{c.Effective, c.Permitted, c.Inheritable, c.Ambient} {
		if set.Mask() != 0 {
			t.Errorf("uid %d holds capabilities %v", r.UID, set.Names)
		}
	}
	if r.UID != testutil.UserUID || !r.NoNewPrivs || r.Seccomp != 2 {
		t.Errorf("WithUser: uid %d no_new_privs %v seccomp %d", r.UID, r.NoNewPrivs, r.Seccomp)
	}
	testutil.AssertDenied(t, tryOf(t, res, "raw-socket"), unix.EPERM)

	res = runSteps(t, withProbe(t, newConfig().WithCapDrop("NET_RAW", "cap_chown")), "/probe", []probeStep{
		{name: "report", args: []string{"report"}},
		tryStep("raw-socket", "raw-socket"),
	})
	c = reportOf(t, res, "report").Capabilities
	if c.Effective.Has("NET_RAW") || c.Bounding.Has("CHOWN") || !c.Effective.Has("KILL") || len(c.Effective.Names) != 12 {
		t.Errorf("cap-drop NET_RAW, CHOWN: effective %v bounding %v", c.Effective.Names, c.Bounding.Names)
	}
	testutil.AssertDenied(t, tryOf(t, res, "raw-socket"), unix.EPERM)
}

func TestSeccompUnconfinedAndCustomInside(t *testing.T) {
	getcwd, ok := security.SyscallNumber("getcwd")
	if !ok {
		t.Fatal("security.SyscallNumber does not know getcwd")
	}
	nr := strconv.Itoa(int(getcwd))

	res := runSteps(t, withProbe(t, newConfig().WithSeccomp(nil)), "/probe", []probeStep{
		{name: "report", args: []string{"report"}},
		tryStep("getcwd", "syscall", nr),
		tryStep("syscall-1000", "syscall", "1000"),
	})
	r := reportOf(t, res, "report")
	if r.Seccomp != 0 {
		t.Errorf("WithSeccomp(nil): seccomp mode %d, want 0", r.Seccomp)
	}
	checkDefaultCaps(t, r)
	if !r.NoNewPrivs {
		t.Error("WithSeccomp(nil) also turned no_new_privs off")
	}
	// Without a filter the kernel answers: ERANGE for getcwd(NULL, 0),
	// ENOSYS for a number it does not have.
	if g := tryOf(t, res, "getcwd"); g.Errno == 42 {
		t.Errorf("getcwd without a filter returned errno 42: %s", describeTry(g))
	}
	testutil.AssertDenied(t, tryOf(t, res, "syscall-1000"), unix.ENOSYS)

	prof, err := security.LoadSeccompJSON([]byte(`{
		"defaultAction": "SCMP_ACT_ALLOW",
		"architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
		"syscalls": [
			{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42},
			{"names": ["keyctl"], "action": "SCMP_ACT_ERRNO"}
		]
	}`))
	if err != nil {
		t.Fatal(err)
	}
	res = runSteps(t, withProbe(t, newConfig().WithSeccomp(prof)), "/probe", []probeStep{
		{name: "report", args: []string{"report"}},
		tryStep("getcwd", "syscall", nr),
		tryStep("keyctl", "keyctl"),
		tryStep("getpid", "syscall", strconv.Itoa(unix.SYS_GETPID)),
	})
	if r := reportOf(t, res, "report"); r.Seccomp != 2 {
		t.Errorf("custom profile: seccomp mode %d, want 2", r.Seccomp)
	}
	testutil.AssertDenied(t, tryOf(t, res, "getcwd"), syscall.Errno(42))
	testutil.AssertDenied(t, tryOf(t, res, "keyctl"), unix.EPERM)
	testutil.AssertAllowed(t, tryOf(t, res, "getpid"))
}

// openDir opens a host directory to hand to a container as descriptor 3.
func openDir(t testing.TB, dir string) *os.File {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestLandlockFilesystem checks the ruleset WithLandlock derives from the
// container's mounts. An inherited descriptor of a host directory is the
// way around every mount: only Landlock closes it.
func TestLandlockFilesystem(t *testing.T) {
	abi := security.LandlockABI()
	outside := t.TempDir()
	roDir := t.TempDir()
	if err := os.WriteFile(roDir+"/f", []byte("read me"), 0o644); err != nil {
		t.Fatal(err)
	}
	steps := []probeStep{
		{name: "report", args: []string{"report"}},
		tryStep("write-scratch", "open", "/scratch/f", "create"),
		tryStep("write-root", "open", "/newfile", "create"),
		tryStep("read-ro", "read-root", "/ro/f"),
		tryStep("write-ro", "open", "/ro/g", "create"),
		tryStep("exec", "exec", "/bin/true"),
		tryStep("escape-fd", "open", "/proc/self/fd/3/escaped", "create"),
	}
	busybox := func() *vessel.Config {
		return newConfig().WithRootfs(rootfs.Dir(testutil.BusyboxRootfsCopy(t))).
			WithTmpfs("/scratch", 1<<20).WithBind(roDir, "/ro", true)
	}

	// Control: without Landlock the inherited descriptor reaches the host.
	res := runSteps(t, busybox(), testutil.RootfsProbePath, steps, openDir(t, outside))
	testutil.AssertAllowed(t, tryOf(t, res, "escape-fd"))
	if err := os.Remove(outside + "/escaped"); err != nil {
		t.Fatalf("control: the file written through the descriptor is not on the host: %v", err)
	}

	res = runSteps(t, busybox().WithLandlock(nil, nil), testutil.RootfsProbePath, steps, openDir(t, outside))
	if r := reportOf(t, res, "report"); r.LandlockABI != abi {
		t.Errorf("probe sees landlock ABI %d, host %d", r.LandlockABI, abi)
	}
	testutil.AssertAllowed(t, tryOf(t, res, "write-scratch"))
	testutil.AssertAllowed(t, tryOf(t, res, "write-root")) // a writable root is allowed by design
	testutil.AssertAllowed(t, tryOf(t, res, "read-ro"))
	testutil.AssertDenied(t, tryOf(t, res, "write-ro"), unix.EROFS, unix.EACCES)
	testutil.AssertAllowed(t, tryOf(t, res, "exec"))
	esc := tryOf(t, res, "escape-fd")
	if abi == 0 {
		// Best effort: a kernel without Landlock enforces nothing, and the
		// container still runs.
		testutil.AssertAllowed(t, esc)
		os.Remove(outside + "/escaped")
	} else {
		testutil.AssertDenied(t, esc, unix.EACCES)
		if _, err := os.Stat(outside + "/escaped"); err == nil {
			t.Error("the file was created on the host despite Landlock")
		}
	}

	// A host root (read-only) with a writable bind: the bind, /tmp and
	// /dev/shm are writable, the descriptor's host directory is not.
	data := t.TempDir()
	hcfg := withProbe(t, newConfig().WithBind(data, "/data", false).WithLandlock(nil, nil))
	res = runSteps(t, hcfg, "/probe", []probeStep{
		tryStep("write-data", "open", "/data/f", "create"),
		tryStep("write-tmp", "open", "/tmp/f", "create"),
		tryStep("write-shm", "open", "/dev/shm/f", "create"),
		tryStep("write-etc", "open", "/etc/vessel-landlock-test", "create"),
		tryStep("exec", "exec", "/bin/true"),
		tryStep("escape-fd", "open", "/proc/self/fd/3/escaped", "create"),
	}, openDir(t, outside))
	for _, n := range []string{"write-data", "write-tmp", "write-shm", "exec"} {
		testutil.AssertAllowed(t, tryOf(t, res, n))
	}
	if _, err := os.Stat(data + "/f"); err != nil {
		t.Errorf("file written to /data is not in the host directory: %v", err)
	}
	testutil.AssertDenied(t, tryOf(t, res, "write-etc"), unix.EROFS, unix.EACCES)
	if abi > 0 {
		testutil.AssertDenied(t, tryOf(t, res, "escape-fd"), unix.EACCES)
	}

	// Explicit paths: only /scratch writable, the (writable) root read and
	// execute only. The mount allows the write, Landlock must refuse it.
	ecfg := busybox().WithLandlock(nil, nil)
	ecfg.Security.Landlock.ReadExec = []string{"/"}
	ecfg.Security.Landlock.ReadWrite = []string{"/scratch", "/dev"}
	res = runSteps(t, ecfg, testutil.RootfsProbePath, []probeStep{
		tryStep("write-scratch", "open", "/scratch/f", "create"),
		tryStep("write-root", "open", "/newfile", "create"),
		tryStep("read-root", "read-root", "/etc/passwd"),
	})
	testutil.AssertAllowed(t, tryOf(t, res, "write-scratch"))
	testutil.AssertAllowed(t, tryOf(t, res, "read-root"))
	if abi > 0 {
		testutil.AssertDenied(t, tryOf(t, res, "write-root"), unix.EACCES)
	}
}

// TestLandlockTCP restricts bind to two ports and connect to one, with
// listeners on both inside the container's own network namespace. Go's
// net.Listen makes MPTCP sockets by default (Go 1.24+), and GODEBUG
// multipathtcp=1 makes Dial use MPTCP too: the rules must hold for those
// as well, or any program can walk around them.
func TestLandlockTCP(t *testing.T) {
	abi := security.LandlockABI()
	const p1, p2, p3 = 7101, 7102, 7103
	listening := func(port int) string {
		return fmt.Sprintf(`i=0; until grep -qE ':%04X [0-9A-F]+:0000 0A' /proc/net/tcp /proc/net/tcp6 2>/dev/null; do i=$((i+1)); [ $i -gt 300 ] && echo "no listener on %d" && break; usleep 10000; done`, port, port)
	}
	tcp, mptcp := "GODEBUG=multipathtcp=0", "GODEBUG=multipathtcp=1"
	root := testutil.BusyboxRootfsCopy(t)
	cfg := newConfig().WithRootfs(rootfs.Dir(root)).WithLandlock([]uint16{p1, p2}, []uint16{p1})
	res := runSteps(t, cfg, testutil.RootfsProbePath, []probeStep{
		{name: "listen", shell: fmt.Sprintf("nc -l -p %d </dev/null >/dev/null & nc -l -p %d </dev/null >/dev/null &\n%s\n%s", p1, p2, listening(p1), listening(p2))},
		{name: "connect-p1", shell: tcp + ` "$P" try connect 127.0.0.1:` + strconv.Itoa(p1)},
		{name: "connect-p2", shell: tcp + ` "$P" try connect 127.0.0.1:` + strconv.Itoa(p2)},
		{name: "connect-p2-mptcp", shell: mptcp + ` "$P" try connect 127.0.0.1:` + strconv.Itoa(p2)},
		{name: "bind-p3", shell: tcp + ` "$P" try bind ` + strconv.Itoa(p3) + " 127.0.0.1"},
		{name: "bind-p3-mptcp", shell: mptcp + ` "$P" try bind ` + strconv.Itoa(p3) + " 127.0.0.1"},
	})
	if out := res["listen"].out; out != "" {
		t.Fatalf("listeners: %s", out)
	}
	results := map[string]*probe.TryResult{}
	var table strings.Builder
	for _, n := range []string{"connect-p1", "connect-p2", "connect-p2-mptcp", "bind-p3", "bind-p3-mptcp"} {
		results[n] = tryOf(t, res, n)
		fmt.Fprintf(&table, "  %-18s %s\n", n, describeTry(results[n]))
	}
	testutil.AssertAllowed(t, results["connect-p1"])
	if abi < 4 {
		// Before ABI 4 TCP rules cannot be enforced; best effort means the
		// container still starts and the ports work.
		t.Logf("landlock ABI %d: TCP rules need ABI 4", abi)
		testutil.AssertAllowed(t, results["connect-p2"])
		testutil.AssertAllowed(t, results["bind-p3"])
		return
	}
	for _, n := range []string{"connect-p2", "connect-p2-mptcp", "bind-p3", "bind-p3-mptcp"} {
		t.Run(n, func(t *testing.T) {
			testutil.AssertDenied(t, results[n], unix.EACCES, unix.EPERM, unix.EPROTONOSUPPORT)
		})
	}
	if t.Failed() {
		t.Logf("every action's result:\n%s", table.String())
	}
}

func TestSecuritySysctl(t *testing.T) {
	hostBefore, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Fatal(err)
	}
	want := "1"
	if strings.TrimSpace(string(hostBefore)) == "1" {
		want = "0"
	}
	cfg := withProbe(t, newConfig().WithSysctl("net.ipv4.ip_forward", want))
	res, out, err := runStepsErr(t, cfg, "/probe", []probeStep{tryStep("read", "read-root", "/proc/sys/net/ipv4/ip_forward")})
	if err != nil {
		t.Errorf("a container with sysctl net.ipv4.ip_forward=%s in its own network namespace does not start: %v\n%s", want, err, out)
		// Tell why: with /proc/sys left writable the same sysctl works,
		// so it is written after /proc/sys was made read-only.
		ro := slices.DeleteFunc(slices.Clone(rootfs.DefaultReadonlyPaths), func(p string) bool { return p == "/proc/sys" })
		dcfg := withProbe(t, newConfig().WithSysctl("net.ipv4.ip_forward", want).WithReadOnlyPaths(ro...))
		if _, _, derr := runStepsErr(t, dcfg, "/probe", []probeStep{tryStep("read", "read-root", "/proc/sys/net/ipv4/ip_forward")}); derr == nil {
			t.Errorf("with /proc/sys not read-only the sysctl is applied: the container's init writes sysctls after rootfs.Setup made /proc/sys read-only")
		}
	} else if r := tryOf(t, res, "read"); !r.OK || strings.TrimSpace(r.Data) != want {
		t.Errorf("ip_forward inside: %q (%s), want %s", r.Data, describeTry(r), want)
	}
	if after, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); !bytes.Equal(after, hostBefore) {
		t.Errorf("host ip_forward changed from %q to %q", hostBefore, after)
	}

	for _, bad := range []*vessel.Config{
		newConfig().WithSysctl("kernel.panic", "1"),
		newConfig().WithSysctl("vm.overcommit_memory", "1"),
		newConfig().WithSharedNamespace(namespaces.Net).WithSysctl("net.ipv4.ip_forward", "1"),
		newConfig().WithSharedNamespace(namespaces.UTS).WithSysctl("kernel.hostname", "x"),
		newConfig().WithSharedNamespace(namespaces.IPC).WithSysctl("kernel.shmmax", "4096"),
	} {
		var key string
		for k := range bad.Sysctls {
			key = k
		}
		verr := bad.Validate()
		_, nerr := vessel.New(newID(t), bad)
		for what, err := range map[string]error{"Validate": verr, "New": nerr} {
			var ce *vessel.ConfigError
			if !errors.As(err, &ce) || ce.Field != "sysctl["+key+"]" {
				t.Errorf("%s with sysctl %s: got %v, want a ConfigError for field sysctl[%s]", what, key, err, key)
			}
		}
	}
}

// TestSecurityNonDumpableInit: the container's init runs the host binary,
// so nothing in the container may reach it: it is not in the container's
// pid namespace (the main process is PID 1 there and sees no other
// process), with or without a user namespace. (It is also non-dumpable,
// set first thing in internal/child.)
func TestSecurityNonDumpableInit(t *testing.T) {
	for _, cfg := range []*vessel.Config{newConfig(), newConfig().WithUserNamespace(usernsRanges(), usernsRanges())} {
		r := report(t, cfg)
		if r.PID != 1 || r.ProcCount != 1 {
			t.Errorf("inside: pid %d, %d processes visible, want only itself as PID 1", r.PID, r.ProcCount)
		}
	}
}
