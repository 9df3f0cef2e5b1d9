package storage

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/rootfs"
)

func TestOverlayContainersShareBaseAndSeeNoOtherWrites(t *testing.T) {
	dir := testutil.DiskTempDir(t)
	checkClean(t, dir)
	base := filepath.Join(dir, "base")
	busyboxTree(t, base)
	before := treeDigest(t, base)

	l1, l2 := filepath.Join(dir, "c1"), filepath.Join(dir, "c2")
	p1 := &rootfs.Plan{Root: rootfs.Overlay(l1, base)}
	if err := p1.Validate(); err != nil {
		t.Fatal(err)
	}
	prepare(t, p1, PrepareOptions{})
	mustRun(t, p1, "echo one > /data/c1.txt && echo changed > /data/base.txt && rm /data/victim.txt")

	p2 := &rootfs.Plan{Root: rootfs.Overlay(l2, base)}
	prepare(t, p2, PrepareOptions{})
	out := mustRun(t, p2, "cat /data/base.txt; test -e /data/c1.txt && echo SEES-C1; cat /data/victim.txt; echo two > /data/c2.txt")
	if out != "base\nvictim\n" {
		t.Errorf("second container saw %q, want the untouched base", out)
	}
	// The first container's layer persists and sees its own writes only.
	out = mustRun(t, prepared(t, rootfs.Plan{Root: rootfs.Overlay(l1, base)}), "cat /data/c1.txt /data/base.txt; test -e /data/victim.txt || echo GONE; test -e /data/c2.txt && echo SEES-C2; true")
	if out != "one\nchanged\nGONE\n" {
		t.Errorf("first container's layer: %q", out)
	}
	if after := treeDigest(t, base); after != before {
		t.Errorf("base changed:\n%s\nwant\n%s", after, before)
	}
	// Its changes are in its layer directory, the deletion as a whiteout.
	if b, err := os.ReadFile(filepath.Join(l1, "diff/data/c1.txt")); err != nil || string(b) != "one\n" {
		t.Errorf("layer diff: %q %v", b, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(l1, "diff/data/victim.txt"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("deleted file is not an overlay whiteout in the layer: %v %o", err, st.Mode)
	}
}

// prepared prepares a copy of the plan p for a test and returns it.
func prepared(t *testing.T, p rootfs.Plan) *rootfs.Plan {
	t.Helper()
	prepare(t, &p, PrepareOptions{})
	return &p
}

func TestEphemeralOverlayIsGoneAfterTheContainer(t *testing.T) {
	dir := testutil.DiskTempDir(t)
	checkClean(t, dir)
	base := filepath.Join(dir, "base")
	busyboxTree(t, base)
	before := treeDigest(t, base)
	p := &rootfs.Plan{Root: rootfs.EphemeralOverlay(base)}
	pr := prepare(t, p, PrepareOptions{StateDir: filepath.Join(dir, "state")})
	if !p.Root.Storage.UpperTmpfs || pr.QuotaMethod != "" {
		t.Fatalf("ephemeral layer: %+v, quota method %q", p.Root.Storage, pr.QuotaMethod)
	}
	out := mustRun(t, p, "echo x > /data/new && cat /data/new && grep ' / ' /proc/self/mountinfo")
	if !strings.HasPrefix(out, "x\n") || !strings.Contains(out, " overlay ") {
		t.Errorf("inside: %q (want the write and an overlay root)", out)
	}
	// Same prepared plan, new container: the layer started empty again.
	out = mustRun(t, p, "test -e /data/new && echo LEAKED; cat /data/base.txt")
	if out != "base\n" {
		t.Errorf("second ephemeral container: %q", out)
	}
	if after := treeDigest(t, base); after != before {
		t.Errorf("base changed")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "base" {
			t.Errorf("ephemeral overlay left %s on the host", e.Name())
		}
	}
}

func TestQuotaTmpfsEphemeral(t *testing.T) {
	dir := testutil.DiskTempDir(t)
	checkClean(t, dir)
	base := filepath.Join(dir, "base")
	busyboxTree(t, base)
	p := &rootfs.Plan{Root: rootfs.EphemeralOverlay(base).WithQuota(8 << 20)}
	pr := prepare(t, p, PrepareOptions{})
	if pr.QuotaMethod != rootfs.QuotaTmpfs {
		t.Errorf("quota method %q, want %q", pr.QuotaMethod, rootfs.QuotaTmpfs)
	}
	out, err := run(t, p, "dd if=/dev/zero of=/data/big bs=1M count=4 2>/dev/null && echo SMALL-OK; dd if=/dev/zero of=/data/big2 bs=1M count=16")
	if err == nil || !strings.Contains(out, "SMALL-OK") || !isENOSPC(out) {
		t.Errorf("writing past an 8 MiB quota: err=%v out=%q (want ENOSPC after a 4 MiB write worked)", err, out)
	}
}

func TestQuotaLoopExt4PersistentLayer(t *testing.T) {
	need(t, "mkfs.ext4")
	dir := testutil.DiskTempDir(t)
	checkClean(t, dir)
	base := filepath.Join(dir, "base")
	busyboxTree(t, base)
	if _, ok := projectQuotaMethod(dir); ok {
		t.Fatalf("%s enforces project quotas here; this test is for the loop-ext4 fallback", dir)
	}
	layer := filepath.Join(dir, "layer")
	const quota = 16 << 20
	p := &rootfs.Plan{Root: rootfs.Overlay(layer, base).WithQuota(quota)}
	pr := prepare(t, p, PrepareOptions{})
	if pr.QuotaMethod != rootfs.QuotaLoopExt4 || p.Root.Storage.UpperDevice == "" || len(pr.Devices) != 1 || pr.Devices[0].Major != 7 {
		t.Fatalf("quota method %q, storage %+v, devices %+v", pr.QuotaMethod, p.Root.Storage, pr.Devices)
	}
	out, err := run(t, p, "echo kept > /data/kept; dd if=/dev/zero of=/data/big bs=1M count=64")
	if err == nil || !isENOSPC(out) {
		t.Errorf("writing 64 MiB past a 16 MiB quota: err=%v out=%q", err, out)
	}
	img := filepath.Join(layer, "layer.ext4")
	var st unix.Stat_t
	if err := unix.Stat(img, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 > quota {
		t.Errorf("image uses %d bytes of host disk, more than the %d quota", st.Blocks*512, quota)
	}
	pr.Release()
	// The layer persists inside the image: a new container sees it.
	p2 := &rootfs.Plan{Root: rootfs.Overlay(layer, base)}
	pr2 := prepare(t, p2, PrepareOptions{})
	if pr2.QuotaMethod != rootfs.QuotaLoopExt4 {
		t.Errorf("reusing the layer: quota method %q", pr2.QuotaMethod)
	}
	if out := mustRun(t, p2, "cat /data/kept; rm -f /data/big"); out != "kept\n" {
		t.Errorf("persistent layer content: %q", out)
	}
}

func TestQuotaLoopExt4Ephemeral(t *testing.T) {
	need(t, "mkfs.ext4")
	dir := testutil.DiskTempDir(t)
	checkClean(t, dir)
	base := filepath.Join(dir, "base")
	busyboxTree(t, base)
	state := filepath.Join(dir, "state")
	p := &rootfs.Plan{Root: rootfs.EphemeralOverlay(base).WithQuota(16 << 20)}
	pr := prepare(t, p, PrepareOptions{StateDir: state, EphemeralOnDisk: true})
	if pr.QuotaMethod != rootfs.QuotaLoopExt4 {
		t.Fatalf("quota method %q", pr.QuotaMethod)
	}
	out, err := run(t, p, "dd if=/dev/zero of=/data/big bs=1M count=64")
	if err == nil || !isENOSPC(out) {
		t.Errorf("err=%v out=%q", err, out)
	}
	if err := pr.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(state, pr.ID)); !os.IsNotExist(err) {
		t.Errorf("ephemeral image state still there after Release: %v", err)
	}
}

func TestReleaseStaleRemovesDeadOwners(t *testing.T) {
	dir := testutil.DiskTempDir(t)
	state := filepath.Join(dir, "state")
	for _, c := range []struct{ id, owner string }{
		{"dead", "999999999 1\n"},
		{"alive", ""},
	} {
		d := filepath.Join(state, c.id)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		owner := c.owner
		if owner == "" {
			start, err := processStart(os.Getpid())
			if err != nil {
				t.Fatal(err)
			}
			owner = strconv.Itoa(os.Getpid()) + " " + strconv.FormatUint(start, 10)
		}
		if err := os.WriteFile(filepath.Join(d, "owner"), []byte(owner), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	gone, err := ReleaseStale(state)
	if err != nil || len(gone) != 1 || gone[0] != "dead" {
		t.Fatalf("ReleaseStale = %v, %v", gone, err)
	}
	if _, err := os.Stat(filepath.Join(state, "alive")); err != nil {
		t.Errorf("live owner's state removed: %v", err)
	}
}
