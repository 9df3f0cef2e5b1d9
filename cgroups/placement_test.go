package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"testing"

	"github.com/openvessel/vessel/limits"
)

func TestPlacementOptions(t *testing.T) {
	t.Setenv("VESSEL_CGROUP_GROUP", "")
	r := &limits.Resources{}
	for _, c := range []struct {
		p    Placement
		want Options
	}{
		{Placement{}, Options{Name: "vessel/job"}},
		{Placement{Group: "ci", Name: "n1", Parent: "/system.slice"}, Options{Name: "ci/n1", Parent: "/system.slice"}},
		{Placement{Path: "/jobs/42/", Group: "ignored", Parent: "/ignored"}, Options{Name: "jobs/42", Parent: "/"}},
		{Placement{Path: "/", Group: "g"}, Options{Name: "g/job"}}, // a root path places nothing
	} {
		got := c.p.Options("job", r)
		if got.Name != c.want.Name || got.Parent != c.want.Parent || got.Resources != r {
			t.Errorf("%+v.Options = %+v, want %+v with the given resources", c.p, got, c.want)
		}
	}
	t.Setenv("VESSEL_CGROUP_GROUP", "from-env")
	if got := (Placement{}).Options("job", nil); got.Name != "from-env/job" || DefaultGroup() != "from-env" {
		t.Errorf("$VESSEL_CGROUP_GROUP not honoured: %+v, DefaultGroup %q", got, DefaultGroup())
	}
}

// TestDestroyStale removes a cgroup with a process in it, as a crashed
// program would leave it, and is a no-op when nothing is there.
func TestDestroyStale(t *testing.T) {
	opts := Options{Name: fmt.Sprintf("vessel-test/stale-%d", os.Getpid())}
	if err := DestroyStale(opts); err != nil {
		t.Fatalf("nothing there: %v", err)
	}
	// The process first: an empty cgroup may be removed by another test
	// binary's RemoveGroup("vessel-test") between Create and Add.
	sleeper := exec.Command("/bin/sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	if err := m.Add(sleeper.Process.Pid); err != nil {
		m.Destroy()
		t.Fatal(err)
	}
	dirs := m.State().Dirs
	if len(dirs) == 0 {
		t.Fatal("the cgroup has no directories")
	}
	if err := DestroyStale(opts); err != nil {
		t.Fatal(err)
	}
	for h, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %s left behind", h, d)
		}
	}
	if err := sleeper.Wait(); err == nil {
		t.Error("the process in the stale cgroup was not killed")
	}
}
