package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openvessel/vessel/examples/internal/exampletest"
)

var testrunner string // the built example

func TestMain(m *testing.M) { exampletest.Main(m, "testrunner", &testrunner) }

// runExample runs the built testrunner with flags and the command, and
// returns the decoded -report result, the human summary (stderr) and the
// command's output (stdout).
func runExample(t *testing.T, args ...string) (*Result, string, string) {
	t.Helper()
	id := fmt.Sprintf("tr-%s-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), os.Getpid())
	if len(id) > 60 {
		id = id[len(id)-60:]
	}
	report := filepath.Join(t.TempDir(), "result.json")
	argv := append([]string{"-id", id, "-cgroup", exampletest.CgroupGroup, "-report", report}, args...)
	stdout, stderr, code := exampletest.Run(t, testrunner, argv...)
	exampletest.AssertNoLeftovers(t, id)
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("no report (exit %d): %v\nstdout: %s\nstderr: %s", code, err, stdout, stderr)
	}
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("report: %v\n%s", err, data)
	}
	if want := map[bool]int{true: 0, false: 1}[r.Verdict == "pass"]; code != want {
		t.Errorf("exit code %d for verdict %s, want %d", code, r.Verdict, want)
	}
	if !strings.Contains(stderr, "--- testrunner: "+strings.ToUpper(r.Verdict)) || !strings.Contains(stderr, "peak memory:") {
		t.Errorf("summary missing from stderr:\n%s", stderr)
	}
	return &r, stderr, stdout
}

func expectVerdict(t *testing.T, r *Result, verdict string) {
	t.Helper()
	if r.Verdict != verdict {
		t.Fatalf("verdict %q (%s), want %q", r.Verdict, r.Reason, verdict)
	}
}

// TestPass checks the sandbox as the command sees it: the source is
// read-only, the workspace writable, the network only a loopback device.
func TestPass(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "input.txt"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `set -e
cat input.txt
[ "$(pwd)" = /src ]
if touch /src/written 2>/dev/null; then echo "source is writable"; exit 3; fi
echo scratch > /work/scratch && cat /work/scratch
[ "$HOME" = /work ]
[ "$(ls /sys/class/net)" = lo ] || { echo "interfaces: $(ls /sys/class/net)"; exit 4; }
echo sandbox-ok`
	r, _, out := runExample(t, "-src", src, "-mem", "256M", "-pids", "64", "--", "sh", "-c", script)
	expectVerdict(t, r, "pass")
	if !strings.Contains(out, "from the host") || !strings.Contains(out, "scratch") || !strings.Contains(out, "sandbox-ok") {
		t.Errorf("command output: %q", out)
	}
	if _, err := os.Stat(filepath.Join(src, "written")); err == nil {
		t.Error("the command wrote into the source tree")
	}
	if r.ExitCode != 0 || r.Duration <= 0 {
		t.Errorf("result %+v", r)
	}
	if r.PeakSource != "" && r.PeakMemory == 0 {
		t.Errorf("peak memory 0 from %s", r.PeakSource)
	}
}

func TestFail(t *testing.T) {
	r, _, _ := runExample(t, "-src", t.TempDir(), "--", "sh", "-c", "echo failing; exit 1")
	expectVerdict(t, r, "fail")
	if r.ExitCode != 1 || r.Signal != "" {
		t.Errorf("exit code %d signal %q, want 1 and none", r.ExitCode, r.Signal)
	}
}

func TestTimeout(t *testing.T) {
	r, summary, _ := runExample(t, "-src", t.TempDir(), "-timeout", "1s", "--", "sleep", "60")
	expectVerdict(t, r, "timeout")
	if r.Duration < time.Second || r.Duration > 30*time.Second {
		t.Errorf("duration %v for a 1s timeout", r.Duration)
	}
	if !strings.Contains(summary, "still running after 1s") {
		t.Errorf("summary does not say why:\n%s", summary)
	}
}

// TestOOM runs a memory hog (tail keeps a "line" of /dev/zero, which
// never ends, in memory) under a 64 MiB limit.
func TestOOM(t *testing.T) {
	r, _, _ := runExample(t, "-src", t.TempDir(), "-mem", "64M", "--", "tail", "/dev/zero")
	expectVerdict(t, r, "oom")
	if r.OOMKills == 0 || r.Signal != "SIGKILL" {
		t.Errorf("oom kills %d, signal %q", r.OOMKills, r.Signal)
	}
	if r.PeakSource != "" && r.PeakMemory < 48<<20 {
		t.Errorf("peak memory %d (%s), want near the 64 MiB limit", r.PeakMemory, r.PeakSource)
	}
}

func TestCPUTime(t *testing.T) {
	r, _, _ := runExample(t, "-src", t.TempDir(), "-cputime", "300ms", "--", "sh", "-c", "while :; do :; done")
	expectVerdict(t, r, "cpu-time")
	if r.CPUTime < 300*time.Millisecond {
		t.Errorf("cpu time %v, below the limit", r.CPUTime)
	}
}

func TestSignal(t *testing.T) {
	// A real fault (unbounded recursion on a small stack): the test's
	// process is PID 1 of its pid namespace, which ignores a SIGSEGV
	// sent to it (kill -SEGV $$), as under runc.
	r, _, _ := runExample(t, "-src", t.TempDir(), "--", "sh", "-c", "ulimit -s 64; f() { f; }; f")
	expectVerdict(t, r, "signal")
	if r.Signal != "SIGSEGV" {
		t.Errorf("signal %q, want SIGSEGV", r.Signal)
	}
}

// TestGoTest runs part of the repository's own limits tests with the
// host's Go toolchain inside the sandbox, as the README shows. The build
// cache is the one this test's own go commands use, so it is warm.
func TestGoTest(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "limits")); err != nil {
		t.Fatalf("repository root not at %s: %v", root, err)
	}
	out, err := exec.Command(exampletest.GoTool(), "env", "GOCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	gocache := strings.TrimSpace(string(out))
	r, summary, stdout := runExample(t, "-src", root, "-go", "-gocache", gocache, "-mem", "2G", "-cpus", "2", "--",
		"go", "test", "-count=1", "-v", "-run", "^TestParse", "./limits")
	if r.Verdict != "pass" {
		t.Fatalf("go test in the container: %s (%s)\n%s\n%s", r.Verdict, r.Reason, stdout, summary)
	}
	for _, name := range []string{"TestParseSize", "TestParseCPUs"} {
		if !strings.Contains(stdout, "--- PASS: "+name) {
			t.Errorf("%s did not pass:\n%s", name, stdout)
		}
	}
}

func TestBadFlags(t *testing.T) {
	_, stderr, code := exampletest.Run(t, testrunner, "-mem", "lots", "--", "true")
	if code != 2 || !strings.Contains(stderr, "-mem") {
		t.Errorf("exit %d, stderr %q: want 2 and a message naming -mem", code, stderr)
	}
	_, stderr, code = exampletest.Run(t, testrunner, "-src", "/nonexistent-src", "--", "true")
	if code != 2 || !strings.Contains(stderr, "-src") {
		t.Errorf("exit %d, stderr %q: want 2 and a message naming -src", code, stderr)
	}
}
