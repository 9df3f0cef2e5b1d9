package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	"time"

	"github.com/spf13/cobra"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/rootfs"
)

// benchTool is one way of running the benchmark's command; run returns
// how long one run took, or why it failed.
type benchTool struct {
	name   string
	absent string // why the tool cannot be measured ("" when it can)
	run    func(i int) (time.Duration, error)
	close  func()
	times  []time.Duration
}

func benchCommand() *cobra.Command {
	var n int
	var scenario, busybox string
	cmd := &cobra.Command{
		Use:   "bench [-n RUNS] [--scenario start|exec|all] | bench floor ROOT CMD...",
		Short: "Time container start and exec against runc, bubblewrap and a floor",
		Long: "Compares vessel with runc and bubblewrap (bwrap) when they are installed, running\n" +
			"each tool in turn (alternating) on the same busybox root filesystem, and prints\n" +
			"the median and 95th percentile per tool and their ratios. \"vessel\" is the CLI\n" +
			"as a whole process, like the peers; vessel-lib the same container started by\n" +
			"this process through the library; vessel-spare that with an init started ahead\n" +
			"of time (vessel.Spares). \"floor\" is not a container: in the start scenario\n" +
			"this command (vessel bench floor ROOT CMD...) starting the command chrooted\n" +
			"in new namespaces and nothing else, no cgroup, mount or security profile, the\n" +
			"least a Go command can take; in the exec scenario the command started by\n" +
			"this process on the host. When done it removes the empty cgroups the\n" +
			"containers left in vessel's group (cgroups.RemoveGroup).",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && args[0] == "floor" {
				return codeErr(benchFloor(args[1:]))
			}
			if len(args) > 0 {
				return usagef("bench: unexpected argument %q", args[0])
			}
			return codeErr(runBenchCmd(n, scenario, busybox))
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().IntVarP(&n, "n", "n", 20, "runs per tool")
	cmd.Flags().StringVar(&scenario, "scenario", "all", "start (start to exit of /bin/true), exec (a process in a running container), or all")
	cmd.Flags().StringVar(&busybox, "busybox", "/bin/busybox", "static busybox to build the benchmark's root filesystem from")
	return cmd
}

func runBenchCmd(nRuns int, scenarioName, busyboxPath string) int {
	n, scenario, busybox := &nRuns, &scenarioName, &busyboxPath
	if *n < 1 {
		return fail("bench: -n %d: need at least one run", *n)
	}
	var scenarios []string
	switch *scenario {
	case "start", "exec":
		scenarios = []string{*scenario}
	case "all":
		scenarios = []string{"start", "exec"}
	default:
		return fail("bench: -scenario %q: want start, exec or all", *scenario)
	}
	if os.Geteuid() != 0 {
		return fail("bench: must run as root (containers with cgroups and every namespace)")
	}
	dir, err := os.MkdirTemp("", "vessel-bench-")
	if err != nil {
		return fail("bench: %v", err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		return fail("bench: %v", err)
	}
	root := filepath.Join(dir, "rootfs")
	if err := buildBenchRootfs(root, *busybox); err != nil {
		return fail("bench: build root filesystem: %v", err)
	}
	fmt.Printf("vessel bench: %d runs per tool, root filesystem %s (busybox)\n", *n, root)
	// An interrupted run still removes the containers it left running.
	var mu sync.Mutex
	var current []*benchTool
	closeAll := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, t := range current {
			if t.close != nil {
				t.close()
				t.close = nil
			}
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		if _, ok := <-sigs; ok {
			closeAll()
			os.RemoveAll(dir)
			removeBenchGroup()
			os.Exit(130)
		}
	}()
	defer removeBenchGroup()
	for _, sc := range scenarios {
		var tools []*benchTool
		switch sc {
		case "start":
			tools = startTools(dir, root)
		case "exec":
			tools = execTools(dir, root)
		}
		mu.Lock()
		current = tools
		mu.Unlock()
		runBench(sc, tools, *n)
		closeAll()
	}
	return 0
}

// removeBenchGroup removes what is left of vessel's cgroup group
// (cgroups.RemoveGroup): the parents the containers' cgroups keep in a v1
// cpuset hierarchy, and the group runc's containers were placed in (runc
// removes only their own cgroups), so that a benchmark leaves no cgroup
// behind; a group still holding processes (another program's containers)
// stays.
func removeBenchGroup() {
	if err := cgroups.RemoveGroup(vessel.DefaultCgroupGroup()); err != nil {
		fmt.Fprintf(os.Stderr, "vessel bench: %v\n", err)
	}
}

// buildBenchRootfs makes a minimal busybox root filesystem.
func buildBenchRootfs(root, busybox string) error {
	bb, err := os.Open(busybox)
	if err != nil {
		return fmt.Errorf("%v (install busybox-static or pass -busybox)", err)
	}
	defer bb.Close()
	for _, d := range []string{"bin", "proc", "dev", "sys", "tmp", "etc", "run", "root"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777|os.ModeSticky); err != nil {
		return err
	}
	out, err := os.OpenFile(filepath.Join(root, "bin/busybox"), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, bb); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	for _, a := range []string{"sh", "true", "false", "sleep", "echo", "cat", "ls"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			return err
		}
	}
	// Present in the image so that a read-only root can carry the
	// runtime's bind-mounted versions.
	for _, f := range []string{"etc/hostname", "etc/hosts", "etc/resolv.conf"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
}

// runCmd runs a command, returning its duration and, on failure, the
// start of its output.
func runCmd(name string, args ...string) (time.Duration, error) {
	return runCmdOut(true, name, args...)
}

// runCmdOut is runCmd; without capture the command's output is discarded
// (for a command leaving a process behind that would hold a pipe open).
func runCmdOut(capture bool, name string, args ...string) (time.Duration, error) {
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	if capture {
		cmd.Stdout, cmd.Stderr = &out, &out
	}
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 400 {
			msg = msg[:400] + "..."
		}
		return d, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, msg)
	}
	return d, nil
}

func lookTool(name, pkg string) (string, string) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Sprintf("absent (%s not in PATH; Debian package %s)", name, pkg)
	}
	return p, ""
}

// startTools are the start-to-exit runners: each tool starts /bin/true in
// a fresh container with new mount, pid, uts, ipc and net namespaces over
// the same root filesystem, as a whole process.
func startTools(dir, root string) []*benchTool {
	self, err := os.Executable()
	vt := &benchTool{name: "vessel"}
	if err != nil {
		vt.absent = "absent (cannot find this executable: " + err.Error() + ")"
	}
	vt.run = func(i int) (time.Duration, error) {
		return runCmd(self, "run", "--rm", "--name", fmt.Sprintf("bench-%d-%d", os.Getpid(), i), "--rootfs", root,
			"--readonly", "--memory", "64M", "--pids", "64", "--", "/bin/true")
	}
	bw := &benchTool{name: "bwrap"}
	bwrap, why := lookTool("bwrap", "bubblewrap")
	bw.absent = why
	bw.run = func(int) (time.Duration, error) {
		return runCmd(bwrap, "--unshare-all", "--ro-bind", root, "/", "--proc", "/proc", "--dev", "/dev", "/bin/true")
	}
	rc := &benchTool{name: "runc"}
	runc, why := lookTool("runc", "runc")
	rc.absent = why
	var bundle, state string
	if runc != "" {
		bundle, state = filepath.Join(dir, "runc-start"), filepath.Join(dir, "runc-state")
		if err := runcBundle(runc, bundle, root, []string{"/bin/true"}); err != nil {
			rc.absent = "unusable: " + err.Error()
		}
	}
	rc.run = func(i int) (time.Duration, error) {
		return runCmd(runc, "--root", state, "run", "--bundle", bundle, fmt.Sprintf("vbench-%d-%d", os.Getpid(), i))
	}
	fl := &benchTool{name: "floor", absent: vt.absent}
	fl.run = func(int) (time.Duration, error) {
		return runCmd(self, "bench", "floor", root, "/bin/true")
	}
	return []*benchTool{vt, libTool("vessel-lib", root, false), libTool("vessel-spare", root, true), bw, rc, fl}
}

// benchFloor is "vessel bench floor ROOT CMD...": CMD started in the new
// namespaces a container gets by default (mount, pid, uts, ipc, net and
// cgroup: those of every tool of the start scenario), chrooted into ROOT,
// with nothing else (no cgroup, mount, pivot_root or security profile).
// Whatever a Go command does to start a container costs at least this;
// the bench's start scenario measures it as the "floor" row. It changes
// nothing on the host: the new mount namespace only changes its root.
func benchFloor(args []string) int {
	if len(args) < 2 || args[0] == "" || args[0][0] != '/' {
		return fail("bench floor: usage: vessel bench floor ROOT CMD ARGS... (ROOT an absolute directory)")
	}
	cmd := exec.Command(args[1], args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: namespaces.Default().CloneFlags(), Chroot: args[0], Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode()
	case err != nil:
		return fail("bench floor: %v", err)
	}
	return 0
}

// benchConfig is the library's side of what every tool runs: the
// read-only busybox root, a cgroup with memory and pids limits, and
// vessel's default namespaces and security profile.
func benchConfig(root string) *vessel.Config {
	return vessel.NewConfig().WithRootfs(rootfs.Dir(root)).WithReadOnlyRootfs(true).
		WithMemoryLimit(64 << 20).WithPids(64)
}

// libTool runs the same container as "vessel run" through the library, in
// this process (New, Run, Destroy): a program that embeds vessel pays
// neither the CLI's own start nor its exit. withSpares, each container
// takes an init started ahead of time (vessel.Spares); the next spare's
// start is waited for after each run, outside the timing and before the
// next tool.
func libTool(name, root string, withSpares bool) *benchTool {
	cfg := benchConfig(root)
	t := &benchTool{name: name}
	var sp *vessel.Spares
	if withSpares {
		var err error
		if sp, err = vessel.NewSpares(1); err != nil {
			t.absent = "unusable: " + err.Error()
		} else {
			t.close = func() { sp.Close() }
		}
	}
	t.run = func(i int) (time.Duration, error) {
		c, err := vessel.New(fmt.Sprintf("%s-%d-%d", name, os.Getpid(), i), cfg)
		if err != nil {
			return 0, err
		}
		c.Spares = sp
		t0 := time.Now()
		err = c.Run(context.Background(), "/bin/true")
		d := time.Since(t0)
		if derr := c.Destroy(); err == nil {
			err = derr
		}
		if sp != nil {
			// The next spare starts now; done before the next tool runs,
			// so that it does not run beside that tool.
			sp.WaitReady(5 * time.Second)
		}
		return d, err
	}
	return t
}

// runcBundle writes a runc bundle over root running args, made equivalent
// to vessel's: read-only root, a cgroup with memory and pids limits, no
// terminal, the namespaces of `runc spec` (mount, pid, uts, ipc, net,
// cgroup), a cgroup next to vessel's.
func runcBundle(runc, bundle, root string, args []string) error {
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		return err
	}
	if _, err := runCmd(runc, "spec", "--bundle", bundle); err != nil {
		return err
	}
	p := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	var spec map[string]any
	if err := json.Unmarshal(b, &spec); err != nil {
		return err
	}
	spec["root"] = map[string]any{"path": root, "readonly": true}
	proc, _ := spec["process"].(map[string]any)
	if proc == nil {
		return errors.New("runc spec wrote no process section")
	}
	proc["terminal"] = false
	proc["args"] = args
	linux, _ := spec["linux"].(map[string]any)
	if linux == nil {
		return errors.New("runc spec wrote no linux section")
	}
	linux["resources"] = map[string]any{
		"memory": map[string]any{"limit": 64 << 20},
		"pids":   map[string]any{"limit": 64},
	}
	linux["cgroupsPath"] = runcCgroupsPath()
	out, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(p, out, 0o644)
}

// runcCgroupsPath places the benchmark's runc container where vessel puts
// its own: below this process's cgroup, in vessel's group (which
// removeBenchGroup removes at the end). runc reads a relative path against
// its own cgroup on v1 and hybrid hosts but against that cgroup's parent
// on cgroup v2, so there the path is made absolute.
func runcCgroupsPath() string {
	rel := vessel.DefaultCgroupGroup() + "/bench-runc"
	if l, err := cgroups.Detect(); err == nil && l == cgroups.V2 {
		if b, err := os.ReadFile("/proc/self/cgroup"); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if own, ok := strings.CutPrefix(line, "0::"); ok {
					return filepath.Join(own, rel)
				}
			}
		}
	}
	return rel
}

// execTools are the exec runners: a process (/bin/true) started in an
// already running container, to its end. bwrap has no way to enter a
// running sandbox.
func execTools(dir, root string) []*benchTool {
	var tools []*benchTool
	cfg := benchConfig(root)
	vt := &benchTool{name: "vessel"}
	c, err := vessel.New(fmt.Sprintf("bench-exec-%d", os.Getpid()), cfg)
	if err == nil {
		err = c.Start(context.Background(), "/bin/sleep", "infinity")
	}
	if err != nil {
		vt.absent = "unusable: " + err.Error()
	} else {
		vt.close = func() { c.Destroy() }
	}
	vt.run = func(int) (time.Duration, error) {
		t0 := time.Now()
		p, err := c.Exec(context.Background(), vessel.Command("/bin/true"))
		if err != nil {
			return 0, err
		}
		err = p.Wait()
		return time.Since(t0), err
	}
	tools = append(tools, vt)

	pt := &benchTool{name: "vessel-pool"}
	pcfg := benchConfig(root).WithTmpfs("/tmp", 16<<20)
	pool, err := vessel.NewPool(pcfg, 2)
	if err != nil {
		pt.absent = "unusable: " + err.Error()
	} else {
		pt.close = func() { pool.Close() }
	}
	pt.run = func(int) (time.Duration, error) {
		t0 := time.Now()
		st, err := pool.Run(context.Background(), vessel.Command("/bin/true"))
		if err == nil && !st.Success() {
			err = fmt.Errorf("job ended: %v", st)
		}
		return time.Since(t0), err
	}
	tools = append(tools, pt)

	rc := &benchTool{name: "runc"}
	runc, why := lookTool("runc", "runc")
	rc.absent = why
	id := fmt.Sprintf("vbench-exec-%d", os.Getpid())
	state := filepath.Join(dir, "runc-state")
	if runc != "" {
		bundle := filepath.Join(dir, "runc-exec")
		if err := runcBundle(runc, bundle, root, []string{"/bin/sleep", "infinity"}); err != nil {
			rc.absent = "unusable: " + err.Error()
		} else if _, err := runCmdOut(false, runc, "--root", state, "run", "--detach", "--bundle", bundle, id); err != nil {
			rc.absent = "unusable: " + err.Error()
		} else {
			rc.close = func() { _, _ = runCmd(runc, "--root", state, "delete", "--force", id) }
		}
	}
	rc.run = func(int) (time.Duration, error) {
		return runCmd(runc, "--root", state, "exec", id, "/bin/true")
	}
	tools = append(tools, rc)
	tools = append(tools, &benchTool{name: "bwrap", absent: "n/a (bwrap cannot enter a running sandbox)"})
	// The same program started by this process on the host: what an exec
	// costs before any container is involved.
	hostTrue := filepath.Join(root, "bin/true")
	tools = append(tools, &benchTool{name: "floor", run: func(int) (time.Duration, error) {
		t0 := time.Now()
		err := exec.Command(hostTrue).Run()
		return time.Since(t0), err
	}})
	return tools
}

// runBench runs every usable tool n times, rotating which goes first, and
// prints the results.
func runBench(scenario string, tools []*benchTool, n int) {
	var usable []*benchTool
	for _, t := range tools {
		if t.absent == "" {
			usable = append(usable, t)
		}
	}
	failed := map[*benchTool]error{}
	// One warm-up run each (page cache, sealed executable, seccomp build).
	for _, t := range usable {
		if _, err := t.run(-1); err != nil {
			failed[t] = err
		}
	}
	for i := 0; i < n; i++ {
		for k := range usable {
			t := usable[(i+k)%len(usable)]
			if failed[t] != nil {
				continue
			}
			d, err := t.run(i)
			if err != nil {
				failed[t] = err
				continue
			}
			t.times = append(t.times, d)
		}
	}
	fmt.Printf("\n== %s\n", map[string]string{
		"start": "start to exit of /bin/true in a new container (whole process: namespaces, cgroup, pivot_root)",
		"exec":  "/bin/true in a running container, to its end",
	}[scenario])
	fmt.Printf("%-14s %10s %10s %5s\n", "tool", "median", "p95", "runs")
	med := map[string]time.Duration{}
	for _, t := range tools {
		switch {
		case t.absent != "":
			fmt.Printf("%-14s %s\n", t.name, t.absent)
		case failed[t] != nil:
			fmt.Printf("%-14s failed: %v\n", t.name, failed[t])
		default:
			m, p := quantile(t.times, 0.5), quantile(t.times, 0.95)
			med[t.name] = m
			fmt.Printf("%-14s %10s %10s %5d\n", t.name, fmtDur(m), fmtDur(p), len(t.times))
		}
	}
	ratio := func(label, a, b string) {
		if med[a] > 0 && med[b] > 0 {
			fmt.Printf("%-20s %.2f\n", label, float64(med[a])/float64(med[b]))
		} else {
			fmt.Printf("%-20s n/a (%s or %s not measured)\n", label, a, b)
		}
	}
	if scenario == "start" {
		ratio("bwrap/floor", "bwrap", "floor")
		ratio("vessel/floor", "vessel", "floor")
		ratio("vessel/bwrap", "vessel", "bwrap")
		ratio("vessel-lib/bwrap", "vessel-lib", "bwrap")
		ratio("vessel-spare/bwrap", "vessel-spare", "bwrap")
		ratio("runc/vessel-lib", "runc", "vessel-lib")
		ratio("runc/vessel-spare", "runc", "vessel-spare")
	}
	ratio("runc/vessel", "runc", "vessel")
	if scenario == "exec" {
		ratio("runc/vessel-pool", "runc", "vessel-pool")
		ratio("vessel/floor", "vessel", "floor")
		ratio("vessel-pool/floor", "vessel-pool", "floor")
	}
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/1e6)
}
