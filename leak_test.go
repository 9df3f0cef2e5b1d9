package vessel_test

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/openvessel/vessel/internal/testutil"
)

// hostSnapshot is what a container must not change on the host: the
// mounts vessel and the test could have made (testutil.OwnMount: other
// programs such as podman, or other test binaries, mount on the host
// meanwhile and must not fail these tests), the test process's
// descriptors and its children.
type hostSnapshot struct {
	mounts   []string
	fds      int
	children []int
}

func snapshot(t testing.TB) hostSnapshot {
	t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var mounts []string
	own := testutil.OwnMount(t)
	for _, l := range strings.Split(strings.TrimSpace(string(mi)), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && own(f[4]) {
			mounts = append(mounts, f[4])
		}
	}
	sort.Strings(mounts)
	// The sealed copy of the program that the first container makes stays
	// open for the program's life: it is not a leak.
	ents, _ := os.ReadDir("/proc/self/fd")
	fds := 0
	for _, e := range ents {
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); !strings.HasPrefix(l, "/memfd:vessel") {
			fds++
		}
	}
	return hostSnapshot{mounts: mounts, fds: fds, children: childPids()}
}

func childPids() []int {
	var out []int
	self := strconv.Itoa(os.Getpid())
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(st)
		rest := s[strings.LastIndexByte(s, ')')+2:]
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == self {
			pid, _ := strconv.Atoi(e.Name())
			out = append(out, pid)
		}
	}
	return out
}

func (a hostSnapshot) assertUnchanged(t testing.TB, b hostSnapshot) {
	t.Helper()
	if strings.Join(a.mounts, "\n") != strings.Join(b.mounts, "\n") {
		t.Errorf("host mounts changed: %d before, %d after", len(a.mounts), len(b.mounts))
	}
	// fds settle asynchronously (pipes closed by finalizers): allow none new.
	if b.fds > a.fds {
		t.Errorf("open fds grew from %d to %d", a.fds, b.fds)
	}
	if len(b.children) > 0 {
		t.Errorf("child processes left: %v", b.children)
	}
}

func TestNoLeaksAfter200Cycles(t *testing.T) {
	// The first container of a program makes the sealed executable copy,
	// which stays open for the program's life: warm up before measuring.
	if _, err := run(t, vesselConfigForCycles(), "/bin/true"); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t)
	for i := 0; i < 200; i++ {
		out, err := run(t, vesselConfigForCycles(), "/bin/true")
		if err != nil {
			t.Fatalf("cycle %d: %v %s", i, err, out)
		}
	}
	after := snapshot(t)
	before.assertUnchanged(t, after)
	t.Logf("mounts %d, fds %d -> %d", len(after.mounts), before.fds, after.fds)
	_ = fmt.Sprint()
}
