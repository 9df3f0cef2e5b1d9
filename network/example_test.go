package network_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"syscall"

	"github.com/openvessel/vessel/network"
)

func ExampleParse() {
	cfg, err := network.Parse("bridge=br7")
	if err != nil {
		log.Fatal(err)
	}
	p, _ := network.ParsePort("127.0.0.1:8080:80/tcp")
	cfg.Publish = append(cfg.Publish, p)
	fmt.Println(cfg.Mode, cfg.Bridge, cfg.Validate(), cfg.NewNamespace(), cfg.Publish[0])
	// Output: bridge br7 <nil> true 127.0.0.1:8080:80/tcp
}

// The host side wires a container whose process was just cloned into a new
// network namespace, then writes the files the container needs.
func ExampleManager_Setup() {
	cmd := exec.Command("/bin/sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	defer cmd.Process.Kill()

	m := &network.Manager{} // default state dir, table "vessel", pool 10.88.0.0/16
	cfg := &network.Config{
		Mode:     network.ModeBridge,
		Hostname: "web",
		Publish:  []network.Port{{HostPort: 8080, ContainerPort: 80}},
	}
	a, err := m.Setup(context.Background(), "web-1", cfg, cmd.Process.Pid)
	if err != nil {
		log.Fatal(err)
	}
	defer a.Teardown()
	os.WriteFile("/srv/web-1/rootfs/etc/hosts", a.Hosts(), 0o644)
	os.WriteFile("/srv/web-1/rootfs/etc/resolv.conf", a.ResolvConf(), 0o644)
	fmt.Println(a.Addresses())
}

// vessel gc: reclaim what containers whose processes and controllers died
// left behind.
func ExampleCleanup() {
	if err := network.Cleanup(context.Background()); err != nil {
		log.Print(err)
	}
}
