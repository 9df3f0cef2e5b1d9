package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/openvessel/vessel/internal/testutil"
)

// containerd is a private containerd started by a test: its own config,
// root, state and socket, stopped (and its mounts released) when the test
// ends.
type containerd struct {
	dir, sock string
}

// startContainerd starts Debian's containerd with config (the root, state,
// socket and opt paths are added here, below a new directory).
func startContainerd(t *testing.T, config string) *containerd {
	t.Helper()
	if _, err := exec.LookPath("containerd"); err != nil {
		t.Fatal("containerd is not installed (test.sh installs it: apt-get install containerd)")
	}
	// Short: the shim's sockets live below it.
	dir, err := os.MkdirTemp("", "vctr-")
	require.NoError(t, err)
	cd := &containerd{dir: dir, sock: filepath.Join(dir, "containerd.sock")}
	full := "version = 2\nroot = \"" + dir + "/root\"\nstate = \"" + dir + "/state\"\n" +
		"[grpc]\n  address = \"" + cd.sock + "\"\n" + config
	conf := filepath.Join(dir, "config.toml")
	require.NoError(t, os.WriteFile(conf, []byte(full), 0o644))
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	require.NoError(t, err)
	cmd := exec.Command("containerd", "-c", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil {
				lines := strings.Split(string(b), "\n")
				t.Logf("containerd log (end):\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
		}
		unmountBelow(t, dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing containerd's directory: %v", err)
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := cd.ctr(t, "version"); err == nil {
			return cd
		}
		if time.Now().After(deadline) {
			t.Fatal("containerd did not come up")
		}
	}
}

// unmountBelow detaches every mount below dir (containerd's snapshots and
// shm mounts), deepest first.
func unmountBelow(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			points = append(points, fields[4])
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

// ctr runs ctr against this containerd, in namespace vessel-test, with a
// time limit (a hang is a failure, not a stuck test).
func (cd *containerd) ctr(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"-a", cd.sock, "-n", "vessel-test"}, args...)...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Errorf("ctr %v: timed out\n%s", args, out)
	}
	return string(out), err
}

// importBusybox imports the test busybox root filesystem into the
// containerd's namespace ns as an image named ref (an OCI archive made
// here: no registry).
func (cd *containerd) importBusybox(t *testing.T, ns, ref string, cfg testutil.ImageConfig) {
	t.Helper()
	layer, err := exec.Command("tar", "-C", testutil.BusyboxRootfs(t), "-cf", "-", ".").Output()
	require.NoError(t, err)
	layout := t.TempDir()
	require.NoError(t, testutil.WriteOCILayout(layout, []testutil.Layer{testutil.TarLayer(layer, true)}, cfg, ref, false))
	// containerd names an imported image after this annotation.
	idx := filepath.Join(layout, "index.json")
	var index map[string]any
	b, err := os.ReadFile(idx)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &index))
	for _, m := range index["manifests"].([]any) {
		m.(map[string]any)["annotations"].(map[string]any)["io.containerd.image.name"] = ref
	}
	b, err = json.Marshal(index)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(idx, b, 0o644))
	archive := filepath.Join(t.TempDir(), "image.tar")
	out, err := exec.Command("tar", "-C", layout, "-cf", archive, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err = exec.CommandContext(ctx, "ctr", "-a", cd.sock, "-n", ns, "images", "import", archive).CombinedOutput()
	require.NoError(t, err, "ctr images import: %s", out)
}

// TestContainerdAsRunc drives vessel through containerd's runc v2 shim
// (ctr --runc-binary), through the containerd rows of issue 20's table.
func TestContainerdAsRunc(t *testing.T) {
	testutil.RequireRoot(t)
	cd := startContainerd(t, "disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.snapshotter.v1.aufs\", \"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.devmapper\", \"io.containerd.snapshotter.v1.zfs\"]\n")
	const img = "localhost/vessel-busybox:test"
	cd.importBusybox(t, "vessel-test", img, testutil.ImageConfig{Cmd: []string{"sh"}})
	run := []string{"run", "--rm", "--runc-binary", vesselBin, "--cgroup", "vessel-test/ctr-fg", img, "fg"}

	out, err := cd.ctr(t, append(run, "sh", "-c", "echo hi; exit 3")...)
	assert.Equal(t, 3, exitCode(err), "ctr run: the container's status: %s", out)
	assert.Equal(t, "hi\n", out)

	out, err = cd.ctr(t, "run", "-d", "--runc-binary", vesselBin, "--cgroup", "vessel-test/ctr-bg", img, "bg", "sleep", "1000")
	require.NoError(t, err, "ctr run -d: %s", out)
	defer func() {
		cd.ctr(t, "task", "kill", "-s", "SIGKILL", "bg")
		cd.ctr(t, "task", "delete", "-f", "bg")
		cd.ctr(t, "container", "delete", "bg")
	}()
	// task exec: the process's status, no hang; output that comes late.
	out, err = cd.ctr(t, "task", "exec", "--exec-id", "e1", "bg", "sh", "-c", "sleep 1; echo late; exit 3")
	assert.Equal(t, 3, exitCode(err), "ctr task exec: %s", out)
	assert.Equal(t, "late\n", out)
	// A terminal (ctr -t needs one on its own stdin: script(1) gives it).
	if script, err := exec.LookPath("script"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		line := "ctr -a " + cd.sock + " -n vessel-test task exec -t --exec-id e2 bg tty"
		b, err := exec.CommandContext(ctx, script, "-qec", line, "/dev/null").CombinedOutput()
		assert.NoError(t, err, "%s", b)
		assert.Contains(t, string(b), "/dev/pts/0", "ctr task exec -t: a terminal of the container's devpts")
	}
	out, err = cd.ctr(t, "task", "ps", "bg")
	assert.NoError(t, err, "%s", out)
	out, err = cd.ctr(t, "task", "pause", "bg")
	assert.NoError(t, err, "%s", out)
	out, err = cd.ctr(t, "task", "resume", "bg")
	assert.NoError(t, err, "%s", out)
	out, err = cd.ctr(t, "task", "metrics", "bg")
	assert.NoError(t, err, "ctr task metrics: %s", out)
	start := time.Now()
	out, err = cd.ctr(t, "task", "kill", "-a", "-s", "SIGKILL", "bg")
	assert.NoError(t, err, "%s", out)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if out, _ = cd.ctr(t, "task", "ls"); strings.Contains(out, "STOPPED") {
			break
		}
	}
	assert.Contains(t, out, "STOPPED", "the shim saw the workload end")
	t.Logf("kill to stopped: %v", time.Since(start))
	out, err = cd.ctr(t, "task", "delete", "bg")
	assert.NoError(t, err, "ctr task delete: %s", out)
}
