package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/internal/testutil"
)

// podmanImage is the busybox image each podman test imports.
const podmanImage = "localhost/vessel-busybox:test"

// podmanWith returns a function running Debian's podman with vessel as its
// OCI runtime and its storage, run state and cgroups private to the test
// (a busybox image imported from a local tarball: no registry), with the
// containers.conf this machine needs (its open-files limit is 20000, below
// podman's default ulimits). Everything is removed when the test ends.
func podmanWith(t *testing.T) func(args ...string) (string, error) {
	t.Helper()
	return podmanWithEnv(t)
}

// podmanWithEnv is podmanWith with env added to podman's environment.
func podmanWithEnv(t *testing.T, env ...string) func(args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatal("podman is not installed (test.sh installs it: apt-get install podman)")
	}
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	require.NoError(t, os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755))
	out, err := exec.Command("cp", "/bin/busybox", filepath.Join(rootfs, "bin/busybox")).CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, a := range []string{"sh", "echo", "cat", "hostname", "id", "sleep", "tty", "touch", "stat", "ls", "wc", "tr"} {
		require.NoError(t, os.Symlink("busybox", filepath.Join(rootfs, "bin", a)))
	}
	tarball := filepath.Join(dir, "image.tar")
	out, err = exec.Command("tar", "-C", rootfs, "-cf", tarball, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	conf := filepath.Join(dir, "containers.conf")
	require.NoError(t, os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=4096:4096\"]\n"), 0o644))
	storage := []string{"--root", filepath.Join(dir, "storage"), "--runroot", filepath.Join(dir, "run"),
		"--cgroup-manager", "cgroupfs", "--runtime", vesselBin, "--events-backend", "none"}
	podman := func(args ...string) (string, error) {
		cmd := exec.Command("podman", append(append([]string{}, storage...), args...)...)
		cmd.Env = append(append(os.Environ(), "CONTAINERS_CONF="+conf), env...)
		cmd.Dir = dir // conmon leaves an "oom" file in its working directory after an OOM kill
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		podman("rm", "--all", "--force", "--time", "0")
		podman("rmi", "--all", "--force")
		// conmon's cgroups (podman makes PARENT/conmon with cgroupfs).
		for _, name := range []string{"vessel-test/podman/conmon", "vessel-test/podman"} {
			if m, err := cgroups.Load(cgroups.Options{Name: name, Parent: "/"}); err == nil {
				if err := m.Destroy(); err != nil {
					t.Errorf("removing podman's cgroup %s: %v", name, err)
				}
			}
		}
		exec.Command("umount", "-R", filepath.Join(dir, "storage")).Run()
		exec.Command("umount", "-R", filepath.Join(dir, "run")).Run()
	})
	out2, err := podman("import", tarball, podmanImage)
	require.NoError(t, err, "podman import: %s", out2)
	return podman
}

// withoutVesselWarnings drops the lines vessel's warnings make from out.
func withoutVesselWarnings(out string) string {
	var keep []string
	for _, l := range strings.SplitAfter(out, "\n") {
		if !strings.HasPrefix(l, "vessel: warning: ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "")
}

// exitStatusOf is the exit status of a command run by exec (0 for nil).
func exitStatusOf(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestPodmanRuntime runs containers through podman with vessel as its OCI
// runtime: output, hostname, and the container's exit code through conmon.
func TestPodmanRuntime(t *testing.T) {
	podman := podmanWith(t)
	run := []string{"run", "--rm", "--network", "none", "--cgroup-parent", "/vessel-test/podman", "--hostname", "pod-box", podmanImage}
	out, err := podman(append(run, "/bin/sh", "-c", "echo hello from $(hostname); cat /proc/1/cmdline | tr '\\0' ' '")...)
	require.NoError(t, err, "podman run through vessel: %s", out)
	assert.Contains(t, out, "hello from pod-box")
	_, err = podman(append(run, "/bin/sh", "-c", "exit 3")...)
	assert.Equal(t, 3, exitStatusOf(err), "podman run of exit 3")
}

// TestPodmanAsRunc goes through the podman rows of issue 20's table, and
// the everyday verbs, side by side with what runc gives.
func TestPodmanAsRunc(t *testing.T) {
	podman := podmanWith(t)
	opts := []string{"--network", "none", "--cgroup-parent", "/vessel-test/podman"}
	run := func(args ...string) (string, error) {
		return podman(append(append(append([]string{"run", "--rm"}, opts...), args[:len(args)-1]...), podmanImage, "sh", "-c", args[len(args)-1])...)
	}
	out, err := podman(append(append([]string{"run", "-d", "--name", "c1"}, opts...), podmanImage, "sleep", "1000")...)
	require.NoError(t, err, "podman run -d: %s", out)

	// exec: the process's status, and output that comes late.
	_, err = podman("exec", "c1", "sh", "-c", "exit 3")
	assert.Equal(t, 3, exitStatusOf(err), "podman exec of exit 3")
	out, err = podman("exec", "c1", "sh", "-c", "sleep 2; echo late")
	assert.NoError(t, err)
	assert.Equal(t, "late\n", out, "podman exec waits for the process")

	// Terminals (-t; -i also needs one on podman's own stdin).
	out, err = podman("exec", "-t", "c1", "tty")
	assert.NoError(t, err)
	assert.Contains(t, out, "/dev/pts/0", "podman exec -t: a terminal of the container's devpts")
	out, err = podman(append(append([]string{"run", "--rm", "-t"}, opts...), podmanImage, "tty")...)
	assert.NoError(t, err)
	assert.Contains(t, out, "/dev/pts/0", "podman run -t")

	// --read-only (tmpfs /tmp, /run, /var/tmp with tmpcopyup) and
	// --privileged (every host device, read-write /sys).
	out, err = run("--read-only", "touch /tmp/x /run/y && echo writable; touch /etc/z 2>/dev/null || echo etc-read-only")
	assert.NoError(t, err, "podman run --read-only: %s", out)
	assert.Equal(t, "writable\netc-read-only\n", out)
	out, err = run("--privileged", "stat -c %t:%T /dev/fuse; echo x > /dev/null && echo ok")
	assert.NoError(t, err, "podman run --privileged: %s", out)
	// vessel create warns that it leaves the spec's v1 cgroup mount out
	// (on this hybrid host): without --log that goes to its stderr,
	// which conmon gives it, and podman shows it or not depending on
	// when it attaches. The container's own output is the rest.
	assert.Equal(t, "a:e5\nok\n", withoutVesselWarnings(out))

	// Limits, user, OOM.
	out, err = run("--memory", "64m", "--pids-limit", "50", "--cpus", "0.5", "--user", "1000:1000", "id -u")
	assert.NoError(t, err, "%s", out)
	assert.Equal(t, "1000\n", out)
	_, err = run("--memory", "32m", "x=a; while :; do x=$x$x; done")
	assert.Equal(t, 137, exitStatusOf(err), "OOM kill")

	// pause, top, stats, inspect, logs, stop, rm.
	for _, verb := range [][]string{{"pause", "c1"}, {"unpause", "c1"}, {"top", "c1"}, {"stats", "--no-stream", "c1"}} {
		out, err := podman(verb...)
		assert.NoError(t, err, "podman %v: %s", verb, out)
	}
	out, err = podman("inspect", "-f", "{{.State.Pid}}", "c1")
	assert.NoError(t, err)
	pid := strings.TrimSpace(out)
	cmdline, _ := os.ReadFile("/proc/" + pid + "/cmdline")
	assert.Equal(t, "sleep\x001000\x00", string(cmdline), "inspect's pid is the workload")
	out, err = podman("stop", "-t", "1", "c1")
	assert.NoError(t, err, "podman stop: %s", out)
	out, err = podman("rm", "c1")
	assert.NoError(t, err, "podman rm: %s", out)
}

// TestPodmanCheckpointRestore: `podman container checkpoint` and `restore`
// with vessel as the runtime (runc's checkpoint and restore verbs and
// flags: --image-path, --work-path, --leave-running, restore --detach
// --pid-file --bundle): the restored container goes on from where it was,
// exec and inspect work on it, its exit status reaches podman through
// conmon, and --leave-running keeps it running. podman finds criu on PATH
// for its own version check: the project's (.ci/install-criu.sh).
func TestPodmanCheckpointRestore(t *testing.T) {
	const criuDir = "/opt/vessel-criu/bin"
	if _, err := os.Stat(filepath.Join(criuDir, "criu")); err != nil {
		t.Fatalf("criu is not installed in %s (test.sh runs .ci/install-criu.sh): %v", criuDir, err)
	}
	podman := podmanWithEnv(t, "PATH="+criuDir+":"+os.Getenv("PATH"))
	opts := []string{"--network", "none", "--cgroup-parent", "/vessel-test/podman"}
	count := func(name string) int {
		t.Helper()
		out, err := podman("exec", name, "cat", "/count")
		require.NoError(t, err, "podman exec: %s", out)
		n, err := strconv.Atoi(strings.TrimSpace(out))
		require.NoError(t, err, "count %q", out)
		return n
	}
	out, err := podman(append(append([]string{"run", "-d", "--name", "ck"}, opts...), podmanImage,
		"sh", "-c", "i=0; while :; do i=$((i+1)); echo $i >/count; sleep 0.1; done")...)
	require.NoError(t, err, "podman run -d: %s", out)
	id := strings.TrimSpace(out)
	time.Sleep(500 * time.Millisecond)
	before := count("ck")

	out, err = podman("container", "checkpoint", "ck")
	require.NoError(t, err, "podman container checkpoint: %s", out)
	out, _ = podman("ps", "-a", "--format", "{{.Status}}", "--filter", "name=ck")
	assert.Contains(t, out, "Exited", "checkpointed container stopped")
	r := cliWith(t, []string{"state", id}, nil)
	assert.NotEqual(t, 0, r.code, "vessel still has the checkpointed container: %s", r.stdout)

	out, err = podman("container", "restore", "ck")
	require.NoError(t, err, "podman container restore: %s", out)
	after := count("ck")
	assert.GreaterOrEqual(t, after, before, "the restored loop goes on from its count")
	out, err = podman("inspect", "-f", "{{.State.Pid}}", "ck")
	require.NoError(t, err)
	cmdline, _ := os.ReadFile("/proc/" + strings.TrimSpace(out) + "/cmdline")
	assert.True(t, strings.HasPrefix(string(cmdline), "sh\x00-c\x00"), "inspect's pid is the restored workload: %q", cmdline)

	out, err = podman("container", "checkpoint", "--leave-running", "ck")
	require.NoError(t, err, "podman container checkpoint --leave-running: %s", out)
	n := count("ck")
	time.Sleep(400 * time.Millisecond)
	assert.Greater(t, count("ck"), n, "--leave-running: the loop keeps counting")

	out, err = podman("stop", "-t", "1", "ck")
	assert.NoError(t, err, "podman stop: %s", out)
	out, _ = podman("inspect", "-f", "{{.State.ExitCode}}", "ck")
	assert.Equal(t, "137", strings.TrimSpace(out), "a restored container killed after stop's timeout, as under runc")

	// A restored process's own exit status reaches podman.
	out, err = podman(append(append([]string{"run", "-d", "--name", "ck3"}, opts...), podmanImage, "sh", "-c", "sleep 2; exit 3")...)
	require.NoError(t, err, "podman run -d: %s", out)
	out, err = podman("container", "checkpoint", "ck3")
	require.NoError(t, err, "podman container checkpoint: %s", out)
	out, err = podman("container", "restore", "ck3")
	require.NoError(t, err, "podman container restore: %s", out)
	out, err = podman("wait", "ck3")
	assert.NoError(t, err)
	assert.Equal(t, "3", strings.TrimSpace(out), "podman wait of a restored container")
	for _, name := range []string{"ck", "ck3"} {
		out, err = podman("rm", name)
		assert.NoError(t, err, "podman rm: %s", out)
	}
}

// rootlessPodman runs Debian's podman as nobody (rootless), with its own
// storage and XDG_RUNTIME_DIR in a directory of the test, and runtime rt.
// nobody's subordinate ids (newuidmap reads /etc/subuid and /etc/subgid)
// come from a file of the test bound over those two in a mount namespace
// of each podman command, so the host's files are neither read nor
// changed. Everything, podman's pause process included, goes when the
// test ends.
func rootlessPodman(t *testing.T) (podman func(rt string, args ...string) (string, error), runDir string) {
	t.Helper()
	for _, tool := range []string{"podman", "newuidmap", "unshare", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (test.sh installs podman and uidmap)", tool)
		}
	}
	dir, err := os.MkdirTemp("", "vessel-podman-rootless-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	home, runDir := filepath.Join(dir, "home"), filepath.Join(dir, "run")
	require.NoError(t, os.Mkdir(home, 0o755))
	require.NoError(t, os.Mkdir(runDir, 0o700))
	for _, d := range []string{home, runDir} {
		require.NoError(t, os.Chown(d, 65534, 65534))
	}
	subids := filepath.Join(dir, "subids")
	require.NoError(t, os.WriteFile(subids, []byte("nobody:400000:65536\n"), 0o644))
	conf := filepath.Join(dir, "containers.conf")
	require.NoError(t, os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=4096:4096\"]\n"), 0o644))
	rootfs := filepath.Join(dir, "rootfs")
	require.NoError(t, os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755))
	out, err := exec.Command("cp", "/bin/busybox", filepath.Join(rootfs, "bin/busybox")).CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, a := range []string{"sh", "echo", "cat", "hostname", "id", "sleep", "tty"} {
		require.NoError(t, os.Symlink("busybox", filepath.Join(rootfs, "bin", a)))
	}
	tarball := filepath.Join(dir, "image.tar")
	out, err = exec.Command("tar", "-C", rootfs, "-cf", tarball, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NoError(t, os.Chmod(tarball, 0o644))
	const inNS = `mount --bind "$0" /etc/subuid && mount --bind "$0" /etc/subgid && exec setpriv --reuid 65534 --regid 65534 --clear-groups "$@"`
	podman = func(rt string, args ...string) (string, error) {
		argv := append([]string{"--mount", "--propagation", "private", "--", "sh", "-c", inNS, subids,
			"env", "-i", "HOME=" + home, "XDG_RUNTIME_DIR=" + runDir, "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "CONTAINERS_CONF=" + conf,
			"podman", "--root", filepath.Join(home, "storage"), "--runroot", filepath.Join(runDir, "storage"),
			"--cgroup-manager", "cgroupfs", "--runtime", rt, "--events-backend", "none"}, args...)
		cmd := exec.Command("unshare", argv...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		podman("runc", "rm", "--all", "--force", "--time", "0")
		// podman's pause process holds its user namespace (and its
		// storage mounts there).
		if b, err := os.ReadFile(filepath.Join(runDir, "libpod", "tmp", "pause.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing %s: %v", dir, err)
		}
	})
	out2, err := podman("runc", "import", tarball, podmanImage)
	require.NoError(t, err, "rootless podman import: %s", out2)
	return podman, runDir
}

// TestPodmanRootless: rootless podman (nobody, with subordinate ids, no
// cgroups: v1 controllers are not delegated) with vessel as its runtime
// gives what it gives with runc: run and its exit code, run --user, run
// -d, exec with its status, late output and -t, inspect's pid, top, stop,
// rm. vessel, root of podman's user namespace there, keeps its state
// under $XDG_RUNTIME_DIR/vessel as runc keeps its under .../runc, and
// leaves none behind.
func TestPodmanRootless(t *testing.T) {
	testutil.RequireRoot(t)
	podman, runDir := rootlessPodman(t)
	results := map[string][]string{}
	for _, rt := range []string{"runc", vesselBin} {
		var got []string
		note := func(what, out string, err error) {
			got = append(got, fmt.Sprintf("%s: %s (status %d)", what, strings.TrimSpace(out), exitStatusOf(err)))
		}
		run := []string{"run", "--rm", "--network", "none", podmanImage}
		out, err := podman(rt, append(run, "sh", "-c", "id -u; echo hello")...)
		note("run", out, err)
		out, err = podman(rt, append(run, "sh", "-c", "exit 7")...)
		note("run exit 7", out, err)
		out, err = podman(rt, "run", "--rm", "--network", "none", "--user", "1000:1000", podmanImage, "id", "-u")
		note("run --user", out, err)
		out, err = podman(rt, "run", "-d", "--name", "r1", "--network", "none", podmanImage, "sleep", "1000")
		require.NoError(t, err, "%s: rootless podman run -d: %s", rt, out)
		out, err = podman(rt, "exec", "r1", "sh", "-c", "exit 3")
		note("exec exit 3", out, err)
		out, err = podman(rt, "exec", "r1", "sh", "-c", "sleep 1; echo late")
		note("exec late", out, err)
		out, err = podman(rt, "exec", "-t", "r1", "tty")
		note("exec -t", out, err)
		out, err = podman(rt, "inspect", "-f", "{{.State.Pid}}", "r1")
		require.NoError(t, err)
		cmdline, _ := os.ReadFile("/proc/" + strings.TrimSpace(out) + "/cmdline")
		note("inspect pid", strings.ReplaceAll(string(cmdline), "\x00", " "), nil)
		out, err = podman(rt, "top", "r1", "args")
		note("top", out, err)
		_, err = podman(rt, "stop", "-t", "1", "r1")
		note("stop", "", err)
		out, err = podman(rt, "inspect", "-f", "{{.State.ExitCode}}", "r1")
		note("exit code after stop", out, err)
		_, err = podman(rt, "rm", "r1")
		note("rm", "", err)
		results[rt] = got
	}
	assert.Equal(t, results["runc"], results[vesselBin], "rootless podman: runc's results, then vessel's")
	assert.Contains(t, results[vesselBin], "run: 0\nhello (status 0)")
	assert.Contains(t, results[vesselBin], "run exit 7:  (status 7)")
	assert.Contains(t, results[vesselBin], "exec -t: /dev/pts/0 (status 0)")
	// vessel's state went below XDG_RUNTIME_DIR, and is gone with the
	// containers.
	entries, err := os.ReadDir(filepath.Join(runDir, "vessel"))
	require.NoError(t, err, "vessel kept no state in $XDG_RUNTIME_DIR/vessel")
	assert.Empty(t, entries, "state left in $XDG_RUNTIME_DIR/vessel")
}
