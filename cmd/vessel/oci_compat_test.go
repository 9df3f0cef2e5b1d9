package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/limits"
	"github.com/openvessel/vessel/oci"
)

// runInside runs a foreground container whose shell script prints what the
// test checks, and returns its stdout; the run must succeed.
func runInside(t *testing.T, root, id, script string, edit func(*specs.Spec)) string {
	t.Helper()
	b := bundle(t, id, []string{"sh", "-c", script}, edit)
	r := cli(t, root, "run", "--bundle", b, id)
	require.Equal(t, 0, r.code, "run %s: stderr %s\nstdout %s", id, r.stderr, r.stdout)
	return r.stdout
}

// TestOCISpecFieldsAsRunc runs bundles with the spec fields runc honours and
// vessel used to refuse, and checks from inside the container that each is
// applied as runc applies it.
func TestOCISpecFieldsAsRunc(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)

	t.Run("stacked mounts", func(t *testing.T) {
		// containerd's sandbox: the standard /dev/shm tmpfs, then a bind
		// of the sandbox's shm on it; and two mounts of the spec's own on
		// one destination, applied in order.
		shm, top := t.TempDir(), t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(shm, "marker"), []byte("sandbox-shm\n"), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(top, "size"), []byte("top\n"), 0o644))
		out := runInside(t, root, "stacked", "cat /dev/shm/marker; cat /data/size; grep -c ' /data ' /proc/self/mountinfo", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts,
				specs.Mount{Destination: "/dev/shm", Type: "bind", Source: shm, Options: []string{"rbind", "ro"}},
				specs.Mount{Destination: "/data", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}},
				specs.Mount{Destination: "/data", Type: "bind", Source: top, Options: []string{"bind"}},
			)
		})
		assert.Equal(t, "sandbox-shm\ntop\n2\n", out, "the bind is on top of the tmpfs, both mounted")
	})

	t.Run("devices", func(t *testing.T) {
		// What podman --privileged and --device ask: nodes with their
		// modes and owners, usable through the device cgroup.
		out := runInside(t, root, "devices", "stat -c '%F %t:%T %a %u:%g' /dev/fuse /dev/myfifo /dev/loop-ctl; : < /dev/fuse && echo opened", func(s *specs.Spec) {
			s.Linux.Devices = []specs.LinuxDevice{
				{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: ptrTo(os.FileMode(0o666)), UID: ptrTo(uint32(7)), GID: ptrTo(uint32(8))},
				{Path: "/dev/myfifo", Type: "p", FileMode: ptrTo(os.FileMode(0o640))},
				{Path: "/dev/loop-ctl", Type: "c", Major: 10, Minor: 237},
				{Path: "/dev/null", Type: "c", Major: 1, Minor: 3},
			}
		})
		assert.Equal(t, "character special file a:e5 666 7:8\nfifo 0:0 640 0:0\ncharacter special file a:ed 666 0:0\nopened\n", out)
	})

	t.Run("tmpcopyup on a read-only root", func(t *testing.T) {
		// podman --read-only: a tmpfs over /etc filled with what /etc held.
		out := runInside(t, root, "copyup", "grep -c '^root:' /etc/passwd; touch /etc/new && echo writable; grep ' /etc ' /proc/self/mountinfo | grep -c tmpfs; stat -c %a /etc", func(s *specs.Spec) {
			s.Root.Readonly = true
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/etc", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "tmpcopyup"}})
		})
		assert.Equal(t, "1\nwritable\n1\n755\n", out)
	})

	t.Run("rootfs propagation", func(t *testing.T) {
		out := runInside(t, root, "propshared", "grep -E '^[0-9]+ [0-9]+ [^ ]+ [^ ]+ / ' /proc/self/mountinfo", func(s *specs.Spec) {
			s.Linux.RootfsPropagation = "shared"
		})
		assert.Contains(t, out, " shared:", "a shared root mount")
		out = runInside(t, root, "propprivate", "grep -E '^[0-9]+ [0-9]+ [^ ]+ [^ ]+ / ' /proc/self/mountinfo", func(s *specs.Spec) {
			s.Linux.RootfsPropagation = "private"
		})
		assert.NotContains(t, out, "shared:")
		assert.NotContains(t, out, "master:")
	})

	t.Run("bind with data options", func(t *testing.T) {
		src := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(src, "f"), []byte("bound\n"), 0o644))
		out := runInside(t, root, "binddata", "cat /b/f", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/b", Type: "bind", Source: src, Options: []string{"rbind", "mode=755", "size=65536k"}})
		})
		assert.Equal(t, "bound\n", out)
	})

	t.Run("runc spec default bundle", func(t *testing.T) {
		runc, err := exec.LookPath("runc")
		require.NoError(t, err, "runc is in test.sh's package list")
		dir := t.TempDir()
		cmd := exec.Command(runc, "spec")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "runc spec: %s", out)
		spec, err := oci.LoadSpec(dir)
		require.NoError(t, err)
		spec.Root.Path = testutil.BusyboxRootfsCopy(t)
		spec.Process.Terminal = false
		spec.Process.Args = []string{"sh", "-c", "grep CapAmb /proc/self/status"}
		spec.Linux.CgroupsPath = "vessel-test/runcspec"
		require.NoError(t, os.Remove(filepath.Join(dir, "config.json")))
		require.NoError(t, oci.WriteSpec(dir, spec))
		r := cli(t, root, "run", "--bundle", dir, "runcspec")
		require.Equal(t, 0, r.code, "stderr %s", r.stderr)
		// runc raises the ambient set where the kernel allows: nothing,
		// since runc spec writes no inheritable set.
		assert.Equal(t, "CapAmb:\t0000000000000000\n", r.stdout)
	})
}

// TestOCICgroupKnobsAsRunc checks the cgroup files runc writes for cpu
// shares, swappiness and the OOM killer, on this host's hierarchy.
func TestOCICgroupKnobsAsRunc(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	const id = "knobs"
	b := bundle(t, id, []string{"sleep", "100"}, func(s *specs.Spec) {
		s.Linux.Resources = &specs.LinuxResources{
			CPU:    &specs.LinuxCPU{Shares: ptrTo(uint64(512))},
			Memory: &specs.LinuxMemory{Limit: ptrTo(int64(64 << 20)), Swappiness: ptrTo(uint64(10)), DisableOOMKiller: ptrTo(true), Kernel: ptrTo(int64(32 << 20))},
		}
	})
	log := filepath.Join(t.TempDir(), "log.json")
	r := cliWith(t, []string{"--root", root, "--log", log, "--log-format", "json", "run", "--detach", "--bundle", b, id}, nil)
	require.Equal(t, 0, r.code, "run: %s", r.stderr)
	rec := record(t, root, id)
	defer func() {
		cli(t, root, "delete", "--force", id).ok(t, "delete")
		assertGone(t, root, rec)
	}()
	logText, err := os.ReadFile(log)
	require.NoError(t, err)
	assert.Contains(t, string(logText), "linux.resources.memory.kernel", "the ignored kernel limit is logged as a warning")
	assert.Contains(t, string(logText), `"level":"warning"`)
	if hasCgroupFile(rec.CgroupState.Dirs, "cpu.shares") { // cgroup v1 cpu (this machine)
		assert.Equal(t, "512", cgroupFile(t, rec, "cpu.shares"), "written as runc writes it")
	} else {
		assert.Equal(t, "20", cgroupFile(t, rec, "cpu.weight"), "runc's conversion of 512 shares")
	}
	if hasCgroupFile(rec.CgroupState.Dirs, "memory.swappiness") { // cgroup v1 memory
		assert.Equal(t, "10", cgroupFile(t, rec, "memory.swappiness"))
		assert.Contains(t, cgroupFile(t, rec, "memory.oom_control"), "oom_kill_disable 1")
	}
}

func hasCgroupFile(dirs map[string]string, name string) bool {
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			return true
		}
	}
	return false
}

// TestOCIExecUnderSupervisor drives exec the way conmon and the containerd
// shim do: --detach --pid-file, then waiting for (as a subreaper) and
// signalling the pid in the file; and exec in the foreground.
func TestOCIExecUnderSupervisor(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	const id = "execsup"
	b := bundle(t, id, []string{"sleep", "100"}, nil)
	cli(t, root, "run", "--detach", "--bundle", b, id).ok(t, "run --detach")
	rec := record(t, root, id)
	defer func() {
		cli(t, root, "delete", "--force", id).ok(t, "delete")
		assertGone(t, root, rec)
	}()

	// Like the shim: a subreaper, so that the stand-in the detached exec
	// leaves becomes this process's child.
	require.NoError(t, unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	detached := func(script string) (int, string) {
		t.Helper()
		dir := t.TempDir()
		pidFile := filepath.Join(dir, "pid")
		out, err := os.Create(filepath.Join(dir, "out"))
		require.NoError(t, err)
		defer out.Close()
		r := cliWith(t, []string{"--root", root, "exec", "--detach", "--pid-file", pidFile, id, "sh", "-c", script}, out)
		require.Equal(t, 0, r.code, "exec --detach")
		b, err := os.ReadFile(pidFile)
		require.NoError(t, err)
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		require.NoError(t, err)
		// Never signal 0 or -1 (the group, every process) by mistake.
		require.Greater(t, pid, 1, "--pid-file holds a process id")
		return pid, out.Name()
	}
	wait := func(pid int) unix.WaitStatus {
		t.Helper()
		var ws unix.WaitStatus
		_, err := unix.Wait4(pid, &ws, 0, nil)
		require.NoError(t, err, "the pid in --pid-file is this subreaper's child")
		return ws
	}

	pid, outFile := detached("sleep 1; echo late; exit 3")
	ws := wait(pid)
	assert.True(t, ws.Exited() && ws.ExitStatus() == 3, "status %v: the exec'd process's exit code", ws)
	out, _ := os.ReadFile(outFile)
	assert.Equal(t, "late\n", string(out), "the process wrote to the caller's stdout")

	pid, _ = detached("trap 'exit 9' USR1; while :; do sleep 0.1; done")
	time.Sleep(300 * time.Millisecond) // let the trap be set
	require.NoError(t, unix.Kill(pid, unix.SIGUSR1))
	ws = wait(pid)
	assert.True(t, ws.Exited() && ws.ExitStatus() == 9, "status %v: the signal reached the process", ws)

	pid, _ = detached("exec sleep 100")
	require.NoError(t, unix.Kill(pid, unix.SIGTERM))
	ws = wait(pid)
	assert.True(t, ws.Signaled() && ws.Signal() == unix.SIGTERM, "status %v: ended by the process's signal", ws)

	r := cli(t, root, "exec", "--detach", id, "/no/such/program")
	assert.Equal(t, 255, r.code, "exec that cannot start: %s", r.stderr)

	// The foreground: waits, exits with the process's status.
	r = cli(t, root, "exec", id, "sh", "-c", "sleep 1; echo late; exit 3")
	assert.Equal(t, 3, r.code)
	assert.Equal(t, "late\n", r.stdout)
	r = cli(t, root, "exec", id, "/no/such/program")
	assert.Equal(t, 255, r.code, "exec that cannot start: %s", r.stderr)
	st := state(t, root, id)
	assert.Equal(t, "running", st.Status, "the container outlives its exec'd processes")
}

// consoleSocket listens on a unix socket like a supervisor's console
// socket; the returned function gives the terminal master received.
func consoleSocket(t *testing.T) (string, func() *os.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "console.sock")
	l, err := net.Listen("unix", path)
	require.NoError(t, err)
	got := make(chan *os.File, 1)
	go func() {
		defer l.Close()
		c, err := l.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		oob := make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := c.(*net.UnixConn).ReadMsgUnix(make([]byte, 4096), oob)
		if err != nil {
			got <- nil
			return
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		if len(msgs) != 1 {
			got <- nil
			return
		}
		fds, _ := unix.ParseUnixRights(&msgs[0])
		if len(fds) != 1 {
			got <- nil
			return
		}
		got <- os.NewFile(uintptr(fds[0]), "console-master")
	}()
	return path, func() *os.File {
		select {
		case f := <-got:
			require.NotNil(t, f, "no terminal received on the console socket")
			return f
		case <-time.After(10 * time.Second):
			t.Fatal("no terminal received on the console socket")
			return nil
		}
	}
}

// readTerm reads the terminal's output until the process closes it.
func readTerm(master *os.File) string {
	var b bytes.Buffer
	_, _ = b.ReadFrom(master) // ends with EIO once the slave side is closed
	return strings.ReplaceAll(b.String(), "\r\n", "\n")
}

// TestOCIConsoleSocket checks that a terminal handed to a console socket is
// the process's controlling terminal from the container's own devpts, for
// create/start and for exec.
func TestOCIConsoleSocket(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	const id = "console"
	b := bundle(t, id, []string{"sh", "-c", "tty; stat -c %t /dev/pts/ptmx >/dev/null && echo own-devpts; read x; echo got $x; sleep 100"}, func(s *specs.Spec) {
		s.Process.Terminal = true
	})
	sock, master := consoleSocket(t)
	cli(t, root, "create", "--bundle", b, "--console-socket", sock, id).ok(t, "create --console-socket")
	rec := record(t, root, id)
	defer func() {
		cli(t, root, "delete", "--force", id).ok(t, "delete")
		assertGone(t, root, rec)
	}()
	m := master()
	defer m.Close()
	cli(t, root, "start", id).ok(t, "start")
	_, err := m.Write([]byte("hello\n"))
	require.NoError(t, err)
	buf := make([]byte, 0, 256)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(string(buf), "got hello") && time.Now().Before(deadline) {
		_ = m.SetReadDeadline(time.Now().Add(time.Second))
		chunk := make([]byte, 256)
		n, _ := m.Read(chunk)
		buf = append(buf, chunk[:n]...)
	}
	out := strings.ReplaceAll(string(buf), "\r\n", "\n")
	assert.Contains(t, out, "/dev/pts/0\nown-devpts\n", "the first terminal of the container's own devpts")
	assert.Contains(t, out, "got hello", "input typed on the master reaches the process")

	for _, detach := range []bool{false, true} {
		sock, master := consoleSocket(t)
		args := []string{"exec", "--tty", "--console-socket", sock}
		if detach {
			args = append(args, "--detach")
		}
		args = append(args, id, "sh", "-c", "tty; [ -t 0 ] && echo ctty")
		done := make(chan result, 1)
		go func() { done <- cli(t, root, args...) }()
		m := master()
		got := readTerm(m)
		m.Close()
		r := <-done
		assert.Equal(t, 0, r.code, "exec --tty --console-socket (detach %v): %s", detach, r.stderr)
		assert.Equal(t, "/dev/pts/1\nctty\n", got, "detach %v", detach)
	}
}

// TestOCICommandLineAsRunc covers what supervisors rely on: every signal
// runc's kill takes, kill --all on a stopped container, a --root long
// enough to overflow a unix socket path, update of one field, and a
// parent cgroup someone else made left in place.
func TestOCICommandLineAsRunc(t *testing.T) {
	testutil.RequireRoot(t)
	// The containerd shim's root and a 64-character id: the state
	// directory is far longer than a socket path can be.
	root := filepath.Join(testRoot(t), strings.Repeat("r", 60), "k8s.io")
	id := strings.Repeat("c", 64)

	// A pod cgroup made by someone else, with a limit of its own.
	pod, err := cgroups.New(cgroups.Options{Name: "vessel-test/oci-pod", Resources: &limits.Resources{Pids: &limits.Pids{Max: ptrTo(int64(500))}}})
	require.NoError(t, err)
	require.NoError(t, pod.Create())
	defer func() { assert.NoError(t, pod.Destroy()) }()

	b := bundle(t, id, []string{"sh", "-c", "trap 'echo usr2 >/tmp/got' USR2; while :; do sleep 0.05; done"}, func(s *specs.Spec) {
		s.Linux.CgroupsPath = "vessel-test/oci-pod/" + id[:8]
		s.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptrTo(int64(64 << 20))}}
	})
	cli(t, root, "run", "--detach", "--bundle", b, id).ok(t, "run --detach with a long root")
	rec := record(t, root, id)
	assert.LessOrEqual(t, len(rec.ControlSocket), 107, "the control socket fits a unix socket address")
	r := cli(t, root, "exec", id, "sh", "-c", "exit 4")
	assert.Equal(t, 4, r.code, "exec through the short socket: %s", r.stderr)

	for _, sig := range []string{"0", "SIGRTMIN+3", "RTMAX-1", "34", "WINCH"} {
		cli(t, root, "kill", id, sig).ok(t, "kill "+sig)
	}
	r = cli(t, root, "kill", id, "65")
	assert.NotEqual(t, 0, r.code, "signal 65 does not exist")
	assert.Contains(t, r.stderr, "out of range")
	time.Sleep(200 * time.Millisecond) // the trap is set
	cli(t, root, "kill", id, "USR2").ok(t, "kill USR2")
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if r = cli(t, root, "exec", id, "cat", "/tmp/got"); r.stdout == "usr2\n" {
			break
		}
	}
	assert.Equal(t, "usr2\n", r.stdout, "the trapped signal reached the main process")

	// A swap limit alone, for a container whose memory limit is set.
	cli(t, root, "update", "--memory-swap", "128m", id).ok(t, "update --memory-swap")
	if hasCgroupFile(rec.CgroupState.Dirs, "memory.memsw.limit_in_bytes") {
		assert.Equal(t, strconv.Itoa(128<<20), cgroupFile(t, rec, "memory.memsw.limit_in_bytes"))
	}
	cli(t, root, "update", "--cpu-period", "200000", "--cpu-quota", "100000", id).ok(t, "update period and quota")

	cli(t, root, "kill", id, "KILL").ok(t, "kill KILL")
	waitStatus(t, root, id, "stopped")
	cli(t, root, "kill", "--all", id, "KILL").ok(t, "kill --all of a stopped container")
	r = cli(t, root, "kill", id, "TERM")
	assert.Equal(t, 1, r.code, "kill (not --all) of a stopped container fails, as runc's")
	cli(t, root, "delete", id).ok(t, "delete")
	assertGone(t, root, rec)
	_, err = os.Stat(rec.ControlSocket)
	assert.True(t, os.IsNotExist(err), "the short control socket is gone")
	for h, dir := range pod.State().Dirs {
		_, err := os.Stat(dir)
		assert.NoError(t, err, "the pod cgroup someone else made stays (hierarchy %s)", h)
	}
}

// TestVersionInRuncShape checks --version's lines: the version, then
// "spec:" and "go:" as runc prints them.
func TestVersionInRuncShape(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		r := cliWith(t, args, nil).ok(t, "vessel "+args[0])
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		require.Len(t, lines, 3, "%q", r.stdout)
		assert.True(t, strings.HasPrefix(lines[0], "vessel version "))
		assert.Equal(t, "spec: "+specs.Version, lines[1])
		assert.True(t, strings.HasPrefix(lines[2], "go: go"))
	}
}
