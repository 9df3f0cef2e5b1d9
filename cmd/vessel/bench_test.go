package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/openvessel/vessel/internal/testutil"
)

// vessel bench measures every tool (bwrap and runc are installed by the
// test script), prints a median for each and the ratios, and leaves
// nothing behind: no container, spare init, cgroup or mount.
func TestBenchCommand(t *testing.T) {
	for _, tool := range []string{"bwrap", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (test.sh installs it): %v", tool, err)
		}
	}
	before := testutil.SnapshotHost(t)
	cmd := exec.Command(vesselBin, "bench", "-n", "3")
	cmd.Env = append(os.Environ(), "VESSEL_CGROUP_GROUP="+testutil.CgroupGroup)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("vessel bench: %v\n%s", err, out)
	}
	text := string(out)
	for _, tool := range []string{"vessel", "vessel-lib", "vessel-spare", "bwrap", "runc", "vessel-pool", "floor"} {
		row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(tool) + ` +([0-9.]+)ms +([0-9.]+)ms +3$`)
		if !row.MatchString(text) {
			t.Errorf("no measured row for %s in:\n%s", tool, text)
		}
	}
	for _, ratio := range []string{"vessel/bwrap", "vessel-spare/bwrap", "runc/vessel", "runc/vessel-spare", "runc/vessel-pool",
		"bwrap/floor", "vessel/floor", "vessel-pool/floor"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(ratio) + ` +[0-9]+\.[0-9]{2}$`).MatchString(text) {
			t.Errorf("no ratio %s in:\n%s", ratio, text)
		}
	}
	if strings.Contains(text, "failed") || strings.Contains(text, "absent") || strings.Contains(text, "unusable") {
		t.Errorf("a tool was not measured:\n%s", text)
	}
	testutil.AssertUnchanged(t, before, testutil.SnapshotHost(t))
	// The bench's own cgroups are named after its pid (bench-PID-N,
	// vbench-PID-N, bench-exec-PID) or bench-runc; other programs' tests
	// may have theirs in the same group meanwhile.
	pid := strconv.Itoa(cmd.Process.Pid)
	var left, others []string
	for _, cg := range testutil.GroupChildren(t, testutil.CgroupGroup) {
		if b := filepath.Base(cg); b == "bench-runc" || strings.Contains(b, "bench-"+pid+"-") || strings.HasSuffix(b, "bench-exec-"+pid) {
			left = append(left, cg)
		} else {
			others = append(others, cg)
		}
	}
	if len(left) > 0 {
		t.Errorf("cgroups left behind: %v", left)
	}
	// Nor the group itself, in any hierarchy: runc's container sits in
	// it too, and runc removes only its own cgroup. (A group that holds
	// other programs' cgroups stays, as it must.)
	if len(others) == 0 {
		for _, dir := range testutil.GroupDirs(t, testutil.CgroupGroup) {
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("cgroup group left behind: %s", dir)
			}
		}
	}
}

// vessel bench floor (the benchmark's "floor" row) starts its command
// chrooted in a new pid namespace (the shell is pid 1 and sees the
// root filesystem's probe), passes its exit status on, refuses a relative
// root with the usage, and leaves nothing behind.
func TestBenchFloor(t *testing.T) {
	root := testutil.BusyboxRootfs(t)
	before := testutil.SnapshotHost(t)
	out, err := exec.Command(vesselBin, "bench", "floor", root, "/bin/sh", "-c",
		"echo pid=$$; test -x "+testutil.RootfsProbePath+" && echo chrooted; exit 3").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("got %v, want exit status 3; output:\n%s", err, out)
	}
	if got := string(out); got != "pid=1\nchrooted\n" {
		t.Errorf("output %q, want pid 1 in the chroot", got)
	}
	out, err = exec.Command(vesselBin, "bench", "floor", "relative/root", "/bin/true").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "ROOT an absolute directory") {
		t.Errorf("relative root: %v, %s", err, out)
	}
	testutil.AssertUnchanged(t, before, testutil.SnapshotHost(t))
}
