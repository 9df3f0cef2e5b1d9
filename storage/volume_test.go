package storage

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/fielderr"
	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/rootfs"
)

func TestNamedVolumesOutliveContainers(t *testing.T) {
	need(t, "mkfs.ext4")
	dir := testutil.DiskTempDir(t)
	checkClean(t, dir)
	base := filepath.Join(dir, "base")
	busyboxTree(t, base)
	opts := PrepareOptions{VolumeDir: filepath.Join(dir, "volumes")}
	plan := func() *rootfs.Plan {
		return &rootfs.Plan{Root: rootfs.EphemeralOverlay(base), Mounts: []rootfs.Mount{
			rootfs.NamedVolume("cache", "/cache"),
			rootfs.NamedVolumeLimited("small", "/small", 8<<20),
		}}
	}
	p := plan()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if !p.NeedsPrepare() {
		t.Fatal("NeedsPrepare is false for named volumes")
	}
	pr := prepare(t, p, opts)
	if pr.VolumeQuota["small"] != rootfs.QuotaLoopExt4 || p.Mounts[0].Type != rootfs.TypeBind || p.Mounts[1].Type != "ext4" {
		t.Fatalf("volume quota %v, mounts %+v", pr.VolumeQuota, p.Mounts)
	}
	out, err := run(t, p, "echo v > /cache/f && echo s > /small/f && dd if=/dev/zero of=/small/big bs=1M count=32")
	if err == nil || !isENOSPC(out) {
		t.Errorf("writing past a volume's 8 MiB limit: err=%v out=%q", err, out)
	}
	pr.Release()
	p2 := plan()
	prepare(t, p2, opts)
	if out := mustRun(t, p2, "cat /cache/f /small/f"); out != "v\ns\n" {
		t.Errorf("volumes in a later container: %q", out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "volumes/cache/data/f")); err != nil || string(b) != "v\n" {
		t.Errorf("volume on the host: %q %v", b, err)
	}
	bad := &rootfs.Plan{Root: rootfs.Host(), Mounts: []rootfs.Mount{rootfs.NamedVolume("../etc", "/x")}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "mounts[0].source") {
		t.Errorf("bad volume name: %v", err)
	}
}

func TestSnapshotBecomesALowerLayer(t *testing.T) {
	need(t, "mkfs.ext4")
	dir := testutil.DiskTempDir(t)
	checkClean(t, dir)
	base := filepath.Join(dir, "base")
	busyboxTree(t, base)
	store := filepath.Join(dir, "store")
	for _, quota := range []int64{0, 16 << 20} { // a plain layer, and one in an ext4 image
		layer := filepath.Join(dir, "layer"+strings.Repeat("q", int(quota>>24)))
		p := &rootfs.Plan{Root: rootfs.Overlay(layer, base).WithQuota(quota)}
		prepare(t, p, PrepareOptions{})
		mustRun(t, p, "echo snap > /data/new.txt && rm /data/victim.txt && mkdir -p /opt/x && echo x > /opt/x/f")
		digest, sdir, err := Snapshot(layer, store)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(digest, "sha256:") || filepath.Dir(sdir) != filepath.Join(store, "sha256") {
			t.Errorf("snapshot %s at %s", digest, sdir)
		}
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(sdir, "data/victim.txt"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
			t.Errorf("whiteout not kept in the snapshot: %v", err)
		}
		p2 := &rootfs.Plan{Root: rootfs.EphemeralOverlay(sdir, base)}
		prepare(t, p2, PrepareOptions{})
		if out := mustRun(t, p2, "cat /data/new.txt /opt/x/f /data/base.txt; test -e /data/victim.txt && echo VICTIM; true"); out != "snap\nx\nbase\n" {
			t.Errorf("container on the snapshot (quota %d): %q", quota, out)
		}
		// The same layer snapshots to the same digest.
		d2, _, err := Snapshot(layer, store)
		if err != nil || d2 != digest {
			t.Errorf("second snapshot %s (%v), first %s", d2, err, digest)
		}
	}
}

// TestProjectQuotaXFS makes an XFS filesystem with project quotas on a loop
// device, mounted for the test only, and limits a persistent layer on it.
func TestProjectQuotaXFS(t *testing.T) {
	need(t, "mkfs.xfs")
	if cfg, err := exec.Command("sh", "-c", "zcat /proc/config.gz | grep -x '# CONFIG_XFS_QUOTA is not set'").Output(); err == nil && len(cfg) > 0 {
		// This machine's kernel (6.18) has no XFS quota and no ext4 quota
		// format (QFMT_V2): project quotas cannot exist here. Debian's
		// kernels have both: test.sh runs this test in its qemu guest.
		t.Skip("kernel built without CONFIG_XFS_QUOTA: no project quotas possible")
	}
	dir := testutil.DiskTempDir(t)
	checkClean(t, dir)
	base := filepath.Join(dir, "base")
	busyboxTree(t, base)
	img := filepath.Join(dir, "xfs.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(320 << 20)
	f.Close()
	if out, err := exec.Command("mkfs.xfs", "-q", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs: %v %s", err, out)
	}
	l, err := attachLoop(img, false)
	if err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	if err := unix.Mount(l.path, mnt, "xfs", 0, "prjquota"); err != nil {
		l.close()
		t.Fatalf("mount xfs with prjquota: %v", err)
	}
	l.close() // the mount holds it; autoclear detaches it at unmount
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	method, ok := projectQuotaMethod(mnt)
	if !ok || method != rootfs.QuotaXFSProject {
		t.Fatalf("project quota on a prjquota XFS: %q %v", method, ok)
	}
	layer := filepath.Join(mnt, "layer")
	p := &rootfs.Plan{Root: rootfs.Overlay(layer, base).WithQuota(16 << 20)}
	pr := prepare(t, p, PrepareOptions{})
	if pr.QuotaMethod != rootfs.QuotaXFSProject || p.Root.Storage.UpperDir == "" {
		t.Fatalf("quota method %q storage %+v", pr.QuotaMethod, p.Root.Storage)
	}
	out, err := run(t, p, "echo a > /data/a && cat /data/base.txt > /data/copy && echo more >> /data/base.txt && dd if=/dev/zero of=/data/big bs=1M count=64")
	if err == nil || !isENOSPC(out) {
		t.Errorf("writing past a 16 MiB project quota: err=%v out=%q", err, out)
	}
	// A named volume on the same filesystem takes the same mechanism.
	vp := &rootfs.Plan{Root: rootfs.EphemeralOverlay(base), Mounts: []rootfs.Mount{rootfs.NamedVolumeLimited("v", "/v", 8<<20)}}
	vpr, err := Prepare(context.Background(), "vol", vp, PrepareOptions{VolumeDir: filepath.Join(mnt, "volumes")})
	if err != nil {
		t.Fatal(err)
	}
	defer vpr.Release()
	if vpr.VolumeQuota["v"] != rootfs.QuotaXFSProject || vp.Mounts[0].Type != rootfs.TypeBind {
		t.Fatalf("volume quota %v mounts %+v", vpr.VolumeQuota, vp.Mounts)
	}
	out, err = run(t, vp, "dd if=/dev/zero of=/v/big bs=1M count=32")
	if err == nil || !isENOSPC(out) {
		t.Errorf("writing past an 8 MiB volume project quota: err=%v out=%q", err, out)
	}
}

func TestValidateStorageErrors(t *testing.T) {
	dir := testutil.DiskTempDir(t)
	file := filepath.Join(dir, "notanimage")
	os.WriteFile(file, []byte("hello"), 0o644)
	for _, c := range []struct {
		root rootfs.Root
		want string
	}{
		{rootfs.Overlay(""), "rootfs.lower"},
		{rootfs.Overlay("rel/layer", dir), "rootfs.layer"},
		{rootfs.Overlay("", "relative"), "rootfs.lower[0]"},
		{rootfs.Overlay("", filepath.Join(dir, "missing")), "rootfs.lower[0]"},
		{rootfs.EphemeralOverlay(dir).WithQuota(-1), "rootfs.quota"},
		{rootfs.EphemeralOverlay(dir).WithQuota(1000), "rootfs.quota"},
		{rootfs.Image("relative.tar"), "rootfs.path"},
		{rootfs.ImageFile(file), "rootfs.path"},
		{rootfs.Dir(dir).WithQuota(1 << 30), "rootfs.quota"},
		{rootfs.Host().WithLayer("/x"), "rootfs.layer"},
		{rootfs.EphemeralOverlay(dir).WithWritable(), "rootfs.writable"},
	} {
		p := &rootfs.Plan{Root: c.root}
		err := p.Validate()
		var fe *fielderr.Error
		if !errors.As(err, &fe) || !strings.HasPrefix(fe.Field, c.want) {
			t.Errorf("%+v: %v, want an error about %s", c.root, err, c.want)
		}
	}
	// Setup in a child refuses an unprepared root, naming the fix.
	out, err := run(t, &rootfs.Plan{Root: rootfs.EphemeralOverlay(dir)}, "true")
	if err == nil || !strings.Contains(out, "not prepared") {
		t.Errorf("unprepared root: %v %q", err, out)
	}
}
