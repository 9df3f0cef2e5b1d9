package vessel_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/limits"
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

	// Within 10 s, the bound; qemu's TCG (the cgroup v2 guest)
	// runs the same shutdown several times slower.
	limit := 10 * time.Second
	if os.Getenv("VESSEL_IN_QEMU") == "1" {
		limit = 60 * time.Second
	}
	stopStart := time.Now()
	err = c.Stop(context.Background(), limit)
	stopped := time.Since(stopStart)
	t.Logf("stop took %v: %v", stopped.Round(time.Millisecond), err)
	assert.Less(t, stopped, limit)
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

// TestBootExecCgroup boots systemd and Execs into it once it runs. On a
// pure cgroup v2 host systemd turns the container's cgroup, the root of
// its cgroup namespace, into a parent (controllers enabled for its
// children, its processes moved to init.scope and the slices), where the
// kernel refuses new processes (EBUSY): an Exec joins the cgroup of the
// container's PID 1 instead, as runc's does. On a hybrid host the
// container's unified cgroup holds no controller and Exec'd processes
// stay in it. Either way they are inside the container's cgroup, seen
// from the host. Processes started by the init directly and through the
// exec stage (a profile the init cannot carry: here an rlimit) both.
func TestBootExecCgroup(t *testing.T) {
	base := testutil.DebianSystemRoot(t)
	for _, stage := range []bool{false, true} {
		name := "direct"
		if stage {
			name = "exec stage"
		}
		t.Run(name, func(t *testing.T) {
			cfg := newConfig().WithRootfs(rootfs.EphemeralOverlay(base)).
				WithHostname("vps-exec").WithMemoryLimit(512 << 20).WithBoot()
			if stage {
				cfg.Rlimits = []limits.Rlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 1024},
					{Type: "RLIMIT_CPU", Soft: limits.RlimInfinity, Hard: limits.RlimInfinity}}
			}
			bootExecCgroup(t, cfg, stage)
		})
	}
}

func bootExecCgroup(t *testing.T, cfg *vessel.Config, stage bool) {
	c, out := newContainer(t, cfg)
	start := time.Now()
	require.NoError(t, c.Start(context.Background()))
	run := func(args ...string) (string, error) {
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
	// Under qemu's TCG a boot takes a while.
	var state string
	var lastErr error
	for deadline := time.Now().Add(4 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		s, err := run("systemctl", "is-system-running")
		state, lastErr = strings.TrimSpace(s), err
		if state == "running" || state == "degraded" {
			break
		}
	}
	require.Contains(t, []string{"running", "degraded"}, state, "last exec: %v\nconsole:\n%s", lastErr, lastLines(out.String(), 30))
	t.Logf("%s after %v", state, time.Since(start).Round(time.Millisecond))

	m, err := cgroups.Load(cgroups.Options{Name: cfg.Cgroup.Group + "/" + c.ID()})
	require.NoError(t, err)
	dir, ok := m.Path("unified")
	require.True(t, ok, "the container has a cgroup2 cgroup")
	unified := func(procCgroup string) string {
		for _, l := range strings.Split(procCgroup, "\n") {
			if p, ok := strings.CutPrefix(l, "0::"); ok {
				return p
			}
		}
		return ""
	}
	self, err := run("cat", "/proc/self/cgroup")
	require.NoError(t, err, self)
	pid1, err := run("cat", "/proc/1/cgroup")
	require.NoError(t, err, pid1)
	layout, err := cgroups.Detect()
	require.NoError(t, err)
	t.Logf("%s host: PID 1 in %q, an Exec'd process in %q", layout, unified(pid1), unified(self))
	if layout == cgroups.V2 {
		// The case this is about: the container's cgroup is a parent now.
		ctl, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
		require.NoError(t, err)
		require.Contains(t, string(ctl), "memory", "systemd enables controllers in its root")
		assert.Equal(t, "/init.scope", unified(pid1), "systemd's own cgroup")
		assert.Equal(t, unified(pid1), unified(self), "the Exec'd process joins PID 1's cgroup")
	} else {
		assert.Equal(t, "/", unified(self), "the Exec'd process is in the container's unified cgroup")
	}

	ps, err := run("ps", "-o", "pid=,comm=", "-p", "1")
	require.NoError(t, err, ps)
	assert.Equal(t, "1 systemd", strings.Join(strings.Fields(ps), " "))
	st, err := run("systemctl", "status", "--no-pager")
	require.NoError(t, err, st)
	assert.Contains(t, st, "vps-exec")

	// Seen from the host, a running Exec'd process is in the container's
	// cgroup (where its limits hold).
	cmd := vessel.Command("sleep", "600")
	p, err := c.Exec(context.Background(), cmd)
	require.NoError(t, err)
	host, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p.Pid()))
	require.NoError(t, p.Signal(syscall.SIGKILL))
	_ = p.Wait()
	require.NoError(t, err)
	rel := strings.TrimPrefix(dir, "/sys/fs/cgroup")
	if layout == cgroups.Hybrid {
		rel = strings.TrimPrefix(dir, "/sys/fs/cgroup/unified")
	}
	want := rel // hybrid: the container's unified cgroup itself
	if layout == cgroups.V2 {
		want = rel + unified(pid1)
	}
	assert.Equal(t, want, unified(string(host)), "the Exec'd process's cgroup seen from the host")

	// The init starts processes itself only under a profile it can
	// carry, which it then lives under (no_new_privs).
	nnp := statusField(t, initOf(t, c), "NoNewPrivs")
	assert.Equal(t, map[bool]string{false: "1", true: "0"}[stage], nnp, "init's no_new_privs: the exec stage is used = %v", stage)

	require.NoError(t, c.Stop(context.Background(), 30*time.Second), "console:\n%s", lastLines(out.String(), 20))
}
