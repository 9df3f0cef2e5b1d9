package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openvessel/vessel/examples/internal/exampletest"
)

var judgeBin string // the built example

func TestMain(m *testing.M) { exampletest.Main(m, "judge", &judgeBin) }

// writeFiles creates files (name -> content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// runJudge judges submission against the cases in dir/tests and returns
// the decoded report and the judge's exit code; it checks that the run
// left no container behind.
func runJudge(t *testing.T, dir, submission string, flags ...string) (*Report, int) {
	t.Helper()
	args := append([]string{"-json", "-tests", filepath.Join(dir, "tests"), "-cgroup", exampletest.CgroupGroup}, flags...)
	stdout, stderr, code, pid := exampletest.RunPid(t, judgeBin, append(args, filepath.Join(dir, submission))...)
	exampletest.AssertNoLeftovers(t, fmt.Sprintf("pool%d-", pid), fmt.Sprintf("judge-compile-%d", pid))
	var r Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("judge: exit %d, no report: %v\nstdout: %s\nstderr: %s", code, err, stdout, stderr)
	}
	if want := map[bool]int{true: 0, false: 1}[r.Verdict == Accepted]; code != want {
		t.Errorf("exit code %d for verdict %s, want %d", code, r.Verdict, want)
	}
	return &r, code
}

// A submission that misbehaves as its input tells it to, so that one run
// meets every verdict.
const trickySubmission = `read a b
case $a in
loop) while :; do :; done ;;
mem) tail /dev/zero ;;
crash) echo "boom" >&2; kill -SEGV $$ ;;
wrong) echo 42 ;;
spam) yes ;;
*) echo $((a + b)) ;;
esac
`

// TestVerdicts runs one submission over cases that end in each verdict a
// case can get.
func TestVerdicts(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"sub.sh":        trickySubmission,
		"tests/ac.in":   "1 2\n",
		"tests/ac.out":  "3\n",
		"tests/ac2.in":  "40 2\n",
		"tests/ac2.out": "42  \n\n", // trailing blanks do not matter
		"tests/wa.in":   "wrong 1\n",
		"tests/wa.out":  "0\n",
		"tests/tle.in":  "loop 0\n",
		"tests/tle.out": "0\n",
		"tests/mle.in":  "mem 0\n",
		"tests/mle.out": "0\n",
		"tests/re.in":   "crash 0\n",
		"tests/re.out":  "0\n",
		"tests/ole.in":  "spam 0\n",
		"tests/ole.out": "0\n",
	})
	// 3s: long enough for the memory hog to reach the limit on a loaded
	// machine, so it is not judged TLE instead.
	r, _ := runJudge(t, dir, "sub.sh", "-time", "3s", "-mem", "64M", "-output", "16K")
	want := map[string]string{"ac": Accepted, "ac2": Accepted, "wa": WrongAnswer, "tle": TimeLimit,
		"mle": MemoryLimit, "re": RuntimeError, "ole": OutputLimit}
	if len(r.Cases) != len(want) {
		t.Fatalf("%d cases judged, want %d: %+v", len(r.Cases), len(want), r.Cases)
	}
	for _, c := range r.Cases {
		if c.Verdict != want[c.Name] {
			t.Errorf("case %s: %s (%s), want %s", c.Name, c.Verdict, c.Detail, want[c.Name])
		}
	}
	details := map[string]string{}
	for _, c := range r.Cases {
		details[c.Name] = c.Detail
	}
	for name, part := range map[string]string{"wa": `expected "0", got "42"`, "re": "boom", "tle": "after 3s"} {
		if !strings.Contains(details[name], part) {
			t.Errorf("case %s detail %q, want it to mention %q", name, details[name], part)
		}
	}
	if r.Accepted != 2 || r.Total != 7 || r.Compile != nil {
		t.Errorf("report: accepted %d of %d, compile %+v", r.Accepted, r.Total, r.Compile)
	}
}

// TestIsolation checks what a submission can reach: its file read-only,
// no network, not root, and no trace of the case judged before it in the
// same pooled container.
func TestIsolation(t *testing.T) {
	dir := t.TempDir()
	script := `id -u
if echo x >> /sub/prog.sh 2>/dev/null; then echo sub-writable; fi
ls /sys/class/net | tr '\n' ' '; echo
if [ -e /tmp/mark ]; then echo seen-earlier-case; fi
echo mark > /tmp/mark
`
	files := map[string]string{"sub.sh": script}
	for i := 1; i <= 4; i++ {
		files[fmt.Sprintf("tests/%d.in", i)] = "\n"
		files[fmt.Sprintf("tests/%d.out", i)] = "10000\nlo\n"
	}
	writeFiles(t, dir, files)
	r, _ := runJudge(t, dir, "sub.sh", "-parallel", "1", "-time", "10s")
	if r.Verdict != Accepted || r.Accepted != 4 {
		t.Errorf("verdict %s, %d/4 accepted: %+v", r.Verdict, r.Accepted, r.Cases)
	}
}

// TestSampleProblem judges the README's sample submissions (Go ones
// compiled in a container with the host's toolchain) on the sample
// problem in testdata.
func TestSampleProblem(t *testing.T) {
	out, err := exec.Command(exampletest.GoTool(), "env", "GOCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	gocache := strings.TrimSpace(string(out))
	dir, err := filepath.Abs("testdata/aplusb")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		submission, verdict string
		accepted            int
		time                string
	}{
		// Generous time limits where time is not the point: a loaded
		// machine must not turn these into TLE.
		{"sum.go", Accepted, 3, "10s"},
		{"sum.sh", Accepted, 3, "10s"},
		{"wrong.go", WrongAnswer, 2, "10s"},
		{"greedy.go", MemoryLimit, 0, "20s"},
		{"slow.sh", TimeLimit, 0, "1s"},
		{"broken.go", CompileError, 0, "1s"},
	} {
		t.Run(tc.submission, func(t *testing.T) {
			r, _ := runJudge(t, dir, tc.submission, "-gocache", gocache, "-time", tc.time)
			if r.Verdict != tc.verdict || r.Accepted != tc.accepted || r.Total != 3 {
				t.Errorf("verdict %s, %d/%d accepted; want %s, %d/3\ncases: %+v\ncompile: %+v",
					r.Verdict, r.Accepted, r.Total, tc.verdict, tc.accepted, r.Cases, r.Compile)
			}
			isGo := strings.HasSuffix(tc.submission, ".go")
			if isGo != (r.Compile != nil) {
				t.Errorf("compile step %+v for %s", r.Compile, tc.submission)
			}
			switch tc.verdict {
			case CompileError:
				if r.Compile.OK || !strings.Contains(r.Compile.Output, "declared and not used") || len(r.Cases) != 0 {
					t.Errorf("compile error: %+v, cases %+v", r.Compile, r.Cases)
				}
			case WrongAnswer:
				if c := r.Cases[2]; c.Verdict != WrongAnswer || !strings.Contains(c.Detail, `expected "999999", got "1000001"`) {
					t.Errorf("case 03: %+v", c)
				}
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"sub.sh": "echo\n", "sub.py": "print()\n", "tests/1.in": "", "empty/x": ""})
	for _, args := range [][]string{
		{"-tests", filepath.Join(dir, "tests"), filepath.Join(dir, "sub.sh")}, // 1.in has no 1.out
		{"-tests", filepath.Join(dir, "empty"), filepath.Join(dir, "sub.sh")},
		{"-tests", filepath.Join(dir, "tests"), filepath.Join(dir, "sub.py")},
		{"-tests", filepath.Join(dir, "tests"), "-mem", "lots", filepath.Join(dir, "sub.sh")},
	} {
		_, stderr, code := exampletest.Run(t, judgeBin, args...)
		if code != 2 || stderr == "" {
			t.Errorf("judge %v: exit %d, stderr %q: want 2 and a message", args, code, stderr)
		}
	}
}
