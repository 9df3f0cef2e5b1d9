// Command migrate moves a running container from one host to another
// over TCP, without restarting it.
//
// The container runs a counter: a shell loop that writes 1, 2, 3, ... to
// /data/count ten times a second, /data being a directory of the host
// bound in (the "shared storage" both hosts see). Migration checkpoints
// the container with CRIU (package checkpoint), streams the images to the
// receiver, and restores the container there, in its own copy of the root
// filesystem; the counter goes on from where it was instead of starting
// again at 1.
//
// Usage (as root, with CRIU installed):
//
//	migrate [-cgroup GROUP] [-predumps N] demo
//	migrate [-cgroup GROUP] receive -listen ADDR -data DIR
//	migrate [-cgroup GROUP] [-predumps N] send -to ADDR -data DIR
//
// demo does both ends in one program, over 127.0.0.1. receive and send
// are the two ends as separate programs (two terminals, or two machines
// sharing DIR). See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/checkpoint"
	"github.com/openvessel/vessel/rootfs"
)

func main() {
	vessel.Init() // in a container child this sets up and never returns
	cgroup := flag.String("cgroup", "", "cgroup group of the containers (default $VESSEL_CGROUP_GROUP, else vessel)")
	preDumps := flag.Int("predumps", 1, "pre-dump rounds copied while the container runs, before the final dump")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: migrate [-cgroup GROUP] [-predumps N] demo | receive -listen ADDR -data DIR | send -to ADDR -data DIR")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 1 {
		flag.Usage()
		os.Exit(2)
	}
	var err error
	switch cmd, args := flag.Arg(0), flag.Args()[1:]; cmd {
	case "demo":
		err = demo(*cgroup, *preDumps)
	case "receive":
		fs := flag.NewFlagSet("receive", flag.ExitOnError)
		listen := fs.String("listen", "127.0.0.1:7070", "address to accept the migration on")
		data := fs.String("data", "", "host directory bound at /data (the shared storage)")
		fs.Parse(args)
		err = receive(*cgroup, *listen, *data)
	case "send":
		fs := flag.NewFlagSet("send", flag.ExitOnError)
		to := fs.String("to", "127.0.0.1:7070", "address of the receiver")
		data := fs.String("data", "", "host directory bound at /data (the shared storage)")
		fs.Parse(args)
		err = send(*cgroup, *preDumps, *to, *data)
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "migrate:", err)
		os.Exit(1)
	}
}

// counterScript is what the container runs. It names its container in a
// variable, so its command line says whose it is.
const counterScript = `name=%s; i=0; while :; do i=$((i+1)); echo $i > /data/count; sleep 0.1; done`

// buildRootfs makes a minimal root filesystem in dir: the host's static
// busybox and the few applets the counter uses.
func buildRootfs(dir string) error {
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "etc", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	src, err := os.Open("/bin/busybox")
	if err != nil {
		return fmt.Errorf("a static busybox is needed at /bin/busybox (apt-get install busybox-static): %w", err)
	}
	defer src.Close()
	dst, err := os.OpenFile(filepath.Join(dir, "bin/busybox"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	for _, applet := range []string{"sh", "sleep", "cat", "echo"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", applet)); err != nil {
			return err
		}
	}
	return nil
}

// config is the counter container's configuration on either host: its
// own root directory, and the shared data directory at /data.
func config(root, data, cgroup string) *vessel.Config {
	cfg := vessel.NewConfig().
		WithRootfs(rootfs.Dir(root)).
		WithBind(data, "/data", false).
		WithHostname("counter")
	if cgroup != "" {
		cfg.Cgroup.Group = cgroup
	}
	return cfg
}

// readCount reads the counter; 0 if it has not been written yet.
func readCount(data string) int {
	b, err := os.ReadFile(filepath.Join(data, "count"))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// waitCount waits until the counter passes min and returns it.
func waitCount(data string, min int, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		if n := readCount(data); n > min {
			return n, nil
		}
		if time.Now().After(deadline) {
			return readCount(data), fmt.Errorf("the counter did not pass %d within %v", min, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startCounter builds a root filesystem under base and starts the counter
// container in it.
func startCounter(ctx context.Context, id, base, data, cgroup string) (*vessel.Container, error) {
	root := filepath.Join(base, "rootfs-source")
	if err := buildRootfs(root); err != nil {
		return nil, err
	}
	c, err := vessel.New(id, config(root, data, cgroup))
	if err != nil {
		return nil, err
	}
	if err := c.Start(ctx, "/bin/sh", "-c", fmt.Sprintf(counterScript, id)); err != nil {
		c.Destroy()
		return nil, fmt.Errorf("start the counter: %w", err)
	}
	fmt.Printf("source: started container %q (pid %d on this host)\n", id, c.State().Pid)
	return c, nil
}

// migrateOut moves c to the receiver at addr and reports how it went.
func migrateOut(ctx context.Context, c *vessel.Container, addr, data string, preDumps int) error {
	if _, err := waitCount(data, 10, 10*time.Second); err != nil {
		return err
	}
	fmt.Printf("source: counter at %d, migrating to %s\n", readCount(data), addr)
	st, err := checkpoint.MigrateTo(ctx, addr, c.MigrationSource(nil), &checkpoint.MigrateOptions{PreDumps: preDumps})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	pre := len(st.Rounds) - 1
	if st.PreDumpsSkipped {
		fmt.Println("source: pre-dumps skipped (this kernel cannot track dirty memory)")
	}
	fmt.Printf("migrated: pre-dumps %d, freeze time %v, downtime %v, restore %v, total %v\n",
		pre, st.FreezeTime.Round(time.Millisecond), st.Downtime.Round(time.Millisecond),
		st.RestoreTime.Round(time.Millisecond), st.Total.Round(time.Millisecond))
	fmt.Printf("moved: %d bytes (%d while the container was down)\n", st.BytesSent, st.FinalBytes)
	select {
	case <-c.Done():
		fmt.Println("source: container stopped")
	case <-time.After(10 * time.Second):
		return errors.New("the source container still runs after the migration")
	}
	return nil
}

// receiveIn accepts one migration on l and restores it in a new copy of
// the root filesystem under base.
func receiveIn(ctx context.Context, l net.Listener, id, base, data, cgroup string) (*vessel.Container, error) {
	root := filepath.Join(base, "rootfs-target")
	if err := buildRootfs(root); err != nil {
		return nil, err
	}
	var restored *vessel.Container
	st, err := checkpoint.ReceiveOn(ctx, l, filepath.Join(base, "received"), func(ctx context.Context, dir string) error {
		r, err := vessel.Restore(ctx, dir, config(root, data, cgroup), id, nil)
		restored = r
		return err
	})
	if err != nil {
		if restored != nil {
			restored.Destroy()
		}
		return nil, err
	}
	fmt.Printf("target: received %d rounds, %d bytes; restored container %q in %v (pid %d on this host)\n",
		st.Rounds, st.BytesReceived, id, st.RestoreTime.Round(time.Millisecond), restored.State().Pid)
	return restored, nil
}

// showContinued reports that the counter went on after the migration
// from where it was, rather than from 1.
func showContinued(data string) error {
	at := readCount(data)
	n, err := waitCount(data, at+5, 10*time.Second)
	if err != nil {
		return fmt.Errorf("after the migration: %w", err)
	}
	fmt.Printf("target: counter went on from %d to %d\n", at, n)
	return nil
}

// demo runs both hosts in this program, over 127.0.0.1.
func demo(cgroup string, preDumps int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base, err := os.MkdirTemp("", "vessel-migrate-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	data := filepath.Join(base, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		return err
	}
	id := fmt.Sprintf("migrate-%d", os.Getpid())

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	type received struct {
		c   *vessel.Container
		err error
	}
	done := make(chan received, 1)
	go func() {
		c, err := receiveIn(ctx, l, id+"-b", base, data, cgroup)
		done <- received{c, err}
	}()

	src, err := startCounter(ctx, id+"-a", base, data, cgroup)
	if err != nil {
		l.Close()
		<-done
		return err
	}
	defer src.Destroy()
	merr := migrateOut(ctx, src, l.Addr().String(), data, preDumps)
	if merr != nil {
		l.Close() // a receiver still waiting gives up
	}
	r := <-done
	if r.c != nil {
		defer r.c.Destroy()
	}
	if err := errors.Join(merr, r.err); err != nil {
		return err
	}
	if err := showContinued(data); err != nil {
		return err
	}
	fmt.Printf("target: container %q is %s\n", r.c.ID(), r.c.State().Status)
	return nil
}

// receive is the receiving host: it restores one migrated counter, then
// keeps it running until interrupted.
func receive(cgroup, listen, data string) error {
	if data == "" {
		return errors.New("receive: -data: the shared data directory is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	base, err := os.MkdirTemp("", "vessel-migrate-receive-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Printf("target: waiting for a migration on %s\n", l.Addr())
	c, err := receiveIn(ctx, l, fmt.Sprintf("migrate-%d-b", os.Getpid()), base, data, cgroup)
	if err != nil {
		return err
	}
	defer c.Destroy()
	if err := showContinued(data); err != nil {
		return err
	}
	fmt.Println("target: the counter runs here now; interrupt to stop it")
	select {
	case <-ctx.Done():
	case <-c.Done():
		return fmt.Errorf("the migrated container ended: %v", c.Wait())
	}
	return nil
}

// send is the sending host: it starts the counter, lets it run a second,
// and migrates it to the receiver.
func send(cgroup string, preDumps int, to, data string) error {
	if data == "" {
		return errors.New("send: -data: the shared data directory is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	base, err := os.MkdirTemp("", "vessel-migrate-send-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	c, err := startCounter(ctx, fmt.Sprintf("migrate-%d-a", os.Getpid()), base, data, cgroup)
	if err != nil {
		return err
	}
	defer c.Destroy()
	return migrateOut(ctx, c, to, data, preDumps)
}
