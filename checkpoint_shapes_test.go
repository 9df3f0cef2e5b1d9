package vessel_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/checkpoint"
	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/rootfs"
)

// nsLockTables lists CRIU's network-lock tables in pid's network namespace.
func nsLockTables(t *testing.T, pid int) []string {
	t.Helper()
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	return lockTablesIn(t, ns)
}

func lockTablesIn(t *testing.T, ns *os.File) []string {
	t.Helper()
	var names []string
	if err := checkpoint.RemoveLockTables(ns, func(name string) bool {
		names = append(names, name)
		return false
	}); err != nil {
		t.Fatalf("list nftables tables: %v", err)
	}
	return names
}

// A Go program listening with MPTCP (Go 1.24+'s default) cannot be
// dumped by CRIU: the checkpoint is refused before anything is frozen,
// the error names the socket and the fix, and the container keeps
// counting. With GODEBUG=multipathtcp=0 the same program checkpoints
// and restores.
func TestCheckpointRefusesMPTCP(t *testing.T) {
	needCRIU(t)
	root := testutil.BusyboxRootfsCopy(t)
	data := t.TempDir()
	counter := filepath.Join(data, "counter")
	script := "/bin/probe listen 127.0.0.1:7000 & exec /bin/probe count /data/counter"
	cfg := newConfig().WithRootfs(rootfs.Dir(root)).WithBind(data, "/data", false)
	c, _ := start(t, cfg, "/bin/sh", "-c", script)
	waitCounter(t, counter, 5)
	waitListening(t, c, "7000")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := c.Checkpoint(ctx, ckptDir(t), nil)
	var ue *checkpoint.UnsupportedError
	if !errors.As(err, &ue) {
		t.Fatalf("Checkpoint of an MPTCP listener: %v, want a *checkpoint.UnsupportedError", err)
	}
	for _, want := range []string{"MPTCP", "GODEBUG=multipathtcp=0", "nothing was frozen"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not say %q", err, want)
		}
	}
	at := readCounter(t, counter)
	waitCounter(t, counter, at+3)
	if st := c.State(); st.Status != vessel.Running {
		t.Fatalf("state after a refused checkpoint: %+v", st)
	}
	c.Destroy()

	// The same workload told to use plain TCP.
	cfg2 := newConfig().WithRootfs(rootfs.Dir(root)).WithBind(data, "/data", false).WithEnv("GODEBUG=multipathtcp=0")
	c2, _ := start(t, cfg2, "/bin/sh", "-c", script)
	waitCounter(t, counter, readCounter(t, counter))
	waitListening(t, c2, "7000")
	dir := ckptDir(t)
	if _, err := c2.Checkpoint(ctx, dir, nil); err != nil {
		t.Fatalf("Checkpoint with GODEBUG=multipathtcp=0: %v", err)
	}
	<-c2.Done()
	at = readCounter(t, counter)
	c2.Destroy()
	r, err := vessel.Restore(ctx, dir, cfg2, "", nil)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	t.Cleanup(func() { r.Destroy() })
	if n := waitCounter(t, counter, at); n > at+50 {
		t.Fatalf("counter jumped from %d to %d", at, n)
	}
	waitListening(t, r, "7000")
}

// waitListening waits until a connection to 127.0.0.1:port inside c
// succeeds.
func waitListening(t *testing.T, c *vessel.Container, port string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out := &syncBuffer{}
		cmd := vessel.Command("/bin/probe", "try", "connect", "127.0.0.1:"+port)
		cmd.Stdout = out
		p, err := c.Exec(context.Background(), cmd)
		if err == nil {
			_ = p.Wait()
			if strings.Contains(out.String(), `"ok":true`) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on port %s in the container", port)
}

// A migration whose receiver fails to restore leaves the source running
// where it was (it was only frozen): the error says so, the counter goes
// on, and CRIU's network lock is gone from the source's namespace.
func TestMigrateReceiverFailsSourceResumes(t *testing.T) {
	c, _, counter := counterContainer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		_, err := checkpoint.ReceiveOn(ctx, l, filepath.Join(t.TempDir(), "recv"), func(ctx context.Context, dir string) error {
			if _, err := os.Stat(filepath.Join(dir, "inventory.img")); err != nil {
				return fmt.Errorf("received no images: %v", err)
			}
			return errors.New("this receiver refuses on purpose")
		})
		done <- err
	}()
	_, err = checkpoint.MigrateTo(ctx, l.Addr().String(), c.MigrationSource(&vessel.CheckpointOptions{TCPEstablished: true}), nil)
	rerr := <-done
	if rerr == nil || !strings.Contains(rerr.Error(), "on purpose") {
		t.Fatalf("receiver: %v, want its restore error", rerr)
	}
	var he *checkpoint.HandoffError
	if !errors.As(err, &he) || !strings.Contains(err.Error(), "on purpose") || !strings.Contains(err.Error(), "resumed") {
		t.Fatalf("migrate: %v, want a HandoffError naming the receiver's failure and saying the source resumed", err)
	}
	select {
	case <-c.Done():
		t.Fatal("the source stopped although the migration failed")
	default:
	}
	at := readCounter(t, counter)
	waitCounter(t, counter, at+3)
	if st := c.State(); st.Status != vessel.Running {
		t.Fatalf("source state %+v", st)
	}
	if left := nsLockTables(t, c.State().InitPid); len(left) > 0 {
		t.Fatalf("CRIU's network lock left in the source's namespace: %v", left)
	}
	// And it can still be checkpointed and restored.
	dir := ckptDir(t)
	if _, err := c.Checkpoint(ctx, dir, nil); err != nil {
		t.Fatalf("Checkpoint after the failed migration: %v", err)
	}
	cfg := c.Config()
	at = readCounter(t, counter)
	c.Destroy()
	r, err := vessel.Restore(ctx, dir, cfg, "", nil)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	t.Cleanup(func() { r.Destroy() })
	if n := waitCounter(t, counter, at); n > at+50 {
		t.Fatalf("counter jumped from %d to %d", at, n)
	}
}

// A bridge-network container (its /etc/hosts a file from the host, its
// veth's peer on the host) checkpoints and restores: the restored one
// gets a fresh network namespace on the bridge, and the count goes on.
func TestCheckpointBridgeNetwork(t *testing.T) {
	needCRIU(t)
	root := testutil.BusyboxRootfsCopy(t)
	data := t.TempDir()
	counter := filepath.Join(data, "counter")
	cfg := newConfig().WithRootfs(rootfs.Dir(root)).WithBind(data, "/data", false).WithNetwork(testBridge(t))
	c, _ := start(t, cfg, "/bin/probe", "count", "/data/counter")
	waitCounter(t, counter, 5)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := ckptDir(t)
	if _, err := c.Checkpoint(ctx, dir, nil); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	<-c.Done()
	at := readCounter(t, counter)
	c.Destroy()
	r, err := vessel.Restore(ctx, dir, cfg, "", nil)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	t.Cleanup(func() { r.Destroy() })
	if n := waitCounter(t, counter, at); n > at+50 {
		t.Fatalf("counter jumped from %d to %d", at, n)
	}
	// The restored container is on the bridge: it has an address there,
	// and Exec'd processes share its namespaces.
	out := &syncBuffer{}
	cmd := vessel.Command("/bin/cat", "/etc/hosts", "/proc/1/cmdline")
	cmd.Stdout = out
	p, err := r.Exec(ctx, cmd)
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("Exec'd cat: %v (%s)", err, out.String())
	}
	if !strings.Contains(out.String(), "probe") {
		t.Fatalf("Exec'd process does not see the restored PID 1: %q", out.String())
	}
}

// A container on the host's own files (rootfs.Host, the default)
// checkpoints and restores: its root is remade with the host root's
// symlinks and the host directories come back as the same host paths.
func TestCheckpointHostRoot(t *testing.T) {
	needCRIU(t)
	probe := testutil.BuildProbe(t)
	data := t.TempDir()
	counter := filepath.Join(data, "counter")
	cfg := newConfig().WithBind(data, "/data", false).WithBind(filepath.Dir(probe), "/probe", true)
	if cfg.Rootfs.Kind != rootfs.KindHost {
		t.Fatalf("the default root is %s, want the host's", cfg.Rootfs.Kind)
	}
	c, _ := start(t, cfg, "/probe/"+filepath.Base(probe), "count", "/data/counter")
	waitCounter(t, counter, 5)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := ckptDir(t)
	if _, err := c.Checkpoint(ctx, dir, nil); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	<-c.Done()
	at := readCounter(t, counter)
	c.Destroy()
	r, err := vessel.Restore(ctx, dir, cfg, "", nil)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	t.Cleanup(func() { r.Destroy() })
	if n := waitCounter(t, counter, at); n > at+50 {
		t.Fatalf("counter jumped from %d to %d", at, n)
	}
	// The host's files are there, read-only, as before.
	out := &syncBuffer{}
	cmd := vessel.Command("/probe/"+filepath.Base(probe), "try", "open", "/etc/vessel-ckpt-test", "create")
	cmd.Stdout = out
	p, err := r.Exec(ctx, cmd)
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	_ = p.Wait()
	if !strings.Contains(out.String(), `"errnoName":"EROFS"`) {
		t.Fatalf("creating a file in the restored container's /etc: %s, want EROFS", out.String())
	}
}

// lastLineNumber is the last complete line of out that is a number.
func lastLineNumber(out string) (int, bool) {
	lines := strings.Split(strings.ReplaceAll(out, "\r", ""), "\n")
	for i := len(lines) - 2; i >= 0; i-- {
		if n, err := strconv.Atoi(strings.TrimSpace(lines[i])); err == nil {
			return n, true
		}
	}
	return 0, false
}

// A container with a terminal of its own (WithTTY) checkpoints and
// restores: criu makes a new terminal where the old one was and its
// master comes back here, so the output goes on, from the count it had.
func TestCheckpointTTY(t *testing.T) {
	needCRIU(t)
	root := testutil.BusyboxRootfsCopy(t)
	cfg := newConfig().WithRootfs(rootfs.Dir(root)).WithTTY(true)
	c, err := vessel.New(newID(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Destroy() })
	out := &syncBuffer{}
	c.Stdout = out
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Start(ctx, "/bin/probe", "ticker"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if n, ok := lastLineNumber(out.String()); ok && n > 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no count on the terminal: %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	dir := ckptDir(t)
	if _, err := c.Checkpoint(ctx, dir, nil); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	<-c.Done()
	at, _ := lastLineNumber(out.String())
	c.Destroy()
	out2 := &syncBuffer{}
	r, err := vessel.Restore(ctx, dir, cfg, "", &vessel.RestoreOptions{Stdout: out2})
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	t.Cleanup(func() { r.Destroy() })
	deadline = time.Now().Add(10 * time.Second)
	for {
		n, ok := lastLineNumber(out2.String())
		if ok {
			if n <= at || n > at+200 {
				t.Fatalf("restored terminal shows %d after %d: restarted or not the same process", n, at)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing on the restored terminal: %q", out2.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An overlay root with a persistent writable layer checkpoints and
// restores: the restore mounts the same lowers and layer again, so what
// the workload wrote to its root before is there, and the counter goes
// on. An ephemeral layer (a tmpfs of the container's own) is refused
// before anything is frozen, and the container goes on.
func TestCheckpointOverlayRoot(t *testing.T) {
	needCRIU(t)
	lower := testutil.BusyboxRootfsCopy(t)
	layer := filepath.Join(t.TempDir(), "layer")
	checkpointLayeredRoot(t, rootfs.Overlay(layer, lower), layer, lower)

	// An ephemeral layer: refused, nothing frozen.
	data := t.TempDir()
	counter := filepath.Join(data, "counter")
	cfgE := newConfig().WithRootfs(rootfs.EphemeralOverlay(lower)).WithBind(data, "/data", false)
	e, _ := start(t, cfgE, "/bin/probe", "count", "/data/counter")
	waitCounter(t, counter, 5)
	_, err := e.Checkpoint(context.Background(), ckptDir(t), nil)
	var ue *checkpoint.UnsupportedError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "ephemeral writable layer") {
		t.Fatalf("Checkpoint of an ephemeral overlay root: %v, want an UnsupportedError naming the ephemeral layer", err)
	}
	waitCounter(t, counter, readCounter(t, counter)+3)
}

// An image root (an OCI layout, unpacked into a layer store) with a
// persistent layer checkpoints and restores as an overlay does.
func TestCheckpointImageRoot(t *testing.T) {
	needCRIU(t)
	dir := t.TempDir()
	imgDir := filepath.Join(dir, "image")
	tree := testutil.BusyboxRootfsCopy(t)
	layer := testutil.Layer{Open: func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(tarTree(tree, pw)) }()
		return pr, nil
	}}
	if err := testutil.WriteOCILayout(imgDir, []testutil.Layer{layer}, testutil.ImageConfig{}, "", false); err != nil {
		t.Fatal(err)
	}
	r := rootfs.Image(imgDir).WithLayer(filepath.Join(dir, "layer"))
	r.Store = filepath.Join(dir, "store")
	checkpointLayeredRoot(t, r, r.Layer, "")
}

// checkpointLayeredRoot checkpoints a counter on root (whose persistent
// writable layer is layer; lower, if not empty, its lower directory),
// after it wrote a file to its root, restores it, and checks the file,
// the counter and that later writes go to the layer.
func checkpointLayeredRoot(t *testing.T, root rootfs.Root, layer, lower string) {
	t.Helper()
	data := t.TempDir()
	counter := filepath.Join(data, "counter")
	cfg := newConfig().WithRootfs(root).WithBind(data, "/data", false)
	script := "echo written-before > /etc/mark && exec /bin/probe count /data/counter"
	c, _ := start(t, cfg, "/bin/sh", "-c", script)
	waitCounter(t, counter, 5)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := ckptDir(t)
	if _, err := c.Checkpoint(ctx, dir, nil); err != nil {
		t.Fatalf("Checkpoint of an overlay root with a layer: %v", err)
	}
	<-c.Done()
	at := readCounter(t, counter)
	c.Destroy()
	if _, err := os.Stat(filepath.Join(lower, "etc", "mark")); lower != "" && err == nil {
		t.Fatal("the write went to the lower directory")
	}
	r, err := vessel.Restore(ctx, dir, cfg, "", nil)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	t.Cleanup(func() { r.Destroy() })
	if n := waitCounter(t, counter, at); n > at+50 {
		t.Fatalf("counter jumped from %d to %d", at, n)
	}
	out := &syncBuffer{}
	cmd := vessel.Command("/bin/cat", "/etc/mark")
	cmd.Stdout = out
	p, err := r.Exec(ctx, cmd)
	if err != nil {
		t.Fatalf("Exec in the restored container: %v", err)
	}
	if err := p.Wait(); err != nil || strings.TrimSpace(out.String()) != "written-before" {
		t.Fatalf("/etc/mark in the restored root: %q (%v)", out.String(), err)
	}
	// The restored root is an overlay, not the lower directory itself.
	cmd = vessel.Command("/bin/sh", "-c", "echo written-after > /etc/mark2")
	if p, err = r.Exec(ctx, cmd); err != nil || p.Wait() != nil {
		t.Fatalf("write in the restored root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(layer, "diff", "etc", "mark2")); err != nil {
		t.Fatalf("a write after the restore is not in the layer: %v", err)
	}
	if _, err := os.Stat(filepath.Join(lower, "etc", "mark2")); lower != "" && err == nil {
		t.Fatal("a write after the restore went to the lower directory")
	}
}
