package vessel_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/network"
	"github.com/openvessel/vessel/rootfs"
)

// A container with the host's files read-only as its root, its own
// hostname, and a memory limit, running one command.
func Example() {
	cfg := vessel.NewConfig().
		WithHostname("job-42").
		WithMemoryLimit(256 << 20).
		WithPids(128)
	c, err := vessel.New("example-job-42", cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Destroy()
	c.Stdout = os.Stdout
	if err := c.Run(context.Background(), "/bin/sh", "-c", "echo hello from $(hostname)"); err != nil {
		fmt.Println(err)
	}
	// Output: hello from job-42
}

// New validates a configuration and names the field at fault.
func ExampleNew() {
	_, err := vessel.New("bad-config", vessel.NewConfig().WithRootfs(rootfs.Dir("relative/path")))
	var ce *vessel.ConfigError
	if errors.As(err, &ce) {
		fmt.Println(ce.Field)
	}
	// Output: rootfs.path
}

// Exit codes and deaths by signal are told apart.
func ExampleContainer_Run() {
	c, _ := vessel.New("example-exit", vessel.NewConfig())
	defer c.Destroy()
	err := c.Run(context.Background(), "/bin/sh", "-c", "exit 3")
	var ee *vessel.ExitError
	if errors.As(err, &ee) {
		fmt.Println(ee.Status.Code, ee.Status.Exited())
	}
	// Output: 3 true
}

// Exec starts another process in a running container, in all of its
// namespaces.
func ExampleContainer_Exec() {
	c, _ := vessel.New("example-exec", vessel.NewConfig().WithHostname("box"))
	defer c.Destroy()
	if err := c.Start(context.Background(), "sleep", "30"); err != nil {
		fmt.Println(err)
		return
	}
	p, err := c.Exec(context.Background(), &vessel.Cmd{Args: []string{"hostname"}, Stdout: os.Stdout})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Wait())
	// Output:
	// box
	// <nil>
}

// A timeout kills the whole container and says so.
func ExampleConfig_WithTimeout() {
	c, _ := vessel.New("example-timeout", vessel.NewConfig().WithTimeout(100e6))
	defer c.Destroy()
	err := c.Run(context.Background(), "sleep", "10")
	fmt.Println(errors.Is(err, vessel.ErrTimeout))
	// Output: true
}

// Stats reads the container's cgroup.
func ExampleContainer_Stats() {
	c, _ := vessel.New("example-stats", vessel.NewConfig().WithMemoryLimit(64<<20))
	defer c.Destroy()
	if err := c.Start(context.Background(), "sleep", "30"); err != nil {
		fmt.Println(err)
		return
	}
	st, err := c.Stats()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(st.Memory.Limit>>20, "MiB limit,", st.Pids.Current > 0)
	// Output: 64 MiB limit, true
}

// Network modes: a private namespace with only loopback (the default), no
// network at all, or the host's.
func ExampleConfig_WithNetwork() {
	for _, n := range []*network.Config{network.Loopback(), network.None()} {
		c, _ := vessel.New("example-net-"+string(n.Mode), vessel.NewConfig().WithNetwork(n))
		var out strings.Builder
		c.Stdout = &out
		c.Run(context.Background(), "cat", "/sys/class/net/lo/operstate")
		c.Destroy()
		fmt.Println(n.Mode, strings.TrimSpace(out.String()))
	}
	// Output:
	// loopback unknown
	// none down
}

// Root filesystem kinds: the host's files read-only (the default), a
// directory, or a copy-on-write layer over a shared base.
func ExampleConfig_WithRootfs() {
	cfg := vessel.NewConfig().WithRootfs(rootfs.Host()).WithTmpfs("/work", 16<<20)
	c, _ := vessel.New("example-rootfs", cfg)
	defer c.Destroy()
	c.Stdout = os.Stdout
	c.Run(context.Background(), "/bin/sh", "-c", "touch /usr/x 2>/dev/null || echo host files are read-only; touch /work/x && echo /work is writable")
	// Output:
	// host files are read-only
	// /work is writable
}
