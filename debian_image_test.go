package vessel_test

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/rootfs"
)

// TestDebianImageRunsApt builds a Debian userland with debootstrap (from
// Debian's own package archive), tars it as one OCI layer into an image
// layout, and runs `apt --version` in a container made from that image.
func TestDebianImageRunsApt(t *testing.T) {
	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Fatal("debootstrap is not installed (test.sh installs it: apt-get install debootstrap)")
	}
	dir := t.TempDir()
	target := filepath.Join(dir, "rootfs")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "bookworm", target, "http://deb.debian.org/debian").CombinedOutput()
	if err != nil {
		t.Fatalf("debootstrap: %v\n%s", err, lastLines(string(out), 20))
	}
	t.Logf("debootstrap took %v", time.Since(start).Round(time.Second))

	imgDir := filepath.Join(dir, "image")
	layer := testutil.Layer{Open: func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(tarTree(target, pw)) }()
		return pr, nil
	}}
	if err := testutil.WriteOCILayout(imgDir, []testutil.Layer{layer}, testutil.ImageConfig{}, "", false); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(target)

	store := filepath.Join(dir, "store")
	r := rootfs.Image(imgDir)
	r.Store = store
	got, err := run(t, newConfig().WithRootfs(r), "apt", "--version")
	if err != nil || !strings.HasPrefix(got, "apt 2.") {
		t.Fatalf("apt --version in the Debian image: %v\n%s", err, got)
	}
	t.Logf("inside: %s", strings.TrimSpace(got))
}

// tarTree writes dir as a tar stream (owners, modes, links and device
// nodes kept).
func tarTree(dir string, w io.Writer) error {
	tw := tar.NewWriter(w)
	if err := testutil.AddTree(tw, dir); err != nil {
		return err
	}
	return tw.Close()
}
