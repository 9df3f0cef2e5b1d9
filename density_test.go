package vessel_test

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkDensity1000 holds 1,000 idle containers at once, each with its
// own pid, mount, uts, ipc, net and cgroup namespaces and its own cgroup
// (memory and pids limits), over the busybox root: it starts them (16 at a
// time), checks every one is alive, measures the memory each costs, and
// destroys them all, checking that nothing is left on the host. It runs
// only with -bench (a few minutes on a 2-core machine):
//
//	go test -run '^$' -bench Density1000 -benchtime 1x .
func BenchmarkDensity1000(b *testing.B) {
	cfg := benchFull(b)
	runOnce(b, cfg, "/bin/true") // the sealed executable stays open: warm first
	before := snapshot(b)
	for i := 0; i < b.N; i++ {
		fp := measureIdle(b, cfg, 1000, 16)
		if fp.aliveAfterStarting != 1000 {
			b.Fatalf("%d of 1000 containers alive", fp.aliveAfterStarting)
		}
		if i == b.N-1 {
			fp.report(b)
			b.Logf("1000 containers: started in %v, destroyed in %v; per container: init RSS %.2f MiB, PSS %.2f MiB; sleep PSS %.2f MiB; caller heap %.3f MiB; host MemAvailable drop %.2f MiB",
				fp.startElapsed, fp.destroyElapsed, fp.initRSS/(1<<20), fp.initPSS/(1<<20), fp.mainPSS/(1<<20), fp.callerHeap/(1<<20), fp.hostMem/(1<<20))
		}
	}
	before.assertUnchanged(b, snapshot(b))
	// No container cgroup may be left in the test group of any hierarchy.
	left, _ := filepath.Glob("/sys/fs/cgroup/*/vessel-test/d*")
	more, _ := filepath.Glob("/sys/fs/cgroup/*/*/*/vessel-test/d*")
	for _, d := range append(left, more...) {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			b.Errorf("cgroup left behind: %s", d)
		}
	}
}
