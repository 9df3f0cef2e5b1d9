package vessel_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/network"
	"github.com/openvessel/vessel/rootfs"
)

// TestBootSystemd boots Debian's systemd as the container's PID 1, waits
// for it to be running, checks systemctl inside, reaches the sshd
// systemd started through a published port, and stops it with its stop
// signal.
func TestBootSystemd(t *testing.T) {
	base := testutil.DebianSystemRoot(t)
	nc := testBridge(t)
	port := 20000 + os.Getpid()%20000
	nc.Publish = []network.Port{{HostIP: "127.0.0.1", HostPort: uint16(port), ContainerPort: 22}}
	cfg := newConfig().WithRootfs(rootfs.EphemeralOverlay(base).WithQuota(256 << 20)).
		WithHostname("vps-debian").WithNetwork(nc).WithMemoryLimit(512 << 20).WithBoot().WithTTY(true)
	c, out := newContainer(t, cfg) // with a terminal, out gets the console
	start := time.Now()
	require.NoError(t, c.Start(context.Background()))
	exec := func(args ...string) (string, error) {
		var b strings.Builder
		cmd := vessel.Command(args[0], args[1:]...)
		cmd.Stdout, cmd.Stderr = &b, &b
		p, err := c.Exec(context.Background(), cmd)
		if err != nil {
			return "", err
		}
		err = p.Wait()
		return b.String(), err
	}
	var state string
	var execErr error
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		s, err := exec("systemctl", "is-system-running")
		state, execErr = strings.TrimSpace(s), err
		if state == "running" || state == "degraded" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	booted := time.Since(start)
	failed, _ := exec("systemctl", "--failed", "--no-legend", "--plain")
	t.Logf("system state %q after %v; failed units: %s", state, booted.Round(time.Millisecond), strings.TrimSpace(failed))
	if state != "running" && state != "degraded" {
		t.Fatalf("systemd did not come up: %q (last exec: %v)\nconsole:\n%s", state, execErr, out.String())
	}

	console, err := exec("readlink", "/dev/console")
	require.NoError(t, err)
	assert.Equal(t, "pts/0", strings.TrimSpace(console))
	for end := time.Now().Add(5 * time.Second); !strings.Contains(out.String(), "Welcome to") && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond) // the copy may be behind
	}
	assert.Contains(t, out.String(), "Welcome to", "systemd's greeting on the console")

	st, err := exec("systemctl", "status")
	require.NoError(t, err, st)
	assert.Contains(t, st, "vps-debian")
	assert.Contains(t, st, "State:")

	// sshd, started by systemd, answers through the published port.
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	require.NoError(t, err)
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	banner, err := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(banner, "SSH-2.0-OpenSSH"), banner)

	u, err := c.Usage()
	require.NoError(t, err)
	mem, _ := u.Get("physpages")
	tasks, _ := u.Get("numproc")
	t.Logf("idle: memory %.1f MiB, %d tasks", float64(mem.Held)/(1<<20), tasks.Held)

	stopStart := time.Now()
	err = c.Stop(context.Background(), 10*time.Second)
	stopped := time.Since(stopStart)
	t.Logf("stop took %v: %v", stopped.Round(time.Millisecond), err)
	assert.Less(t, stopped, 10*time.Second)
	require.NoError(t, err, "systemd halts and exits 0\nconsole:\n%s", lastLines(out.String(), 20))
}

// TestBootConfigErrors: a boot without the namespaces or the cgroup it
// needs, and a stop signal that is none, are refused naming the field.
func TestBootConfigErrors(t *testing.T) {
	noPID := newConfig().WithBoot()
	noPID.Namespaces = noPID.Namespaces.Without(namespaces.PID)
	noCgroup := newConfig().WithBoot()
	noCgroup.Cgroup.Disabled = true
	badSignal := newConfig()
	badSignal.StopSignal = 99
	for field, cfg := range map[string]*vessel.Config{"boot": noPID, "boot ": noCgroup, "stopSignal": badSignal} {
		_, err := vessel.New(newID(t), cfg)
		var ce *vessel.ConfigError
		require.ErrorAs(t, err, &ce, field)
		assert.Equal(t, strings.TrimSpace(field), ce.Field)
	}
}
