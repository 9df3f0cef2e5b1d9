package vessel_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/crit"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pstree"
	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/checkpoint"
	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/network"
	"github.com/openvessel/vessel/rootfs"
)

// needCRIU fails the test when no working criu is installed: the test
// script installs one (.ci/install-criu.sh).
func needCRIU(t testing.TB) {
	t.Helper()
	if _, err := checkpoint.CriuVersion(context.Background(), ""); err != nil {
		t.Fatalf("%v", err)
	}
}

// readCounter reads the value `probe count` keeps in file.
func readCounter(t testing.TB, file string) int64 {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read counter: %v", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		t.Fatalf("counter file %q: %v", data, err)
	}
	return n
}

// waitCounter waits until the counter in file passes min.
func waitCounter(t testing.TB, file string, min int64) int64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(file); err == nil {
			if n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64); err == nil && n > min {
				return n
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("counter in %s did not pass %d", file, min)
	return 0
}

// counterContainer starts `probe count /data/counter` in a private rootfs
// copy with a host directory bound at /data.
func counterContainer(t *testing.T) (*vessel.Container, *vessel.Config, string) {
	t.Helper()
	return counterContainerFrom(t, false)
}

// counterContainerFrom is counterContainer; fromSpare, the container takes
// its init from a spare (vessel.Spares) ready for it.
func counterContainerFrom(t *testing.T, fromSpare bool) (*vessel.Container, *vessel.Config, string) {
	t.Helper()
	needCRIU(t)
	root := testutil.BusyboxRootfsCopy(t)
	data := t.TempDir()
	cfg := newConfig().WithRootfs(rootfs.Dir(root)).WithBind(data, "/data", false)
	args := []string{"/bin/probe", "count", "/data/counter"}
	var c *vessel.Container
	if fromSpare {
		sp := readySpares(t, 1, cfg)
		c = newFromSpares(t, cfg, sp)
		if err := c.Start(context.Background(), args...); err != nil {
			t.Fatal(err)
		}
		if got := sp.Stats(); got.Used != 1 {
			t.Fatalf("the container did not take the spare: %+v", got)
		}
	} else {
		c, _ = start(t, cfg, args...)
	}
	waitCounter(t, filepath.Join(data, "counter"), 5)
	return c, cfg, filepath.Join(data, "counter")
}

func TestCheckpointRestoreCounter(t *testing.T) { checkpointRestoreCounter(t, false) }

// A container whose init came from a spare (vessel.Spares: its control
// socket moved into its network namespace while it waited) checkpoints
// and restores like any other.
func TestCheckpointFromSpare(t *testing.T) { checkpointRestoreCounter(t, true) }

// checkpointRestoreCounter checkpoints a counter's container, which stops
// it, and restores it: the counter goes on from where it stood.
func checkpointRestoreCounter(t *testing.T, fromSpare bool) {
	c, cfg, counter := counterContainerFrom(t, fromSpare)
	dir := ckptDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := c.Checkpoint(ctx, dir, nil)
	if err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	t.Logf("checkpoint: freeze %v, %d bytes", res.FreezeTime, res.Bytes)
	// The workload alone is dumped (its one process), not vessel's init:
	// images as small as runc's (BenchmarkCheckpointVsRunc).
	if n := pstreeLen(t, dir); n != 1 {
		t.Fatalf("the images hold %d processes, want the counter alone", n)
	}
	// The container was stopped by the checkpoint: the counter stands still.
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("container still running after a checkpoint without LeaveRunning")
	}
	at := readCounter(t, counter)
	time.Sleep(100 * time.Millisecond)
	if n := readCounter(t, counter); n != at {
		t.Fatalf("counter moved from %d to %d after the checkpoint", at, n)
	}
	if err := c.Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}

	r, err := vessel.Restore(ctx, dir, cfg, c.ID()+"-r", nil)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	t.Cleanup(func() { r.Destroy() })
	n := waitCounter(t, counter, at)
	if n > at+50 {
		t.Fatalf("counter jumped from %d to %d: restarted or not the same process", at, n)
	}
	st := r.State()
	if st.Status != vessel.Running || st.InitPid == 0 || st.Pid == 0 {
		t.Fatalf("restored state %+v", st)
	}
	if err := r.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if err := r.Wait(); err == nil {
		t.Fatal("Wait after Kill: nil error")
	}
	if err := r.Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
}

// pstreeLen is the number of processes in the images in dir.
func pstreeLen(t *testing.T, dir string) int {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "pstree.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := crit.New(f, nil, "", false, false).Decode(&pstree.PstreeEntry{})
	if err != nil {
		t.Fatalf("decode pstree.img: %v", err)
	}
	return len(img.Entries)
}

// ckptDir returns a fresh directory for a checkpoint (kept under
// $VESSEL_TEST_KEEP when set, for reading CRIU's logs).
func ckptDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("VESSEL_TEST_KEEP"); d != "" {
		dir := filepath.Join(d, strings.ReplaceAll(t.Name(), "/", "_"))
		os.RemoveAll(dir)
		return dir
	}
	return filepath.Join(t.TempDir(), "ckpt")
}

func TestCheckpointPausedLeaveRunningWithPreDumps(t *testing.T) {
	c, cfg, counter := counterContainer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Pause(); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	at := readCounter(t, counter)
	dir := ckptDir(t)
	res, err := c.Checkpoint(ctx, dir, &vessel.CheckpointOptions{LeaveRunning: true, PreDumps: 2})
	if err != nil {
		t.Fatalf("Checkpoint of a paused container: %v", err)
	}
	want := 3
	if !checkpoint.MemoryTracking(ctx, "") {
		// This kernel has no soft-dirty bits: CRIU cannot pre-dump.
		want = 1
		if !res.PreDumpsSkipped {
			t.Fatal("pre-dumps impossible here, but not reported skipped")
		}
	}
	if len(res.Rounds) != want || res.Bytes <= 0 {
		t.Fatalf("result %+v: want %d rounds and bytes", res, want)
	}
	// Still paused, still there.
	if !c.Paused() {
		t.Fatal("container no longer paused after the checkpoint")
	}
	time.Sleep(100 * time.Millisecond)
	if n := readCounter(t, counter); n != at {
		t.Fatalf("paused counter moved from %d to %d", at, n)
	}
	if st := c.State(); st.Status != vessel.Running {
		t.Fatalf("state after a leave-running checkpoint: %+v", st)
	}
	// Restoring needs the original gone (same rootfs, same counter file).
	if err := c.Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	r, err := vessel.Restore(ctx, dir, cfg, "", nil)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	t.Cleanup(func() { r.Destroy() })
	if r.ID() != c.ID() {
		t.Fatalf("restored id %q, want the original %q", r.ID(), c.ID())
	}
	// The checkpoint was taken paused: the restored container is paused.
	time.Sleep(100 * time.Millisecond)
	if n := readCounter(t, counter); n != at || !r.Paused() {
		t.Fatalf("restored paused container: counter %d (want %d), paused %v", n, at, r.Paused())
	}
	if err := r.Resume(); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if n := waitCounter(t, counter, at); n > at+50 {
		t.Fatalf("counter jumped from %d to %d", at, n)
	}
	// A restored container runs commands like a started one.
	p, err := r.Exec(ctx, vessel.Command("/bin/cat", "/data/counter"))
	if err != nil {
		t.Fatalf("Exec in restored container: %v", err)
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("Exec'd process: %v", err)
	}
}

// A checkpoint that leaves the container running thaws it: the final
// dump freezes the cgroup itself (ahead of CRIU, which then leaves it
// frozen), so the thaw is vessel's.
func TestCheckpointLeaveRunningThaws(t *testing.T) {
	c, _, counter := counterContainer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := c.Checkpoint(ctx, ckptDir(t), &vessel.CheckpointOptions{LeaveRunning: true})
	if err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	if res.FreezeTime <= 0 {
		t.Fatalf("freeze time %v", res.FreezeTime)
	}
	if c.Paused() {
		t.Fatal("the container reports paused after a leave-running checkpoint")
	}
	at := readCounter(t, counter)
	waitCounter(t, counter, at+3)
	if st := c.State(); st.Status != vessel.Running {
		t.Fatalf("state after a leave-running checkpoint: %+v", st)
	}
}

// leftoverInits lists the pids of container inits named id (none may be
// left after a failed restore).
func leftoverInits(t *testing.T, id string) []string {
	t.Helper()
	out, _ := os.ReadDir("/proc")
	var left []string
	for _, e := range out {
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.HasPrefix(string(cmd), "vessel-init\x00"+id+"\x00") {
			left = append(left, e.Name())
		}
	}
	return left
}

func TestRestoreErrors(t *testing.T) {
	needCRIU(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root := testutil.BusyboxRootfsCopy(t)
	cfg := newConfig().WithRootfs(rootfs.Dir(root))

	// A directory that does not exist, and one without a checkpoint.
	var ce *vessel.ConfigError
	if _, err := vessel.Restore(ctx, filepath.Join(t.TempDir(), "missing"), cfg, "x-missing", nil); !errors.As(err, &ce) || ce.Field != "dir" {
		t.Fatalf("missing directory: %v, want a ConfigError on dir", err)
	}
	if _, err := vessel.Restore(ctx, t.TempDir(), cfg, "x-empty", nil); !errors.As(err, &ce) || ce.Field != "dir" {
		t.Fatalf("empty directory: %v, want a ConfigError on dir", err)
	}

	// A real checkpoint, then damaged: CRIU fails and nothing runs.
	c, cfg2, _ := counterContainer(t)
	dir := ckptDir(t)
	if _, err := c.Checkpoint(ctx, dir, nil); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	c.Destroy()
	pages, _ := filepath.Glob(filepath.Join(dir, "pages-*.img"))
	cores, _ := filepath.Glob(filepath.Join(dir, "core-*.img"))
	if len(pages) == 0 || len(cores) == 0 {
		t.Fatalf("checkpoint has no pages or core images: %v %v", pages, cores)
	}
	for _, p := range cores {
		if err := os.WriteFile(p, []byte("damaged"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	id := c.ID() + "-damaged"
	_, err := vessel.Restore(ctx, dir, cfg2, id, nil)
	var cerr *checkpoint.CriuError
	if !errors.As(err, &cerr) {
		t.Fatalf("damaged images: %v, want a *checkpoint.CriuError", err)
	}
	if strings.Contains(err.Error(), "RLIMIT_NOFILE") {
		t.Fatalf("criu's start-up noise in the error: %v", err)
	}
	if left := leftoverInits(t, id); len(left) > 0 {
		t.Fatalf("processes left after a failed restore: %v", left)
	}
	if _, err := cgroups.Load(cgroups.Options{Name: "vessel-test/" + id}); !errors.Is(err, cgroups.ErrNotExist) {
		t.Fatalf("cgroup of the failed restore: Load = %v, want ErrNotExist", err)
	}
	// Criu missing: a clear error naming what was tried and what is needed.
	_, err = vessel.Restore(ctx, dir, cfg2, id, &vessel.RestoreOptions{CriuPath: "/nonexistent/criu"})
	var ve *checkpoint.VersionError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "3.17") {
		t.Fatalf("missing criu: %v, want a VersionError naming the version needed", err)
	}
}

// migrate moves c over a loopback TCP connection to a receiver that
// restores it with cfg under id, and returns the restored container.
func migrate(t *testing.T, ctx context.Context, c *vessel.Container, opts *vessel.CheckpointOptions, preDumps int, cfg *vessel.Config, id string) (*vessel.Container, *checkpoint.MigrationStats) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var restored *vessel.Container
	type result struct {
		st  *checkpoint.ReceiveStats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := checkpoint.ReceiveOn(ctx, l, filepath.Join(t.TempDir(), "received"), func(ctx context.Context, dir string) error {
			r, err := vessel.Restore(ctx, dir, cfg, id, nil)
			restored = r
			return err
		})
		done <- result{st, err}
	}()
	st, err := checkpoint.MigrateTo(ctx, l.Addr().String(), c.MigrationSource(opts), &checkpoint.MigrateOptions{PreDumps: preDumps})
	rr := <-done
	if restored != nil {
		t.Cleanup(func() { restored.Destroy() })
	}
	if err != nil || rr.err != nil {
		t.Fatalf("migrate: sender %v, receiver %v", err, rr.err)
	}
	if rr.st.BytesReceived != st.BytesSent || st.BytesSent <= 0 {
		t.Fatalf("sent %d bytes, received %d", st.BytesSent, rr.st.BytesReceived)
	}
	return restored, st
}

func TestMigrateCounter(t *testing.T) {
	c, _, counter := counterContainer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The other "host" has its own copy of the root filesystem; the data
	// directory is shared storage.
	cfgB := c.Config()
	cfgB.Rootfs = rootfs.Dir(testutil.BusyboxRootfsCopy(t))
	r, st := migrate(t, ctx, c, nil, 1, cfgB, c.ID()+"-b")
	t.Logf("migration: downtime %v, freeze %v, %d bytes (%d while down, %d of memory through the page server in %d rounds), pre-dumps skipped: %v", st.Downtime, st.FreezeTime, st.BytesSent, st.FinalBytes, st.PageBytes, st.PageServerRounds, st.PreDumpsSkipped)
	// Both ends run CRIU: every round's memory went through the
	// receiver's page server on the migration connection.
	if st.PageServerRounds != len(st.Rounds) || st.PageBytes <= 0 {
		t.Fatalf("%d of %d rounds through the page server (%d bytes)", st.PageServerRounds, len(st.Rounds), st.PageBytes)
	}
	// Where the kernel tracks dirty memory (the v2 guest), the pre-dump
	// round ran; elsewhere it is reported skipped.
	if tracking := checkpoint.MemoryTracking(ctx, ""); st.PreDumpsSkipped == tracking || tracking && len(st.Rounds) != 2 {
		t.Fatalf("memory tracking %v: %d rounds, pre-dumps skipped %v", tracking, len(st.Rounds), st.PreDumpsSkipped)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the source still runs after the migration")
	}
	at := readCounter(t, counter)
	if n := waitCounter(t, counter, at); n > at+50 {
		t.Fatalf("counter jumped from %d to %d", at, n)
	}
	if st := r.State(); st.Status != vessel.Running {
		t.Fatalf("migrated container state %+v", st)
	}
}

// plainConn is a connection without a descriptor to give criu (as a TLS
// or proxied one would be): a receiver on it declines the page server.
type plainConn struct{ io.ReadWriter }

// A receiver that cannot run a page server on its connection declines
// it: the sender then sends the pages in the tar stream, and the
// migration succeeds all the same.
func TestMigratePageServerDeclined(t *testing.T) {
	c, _, counter := counterContainer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfgB := c.Config()
	cfgB.Rootfs = rootfs.Dir(testutil.BusyboxRootfsCopy(t))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var restored *vessel.Container
	done := make(chan error, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		_, err = checkpoint.Receive(ctx, plainConn{conn}, filepath.Join(t.TempDir(), "received"), func(ctx context.Context, dir string) error {
			r, err := vessel.Restore(ctx, dir, cfgB, c.ID()+"-b", nil)
			restored = r
			return err
		})
		done <- err
	}()
	st, err := checkpoint.MigrateTo(ctx, l.Addr().String(), c.MigrationSource(nil), nil)
	rerr := <-done
	if restored != nil {
		t.Cleanup(func() { restored.Destroy() })
	}
	if err != nil || rerr != nil {
		t.Fatalf("migrate: sender %v, receiver %v", err, rerr)
	}
	if st.PageServerRounds != 0 || st.PageBytes != 0 {
		t.Fatalf("%d rounds (%d bytes) through a page server the receiver declined", st.PageServerRounds, st.PageBytes)
	}
	at := readCounter(t, counter)
	if n := waitCounter(t, counter, at); n > at+50 {
		t.Fatalf("counter jumped from %d to %d", at, n)
	}
}

// benchMigrate migrates a container holding mb MiB of dirty memory over
// loopback TCP, with preDumps pre-dump rounds, and reports freeze time,
// downtime, total time and bytes moved. noPageServer sends the pages in
// the tar stream instead of through the receiver's CRIU page server.
func benchMigrate(b *testing.B, mb, preDumps int, noPageServer bool) {
	needCRIU(b)
	var freeze, down, total time.Duration
	var bytes int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		root := testutil.BusyboxRootfsCopy(b)
		cfg := newConfig().WithRootfs(rootfs.Dir(root))
		c, err := vessel.New(newID(b), cfg)
		if err != nil {
			b.Fatal(err)
		}
		out := &syncBuffer{}
		c.Stdout = out
		if err := c.Start(context.Background(), "/bin/probe", "alloc", strconv.Itoa(mb)); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(time.Minute)
		for !strings.Contains(out.String(), "allocated_mb") {
			if time.Now().After(deadline) {
				b.Fatalf("probe alloc %d did not report", mb)
			}
			time.Sleep(10 * time.Millisecond)
		}
		cfgB := c.Config()
		cfgB.Rootfs = rootfs.Dir(testutil.BusyboxRootfsCopy(b))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		recvDir := b.TempDir()
		var r *vessel.Container
		done := make(chan error, 1)
		go func() {
			_, err := checkpoint.ReceiveOn(ctx, l, recvDir, func(ctx context.Context, dir string) error {
				var err error
				r, err = vessel.Restore(ctx, dir, cfgB, c.ID()+"-b", nil)
				return err
			})
			done <- err
		}()
		b.StartTimer()
		st, err := checkpoint.MigrateTo(ctx, l.Addr().String(), c.MigrationSource(nil), &checkpoint.MigrateOptions{PreDumps: preDumps, NoPageServer: noPageServer})
		b.StopTimer()
		rerr := <-done
		l.Close()
		if r != nil {
			r.Destroy()
		}
		c.Destroy()
		cancel()
		if err != nil || rerr != nil {
			b.Fatalf("migrate: %v / %v", err, rerr)
		}
		freeze += st.FreezeTime
		down += st.Downtime
		total += st.Total
		bytes += st.BytesSent
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(float64(freeze.Milliseconds())/n, "freeze-ms")
	b.ReportMetric(float64(down.Milliseconds())/n, "downtime-ms")
	b.ReportMetric(float64(total.Milliseconds())/n, "total-ms")
	b.ReportMetric(float64(bytes)/n/(1<<20), "MiB-moved")
}

func BenchmarkMigrate10MB(b *testing.B)         { benchMigrate(b, 10, 0, false) }
func BenchmarkMigrate10MBTar(b *testing.B)      { benchMigrate(b, 10, 0, true) }
func BenchmarkMigrate10MBPreDump(b *testing.B)  { benchMigrate(b, 10, 2, false) }
func BenchmarkMigrate100MB(b *testing.B)        { benchMigrate(b, 100, 0, false) }
func BenchmarkMigrate100MBTar(b *testing.B)     { benchMigrate(b, 100, 0, true) }
func BenchmarkMigrate100MBPreDump(b *testing.B) { benchMigrate(b, 100, 2, false) }
func BenchmarkMigrate1GB(b *testing.B)          { benchMigrate(b, 1024, 0, false) }
func BenchmarkMigrate1GBPreDump(b *testing.B)   { benchMigrate(b, 1024, 2, false) }

// ipCmd runs ip(8) and fails the test on error.
func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
}

func echo(t *testing.T, conn net.Conn, msg string) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write([]byte(msg + "\n")); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
	buf := make([]byte, len(msg)+1)
	if _, err := io.ReadFull(conn, buf); err != nil {
		t.Fatalf("read echo of %q: %v", msg, err)
	}
	if string(buf) != msg+"\n" {
		t.Fatalf("echo %q, want %q", buf, msg+"\n")
	}
}

// TestMigrateTCPConnection moves an echo server with an established
// connection between two "hosts" (network namespaces, each with its own
// rootfs copy). The service address moves with it (the veth link to the
// client is moved from host A to host B while the server is frozen), and
// the client's connection, opened before, keeps working.
func TestMigrateTCPConnection(t *testing.T) {
	needCRIU(t)
	tag := strconv.Itoa(os.Getpid() % 100000)
	hostA, hostB, client := "vck-a-"+tag, "vck-b-"+tag, "vck-c-"+tag
	// `ip netns add` mounts /run/netns on itself the first time; undo that
	// after the namespaces are gone if it was not there before.
	if !isMountPoint("/run/netns") {
		_, existed := os.Stat("/run/netns")
		t.Cleanup(func() {
			if ents, _ := os.ReadDir("/run/netns"); len(ents) == 0 {
				unix.Unmount("/run/netns", unix.MNT_DETACH)
				if existed != nil {
					os.Remove("/run/netns")
				}
			}
		})
	}
	for _, ns := range []string{hostA, hostB, client} {
		ipCmd(t, "netns", "add", ns)
		ns := ns
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		ipCmd(t, "-n", ns, "link", "set", "lo", "up")
	}
	ipCmd(t, "link", "add", "vcks"+tag, "netns", hostA, "type", "veth", "peer", "name", "vckc"+tag, "netns", client)
	ipCmd(t, "-n", hostA, "addr", "add", "10.231.0.1/24", "dev", "vcks"+tag)
	ipCmd(t, "-n", hostA, "link", "set", "vcks"+tag, "up")
	ipCmd(t, "-n", client, "addr", "add", "10.231.0.2/24", "dev", "vckc"+tag)
	ipCmd(t, "-n", client, "link", "set", "vckc"+tag, "up")

	cfg := newConfig().WithRootfs(rootfs.Dir(testutil.BusyboxRootfsCopy(t))).WithNetwork(network.Netns("/run/netns/" + hostA))
	c, _ := start(t, cfg, "/bin/nc", "-ll", "-p", "7000", "-e", "/bin/cat")
	var conn net.Conn
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc, err := dialOnce(client, "10.231.0.1:7000")
		if err == nil {
			conn = nc
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("echo server did not come up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer conn.Close()
	echo(t, conn, "before the move")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfgB := c.Config()
	cfgB.Rootfs = rootfs.Dir(testutil.BusyboxRootfsCopy(t))
	cfgB.WithNetwork(network.Netns("/run/netns/" + hostB))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var r *vessel.Container
	done := make(chan error, 1)
	go func() {
		_, err := checkpoint.ReceiveOn(ctx, l, filepath.Join(t.TempDir(), "recv"), func(ctx context.Context, dir string) error {
			// The service address moves to host B with the server.
			for _, args := range [][]string{
				{"-n", hostA, "link", "set", "vcks" + tag, "netns", hostB},
				{"-n", hostB, "addr", "add", "10.231.0.1/24", "dev", "vcks" + tag},
				{"-n", hostB, "link", "set", "vcks" + tag, "up"},
			} {
				if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
					return fmt.Errorf("ip %v: %v: %s", args, err, out)
				}
			}
			var err error
			r, err = vessel.Restore(ctx, dir, cfgB, c.ID()+"-b", nil)
			return err
		})
		done <- err
	}()
	st, err := checkpoint.MigrateTo(ctx, l.Addr().String(), c.MigrationSource(&vessel.CheckpointOptions{TCPEstablished: true}), nil)
	rerr := <-done
	if r != nil {
		t.Cleanup(func() { r.Destroy() })
	}
	if err != nil || rerr != nil {
		t.Fatalf("migrate: sender %v, receiver %v", err, rerr)
	}
	t.Logf("TCP migration: downtime %v, freeze %v, %d bytes", st.Downtime, st.FreezeTime, st.BytesSent)
	echo(t, conn, "after the move")
	// The source's namespace is usable again: CRIU's network lock is gone.
	nsA, err := os.Open("/run/netns/" + hostA)
	if err != nil {
		t.Fatal(err)
	}
	defer nsA.Close()
	if left := lockTablesIn(t, nsA); len(left) > 0 {
		t.Fatalf("CRIU's network lock left in the source namespace: %v", left)
	}
	if err := namespaces.Do(namespaces.Net, "/run/netns/"+hostA, func() error {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer l.Close()
		c, err := net.DialTimeout("tcp", l.Addr().String(), 2*time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}); err != nil {
		t.Fatalf("the source namespace after the migration: %v", err)
	}
}

func dialOnce(ns, addr string) (net.Conn, error) {
	var conn net.Conn
	err := namespaces.Do(namespaces.Net, "/run/netns/"+ns, func() error {
		var err error
		conn, err = net.DialTimeout("tcp", addr, 2*time.Second)
		return err
	})
	return conn, err
}

// isMountPoint reports whether p is a mount point in this mount namespace.
func isMountPoint(p string) bool {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == p {
			return true
		}
	}
	return false
}
