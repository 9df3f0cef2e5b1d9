package vessel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/crit"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/stats"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/checkpoint"
	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/rootfs"
)

// imagesSize is the size of the regular files in an images directory,
// CRIU's logs left out.
func imagesSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.HasSuffix(p, ".log") {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// frozenFor is how long CRIU kept the tree frozen, from the dump's
// statistics in dir.
func frozenFor(b *testing.B, dir string) time.Duration {
	b.Helper()
	f, err := os.Open(filepath.Join(dir, "stats-dump"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	img, err := crit.New(f, nil, "", false, false).Decode(&stats.StatsEntry{})
	if err != nil || len(img.Entries) != 1 {
		b.Fatalf("dump statistics in %s: %v", dir, err)
	}
	st := img.Entries[0].Message.(*stats.StatsEntry).GetDump()
	return time.Duration(st.GetFreezingTime()+st.GetFrozenTime()) * time.Microsecond
}

// ckptMetrics accumulates one runtime's figures.
type ckptMetrics struct {
	freeze, down time.Duration
	bytes        int64
}

func (m *ckptMetrics) report(b *testing.B, name string) {
	n := float64(b.N)
	b.ReportMetric(float64(m.freeze.Microseconds())/1000/n, name+"-freeze-ms")
	b.ReportMetric(float64(m.down.Microseconds())/1000/n, name+"-downtime-ms")
	b.ReportMetric(float64(m.bytes)/1024/n, name+"-image-KiB")
}

// BenchmarkCheckpointVsRunc checkpoints and restores the same workload
// (`probe count` in a busybox root, its own pid, mount, network, UTS and
// IPC namespaces) with vessel (library) and with runc 1.1.5 (CLI), both
// through the same CRIU, and reports for each the time CRIU kept it
// frozen, the downtime (from the start of the checkpoint to the return
// of the restore, the work going on from there) and the images' size.
func BenchmarkCheckpointVsRunc(b *testing.B) {
	needCRIU(b)
	criu := os.Getenv(checkpoint.EnvCriu)
	if criu == "" {
		criu = checkpoint.DefaultCriuPath
	}
	if _, err := exec.LookPath("runc"); err != nil {
		b.Fatalf("runc: %v (apt-get install runc)", err)
	}
	var vm, rm ckptMetrics
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// vessel
		root := testutil.BusyboxRootfsCopy(b)
		cfg := newConfig().WithRootfs(rootfs.Dir(root))
		id := newID(b)
		c, err := vessel.New(id, cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Start(ctx, "/bin/probe", "count", "/counter"); err != nil {
			b.Fatal(err)
		}
		waitCounter(b, filepath.Join(root, "counter"), 5)
		dir := filepath.Join(b.TempDir(), "vessel")
		b.StartTimer()
		start := time.Now()
		if _, err := c.Checkpoint(ctx, dir, nil); err != nil {
			b.Fatal(err)
		}
		c.Destroy()
		r, err := vessel.Restore(ctx, dir, cfg, id, nil)
		if err != nil {
			b.Fatal(err)
		}
		vm.down += time.Since(start)
		b.StopTimer()
		vm.freeze += frozenFor(b, dir)
		vm.bytes += imagesSize(dir)
		waitCounter(b, filepath.Join(root, "counter"), readCounter(b, filepath.Join(root, "counter")))
		r.Destroy()

		// runc
		bundle := b.TempDir()
		rroot := testutil.BusyboxRootfsCopy(b)
		if out, err := exec.Command("runc", "spec", "--bundle", bundle).CombinedOutput(); err != nil {
			b.Fatalf("runc spec: %v: %s", err, out)
		}
		var spec map[string]any
		data, _ := os.ReadFile(filepath.Join(bundle, "config.json"))
		if err := json.Unmarshal(data, &spec); err != nil {
			b.Fatal(err)
		}
		spec["root"] = map[string]any{"path": rroot, "readonly": false}
		proc := spec["process"].(map[string]any)
		proc["terminal"] = false
		proc["args"] = []string{"/bin/probe", "count", "/counter"}
		rid := fmt.Sprintf("runc-%s", id)
		spec["linux"].(map[string]any)["cgroupsPath"] = "/vessel-test/" + rid
		data, _ = json.Marshal(spec)
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
			b.Fatal(err)
		}
		state := b.TempDir()
		// The container's stdio: pipes (as containerd gives), which runc
		// checkpoints; a file of the host it cannot.
		inR, inW, _ := os.Pipe()
		outR, outW, _ := os.Pipe()
		go func() {
			buf := make([]byte, 4096)
			for {
				if _, err := outR.Read(buf); err != nil {
					return
				}
			}
		}()
		b.Cleanup(func() { inR.Close(); inW.Close(); outR.Close(); outW.Close() })
		runc := func(args ...string) {
			b.Helper()
			cmd := exec.Command("runc", append([]string{"--root", state, "--criu", criu}, args...)...)
			cmd.Dir = bundle
			// A file, not a pipe: a detached container keeps its stdio.
			out, err := os.CreateTemp(state, "out")
			if err != nil {
				b.Fatal(err)
			}
			defer out.Close()
			cmd.Stdout, cmd.Stderr = out, out
			if args[0] == "run" || args[0] == "restore" {
				cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, outW
			}
			if err := cmd.Run(); err != nil {
				data, _ := os.ReadFile(out.Name())
				b.Fatalf("runc %v: %v: %s", args, err, data)
			}
		}
		runc("run", "-d", "--bundle", bundle, rid)
		b.Cleanup(func() {
			exec.Command("runc", "--root", state, "delete", "-f", rid).Run()
		})
		waitCounter(b, filepath.Join(rroot, "counter"), 5)
		rdir := filepath.Join(b.TempDir(), "runc")
		b.StartTimer()
		start = time.Now()
		runc("checkpoint", "--image-path", rdir, rid)
		runc("restore", "-d", "--image-path", rdir, "--bundle", bundle, rid)
		rm.down += time.Since(start)
		b.StopTimer()
		rm.freeze += frozenFor(b, rdir)
		rm.bytes += imagesSize(rdir)
		waitCounter(b, filepath.Join(rroot, "counter"), readCounter(b, filepath.Join(rroot, "counter")))
		runc("delete", "-f", rid)
		b.StartTimer()
	}
	vm.report(b, "vessel")
	rm.report(b, "runc")
}
