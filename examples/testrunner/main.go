// Command testrunner runs a command — typically `go test ./...` — against a
// source tree inside a vessel container: the source is mounted read-only,
// the command gets a private writable workspace on a tmpfs and no network,
// and memory, CPU, process-count, wall-clock and CPU-time limits apply. It
// prints whether the command passed, how long it took, its peak memory and,
// when it did not end by itself, what ended it.
//
// Usage (as root):
//
//	testrunner [flags] [--] command [args...]
//	testrunner -src . -go -mem 1G -cpus 2 -timeout 5m -- go test ./limits
//
// See README.md.
package main

import (
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
	"strings"
	"syscall"
	"time"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/limits"
	"github.com/openvessel/vessel/network"
)

// Result is what one run produced; -report writes it as JSON.
type Result struct {
	// Verdict is "pass", "fail" (non-zero exit), "timeout", "oom",
	// "cpu-time" or "signal".
	Verdict string `json:"verdict"`
	// Reason explains the verdict in a sentence.
	Reason   string `json:"reason"`
	ExitCode int    `json:"exitCode"`
	Signal   string `json:"signal,omitempty"`
	// Duration is the wall-clock time from start to exit.
	Duration time.Duration `json:"duration"`
	// CPUTime is the CPU time all of the container's processes used.
	CPUTime time.Duration `json:"cpuTime"`
	// PeakMemory is the cgroup's highest memory use in bytes; PeakSource
	// names the kernel file it came from (empty when the kernel keeps no
	// peak, then PeakMemory is 0).
	PeakMemory uint64 `json:"peakMemory"`
	PeakSource string `json:"peakSource,omitempty"`
	// OOMKills counts processes the OOM killer ended in the container.
	OOMKills uint64 `json:"oomKills"`
}

// options are the command line's settings.
type options struct {
	id        string
	src       string
	dir       string
	workspace string
	wsSize    int64
	mem       int64
	cpus      float64
	pids      int64
	timeout   time.Duration
	cpuTime   time.Duration
	goTool    bool
	cache     string
	env       []string
	cgroup    string
	report    string
	args      []string
}

type envList []string

func (e *envList) String() string     { return strings.Join(*e, ",") }
func (e *envList) Set(s string) error { *e = append(*e, s); return nil }

func main() {
	vessel.Init() // in a container child this sets up and never returns
	opts, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "testrunner:", err)
		os.Exit(2)
	}
	// Ctrl-C kills the whole container, not just its first process.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, opts, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testrunner:", err)
		os.Exit(2)
	}
	printSummary(os.Stderr, opts, res)
	if opts.report != "" {
		if err := writeReport(opts.report, res); err != nil {
			fmt.Fprintln(os.Stderr, "testrunner:", err)
			os.Exit(2)
		}
	}
	if res.Verdict != "pass" {
		os.Exit(1)
	}
}

func parseFlags(argv []string) (*options, error) {
	fs := flag.NewFlagSet("testrunner", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: testrunner [flags] [--] command [args...]")
		fs.PrintDefaults()
	}
	o := &options{}
	var mem, ws string
	var cpus string
	var env envList
	fs.StringVar(&o.id, "id", fmt.Sprintf("testrunner-%d", os.Getpid()), "container id (also its hostname and cgroup name)")
	fs.StringVar(&o.src, "src", ".", "source tree on the host, mounted read-only")
	fs.StringVar(&o.dir, "dir", "/src", "where the source tree appears in the container (the working directory)")
	fs.StringVar(&o.workspace, "workspace", "/work", "private writable workspace (tmpfs) in the container; HOME points there")
	fs.StringVar(&ws, "workspace-size", "1G", "size limit of the workspace tmpfs")
	fs.StringVar(&mem, "mem", "1G", "memory limit (workspace files count too)")
	fs.StringVar(&cpus, "cpus", "1", "CPU quota in cores (0.5 = half a core)")
	fs.Int64Var(&o.pids, "pids", 512, "maximum number of processes and threads")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "wall-clock limit; 0 for none")
	fs.DurationVar(&o.cpuTime, "cputime", 0, "CPU-time limit over all processes; 0 for none")
	fs.BoolVar(&o.goTool, "go", false, "set the container up for the host's Go toolchain (PATH, GOCACHE in the workspace, the host module cache read-only, GOPROXY=off)")
	fs.StringVar(&o.cache, "gocache", "", "with -go: a host Go build cache (e.g. $(go env GOCACHE)) mounted writable at /gocache, kept between runs; trusts the command with it")
	fs.Var(&env, "env", "KEY=VALUE for the command's environment (repeatable)")
	fs.StringVar(&o.cgroup, "cgroup", "", "cgroup group the container goes under (default $VESSEL_CGROUP_GROUP, else vessel)")
	fs.StringVar(&o.report, "report", "", "write the result as JSON to this file (- for stdout)")
	if err := fs.Parse(argv); err != nil {
		return nil, err
	}
	o.args = fs.Args()
	if len(o.args) == 0 {
		fs.Usage()
		return nil, errors.New("no command given")
	}
	var err error
	if o.mem, err = limits.ParseSize(mem); err != nil {
		return nil, fmt.Errorf("-mem: %w", err)
	}
	if o.wsSize, err = limits.ParseSize(ws); err != nil {
		return nil, fmt.Errorf("-workspace-size: %w", err)
	}
	if o.cpus, err = limits.ParseCPUs(cpus); err != nil {
		return nil, fmt.Errorf("-cpus: %w", err)
	}
	if o.src, err = filepath.Abs(o.src); err != nil {
		return nil, fmt.Errorf("-src: %w", err)
	}
	if st, err := os.Stat(o.src); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("-src: %s is not a directory", o.src)
	}
	if o.cache != "" {
		if o.cache, err = filepath.Abs(o.cache); err != nil {
			return nil, fmt.Errorf("-gocache: %w", err)
		}
		if err := os.MkdirAll(o.cache, 0o755); err != nil {
			return nil, fmt.Errorf("-gocache: %w", err)
		}
	}
	o.env = env
	return o, nil
}

// config builds the container's configuration from the options.
func config(o *options) (*vessel.Config, error) {
	// NewConfig's root is the host's own files, read-only.
	cfg := vessel.NewConfig().WithHostname(o.id).WithNetwork(network.None())
	cfg.WithBind(o.src, o.dir, true).WithTmpfs(o.workspace, o.wsSize).WithWorkDir(o.dir)
	// Swap limited to the memory limit: no swap beyond it.
	cfg.WithMemoryLimit(o.mem).WithMemorySwap(o.mem).WithCPUs(o.cpus).WithPids(o.pids)
	cfg.WithTimeout(o.timeout).WithCPUTime(o.cpuTime)
	cfg.WithEnv("HOME="+o.workspace, "TMPDIR=/tmp")
	if o.cgroup != "" {
		cfg.Cgroup.Group = o.cgroup
	}
	if o.cache != "" {
		cfg.WithBind(o.cache, "/gocache", false)
	}
	if o.goTool {
		goEnv, err := goEnvironment(o)
		if err != nil {
			return nil, err
		}
		cfg.WithEnv(goEnv...)
		// The host's module cache is under a home directory, which a
		// container on the host's files does not see: bind it, read-only.
		for _, kv := range goEnv {
			if dir, ok := strings.CutPrefix(kv, "GOMODCACHE="); ok {
				if _, err := os.Stat(dir); err == nil {
					cfg.WithBind(dir, dir, true)
				}
			}
		}
	}
	cfg.WithEnv(o.env...)
	return cfg, cfg.Validate()
}

// goEnvironment points the host's Go toolchain, seen read-only in the
// container, at writable places: the build cache in the workspace (or the
// -gocache directory), modules from the host's module cache, never the
// network.
func goEnvironment(o *options) ([]string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("-go: no go command in PATH: %w", err)
	}
	out, err := exec.Command(goBin, "env", "GOROOT", "GOMODCACHE").Output()
	if err != nil {
		return nil, fmt.Errorf("-go: go env: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		return nil, fmt.Errorf("-go: unexpected go env output %q", out)
	}
	goroot, modcache := lines[0], lines[1]
	cache := filepath.Join(o.workspace, ".cache", "go-build")
	if o.cache != "" {
		cache = "/gocache"
	}
	return []string{
		"PATH=" + filepath.Join(goroot, "bin") + ":" + vessel.DefaultPath,
		"GOROOT=" + goroot,
		"GOCACHE=" + cache,
		"GOMODCACHE=" + modcache,
		"GOPATH=" + filepath.Join(o.workspace, "go"),
		"GOPROXY=off",
		"GOTOOLCHAIN=local",
		"GOFLAGS=-mod=readonly -buildvcs=false",
		"CGO_ENABLED=0",
	}, nil
}

// run runs the command once and reports how it went. An error means the
// container could not be started; everything the command itself did is in
// the Result.
func run(ctx context.Context, o *options, stdout, stderr io.Writer) (*Result, error) {
	cfg, err := config(o)
	if err != nil {
		return nil, err
	}
	c, err := vessel.New(o.id, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Destroy()
	c.Stdout, c.Stderr = stdout, stderr
	start := time.Now()
	if err := c.Start(ctx, o.args...); err != nil {
		return nil, err
	}
	waitErr := c.Wait()
	res := &Result{Duration: time.Since(start)}
	// The cgroup stays until Destroy: its figures cover the whole run.
	if st, err := c.Stats(); err == nil {
		res.CPUTime = st.CPU.Total
		res.PeakMemory, res.PeakSource = st.Memory.Peak, st.Memory.PeakSource
		res.OOMKills = st.Memory.OOMKills
	}
	exit := c.State().Exit
	if exit == nil {
		return nil, fmt.Errorf("container ended without an exit status (%v)", waitErr)
	}
	res.ExitCode = exit.Code
	if exit.Signal != 0 {
		res.Signal = unixSignalName(exit.Signal)
	}
	res.Verdict, res.Reason = verdict(exit, o)
	return res, nil
}

// verdict says why the container ended. The limits come first: a process
// the OOM killer or the timeout ended also died by a signal.
func verdict(e *vessel.ExitStatus, o *options) (string, string) {
	switch {
	case e.OOMKilled:
		return "oom", fmt.Sprintf("the OOM killer ended it at the %s memory limit", human(uint64(o.mem)))
	case e.TimedOut:
		return "timeout", fmt.Sprintf("still running after %v, killed", o.timeout)
	case e.CPUTimeExceeded:
		return "cpu-time", fmt.Sprintf("used up its %v of CPU time, killed", o.cpuTime)
	case e.Killed:
		return "signal", "killed by testrunner (interrupted)"
	case e.Signal != 0:
		return "signal", fmt.Sprintf("killed by signal %s (%v)", unixSignalName(e.Signal), e.Signal)
	case e.Code != 0:
		return "fail", fmt.Sprintf("exit status %d", e.Code)
	}
	return "pass", "exit status 0"
}

func printSummary(w io.Writer, o *options, r *Result) {
	fmt.Fprintf(w, "\n--- testrunner: %s: %s\n", strings.ToUpper(r.Verdict), r.Reason)
	fmt.Fprintf(w, "command:     %s\n", strings.Join(o.args, " "))
	fmt.Fprintf(w, "duration:    %v (cpu %v)\n", r.Duration.Round(time.Millisecond), r.CPUTime.Round(time.Millisecond))
	if r.PeakSource != "" {
		fmt.Fprintf(w, "peak memory: %s of %s (%s)\n", human(r.PeakMemory), human(uint64(o.mem)), r.PeakSource)
	} else {
		fmt.Fprintf(w, "peak memory: unknown (the kernel keeps no peak for this cgroup)\n")
	}
	if r.OOMKills > 0 {
		fmt.Fprintf(w, "oom kills:   %d\n", r.OOMKills)
	}
}

func writeReport(path string, r *Result) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = os.Stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func human(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func unixSignalName(s syscall.Signal) string {
	names := map[syscall.Signal]string{
		syscall.SIGKILL: "SIGKILL", syscall.SIGTERM: "SIGTERM", syscall.SIGSEGV: "SIGSEGV",
		syscall.SIGABRT: "SIGABRT", syscall.SIGINT: "SIGINT", syscall.SIGBUS: "SIGBUS",
		syscall.SIGFPE: "SIGFPE", syscall.SIGILL: "SIGILL", syscall.SIGXCPU: "SIGXCPU",
		syscall.SIGPIPE: "SIGPIPE", syscall.SIGHUP: "SIGHUP", syscall.SIGQUIT: "SIGQUIT",
	}
	if n, ok := names[s]; ok {
		return n
	}
	return fmt.Sprintf("signal %d", int(s))
}
