package vessel_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/network"
	"github.com/openvessel/vessel/rootfs"
)

// publish parses docker-style port specs, failing the test on a bad one.
func publish(t *testing.T, specs ...string) []network.Port {
	t.Helper()
	var ports []network.Port
	for _, s := range specs {
		p, err := network.ParsePort(s)
		require.NoError(t, err, s)
		ports = append(ports, p)
	}
	return ports
}

// WithPublish builds the bridge config; a bad spec is an error of
// ParsePort, a bad combination a ConfigError of Validate.
func TestWithPublish(t *testing.T) {
	cfg := newConfig().WithPublish(publish(t, "8080:80", "127.0.0.1:5353:53/udp")...)
	require.NoError(t, cfg.Validate())
	require.NotNil(t, cfg.Network)
	assert.Equal(t, network.ModeBridge, cfg.Network.Mode)
	assert.Equal(t, []network.Port{
		{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
		{HostIP: "127.0.0.1", HostPort: 5353, ContainerPort: 53, Protocol: "udp"},
	}, cfg.Network.Publish)

	for _, tc := range []struct {
		name  string
		cfg   *vessel.Config
		field string
	}{
		{"not bridge", newConfig().WithNetwork(network.Loopback()).WithPublish(publish(t, "8080:80")...), "network.publish"},
		{"bad protocol", newConfig().WithPublish(network.Port{HostPort: 80, ContainerPort: 80, Protocol: "sctp"}), "network.publish[0]"},
	} {
		var ce *vessel.ConfigError
		require.ErrorAs(t, tc.cfg.Validate(), &ce, tc.name)
		assert.Equal(t, tc.field, ce.Field, tc.name)
	}
	for _, bad := range []string{"80", "80:80/sctp", "x:80"} {
		_, err := network.ParsePort(bad)
		assert.Error(t, err, bad)
	}
}

// A server published with WithPublish answers on the host as soon as
// WaitTCP has returned: no retry loop.
func TestPublishAndWaitTCP(t *testing.T) {
	base := takeNetBaseline(t)
	nc := testBridge(t)
	port := freeTCPPort(t)
	www := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(www, "index.html"), []byte("ready page\n"), 0o644))
	cfg := newConfig().WithRootfs(rootfs.Dir(testutil.BusyboxRootfsCopy(t))).
		WithNetwork(nc).WithPublish(publish(t, fmt.Sprintf("127.0.0.1:%d:80", port))...).WithBind(www, "/www", true)
	// The server starts listening a while after the container starts,
	// on the container's bridge address only (not on loopback).
	c, out := start(t, cfg, "sh", "-c",
		`sleep 0.5; addr=$(ip -4 addr show eth0 | sed -n 's/.*inet \([0-9.]*\).*/\1/p'); exec httpd -f -p $addr:80 -h /www`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, c.WaitTCP(ctx, 80), "container output: %s", out)
	// The server is not on loopback: WaitTCP found it on the bridge address.
	probe, err := c.Exec(ctx, vessel.Command("wget", "-q", "-T", "2", "-O", "/dev/null", "http://127.0.0.1/index.html"))
	require.NoError(t, err)
	assert.Error(t, probe.Wait(), "the server answers on loopback too")
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/index.html", port))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "ready page\n", string(body))
	id, veth := c.ID(), c.Network().HostInterface()
	require.NoError(t, c.Destroy())
	base.assertNetClean(t, nc.Bridge, []string{id}, []string{veth})
}

// WaitTCP looks inside the container's own network namespace (loopback
// only here: nothing on the host listens on the port), and reports a
// deadline, a container that ended, and a bad port.
func TestWaitTCP(t *testing.T) {
	root := testutil.BusyboxRootfsCopy(t)
	port := freeTCPPort(t) // free on the host, so only the container can answer
	c, out := start(t, newConfig().WithRootfs(rootfs.Dir(root)),
		"sh", "-c", fmt.Sprintf("sleep 0.3; exec httpd -f -p 127.0.0.1:%d -h /", port))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, c.WaitTCP(ctx, port), "container output: %s", out)

	short, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	other := freeTCPPort(t)
	err := c.WaitTCP(short, other)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	var ce *vessel.ConfigError
	require.ErrorAs(t, c.WaitTCP(ctx, 0), &ce)
	assert.Equal(t, "port", ce.Field)

	ended, _ := start(t, newConfig().WithRootfs(rootfs.Dir(root)), "sh", "-c", "sleep 0.2")
	assert.ErrorIs(t, ended.WaitTCP(ctx, other), vessel.ErrNotRunning)

	notStarted, err := vessel.New(newID(t), newConfig())
	require.NoError(t, err)
	assert.ErrorIs(t, notStarted.WaitTCP(ctx, port), vessel.ErrNotStarted)
}

// WaitFile sees the container's files, resolving symlinks inside its
// root: a link to a path that exists only on the host never counts.
func TestWaitFile(t *testing.T) {
	root := testutil.BusyboxRootfsCopy(t)
	hostOnly := filepath.Join(t.TempDir(), "host-only")
	require.NoError(t, os.WriteFile(hostOnly, nil, 0o644))
	script := fmt.Sprintf("ln -s %s /tmp/escape; sleep 0.3; touch /tmp/ready; sleep 30", hostOnly)
	c, out := start(t, newConfig().WithRootfs(rootfs.Dir(root)), "sh", "-c", script)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, c.WaitFile(ctx, "/tmp/ready"), "container output: %s", out)
	_, err := os.Stat(filepath.Join(root, "tmp", "ready"))
	require.NoError(t, err, "WaitFile returned before the file existed")

	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	assert.ErrorIs(t, c.WaitFile(short, "/tmp/escape"), context.DeadlineExceeded)

	var ce *vessel.ConfigError
	require.ErrorAs(t, c.WaitFile(ctx, "tmp/ready"), &ce)
	assert.Equal(t, "file", ce.Field)
}
