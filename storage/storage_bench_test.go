package storage

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/rootfs"
)

// BenchmarkStart1GBase measures start-to-exit of /bin/true on a root whose
// base holds 1 GiB: an ephemeral overlay (Prepare + mount, nothing copied)
// against copying the base (cp -a) and starting on the copy. It reports
// both times and their ratio.
func BenchmarkStart1GBase(b *testing.B) {
	dir := testutil.DiskTempDir(b)
	base := filepath.Join(dir, "base")
	busyboxTree(b, base)
	chunk := bytes.Repeat([]byte("vessel-1g-base\n"), (1<<20)/15+1)[:1<<20]
	if err := os.MkdirAll(filepath.Join(base, "blob"), 0o755); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 1024; i++ {
		if err := os.WriteFile(filepath.Join(base, "blob", fmt.Sprintf("f%04d", i)), chunk, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	var overlay, copying time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		p := &rootfs.Plan{Root: rootfs.EphemeralOverlay(base)}
		pr, err := Prepare(context.Background(), fmt.Sprintf("bench%d", i), p, PrepareOptions{})
		if err != nil {
			b.Fatal(err)
		}
		mustRun(b, p, "true")
		pr.Release()
		overlay += time.Since(t0)

		t0 = time.Now()
		cp := filepath.Join(dir, "copy")
		if out, err := exec.Command("cp", "-a", base, cp).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v %s", err, out)
		}
		mustRun(b, &rootfs.Plan{Root: rootfs.Dir(cp)}, "true")
		copying += time.Since(t0)
		b.StopTimer()
		os.RemoveAll(cp)
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(float64(overlay.Microseconds())/1000/n, "overlay-ms/op")
	b.ReportMetric(float64(copying.Microseconds())/1000/n, "copy-ms/op")
	b.ReportMetric(float64(copying)/float64(overlay), "copy/overlay")
}

// BenchmarkOverlayStartManyOnOneBase starts containers one after another on
// one shared base; ns/op staying flat as b.N grows is the point.
func BenchmarkOverlayStartManyOnOneBase(b *testing.B) {
	dir := testutil.DiskTempDir(b)
	base := filepath.Join(dir, "base")
	busyboxTree(b, base)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := &rootfs.Plan{Root: rootfs.EphemeralOverlay(base)}
		pr, err := Prepare(context.Background(), fmt.Sprintf("many%d", i), p, PrepareOptions{})
		if err != nil {
			b.Fatal(err)
		}
		mustRun(b, p, "true")
		pr.Release()
	}
}
