package vessel_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/rootfs"
)

// The benchmarks measure what issue 9 sets targets for; they assert
// nothing about speed (a slow machine is not a failure) but report
// medians and 95th percentiles next to ns/op:
//
//	go test -run '^$' -bench . -benchtime 50x .
//
// BenchmarkDensity1000 (density_test.go) is the slow one.

var benchSeq atomic.Int64

func benchID(prefix string) string {
	return fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), benchSeq.Add(1))
}

// latencies collects durations and reports their median and p95.
type latencies []time.Duration

func (l latencies) quantile(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := append(latencies(nil), l...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}

func (l latencies) report(b *testing.B, what string) {
	if len(l) == 0 {
		return
	}
	b.ReportMetric(float64(l.quantile(0.5))/1e6, what+"-ms-p50")
	b.ReportMetric(float64(l.quantile(0.95))/1e6, what+"-ms-p95")
}

// benchFull is the fully isolated configuration: new mount, pid, uts, ipc,
// net (loopback) and cgroup namespaces, a cgroup with memory and pids
// limits, pivot_root into the busybox rootfs, the default security profile
// (capabilities, no_new_privs, default seccomp).
func benchFull(b testing.TB) *vessel.Config {
	return newConfig().
		WithRootfs(rootfs.Dir(testutil.BusyboxRootfs(b))).
		WithReadOnlyRootfs(true).
		WithMemoryLimit(64 << 20).
		WithPids(64)
}

// benchStartVariants are the start-to-exit configurations.
func benchStartVariants(b testing.TB) []struct {
	name           string
	cfg            func() *vessel.Config
	spares, settle bool
} {
	return []struct {
		name           string
		cfg            func() *vessel.Config
		spares, settle bool
	}{
		{"full", func() *vessel.Config { return benchFull(b) }, false, false},
		{"hostrootfs", func() *vessel.Config {
			return newConfig().WithMemoryLimit(64 << 20).WithPids(64)
		}, false, false},
		{"nocgroup", func() *vessel.Config {
			c := benchFull(b)
			c.Resources = nil
			c.Cgroup.Disabled = true
			return c
		}, false, false},
		{"spare", func() *vessel.Config { return benchFull(b) }, true, true},
		{"spare-back-to-back", func() *vessel.Config { return benchFull(b) }, true, false},
	}
}

// runOnce creates, runs to the end, and destroys one container. It returns
// the time from Start to the end of Wait and the whole time.
func runOnce(b testing.TB, cfg *vessel.Config, args ...string) (startToExit, total time.Duration) {
	return runOnceWith(b, cfg, nil, args...)
}

// runOnceWith is runOnce with the container's init taken from spares
// when one is ready.
func runOnceWith(b testing.TB, cfg *vessel.Config, spares *vessel.Spares, args ...string) (startToExit, total time.Duration) {
	t0 := time.Now()
	c, err := vessel.New(benchID("b"), cfg)
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	c.Spares = spares
	t1 := time.Now()
	err = c.Run(context.Background(), args...)
	t2 := time.Now()
	if err != nil {
		c.Destroy()
		b.Fatalf("Run %v: %v", args, err)
	}
	if err := c.Destroy(); err != nil {
		b.Fatalf("Destroy: %v", err)
	}
	return t2.Sub(t1), time.Since(t0)
}

// BenchmarkStartToExit measures New + Run(/bin/true) + Destroy. The
// reported start-to-exit quantiles cover Start to the end of Wait; ns/op
// includes creating and removing the cgroup. The "spare" variants are
// "full" with vessel.Spares keeping one init: "spare" lets it finish its
// start between containers (outside the timings), as a program that starts
// containers now and then would; "spare-back-to-back" starts the next
// container at once, so the spare's start competes with the containers
// for the CPUs.
func BenchmarkStartToExit(b *testing.B) {
	for _, v := range benchStartVariants(b) {
		b.Run(v.name, func(b *testing.B) {
			cfg := v.cfg()
			var spares *vessel.Spares
			if v.spares {
				var err error
				if spares, err = vessel.NewSpares(1); err != nil {
					b.Fatal(err)
				}
				defer spares.Close()
			}
			runOnceWith(b, cfg, spares, "/bin/true") // warm: sealed exe, seccomp program
			var exit, total latencies
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if v.spares && v.settle {
					b.StopTimer()
					if !spares.WaitReady(5 * time.Second) {
						b.Fatalf("no spare init ready after 5 s: %+v", spares.Stats())
					}
					b.StartTimer()
				}
				e, t := runOnceWith(b, cfg, spares, "/bin/true")
				exit, total = append(exit, e), append(total, t)
			}
			b.StopTimer()
			exit.report(b, "start-to-exit")
			total.report(b, "total")
			if spares != nil {
				st := spares.Stats()
				if v.settle && st.Used < b.N {
					b.Fatalf("only %d of %d starts took a spare init (%+v)", st.Used, b.N, st)
				}
				b.ReportMetric(100*float64(st.Used)/float64(b.N), "%spare") // the warm-up run finds none
			}
		})
	}
}

// startIdle starts a container whose main process sleeps, destroyed when
// the benchmark ends.
func startIdle(b testing.TB, cfg *vessel.Config) *vessel.Container {
	b.Helper()
	c, err := vessel.New(benchID("i"), cfg)
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	b.Cleanup(func() { c.Destroy() })
	if err := c.Start(context.Background(), "/bin/sleep", "infinity"); err != nil {
		b.Fatalf("Start: %v", err)
	}
	return c
}

func execProgram(b testing.TB, c *vessel.Container, prog string) {
	p, err := c.Exec(context.Background(), vessel.Command(prog))
	if err != nil {
		b.Fatalf("Exec: %v", err)
	}
	if err := p.Wait(); err != nil {
		b.Fatalf("Exec %s: %v", prog, err)
	}
}

// benchPrograms are what the Exec and pool benchmarks run: busybox's true,
// and a program that only exits (testutil.NopELF), which tells vessel's own
// cost from the program's start (about 2 ms of busybox's on a VM where
// page faults are dear).
var benchPrograms = []struct{ name, path string }{
	{"true", "/bin/true"},
	{"nop", testutil.RootfsNopPath},
}

// BenchmarkExec measures Exec into a running, fully isolated container,
// up to the end of Wait, one at a time.
func BenchmarkExec(b *testing.B) {
	c := startIdle(b, benchFull(b))
	for _, prog := range benchPrograms {
		b.Run(prog.name, func(b *testing.B) {
			execProgram(b, c, prog.path)
			var lat latencies
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				execProgram(b, c, prog.path)
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			lat.report(b, "exec")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "execs/s")
		})
	}
}

// BenchmarkExecParallel measures Exec throughput into one container with
// GOMAXPROCS*4 callers at once (execs/s).
func BenchmarkExecParallel(b *testing.B) {
	c := startIdle(b, benchFull(b))
	for _, prog := range benchPrograms {
		b.Run(prog.name, func(b *testing.B) {
			execProgram(b, c, prog.path)
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					execProgram(b, c, prog.path)
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "execs/s")
		})
	}
}

// BenchmarkStartConcurrent starts N idle containers at once, waits until
// every one runs, and destroys them; ns/op is one batch.
func BenchmarkStartConcurrent(b *testing.B) {
	for _, n := range []int{10, 50} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			cfg := benchFull(b)
			runOnce(b, cfg, "/bin/true")
			var startLat latencies
			for i := 0; i < b.N; i++ {
				cs := make([]*vessel.Container, n)
				errs := make([]error, n)
				var wg sync.WaitGroup
				t0 := time.Now()
				for j := range cs {
					wg.Add(1)
					go func(j int) {
						defer wg.Done()
						c, err := vessel.New(benchID("c"), cfg)
						if err == nil {
							err = c.Start(context.Background(), "/bin/sleep", "infinity")
						}
						cs[j], errs[j] = c, err
					}(j)
				}
				wg.Wait()
				startLat = append(startLat, time.Since(t0))
				b.StopTimer()
				for j, c := range cs {
					if c != nil {
						c.Destroy()
					}
					if errs[j] != nil {
						b.Fatalf("container %d: %v", j, errs[j])
					}
				}
				b.StartTimer()
			}
			b.StopTimer()
			startLat.report(b, "batch")
			b.ReportMetric(float64(startLat.quantile(0.5))/1e6/float64(n), "ms/container")
		})
	}
}

// procMem is the memory a process holds, from /proc/PID/smaps_rollup.
type procMem struct{ rss, pss int64 }

func readProcMem(pid int) (procMem, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return procMem{}, err
	}
	defer f.Close()
	var m procMem
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[2] != "kB" {
			continue
		}
		v, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "Rss:":
			m.rss = v << 10
		case "Pss:":
			m.pss = v << 10
		}
	}
	if m.rss == 0 {
		return m, fmt.Errorf("no Rss in /proc/%d/smaps_rollup", pid)
	}
	return m, sc.Err()
}

// memAvailable returns MemAvailable from /proc/meminfo in bytes.
func memAvailable(t testing.TB) int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemAvailable:" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v << 10
		}
	}
	t.Fatal("no MemAvailable in /proc/meminfo")
	return 0
}

func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse + ms.StackInuse)
}

// idleFootprint is the memory held per idle container, averaged.
type idleFootprint struct {
	n                  int
	initRSS, initPSS   float64 // vessel's init
	mainRSS, mainPSS   float64 // the idle main process (busybox sleep)
	callerHeap         float64 // the calling program's heap + stacks
	hostMem            float64 // drop of MemAvailable (kernel objects included)
	startElapsed       time.Duration
	destroyElapsed     time.Duration
	aliveAfterStarting int
}

// measureIdle starts n idle containers from cfg concurrently (at most
// par at a time), checks each is alive, measures, and destroys them all.
func measureIdle(b testing.TB, cfg *vessel.Config, n, par int) idleFootprint {
	runOnce(b, cfg, "/bin/true")
	heap0 := heapInUse()
	avail0 := memAvailable(b)
	cs := make([]*vessel.Container, n)
	destroyAll := func() {
		var wg sync.WaitGroup
		sem := make(chan struct{}, par)
		for _, c := range cs {
			if c == nil {
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func(c *vessel.Container) {
				defer wg.Done()
				defer func() { <-sem }()
				if err := c.Destroy(); err != nil {
					b.Errorf("Destroy %s: %v", c.ID(), err)
				}
			}(c)
		}
		wg.Wait()
	}
	defer func() {
		if cs != nil {
			destroyAll()
		}
	}()
	t0 := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, par)
	for i := range cs {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := vessel.New(benchID("d"), cfg)
			if err == nil {
				err = c.Start(context.Background(), "/bin/sleep", "infinity")
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("container %d: %w", i, err)
				}
				return
			}
			cs[i] = c
		}(i)
	}
	wg.Wait()
	fp := idleFootprint{n: n, startElapsed: time.Since(t0)}
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	// Give exec'd sleeps and inits a moment to settle their pages.
	time.Sleep(200 * time.Millisecond)
	for _, c := range cs {
		st := c.State()
		if st.Status != vessel.Running {
			b.Fatalf("container %s is %s, want running", c.ID(), st.Status)
		}
		im, err := readProcMem(st.InitPid)
		if err != nil {
			b.Fatalf("container %s init: %v", c.ID(), err)
		}
		mm, err := readProcMem(st.Pid)
		if err != nil {
			b.Fatalf("container %s main process: %v", c.ID(), err)
		}
		fp.initRSS += float64(im.rss)
		fp.initPSS += float64(im.pss)
		fp.mainRSS += float64(mm.rss)
		fp.mainPSS += float64(mm.pss)
		fp.aliveAfterStarting++
	}
	fp.callerHeap = float64(heapInUse() - heap0)
	fp.hostMem = float64(avail0 - memAvailable(b))
	t1 := time.Now()
	destroyAll()
	cs = nil
	fp.destroyElapsed = time.Since(t1)
	f := float64(n)
	fp.initRSS, fp.initPSS, fp.mainRSS, fp.mainPSS = fp.initRSS/f, fp.initPSS/f, fp.mainRSS/f, fp.mainPSS/f
	fp.callerHeap, fp.hostMem = fp.callerHeap/f, fp.hostMem/f
	return fp
}

func (fp idleFootprint) report(b *testing.B) {
	const mib = 1 << 20
	b.ReportMetric(fp.initRSS/mib, "init-RSS-MiB/ctr")
	b.ReportMetric(fp.initPSS/mib, "init-PSS-MiB/ctr")
	b.ReportMetric(fp.mainPSS/mib, "main-PSS-MiB/ctr")
	b.ReportMetric(fp.callerHeap/mib, "caller-heap-MiB/ctr")
	b.ReportMetric(fp.hostMem/mib, "host-MiB/ctr")
	b.ReportMetric(fp.startElapsed.Seconds()*1e3/float64(fp.n), "start-ms/ctr")
	b.ReportMetric(fp.destroyElapsed.Seconds()*1e3/float64(fp.n), "destroy-ms/ctr")
}

// BenchmarkIdleMemory holds 50 idle fully isolated containers and reports
// the memory each costs: the init's RSS and PSS, the main process's PSS,
// the caller's heap growth, and the drop of the host's MemAvailable.
func BenchmarkIdleMemory(b *testing.B) {
	for i := 0; i < b.N; i++ {
		fp := measureIdle(b, benchFull(b), 50, 8)
		if i == b.N-1 {
			fp.report(b)
		}
	}
}

// TestIdleFootprintMeasurable checks that the footprint figures the
// benchmarks report are real readings: a few idle containers each show a
// live init with resident memory, and all of them are gone afterwards.
func TestIdleFootprintMeasurable(t *testing.T) {
	fp := measureIdle(t, benchFull(t), 3, 3)
	if fp.aliveAfterStarting != 3 {
		t.Fatalf("%d containers alive, want 3", fp.aliveAfterStarting)
	}
	if fp.initRSS <= 0 || fp.initPSS <= 0 || fp.initPSS > fp.initRSS {
		t.Fatalf("init RSS %.0f, PSS %.0f: want 0 < PSS <= RSS", fp.initRSS, fp.initPSS)
	}
	if fp.mainRSS <= 0 {
		t.Fatalf("main process RSS %.0f, want > 0", fp.mainRSS)
	}
}

// BenchmarkPoolRun measures one pooled job (/bin/true): Get, Exec, Wait,
// Release. With one container every job also waits for the previous
// job's reset; with four the resets overlap the next jobs.
func BenchmarkPoolRun(b *testing.B) {
	for _, size := range []int{1, 4} {
		p, err := vessel.NewPool(poolConfig(b), size)
		if err != nil {
			b.Fatal(err)
		}
		for _, prog := range benchPrograms {
			b.Run(fmt.Sprintf("%d/%s", size, prog.name), func(b *testing.B) {
				var lat latencies
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					t0 := time.Now()
					st, err := p.Run(context.Background(), vessel.Command(prog.path))
					if err != nil || !st.Success() {
						b.Fatalf("Run: %v %v", st, err)
					}
					lat = append(lat, time.Since(t0))
				}
				b.StopTimer()
				lat.report(b, "job")
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
			})
		}
		if err := p.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
