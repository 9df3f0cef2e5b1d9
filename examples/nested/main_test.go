package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/openvessel/vessel/examples/internal/exampletest"
)

var nestedBin string // the built example

func TestMain(m *testing.M) { exampletest.Main(m, "nested", &nestedBin) }

var levelLine = regexp.MustCompile(`^level (\d) \(\w+\): hostname=(\S+) pid=(\d+) (?:ppid=(\d+) )?pidns=(\d+) userns=(\d+) uid_map="([^"]*)"$`)

type level struct {
	hostname            string
	pid, ppid           int
	pidns, userns, umap string
}

// TestNested runs the example and checks each level's own report: three
// hostnames, three pid namespaces, the two container levels in one user
// namespace where root is host uid 100000, the inner process a child of
// its container's init.
func TestNested(t *testing.T) {
	stdout, stderr, code := exampletest.Run(t, nestedBin, "-cgroup", exampletest.CgroupGroup)
	if code != 0 {
		t.Fatalf("nested: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	levels := map[int]level{}
	for _, line := range strings.Split(stdout, "\n") {
		m := levelLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		pid, _ := strconv.Atoi(m[3])
		ppid, _ := strconv.Atoi(m[4])
		levels[n] = level{hostname: m[2], pid: pid, ppid: ppid, pidns: m[5], userns: m[6], umap: m[7]}
	}
	if len(levels) != 3 {
		t.Fatalf("want reports from levels 0, 1 and 2, got %v:\n%s", levels, stdout)
	}
	host, outer, inner := levels[0], levels[1], levels[2]
	if outer.hostname != "outer" || inner.hostname != "inner" || host.hostname == "outer" || host.hostname == "inner" {
		t.Errorf("hostnames %q, %q, %q", host.hostname, outer.hostname, inner.hostname)
	}
	if host.pidns == outer.pidns || outer.pidns == inner.pidns || host.pidns == inner.pidns {
		t.Errorf("pid namespaces %s, %s, %s: want three", host.pidns, outer.pidns, inner.pidns)
	}
	if host.userns == outer.userns || outer.userns != inner.userns {
		t.Errorf("user namespaces %s, %s, %s: want the host's, then one of the outer container's", host.userns, outer.userns, inner.userns)
	}
	if outer.umap != "0 100000 65536" || inner.umap != outer.umap {
		t.Errorf("uid maps %q and %q, want container root as host uid 100000", outer.umap, inner.umap)
	}
	if inner.ppid != 0 {
		t.Errorf("inner process's parent is pid %d, want 0: it is PID 1 of its pid namespace, its container's init outside it", inner.ppid)
	}
	// Each level saw the next one's process under a pid of its own.
	for _, lv := range []int{0, 1} {
		re := regexp.MustCompile(fmt.Sprintf(`level %d \(\w+\): started container "[^"]+", its process is pid (\d+) here`, lv))
		if m := re.FindStringSubmatch(stdout); m == nil || m[1] == "0" {
			t.Errorf("level %d did not report the pid of the container it started:\n%s", lv, stdout)
		}
	}
	if !strings.Contains(stdout, "no cgroup") {
		t.Errorf("the inner container's missing cgroup was not reported:\n%s", stdout)
	}
	exampletest.AssertNoLeftovers(t, fmt.Sprintf("nested-outer-%d", host.pid))
}
