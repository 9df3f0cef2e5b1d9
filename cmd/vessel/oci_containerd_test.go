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
	assert.Equal(t, 3, exitStatusOf(err), "ctr run: the container's status: %s", out)
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
	assert.Equal(t, 3, exitStatusOf(err), "ctr task exec: %s", out)
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

// crictlPath finds crictl: on PATH, or built here from its Go module
// (sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0) into a directory kept across
// runs under the temporary directory.
func crictlPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("crictl"); err == nil {
		return p
	}
	bin := filepath.Join(os.TempDir(), "vessel-test-tools")
	p := filepath.Join(bin, "crictl")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	cmd := exec.Command("go", "install", "sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0")
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "CGO_ENABLED=0", "GOFLAGS=")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "building crictl: %s", out)
	return p
}

// TestCRIPodAsRunc is the path a Kubernetes node takes: containerd's CRI
// plugin with a vessel runtime handler (the runc v2 shim with BinaryName
// vessel), Debian's CNI plugins for the pod network, driven by crictl: a
// pod of two containers through runp, create, start, exec (streaming, -s,
// -t), logs, stats, stop, rm. The configuration is the README's
// (Kubernetes section), with this test's paths.
func TestCRIPodAsRunc(t *testing.T) {
	testutil.RequireRoot(t)
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		t.Fatal("the CNI plugins are not installed (test.sh installs them: apt-get install containernetworking-plugins)")
	}
	crictl := crictlPath(t)
	netDir := t.TempDir()
	const bridge = "vtest-cri0"
	t.Cleanup(func() { exec.Command("ip", "link", "del", bridge).Run() })
	require.NoError(t, os.MkdirAll(filepath.Join(netDir, "net.d"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(netDir, "net.d", "10-vessel-test.conflist"), []byte(`{
  "cniVersion": "1.0.0", "name": "vessel-cri-test",
  "plugins": [{"type": "bridge", "bridge": "`+bridge+`", "isGateway": true, "ipMasq": false,
    "ipam": {"type": "host-local", "dataDir": "`+netDir+`/ipam", "ranges": [[{"subnet": "10.147.0.0/24"}]]}}]
}`), 0o644))
	cd := startContainerd(t, `disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "`+netDir+`/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "localhost/pause:vessel-test"
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_selinux = false
    disable_apparmor = true
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "vessel"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.vessel]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.vessel.options]
          BinaryName = "`+vesselBin+`"
          Root = "`+netDir+`/runtime-root/vessel"
          SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "`+netDir+`/net.d"
      max_conf_num = 1
`)
	cd.importBusybox(t, "k8s.io", "localhost/pause:vessel-test", testutil.ImageConfig{Cmd: []string{"sleep", "2147483647"}})
	cd.importBusybox(t, "k8s.io", "localhost/vessel-busybox:test", testutil.ImageConfig{Cmd: []string{"sh"}})

	crictlConf := filepath.Join(netDir, "crictl.yaml")
	require.NoError(t, os.WriteFile(crictlConf, []byte("runtime-endpoint: unix://"+cd.sock+"\nimage-endpoint: unix://"+cd.sock+"\ntimeout: 60\n"), 0o644))
	var lastStderr string // of the last crictl run
	cri := func(args ...string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, crictl, append([]string{"--config", crictlConf}, args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if ctx.Err() != nil {
			t.Errorf("crictl %v: timed out\n%s", args, out)
		}
		lastStderr = stderr.String()
		return strings.TrimSpace(string(out)), err
	}
	t.Cleanup(func() { cri("rmp", "-fa") })
	write := func(name, body string) string {
		p := filepath.Join(netDir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	logs := filepath.Join(netDir, "logs")
	pod := write("pod.json", `{"metadata": {"name": "vpod", "namespace": "default", "uid": "vpod-uid", "attempt": 0},
  "log_directory": "`+logs+`", "linux": {"cgroup_parent": "/vessel-test/cri-pod"}}`)
	podID, err := cri("runp", "--runtime", "vessel", pod)
	require.NoError(t, err, "crictl runp: %s", podID)
	var ids []string
	for _, name := range []string{"c1", "c2"} {
		c := write(name+".json", `{"metadata": {"name": "`+name+`"}, "image": {"image": "localhost/vessel-busybox:test"},
  "command": ["sh", "-c", "echo started-`+name+`; exec sleep 1000"], "log_path": "`+name+`.log"}`)
		id, err := cri("create", podID, c, pod)
		require.NoError(t, err, "crictl create %s: %s", name, id)
		out, err := cri("start", id)
		require.NoError(t, err, "crictl start %s: %s", name, out)
		ids = append(ids, id)
	}
	// crictl reports the process's status in its message (and exits 1).
	out, err := cri("exec", ids[0], "sh", "-c", "echo streamed; exit 3")
	assert.Error(t, err)
	assert.Equal(t, "streamed", out)
	assert.Contains(t, lastStderr, "command terminated with exit code 3")
	out, err = cri("exec", "-s", "--timeout", "20", ids[1], "sh", "-c", "sleep 1; echo sync >&2; exit 4")
	assert.Error(t, err)
	assert.Contains(t, lastStderr, "exited with 4: sync", "crictl exec -s: %s", out)
	out, err = cri("exec", "-s", "--timeout", "20", ids[1], "sh", "-c", "echo sync")
	assert.NoError(t, err, lastStderr)
	assert.Equal(t, "sync", out)
	if script, err := exec.LookPath("script"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		line := crictl + " --config " + crictlConf + " exec -it " + ids[0] + " tty"
		b, err := exec.CommandContext(ctx, script, "-qec", line, "/dev/null").CombinedOutput()
		assert.NoError(t, err, "%s", b)
		assert.Contains(t, string(b), "/dev/pts/0", "crictl exec -it: a terminal of the container's devpts")
	}
	// The two containers share the pod's network namespace: one address.
	a1, err := cri("exec", ids[0], "cat", "/proc/net/fib_trie")
	assert.NoError(t, err)
	assert.Contains(t, a1, "10.147.0.", "the pod has its CNI address")
	out, err = cri("logs", ids[1])
	assert.NoError(t, err)
	assert.Equal(t, "started-c2", out)
	out, err = cri("stats", "-o", "json", ids[0])
	assert.NoError(t, err, "crictl stats: %s", out)
	assert.Contains(t, out, `"memory"`)
	for _, id := range ids {
		out, err = cri("stop", "--timeout", "2", id)
		assert.NoError(t, err, "crictl stop: %s", out)
		out, err = cri("rm", id)
		assert.NoError(t, err, "crictl rm: %s", out)
	}
	out, err = cri("stopp", podID)
	assert.NoError(t, err, "crictl stopp: %s", out)
	out, err = cri("rmp", podID)
	assert.NoError(t, err, "crictl rmp: %s", out)
	out, _ = cri("pods", "-q")
	assert.Empty(t, out, "no pod left")
}
