// Command judge is an online-judge style runner for untrusted code. It
// compiles a submission (a Go program, built by the host's Go toolchain
// inside a locked-down container; or a shell script, which needs no
// compiling), then runs it on every test input in a pool of containers
// (vessel.Pool), each case in a container reset to a clean state, with a
// time limit, a memory limit and an output limit, and gives a verdict per
// case:
//
//	AC   accepted                 the output matched
//	WA   wrong answer             it did not
//	TLE  time limit exceeded      still running at the time limit
//	MLE  memory limit exceeded    the OOM killer ended it at the memory limit
//	OLE  output limit exceeded    it wrote more than the output limit
//	RE   runtime error            non-zero exit or killed by a signal
//	CE   compilation error        (the submission as a whole)
//
// Usage (as root):
//
//	judge -tests DIR [flags] SUBMISSION.go|SUBMISSION.sh
//
// DIR holds test cases as NAME.in and NAME.out pairs. See README.md.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/limits"
	"github.com/openvessel/vessel/network"
)

// Verdicts.
const (
	Accepted       = "AC"
	WrongAnswer    = "WA"
	TimeLimit      = "TLE"
	MemoryLimit    = "MLE"
	OutputLimit    = "OLE"
	RuntimeError   = "RE"
	CompileError   = "CE"
	jobUID         = 10000 // the submission runs as this user in its container
	outputFileName = "stdout"
)

// options are the command line's settings.
type options struct {
	tests       string
	submission  string
	timeLimit   time.Duration
	mem         int64
	output      int64
	pids        int64
	parallel    int
	compileTime time.Duration
	compileMem  int64
	gocache     string
	cgroup      string
	asJSON      bool
}

// Report is the judgement of one submission.
type Report struct {
	Submission string        `json:"submission"`
	Compile    *CompileStep  `json:"compile,omitempty"`
	Cases      []CaseVerdict `json:"cases"`
	Accepted   int           `json:"accepted"`
	Total      int           `json:"total"`
	// Verdict is AC when every case was accepted, CE when the submission
	// did not compile, else the first case's verdict that was not AC.
	Verdict string `json:"verdict"`
}

// CompileStep is how compiling went.
type CompileStep struct {
	OK       bool          `json:"ok"`
	Duration time.Duration `json:"duration"`
	Output   string        `json:"output,omitempty"`
}

// CaseVerdict is one test case's result.
type CaseVerdict struct {
	Name    string        `json:"name"`
	Verdict string        `json:"verdict"`
	Time    time.Duration `json:"time"`
	CPU     time.Duration `json:"cpu"`
	Detail  string        `json:"detail,omitempty"`
}

func main() {
	vessel.Init() // in a container child this sets up and never returns
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "judge:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := judge(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "judge:", err)
		os.Exit(2)
	}
	if o.asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		printReport(os.Stdout, rep)
	}
	if rep.Verdict != Accepted {
		os.Exit(1)
	}
}

func parseFlags(argv []string) (*options, error) {
	fs := flag.NewFlagSet("judge", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: judge -tests DIR [flags] SUBMISSION.go|SUBMISSION.sh")
		fs.PrintDefaults()
	}
	o := &options{}
	var mem, output, compileMem string
	fs.StringVar(&o.tests, "tests", "", "directory of test cases: NAME.in and NAME.out pairs")
	fs.DurationVar(&o.timeLimit, "time", time.Second, "time limit per case (wall clock)")
	fs.StringVar(&mem, "mem", "64M", "memory limit per case")
	fs.StringVar(&output, "output", "64K", "output limit per case")
	fs.Int64Var(&o.pids, "pids", 32, "process and thread limit per case")
	fs.IntVar(&o.parallel, "parallel", 2, "cases judged at once (containers in the pool)")
	fs.DurationVar(&o.compileTime, "compile-time", 2*time.Minute, "time limit of the compile step")
	fs.StringVar(&compileMem, "compile-mem", "1G", "memory limit of the compile step")
	fs.StringVar(&o.gocache, "gocache", "", "host Go build cache for the compile step (default: a fresh one per compile, which is slow)")
	fs.StringVar(&o.cgroup, "cgroup", "", "cgroup group the containers go under (default $VESSEL_CGROUP_GROUP, else vessel)")
	fs.BoolVar(&o.asJSON, "json", false, "print the report as JSON")
	if err := fs.Parse(argv); err != nil {
		return nil, err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return nil, errors.New("want exactly one submission file")
	}
	o.submission = fs.Arg(0)
	if ext := filepath.Ext(o.submission); ext != ".go" && ext != ".sh" {
		return nil, fmt.Errorf("submission %s: want a .go or .sh file", o.submission)
	}
	if _, err := os.Stat(o.submission); err != nil {
		return nil, fmt.Errorf("submission: %w", err)
	}
	if o.tests == "" {
		return nil, errors.New("-tests: no test directory given")
	}
	var err error
	if o.mem, err = limits.ParseSize(mem); err != nil || o.mem <= 0 {
		return nil, fmt.Errorf("-mem %q: want a size such as 64M", mem)
	}
	if o.output, err = limits.ParseSize(output); err != nil || o.output <= 0 {
		return nil, fmt.Errorf("-output %q: want a size such as 64K", output)
	}
	if o.compileMem, err = limits.ParseSize(compileMem); err != nil || o.compileMem <= 0 {
		return nil, fmt.Errorf("-compile-mem %q: want a size such as 1G", compileMem)
	}
	if o.timeLimit <= 0 {
		return nil, fmt.Errorf("-time %v: want a positive duration", o.timeLimit)
	}
	if o.parallel < 1 {
		return nil, fmt.Errorf("-parallel %d: want at least 1", o.parallel)
	}
	return o, nil
}

// testCase is one NAME.in/NAME.out pair.
type testCase struct {
	name     string
	input    string
	expected string
}

func loadTests(dir string) ([]testCase, error) {
	ins, err := filepath.Glob(filepath.Join(dir, "*.in"))
	if err != nil {
		return nil, err
	}
	sort.Strings(ins)
	var cases []testCase
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in")
		out := strings.TrimSuffix(in, ".in") + ".out"
		if _, err := os.Stat(out); err != nil {
			return nil, fmt.Errorf("-tests: case %s has no %s", name, filepath.Base(out))
		}
		cases = append(cases, testCase{name: name, input: in, expected: out})
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("-tests: no NAME.in files in %s", dir)
	}
	return cases, nil
}

// judge compiles the submission and runs every case.
func judge(ctx context.Context, o *options) (*Report, error) {
	cases, err := loadTests(o.tests)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "judge-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	// The submission's directory: readable by the job's user, bound
	// read-only into every container.
	sub := filepath.Join(work, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(work, 0o755); err != nil {
		return nil, err
	}
	rep := &Report{Submission: o.submission, Total: len(cases)}
	var run []string
	switch filepath.Ext(o.submission) {
	case ".sh":
		if err := copyFile(o.submission, filepath.Join(sub, "prog.sh"), 0o644); err != nil {
			return nil, err
		}
		run = []string{"/bin/sh", "/sub/prog.sh"}
	case ".go":
		step, err := compileGo(ctx, o, sub)
		if err != nil {
			return nil, err
		}
		rep.Compile = step
		if !step.OK {
			rep.Verdict = CompileError
			return rep, nil
		}
		run = []string{"/sub/prog"}
	}

	pool, err := vessel.NewPool(runConfig(o, sub), min(o.parallel, len(cases)))
	if err != nil {
		return nil, fmt.Errorf("start the container pool: %w", err)
	}
	defer pool.Close()

	rep.Cases = make([]CaseVerdict, len(cases))
	var wg sync.WaitGroup
	errs := make([]error, len(cases))
	for i, tc := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Pool.Get waits while every container is busy.
			rep.Cases[i], errs[i] = runCase(ctx, pool, o, work, tc, run)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, c := range rep.Cases {
		if c.Verdict == Accepted {
			rep.Accepted++
		} else if rep.Verdict == "" {
			rep.Verdict = c.Verdict
		}
	}
	if rep.Verdict == "" {
		rep.Verdict = Accepted
	}
	return rep, nil
}

// runConfig is the configuration of the pool's containers: the host's
// files read-only, the submission read-only at /sub, no network, the
// case's limits, and an unprivileged user.
func runConfig(o *options, sub string) *vessel.Config {
	cfg := vessel.NewConfig().
		WithNetwork(network.None()).
		WithBind(sub, "/sub", true).
		WithWorkDir("/tmp").
		WithUser(jobUID, jobUID).
		WithMemoryLimit(o.mem).
		WithMemorySwap(o.mem).
		WithPids(o.pids).
		WithCPUs(1).
		// Writing past the output limit (stdout is a file) gets SIGXFSZ;
		// one byte more than the limit tells "too much" from "just enough".
		WithRlimit(limits.Rlimit{Type: "RLIMIT_FSIZE", Soft: uint64(o.output) + 1, Hard: uint64(o.output) + 1}).
		WithEnv("HOME=/tmp")
	if o.cgroup != "" {
		cfg.Cgroup.Group = o.cgroup
	}
	return cfg
}

// runCase runs one case in a pooled container. An error means the judge
// itself failed; whatever the submission did is in the verdict.
func runCase(ctx context.Context, pool *vessel.Pool, o *options, work string, tc testCase, run []string) (CaseVerdict, error) {
	v := CaseVerdict{Name: tc.name}
	in, err := os.Open(tc.input)
	if err != nil {
		return v, err
	}
	defer in.Close()
	// Output goes to a file, so RLIMIT_FSIZE bounds it and nothing the
	// job leaves running can hold a pipe open.
	outPath := filepath.Join(work, "out-"+tc.name)
	out, err := os.OpenFile(outPath, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o600)
	if err != nil {
		return v, err
	}
	defer os.Remove(outPath)
	defer out.Close()

	pc, err := pool.Get(ctx)
	if err != nil {
		return v, err
	}
	defer pc.Release() // kills what the job left and resets the container
	before, err := pc.Container().Stats()
	if err != nil {
		return v, err
	}
	jobCtx, cancel := context.WithTimeout(ctx, o.timeLimit)
	defer cancel()
	cmd := vessel.Command(run[0], run[1:]...)
	cmd.Stdin, cmd.Stdout = in, out
	var stderr bytes.Buffer
	cmd.Stderr = &limitedBuffer{buf: &stderr, max: 4096}
	start := time.Now()
	p, err := pc.Exec(jobCtx, cmd)
	if err != nil {
		v.Verdict, v.Detail = RuntimeError, err.Error()
		return v, nil
	}
	waitErr := p.Wait()
	v.Time = time.Since(start)
	timedOut := jobCtx.Err() == context.DeadlineExceeded
	after, err := pc.Container().Stats()
	if err != nil {
		return v, err
	}
	v.CPU = after.CPU.Total - before.CPU.Total
	st := p.ExitStatus()
	size, _ := out.Seek(0, io.SeekEnd)
	switch {
	case st != nil && st.Signal == syscall.SIGXFSZ, size > o.output:
		v.Verdict, v.Detail = OutputLimit, fmt.Sprintf("more than %d bytes of output", o.output)
	case after.Memory.OOMKills > before.Memory.OOMKills:
		v.Verdict, v.Detail = MemoryLimit, fmt.Sprintf("killed at the %s memory limit", sizeString(o.mem))
	case timedOut:
		v.Verdict, v.Detail = TimeLimit, fmt.Sprintf("still running after %v", o.timeLimit)
	case waitErr != nil:
		v.Verdict = RuntimeError
		if st != nil {
			v.Detail = st.String()
		} else {
			v.Detail = waitErr.Error()
		}
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			v.Detail += ": " + firstLine(msg)
		}
	default:
		got, err := os.ReadFile(outPath)
		if err != nil {
			return v, err
		}
		want, err := os.ReadFile(tc.expected)
		if err != nil {
			return v, err
		}
		if same, detail := compareOutput(got, want); same {
			v.Verdict = Accepted
		} else {
			v.Verdict, v.Detail = WrongAnswer, detail
		}
	}
	return v, nil
}

// compareOutput compares line by line, ignoring trailing spaces on a line
// and trailing empty lines, as most judges do.
func compareOutput(got, want []byte) (bool, string) {
	g, w := normalize(got), normalize(want)
	for i := 0; i < max(len(g), len(w)); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return false, fmt.Sprintf("line %d: expected %q, got %q", i+1, clip(wl), clip(gl))
		}
	}
	return true, ""
}

func normalize(b []byte) []string {
	lines := strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], " \t")
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return clip(line)
}

// compileGo builds the submission with the host's Go toolchain in a
// container of its own: the host's files read-only, the source read-only,
// the binary written to sub, no network, limits on time, memory and
// processes. The compiler never runs the submission's code.
func compileGo(ctx context.Context, o *options, sub string) (*CompileStep, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("compile: no go command in PATH: %w", err)
	}
	env, err := exec.Command(goBin, "env", "GOROOT").Output()
	if err != nil {
		return nil, fmt.Errorf("compile: go env: %w", err)
	}
	goroot := strings.TrimSpace(string(env))
	src, err := filepath.Abs(o.submission)
	if err != nil {
		return nil, err
	}
	cfg := vessel.NewConfig().
		WithNetwork(network.None()).
		WithBind(src, "/src/main.go", true).
		WithBind(sub, "/out", false).
		WithTmpfs("/work", 1<<30).
		WithWorkDir("/work").
		WithMemoryLimit(o.compileMem).
		WithMemorySwap(o.compileMem).
		WithPids(256).
		WithCPUs(2).
		WithTimeout(o.compileTime).
		WithEnv("HOME=/work", "PATH="+filepath.Join(goroot, "bin")+":"+vessel.DefaultPath,
			"GOROOT="+goroot, "GOCACHE=/work/gocache", "GOPATH=/work/go", "GOPROXY=off",
			"GOTOOLCHAIN=local", "GOFLAGS=-buildvcs=false", "GO111MODULE=off", "CGO_ENABLED=0")
	if o.gocache != "" {
		cache, err := filepath.Abs(o.gocache)
		if err != nil {
			return nil, err
		}
		cfg.WithBind(cache, "/gocache", false).WithEnv("GOCACHE=/gocache")
	}
	if o.cgroup != "" {
		cfg.Cgroup.Group = o.cgroup
	}
	c, err := vessel.New(fmt.Sprintf("judge-compile-%d", os.Getpid()), cfg)
	if err != nil {
		return nil, err
	}
	defer c.Destroy()
	var out bytes.Buffer
	lb := &limitedBuffer{buf: &out, max: 16 << 10}
	c.Stdout, c.Stderr = lb, lb
	start := time.Now()
	err = c.Run(ctx, "go", "build", "-trimpath", "-o", "/out/prog", "/src/main.go")
	step := &CompileStep{OK: err == nil, Duration: time.Since(start), Output: strings.TrimSpace(out.String())}
	var ee *vessel.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		if ee.Status.TimedOut || ee.Status.OOMKilled {
			step.Output = strings.TrimSpace(step.Output + "\ncompiler: " + ee.Status.String())
		}
	default:
		return nil, fmt.Errorf("compile: %w", err)
	}
	return step, nil
}

// limitedBuffer keeps the first max bytes written to it and drops the
// rest (reporting success, so the writer is not disturbed).
type limitedBuffer struct {
	mu  sync.Mutex
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

func sizeString(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dG", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

func printReport(w io.Writer, r *Report) {
	if r.Compile != nil {
		if r.Compile.OK {
			fmt.Fprintf(w, "compile: ok (%v)\n", r.Compile.Duration.Round(time.Millisecond))
		} else {
			fmt.Fprintf(w, "compile: failed (%v)\n%s\n", r.Compile.Duration.Round(time.Millisecond), r.Compile.Output)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range r.Cases {
		fmt.Fprintf(tw, "%s\t%s\t%v\t(cpu %v)\t%s\n", c.Name, c.Verdict, c.Time.Round(time.Millisecond), c.CPU.Round(time.Millisecond), c.Detail)
	}
	tw.Flush()
	fmt.Fprintf(w, "verdict: %s (%d/%d accepted)\n", r.Verdict, r.Accepted, r.Total)
}
