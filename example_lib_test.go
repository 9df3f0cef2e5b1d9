package vessel_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/network"
)

// Command builds a Cmd as os/exec's Command does; Exec runs it inside
// the container.
func ExampleCommand() {
	c, _ := vessel.New("example-command", vessel.NewConfig())
	defer c.Destroy()
	if err := c.Start(context.Background(), "sleep", "30"); err != nil {
		fmt.Println(err)
		return
	}
	cmd := vessel.Command("sh", "-c", "echo $HOME $PATH")
	cmd.Stdout = os.Stdout
	p, err := c.Exec(context.Background(), cmd)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Wait())
	// Output:
	// /root /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	// <nil>
}

// Validate (and New) report every bad field at once, each a ConfigError
// naming the field by its JSON path.
func ExampleConfig_Validate() {
	err := vessel.NewConfig().WithCPUs(0).WithPids(0).Validate()
	var ce *vessel.ConfigError
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		if errors.As(e, &ce) {
			fmt.Println(ce.Field)
		}
	}
	// Output:
	// resources.cpu.cpus
	// resources.pids.max
}

// The end of Run's context kills the container; the error says which
// end it was.
func ExampleContainer_Run_context() {
	c, _ := vessel.New("example-run-context", vessel.NewConfig())
	defer c.Destroy()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := c.Run(ctx, "sleep", "30")
	fmt.Println(errors.Is(err, context.DeadlineExceeded), errors.Is(err, vessel.ErrTimeout), errors.Is(err, vessel.ErrKilled))
	// Output: true true false
}

// WaitTCP returns once a server inside the container accepts
// connections; Start returned before it listened.
func ExampleContainer_WaitTCP() {
	c, _ := vessel.New("example-wait-tcp", vessel.NewConfig())
	defer c.Destroy()
	// busybox's httpd stands for any server that takes a while to listen.
	if err := c.Start(context.Background(), "sh", "-c", "sleep 0.2; exec busybox httpd -f -p 127.0.0.1:8080"); err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fmt.Println(c.WaitTCP(ctx, 8080))
	// Output: <nil>
}

// WaitFile returns once a file exists inside the container.
func ExampleContainer_WaitFile() {
	c, _ := vessel.New("example-wait-file", vessel.NewConfig().WithTmpfs("/run/app", 0))
	defer c.Destroy()
	if err := c.Start(context.Background(), "sh", "-c", "sleep 0.2; touch /run/app/ready; sleep 30"); err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fmt.Println(c.WaitFile(ctx, "/run/app/ready"))
	// Output: <nil>
}

// WithPublish publishes a container port on the host, docker style, on
// the default bridge.
func ExampleConfig_WithPublish() {
	port, err := network.ParsePort("127.0.0.1:8080:80")
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := vessel.NewConfig().WithPublish(port)
	fmt.Println(cfg.Network.Mode, cfg.Network.Publish[0].HostPort, cfg.Network.Publish[0].ContainerPort, cfg.Validate())
	// Output: bridge 8080 80 <nil>
}
