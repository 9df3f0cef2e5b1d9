package vessel_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/limits"
	"github.com/openvessel/vessel/rootfs"
)

// A pool keeps containers started, so each job costs an Exec rather than
// a container start. Jobs never see each other's files or processes.
func ExampleNewPool() {
	pool, err := vessel.NewPool(vessel.NewConfig().WithTmpfs("/work", 16<<20), 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()
	for _, script := range []string{
		"echo job 1 > /work/out; cat /work/out",
		"cat /work/out 2>/dev/null || echo job 2 sees a clean /work",
	} {
		cmd := vessel.Command("/bin/sh", "-c", script)
		cmd.Stdout = os.Stdout
		st, err := pool.Run(context.Background(), cmd)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("exit", st.Code)
	}
	// Output:
	// job 1
	// exit 0
	// job 2 sees a clean /work
	// exit 0
}

// Resource limits (setrlimit) apply to every process of the container.
func ExampleConfig_WithRlimit() {
	cfg := vessel.NewConfig().WithRlimit(limits.Rlimit{Type: "RLIMIT_NOFILE", Soft: 256, Hard: 512})
	c, err := vessel.New("example-rlimit", cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Destroy()
	c.Stdout = os.Stdout
	if err := c.Run(context.Background(), "/bin/sh", "-c", `echo "open files: $(ulimit -n) soft, $(ulimit -Hn) hard"`); err != nil {
		fmt.Println(err)
	}
	// Output: open files: 256 soft, 512 hard
}

// A CPU quota of half a core: a busy loop is throttled by the kernel,
// which the container's cgroup statistics show.
func ExampleConfig_WithCPUs() {
	c, err := vessel.New("example-cpus", vessel.NewConfig().WithCPUs(0.5))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Destroy()
	if err := c.Start(context.Background(), "sleep", "30"); err != nil {
		fmt.Println(err)
		return
	}
	// Spin for half a second of wall time: more than the quota allows.
	p, err := c.Exec(context.Background(), vessel.Command("timeout", "0.5", "sh", "-c", "while :; do :; done"))
	if err != nil {
		fmt.Println(err)
		return
	}
	p.Wait() // timeout ends the loop: exit status 124
	st, err := c.Stats()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("throttled:", st.CPU.ThrottledPeriods > 0)
	// Output: throttled: true
}

// Checkpoint saves a running container to disk with CRIU; Restore brings
// it back where it was. Here a counter stops at the checkpoint and, once
// restored into the same root directory, goes on from its last value.
func ExampleContainer_Checkpoint() {
	base, err := os.MkdirTemp("", "example-checkpoint-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(base)
	root, data := filepath.Join(base, "rootfs"), filepath.Join(base, "data")
	if err := makeBusyboxRoot(root); err != nil {
		fmt.Println(err)
		return
	}
	if err := os.Mkdir(data, 0o755); err != nil {
		fmt.Println(err)
		return
	}
	// A counter in its own root directory, writing to a host directory.
	cfg := vessel.NewConfig().WithRootfs(rootfs.Dir(root)).WithBind(data, "/data", false)
	c, err := vessel.New("example-checkpoint", cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Destroy()
	counter := `i=0; while :; do i=$((i+1)); echo $i > /data/count; sleep 0.05; done`
	if err := c.Start(context.Background(), "/bin/sh", "-c", counter); err != nil {
		fmt.Println(err)
		return
	}
	count := func() int {
		b, _ := os.ReadFile(filepath.Join(data, "count"))
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	for count() < 5 {
		time.Sleep(20 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	images := filepath.Join(base, "images")
	res, err := c.Checkpoint(ctx, images, nil) // without LeaveRunning: the container stops
	if err != nil {
		fmt.Println(err)
		return
	}
	c.Wait()
	c.Destroy()
	saved := count()
	fmt.Println("checkpointed:", len(res.Rounds) >= 1 && res.Bytes > 0)

	r, err := vessel.Restore(ctx, images, cfg, "example-checkpoint-restored", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Destroy()
	for count() <= saved+3 && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Println("restored, counter went on without starting again:", ctx.Err() == nil && count() > saved)
	// Output:
	// checkpointed: true
	// restored, counter went on without starting again: true
}

// makeBusyboxRoot makes a minimal root directory: the host's static
// busybox (/bin/busybox) as sh and sleep.
func makeBusyboxRoot(dir string) error {
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "etc", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	src, err := os.Open("/bin/busybox")
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(filepath.Join(dir, "bin", "busybox"), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
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
	for _, applet := range []string{"sh", "sleep"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", applet)); err != nil {
			return err
		}
	}
	return nil
}
