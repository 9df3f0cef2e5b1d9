package exampletest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/internal/testutil"
)

// CgroupGroup is the cgroup group every example's test places its
// containers in.
const CgroupGroup = "vessel-test"

// GoTool returns the go command that runs these tests.
func GoTool() string {
	// go test puts its own GOROOT/bin first in the test's PATH.
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

// Leftovers lists what containers whose ids start with prefix left on
// the host: cgroup directories under any hierarchy's vessel-test group
// (the examples' tests run in this process's cgroups, so that is where
// their containers' cgroups go), and mounts whose source or mount point
// mentions prefix. Pass a whole id, ended by a character no other id has
// there, to look at one container.
func Leftovers(t testing.TB, prefix string) []string {
	t.Helper()
	var left []string
	for _, dir := range GroupDirs(t) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue // no vessel-test group in this hierarchy
		}
		for _, e := range entries {
			if e.IsDir() && strings.HasPrefix(e.Name(), prefix) {
				left = append(left, "cgroup "+filepath.Join(dir, e.Name()))
			}
		}
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(mi))
	for sc.Scan() {
		if strings.Contains(sc.Text(), prefix) {
			left = append(left, "mount "+sc.Text())
		}
	}
	return left
}

// AssertNoLeftovers fails the test if containers whose ids start with
// one of the prefixes left anything behind (see Leftovers).
func AssertNoLeftovers(t testing.TB, prefixes ...string) {
	t.Helper()
	for _, p := range prefixes {
		if l := Leftovers(t, p); len(l) > 0 {
			t.Errorf("containers %s* left:\n  %s", p, strings.Join(l, "\n  "))
		}
	}
}

// GroupDirs returns the vessel-test directory under this process's own
// cgroup in every mounted hierarchy (whether or not it exists).
func GroupDirs(t testing.TB) []string { return testutil.GroupDirs(t, CgroupGroup) }

// Run runs bin with args and returns its stdout, stderr and exit code;
// a failure to start it at all fails the test.
func Run(t testing.TB, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	stdout, stderr, code, _ = RunPid(t, bin, args...)
	return stdout, stderr, code
}

// RunPid is Run that also returns the process's pid, which examples put
// in the ids of the containers they start.
func RunPid(t testing.TB, bin string, args ...string) (stdout, stderr string, code, pid int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Start(); err != nil {
		t.Fatalf("run %s: %v", bin, err)
	}
	err := cmd.Wait()
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run %s: %v", bin, err)
		}
		return o.String(), e.String(), ee.ExitCode(), cmd.Process.Pid
	}
	return o.String(), e.String(), 0, cmd.Process.Pid
}

// Main is the whole body of an example test's TestMain: it checks for
// root, builds the example in the current directory with CGO_ENABLED=0
// into a temporary directory, stores the binary's path in *bin, runs the
// tests, removes the build and exits with the tests' status.
func Main(m *testing.M, name string, bin *string) {
	if os.Geteuid() != 0 {
		fmt.Fprintf(os.Stderr, "the %s example's tests must run as root (they start containers)\n", name)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", name+"-example-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Containers may run the binary as another user: let them reach it.
	_ = os.Chmod(dir, 0o755)
	code := func() int {
		defer os.RemoveAll(dir)
		*bin = filepath.Join(dir, name)
		cmd := exec.Command(GoTool(), "build", "-o", *bin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", name, err, out)
			return 1
		}
		code := m.Run()
		// The cpuset parent cgroups vessel keeps (see cgroups.Destroy).
		if err := cgroups.RemoveGroup(CgroupGroup); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		return code
	}()
	os.Exit(code)
}
