package vessel_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/rootfs"
)

// inside runs a shell command in a running container and returns its
// combined output.
func inside(t testing.TB, c *vessel.Container, script string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	p, err := c.Exec(context.Background(), &vessel.Cmd{Args: []string{"/bin/sh", "-c", script}, Stdout: &out, Stderr: &out})
	if err != nil {
		return "", err
	}
	err = p.Wait()
	return out.String(), err
}

// TestOverlayContainersShareABase runs two containers on one read-only
// base with ephemeral upper layers: each sees only its own writes and
// deletions, and the base is unchanged.
func TestOverlayContainersShareABase(t *testing.T) {
	base := testutil.BusyboxRootfsCopy(t)
	before := snapshot(t)
	cfg := newConfig().WithRootfs(rootfs.EphemeralOverlay(base))
	a, _ := start(t, cfg, "/bin/sleep", "30")
	b, _ := start(t, cfg, "/bin/sleep", "30")
	if out, err := inside(t, a, "echo a > /mine && rm /bin/true"); err != nil {
		t.Fatalf("write in a: %v %s", err, out)
	}
	if out, err := inside(t, b, "echo b > /mine"); err != nil {
		t.Fatalf("write in b: %v %s", err, out)
	}
	if out, _ := inside(t, a, "cat /mine; ls /bin/true 2>&1"); !strings.Contains(out, "a\n") || !strings.Contains(out, "No such file") {
		t.Fatalf("container a sees %q", out)
	}
	if out, err := inside(t, b, "cat /mine; ls /bin/true"); err != nil || !strings.Contains(out, "b\n") || !strings.Contains(out, "/bin/true") {
		t.Fatalf("container b sees %q (%v)", out, err)
	}
	if _, err := os.Stat(base + "/mine"); err == nil {
		t.Fatal("a write reached the base")
	}
	if _, err := os.Stat(base + "/bin/true"); err != nil {
		t.Fatal("a delete reached the base")
	}
	a.Destroy()
	b.Destroy()
	before.assertUnchanged(t, snapshot(t))
}
