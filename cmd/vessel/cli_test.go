package main

// Tests of docker's command line: run's flags as docker users type them,
// the verbs on containers run and runc's create started, usage errors, crash
// recovery and names claimed in parallel.

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/oci"
)

// vcli runs vessel --root root ARGS with the tests' cgroup group, stdin
// from stdin (nil: /dev/null) and stdout/stderr in files.
func vcli(t *testing.T, root string, stdin io.Reader, args ...string) result {
	t.Helper()
	dir := t.TempDir()
	so, err := os.Create(filepath.Join(dir, "stdout"))
	require.NoError(t, err)
	defer so.Close()
	se, err := os.Create(filepath.Join(dir, "stderr"))
	require.NoError(t, err)
	defer se.Close()
	cmd := exec.Command(vesselBin, append([]string{"--root", root}, args...)...)
	cmd.Env = append(os.Environ(), "VESSEL_CGROUP_GROUP="+testutil.CgroupGroup)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, so, se
	err = cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err, "vessel %v", args)
	}
	a, _ := os.ReadFile(so.Name())
	b, _ := os.ReadFile(se.Name())
	return result{stdout: string(a), stderr: string(b), code: code}
}

// must fails the test unless the command exited 0.
func (r result) must(t *testing.T, what string) result {
	t.Helper()
	require.Equal(t, 0, r.code, "%s: stderr: %s", what, r.stderr)
	return r
}

// cgroupDirsOf returns the cgroup directories container id's record names.
func cgroupDirsOf(t *testing.T, root, id string) []string {
	t.Helper()
	rec := record(t, root, id)
	require.NotNil(t, rec.CgroupState, "container %s has no cgroup state", id)
	var dirs []string
	for _, d := range rec.CgroupState.Dirs {
		dirs = append(dirs, d)
	}
	require.NotEmpty(t, dirs)
	return dirs
}

func assertNoDirs(t *testing.T, dirs []string) {
	t.Helper()
	for _, d := range dirs {
		_, err := os.Stat(d)
		assert.True(t, errors.Is(err, fs.ErrNotExist), "cgroup %s left behind (%v)", d, err)
	}
}

// psRows runs ps -a --format json.
func psRows(t *testing.T, root string) map[string]psRow {
	t.Helper()
	r := vcli(t, root, nil, "ps", "-a", "--format", "json").must(t, "ps -a")
	var rows []psRow
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rows), r.stdout)
	out := map[string]psRow{}
	for _, row := range rows {
		out[row.Name] = row
	}
	return out
}

func waitPs(t *testing.T, root, id, status string) psRow {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		row, ok := psRows(t, root)[id]
		if ok && row.Status == status {
			return row
		}
		require.True(t, time.Now().Before(deadline), "%s: ps says %+v (present %v), want %s", id, row, ok, status)
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunDockerFlags(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	rfs := testutil.BusyboxRootfsCopy(t)
	data := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(data, "f"), []byte("from the host\n"), 0o644))
	envFile := filepath.Join(t.TempDir(), "env")
	require.NoError(t, os.WriteFile(envFile, []byte("# a comment\nFROMFILE=yes\n\nFILEPASS\n"), 0o644))
	t.Setenv("PASSME", "caller's value")
	t.Setenv("FILEPASS", "also passed")

	script := `echo "A=$A PASSME=$PASSME FROMFILE=$FROMFILE FILEPASS=$FILEPASS UNSET=${UNSETVAR-none}"
echo "HOME=$HOME HOSTNAME=$HOSTNAME PATH=$PATH"
echo "pwd=$(pwd) host=$(hostname) id=$(id -u):$(id -g)"
echo "data=$(cat /data/f)"
touch /data/new 2>/dev/null && echo data-writable || echo data-readonly
cat /mnt2/f >/dev/null && echo mount-ok
touch /mnt2/x 2>/dev/null && echo mnt2-writable || echo mnt2-readonly
grep ' /run ' /proc/mounts
grep ' /scratch ' /proc/mounts
touch /rootfile 2>/dev/null && echo root-writable || echo root-readonly
ls /sys/class/net
echo x > /dev/mynull && echo device-ok
`
	r := vcli(t, root, nil, "run", "--rm", "--rootfs", rfs,
		"-e", "A=1", "-e", "PASSME", "-e", "UNSETVAR", "--env-file", envFile,
		"-w", "/work/dir", "-u", "nobody:nogroup", "-h", "boxname",
		"-v", data+":/data:ro,z", "--mount", "type=bind,source="+data+",target=/mnt2,readonly",
		"--mount", "type=tmpfs,target=/scratch,tmpfs-size=1m,tmpfs-mode=0700",
		"--tmpfs", "/run:size=64m,mode=1770", "--read-only", "--network", "none",
		"--device", "/dev/null:/dev/mynull:rw",
		"--entrypoint", "/bin/sh", "--", "-c", script)
	r.must(t, "run")
	out := r.stdout
	for _, want := range []string{
		"A=1 PASSME=caller's value FROMFILE=yes FILEPASS=also passed UNSET=none",
		"HOME=/nonexistent HOSTNAME=boxname PATH=/usr/local/sbin:",
		"pwd=/work/dir host=boxname id=65534:65534",
		"data=from the host", "data-readonly", "mount-ok", "mnt2-readonly",
		"root-readonly", "device-ok",
	} {
		assert.Contains(t, out, want)
	}
	assert.Regexp(t, `tmpfs /run tmpfs [^ ]*size=65536k,mode=1770`, out)
	assert.Regexp(t, `tmpfs /scratch tmpfs [^ ]*size=1024k,mode=700`, out)
	assert.Regexp(t, `(?m)^lo\n`, out, "--network none: only lo")
	assert.NotContains(t, out, "eth0")
	fi, err := os.Stat(filepath.Join(rfs, "work/dir"))
	require.NoError(t, err, "--workdir was not created in the rootfs")
	assert.True(t, fi.IsDir())
	_, err = os.Stat(filepath.Join(data, "new"))
	assert.True(t, errors.Is(err, fs.ErrNotExist), "the :ro volume was written")
	assert.Empty(t, psRows(t, root), "--rm left the container in the store")

	// --pids-limit (and --pids, its old name) and --memory (-m) reach the
	// container's cgroup; --net and --readonly are the old names of
	// --network and --read-only.
	for _, flags := range [][]string{{"--pids-limit", "20", "-m", "64m"}, {"--pids", "40", "--memory", "32m", "--net", "none", "--readonly"}} {
		args := append(append([]string{"run", "-d", "--name", "lim", "--rootfs", rfs}, flags...), "sleep", "1000")
		vcli(t, root, nil, args...).must(t, "run -d "+strings.Join(flags, " "))
		rec := record(t, root, "lim")
		require.NotNil(t, rec.CgroupState)
		pids, err := os.ReadFile(filepath.Join(rec.CgroupState.Dirs["pids"], "pids.max"))
		require.NoError(t, err)
		assert.Equal(t, flags[1]+"\n", string(pids))
		mem, err := os.ReadFile(filepath.Join(rec.CgroupState.Dirs["memory"], "memory.limit_in_bytes"))
		require.NoError(t, err)
		want := map[string]string{"64m": "67108864\n", "32m": "33554432\n"}[flags[3]]
		assert.Equal(t, want, string(mem))
		if len(flags) > 4 {
			r := vcli(t, root, nil, "exec", "lim", "sh", "-c", "ls /sys/class/net; touch /x || echo ro")
			assert.Equal(t, "lo\nro\n", r.stdout)
		}
		vcli(t, root, nil, "rm", "-f", "lim").must(t, "rm -f")
	}

	// A command that does not exist: 127; one that cannot run: 126 (as docker).
	r = vcli(t, root, nil, "run", "--rm", "--rootfs", rfs, "/no/such/program")
	assert.Equal(t, 127, r.code, r.stderr)
	assert.Contains(t, r.stderr, "/no/such/program")
	r = vcli(t, root, nil, "run", "--rm", "--rootfs", rfs, "/etc/passwd")
	assert.Equal(t, 126, r.code, r.stderr)
	// With -d the background controller's failure comes back the same way,
	// and leaves nothing in the store.
	r = vcli(t, root, nil, "run", "-d", "--name", "nostart", "--rootfs", rfs, "/no/such/program")
	assert.Equal(t, 127, r.code, r.stderr)
	assert.Contains(t, r.stderr, "/no/such/program")
	assert.Empty(t, r.stdout)
	assert.NotContains(t, psRows(t, root), "nostart")

	// In a bundle directory, "run PROGRAM" is still docker's run.
	bundleDir := t.TempDir()
	vcli(t, root, nil, "spec", "--bundle", bundleDir).must(t, "spec")
	cmd := exec.Command(vesselBin, "--root", root, "run", "--rm", "--rootfs", rfs, "echo", "not-oci")
	cmd.Dir = bundleDir
	cmd.Env = append(os.Environ(), "VESSEL_CGROUP_GROUP="+testutil.CgroupGroup)
	got, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", got)
	assert.Equal(t, "not-oci\n", string(got))

	// Security and rlimit flags as docker spells them.
	r = vcli(t, root, nil, "run", "--rm", "--rootfs", rfs, "--cap-drop", "ALL", "--cap-add", "CHOWN",
		"--security-opt", "no-new-privileges=false", "--ulimit", "nofile=100:200", "--",
		"sh", "-c", "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; ulimit -n; ulimit -Hn")
	r.must(t, "run --cap-drop --cap-add --security-opt --ulimit")
	assert.Regexp(t, `CapEff:\s+0000000000000001\n`, r.stdout) // CAP_CHOWN alone
	assert.Regexp(t, `NoNewPrivs:\s+0\n`, r.stdout)
	assert.Contains(t, r.stdout, "\n100\n200\n")
	r = vcli(t, root, nil, "run", "--rm", "--rootfs", rfs, "--security-opt", "no-new-privileges", "--", "grep", "NoNewPrivs", "/proc/self/status")
	r.must(t, "run --security-opt no-new-privileges")
	assert.Regexp(t, `NoNewPrivs:\s+1`, r.stdout)
	r = vcli(t, root, nil, "run", "--rm", "--rootfs", rfs, "--privileged", "--sysctl", "net.ipv4.ip_forward=1", "--",
		"sh", "-c", "grep CapEff /proc/self/status; cat /proc/sys/net/ipv4/ip_forward")
	r.must(t, "run --privileged --sysctl")
	// --privileged: every capability this (root) test has itself.
	status, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	own := regexp.MustCompile(`CapEff:\s+([0-9a-f]+)`).FindSubmatch(status)
	require.NotNil(t, own)
	assert.Regexp(t, `CapEff:\s+`+string(own[1])+`\n1\n`, r.stdout)
	vcli(t, root, nil, "run", "-d", "--name", "cpus", "--rootfs", rfs, "--cpus", "0.5", "sleep", "1000").must(t, "run --cpus")
	rec := record(t, root, "cpus")
	cpuDir := rec.CgroupState.Dirs["cpu"]
	if cpuDir == "" {
		cpuDir = rec.CgroupState.Dirs["cpu,cpuacct"] // mounted together
	}
	quota, err := os.ReadFile(filepath.Join(cpuDir, "cpu.cfs_quota_us"))
	require.NoError(t, err)
	period, err := os.ReadFile(filepath.Join(cpuDir, "cpu.cfs_period_us"))
	require.NoError(t, err)
	assert.Equal(t, atoi(t, string(period))/2, atoi(t, string(quota)), "--cpus 0.5")
	vcli(t, root, nil, "rm", "-f", "cpus").must(t, "rm -f")

	// Without -i the command reads /dev/null; with -i the caller's stdin.
	r = vcli(t, root, strings.NewReader("typed\n"), "run", "--rm", "--rootfs", rfs, "cat")
	r.must(t, "run without -i")
	assert.Empty(t, r.stdout)
	r = vcli(t, root, strings.NewReader("typed\n"), "run", "--rm", "-i", "--rootfs", rfs, "cat")
	r.must(t, "run -i")
	assert.Equal(t, "typed\n", r.stdout)

	// A name, with no --rm: the exited container stays for ps -a,
	// inspect and rm, and its exit code is the command's.
	r = vcli(t, root, nil, "run", "--name", "kept", "--rootfs", rfs, "sh", "-c", "exit 3")
	assert.Equal(t, 3, r.code, r.stderr)
	row := psRows(t, root)["kept"]
	assert.Equal(t, statusExited, row.Status)
	require.NotNil(t, row.Exit)
	assert.Equal(t, 3, *row.Exit)
	dirs := cgroupDirsOf(t, root, "kept")
	assertNoDirs(t, dirs) // its controller released them when it ended
	vcli(t, root, nil, "rm", "kept").must(t, "rm")
	assert.Empty(t, psRows(t, root))
}

func TestRunUsageErrors(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"run", "--timeout", "abc", "true"}, []string{"--timeout", "abc"}},
		{[]string{"run", "--pids-limit", "99999999999999999999", "true"}, []string{"--pids-limit"}},
		{[]string{"run", "--pids", "x", "true"}, []string{"--pids-limit"}},
		{[]string{"run", "--rmm", "true"}, []string{"--rmm", "did you mean --rm?"}},
		{[]string{"run", "-rm", "true"}, []string{"did you mean --rm?"}},
		{[]string{"run", "--memory", "lots", "true"}, []string{"--memory"}},
		{[]string{"run", "--memory", "1", "true"}, []string{"--memory", "below 6 MiB"}},
		{[]string{"run", "--tmpfs", "/run:size=big", "true"}, []string{"--tmpfs", "size"}},
		{[]string{"run", "--mount", "type=nfs,target=/x", "true"}, []string{"--mount", "type"}},
		{[]string{"run", "-e", "=x", "true"}, []string{"--env"}},
		{[]string{"run", "--env-file", "/nonexistent/env", "true"}, []string{"--env-file"}},
		{[]string{"run", "-u", "nosuchuser", "true"}, []string{"--user", "nosuchuser"}},
		{[]string{"run", "--device", "/etc/passwd", "true"}, []string{"--device", "not a device"}},
		{[]string{"run", "-p", "nonsense", "true"}, []string{"--publish"}},
		{[]string{"run", "--network", "carrier-pigeon", "true"}, []string{"--network"}},
		{[]string{"run"}, []string{"no command"}},
		{[]string{"rnu", "true"}, []string{`"rnu"`, `did you mean "run"?`}},
		{[]string{"stop", "-t", "x", "a"}, []string{"--time"}},
		{[]string{"ps", "--bogus"}, []string{"--bogus"}},
		{[]string{"kill", "-s", "NOSIG", "a"}, []string{"--signal", "NOSIG"}},
		{[]string{"create", "--bundel", "x", "id"}, []string{"--bundel", "did you mean --bundle?"}},
		{[]string{"logs"}, []string{"want one container name"}},
		{[]string{"update", "--memory", "lots", "x"}, []string{"--memory", "lots"}},
		{[]string{"exec", "--preserve-fds", "-1", "x", "true"}, []string{"--preserve-fds", "negative"}},
		{[]string{"events", "--interval", "-1s", "x"}, []string{"--interval"}},
		{[]string{"checkpoint", "--dri", "x"}, []string{"checkpoint", "-dri"}},
		{[]string{"migrate", "--after", "soon"}, []string{"migrate", "-after", "soon"}},
	} {
		r := vcli(t, root, nil, c.args...)
		assert.Equal(t, exitVessel, r.code, "%q: exit code (stderr %q)", c.args, r.stderr)
		assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "%q: want one line, got %q", c.args, r.stderr)
		for _, w := range c.want {
			assert.Contains(t, r.stderr, w, "%q", c.args)
		}
		assert.Empty(t, r.stdout, "%q", c.args)
	}
	assert.Empty(t, psRows(t, root), "a refused run left a container")
}

func TestRunTTY(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	rfs := testutil.BusyboxRootfsCopy(t)
	cmd := exec.Command(vesselBin, "--root", root, "run", "--rm", "-it", "--rootfs", rfs, "sh")
	cmd.Env = append(os.Environ(), "VESSEL_CGROUP_GROUP="+testutil.CgroupGroup, "TERM=")
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 33, Cols: 77})
	require.NoError(t, err)
	defer ptmx.Close()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(&out, ptmx)
		close(done)
	}()
	_, err = ptmx.Write([]byte("echo T=$TERM; tty; stty size; exit 4\n"))
	require.NoError(t, err)
	err = cmd.Wait()
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "run -it: %v; output %q", err, out.String())
	assert.Equal(t, 4, ee.ExitCode())
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	got := out.String()
	assert.Contains(t, got, "T=xterm")
	assert.Regexp(t, `/dev/pts/\d+`, got)
	assert.Contains(t, got, "33 77")

	// exec -it into a running container, through a pty too.
	removeOnFailure(t, root, "ttybox")
	vcli(t, root, nil, "run", "-d", "--name", "ttybox", "--rootfs", rfs, "sleep", "1000").must(t, "run -d")
	cmd = exec.Command(vesselBin, "--root", root, "exec", "-it", "ttybox", "sh")
	ptmx2, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 21, Cols: 55})
	require.NoError(t, err)
	defer ptmx2.Close()
	var out2 bytes.Buffer
	done2 := make(chan struct{})
	go func() {
		_, _ = io.Copy(&out2, ptmx2)
		close(done2)
	}()
	_, err = ptmx2.Write([]byte("tty; stty size; exit 6\n"))
	require.NoError(t, err)
	err = cmd.Wait()
	require.True(t, errors.As(err, &ee), "exec -it: %v; output %q", err, out2.String())
	assert.Equal(t, 6, ee.ExitCode())
	select {
	case <-done2:
	case <-time.After(5 * time.Second):
	}
	assert.Regexp(t, `/dev/pts/\d+`, out2.String())
	assert.Contains(t, out2.String(), "21 55")
	vcli(t, root, nil, "rm", "-f", "ttybox").must(t, "rm -f")
}

func TestRunPublish(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	rfs := testutil.BusyboxRootfsCopy(t)
	require.NoError(t, os.MkdirAll(filepath.Join(rfs, "www"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(rfs, "www/index.html"), []byte("served by vessel\n"), 0o644))
	before := testutil.SnapshotHost(t)
	vcli(t, root, nil, "run", "-d", "--name", "web", "-p", "18080:80", "--rootfs", rfs, "httpd", "-f", "-p", "80", "-h", "/www").must(t, "run -d -p")
	var body []byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://127.0.0.1:18080/")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			break
		}
		require.True(t, time.Now().Before(deadline), "GET 127.0.0.1:18080: %v", err)
		time.Sleep(50 * time.Millisecond)
	}
	assert.Equal(t, "served by vessel\n", string(body))
	row := psRows(t, root)["web"]
	assert.Equal(t, []string{"18080:80/tcp"}, row.Ports)
	assert.Equal(t, rfs, row.Root)
	assert.Regexp(t, `(?m)^web\s+running\s+\d+\s+\d+s ago\s+\S+\s+18080:80/tcp\s+httpd -f -p 80 -h /www$`, vcli(t, root, nil, "ps").must(t, "ps").stdout)
	vcli(t, root, nil, "rm", "-f", "web").must(t, "rm -f")
	testutil.AssertUnchanged(t, before, testutil.SnapshotHost(t), onlyOurs(root, rfs))
}

// onlyOurs leaves out of a host comparison the mounts other test binaries
// make and remove meanwhile: only those under the store, the library's
// state and storage, and the test's own directories count.
func onlyOurs(dirs ...string) testutil.DiffOption {
	dirs = append(dirs, "/run/vessel", "/var/lib/vessel", "/run/netns")
	return testutil.IgnoreMounts(func(mp string) bool {
		for _, d := range dirs {
			if mp == d || strings.HasPrefix(mp, d+"/") {
				return false
			}
		}
		return true
	})
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(s))
	require.NoError(t, err, "%q", s)
	return n
}

// removeOnFailure removes the containers named if the test fails
// midway (before testRoot's check of the store).
func removeOnFailure(t *testing.T, root string, names ...string) {
	t.Cleanup(func() {
		if t.Failed() {
			vcli(t, root, nil, append([]string{"rm", "-f"}, names...)...)
		}
	})
}

// TestVerbsOnRunAndOCI runs each docker verb on a container `run -d`
// started and on one runc's create and start made.
func TestVerbsOnRunAndOCI(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	removeOnFailure(t, root, "bg", "bg2", "ocibox", "live")
	rfs := testutil.BusyboxRootfsCopy(t)
	vcli(t, root, nil, "run", "-d", "--name", "bg", "--rootfs", rfs, "sh", "-c",
		"echo to-stdout; echo to-stderr >&2; trap 'echo got-term; exit 7' TERM; while :; do sleep 0.1; done").must(t, "run -d")
	b := bundle(t, "ocibox", []string{"sleep", "1000"}, nil)
	vcli(t, root, nil, "create", "--bundle", b, "ocibox").must(t, "create")
	vcli(t, root, nil, "start", "ocibox").must(t, "start")
	bgDirs := cgroupDirsOf(t, root, "bg")
	ociRec := record(t, root, "ocibox")

	rows := psRows(t, root)
	require.Contains(t, rows, "bg")
	require.Contains(t, rows, "ocibox")
	assert.Equal(t, statusRunning, rows["bg"].Status)
	assert.Equal(t, "run", rows["bg"].Origin)
	assert.Equal(t, statusRunning, rows["ocibox"].Status)
	assert.Equal(t, "oci", rows["ocibox"].Origin)
	// runc's verbs see the run container too.
	assert.Equal(t, "running", state(t, root, "bg").Status)
	assert.Equal(t, "bg\nocibox\n", vcli(t, root, nil, "list", "-q").must(t, "list -q").stdout)
	plain := vcli(t, root, nil, "ps").must(t, "ps").stdout
	assert.Contains(t, plain, "bg")
	assert.Contains(t, plain, "ocibox")

	for _, id := range []string{"bg", "ocibox"} {
		r := vcli(t, root, nil, "exec", id, "sh", "-c", "echo in-$HOSTNAME; exit 5")
		assert.Equal(t, 5, r.code, "exec in %s: %s", id, r.stderr)
		assert.Contains(t, r.stdout, "in-")
		r = vcli(t, root, strings.NewReader("piped\n"), "exec", "-i", "-e", "X=1", "-w", "/tmp", id, "sh", "-c", "read l; echo $l $X $(pwd)")
		r.must(t, "exec -i -e -w in "+id)
		assert.Equal(t, "piped 1 /tmp\n", r.stdout)

		r = vcli(t, root, nil, "exec", "-u", "nobody:nogroup", id, "sh", "-c", "id -u; id -g")
		r.must(t, "exec -u nobody:nogroup in "+id)
		assert.Equal(t, "65534\n65534\n", r.stdout)
		r = vcli(t, root, nil, "exec", "-u", "nosuch", id, "true")
		assert.NotEqual(t, 0, r.code)
		assert.Contains(t, r.stderr, "no such user")

		top := vcli(t, root, nil, "top", id).must(t, "top").stdout
		assert.Contains(t, top, "PID")
		assert.Contains(t, top, "sleep")

		stats := vcli(t, root, nil, "stats", "--no-stream", id).must(t, "stats").stdout
		assert.Regexp(t, `(?m)^`+id+`\s+\d+\.\d+%\s+\S+ / \S+\s+\S+\s+\S+ / \S+\s+\d+$`, stats)

		var docs []inspectDoc
		r = vcli(t, root, nil, "inspect", id).must(t, "inspect")
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &docs), r.stdout)
		require.Len(t, docs, 1)
		assert.Equal(t, id, docs[0].Name)
		assert.True(t, docs[0].State.Running)
		assert.Positive(t, docs[0].State.Pid)
	}

	// stats without --no-stream redraws its table every second until stopped.
	live := exec.Command(vesselBin, "--root", root, "stats", "bg")
	var lout bytes.Buffer
	live.Stdout = &lout
	require.NoError(t, live.Start())
	time.Sleep(2200 * time.Millisecond)
	require.NoError(t, live.Process.Signal(syscall.SIGINT))
	_ = live.Wait()
	assert.GreaterOrEqual(t, strings.Count(lout.String(), "\033[2J\033[H"), 2, "stats redraws: %q", lout.String())
	assert.GreaterOrEqual(t, strings.Count(lout.String(), "\nbg "), 2)

	// pause and unpause (docker's name for resume).
	vcli(t, root, nil, "pause", "bg").must(t, "pause")
	assert.Equal(t, statusPaused, psRows(t, root)["bg"].Status)
	vcli(t, root, nil, "unpause", "bg").must(t, "unpause")
	assert.Equal(t, statusRunning, psRows(t, root)["bg"].Status)

	r := vcli(t, root, nil, "logs", "bg").must(t, "logs")
	assert.Equal(t, "to-stdout\n", r.stdout)
	assert.Equal(t, "to-stderr\n", r.stderr)
	assert.Equal(t, 1, vcli(t, root, nil, "logs", "ocibox").code, "logs of an OCI container: kept by its engine")

	// logs -f ends when the container does; wait prints its exit code.
	follow := exec.Command(vesselBin, "--root", root, "logs", "-f", "bg")
	var fout bytes.Buffer
	follow.Stdout = &fout
	require.NoError(t, follow.Start())
	waiter := exec.Command(vesselBin, "--root", root, "wait", "bg")
	var wout bytes.Buffer
	waiter.Stdout = &wout
	require.NoError(t, waiter.Start())
	r = vcli(t, root, nil, "stop", "-t", "5", "bg").must(t, "stop")
	assert.Equal(t, "bg\n", r.stdout)
	require.NoError(t, waiter.Wait())
	assert.Equal(t, "7\n", wout.String())
	require.NoError(t, follow.Wait())
	assert.Equal(t, "to-stdout\ngot-term\n", fout.String())
	assert.Equal(t, statusExited, psRows(t, root)["bg"].Status)
	assertNoDirs(t, bgDirs)

	// kill: docker's form on the run container, runc's on the OCI one.
	// (The command is PID 1 of its pid namespace: only signals it handles
	// reach it, as under docker.)
	vcli(t, root, nil, "run", "-d", "--name", "bg2", "--rootfs", rfs, "sh", "-c", "trap 'exit 9' USR1; while :; do sleep 0.1; done").must(t, "run -d")
	vcli(t, root, nil, "kill", "-s", "USR1", "bg2").must(t, "kill -s USR1")
	waitPs(t, root, "bg2", statusExited)
	assert.Equal(t, 9, *psRows(t, root)["bg2"].Exit)
	vcli(t, root, nil, "kill", "ocibox", "KILL").must(t, "kill ID KILL")
	waitPs(t, root, "ocibox", statusStopped)

	// stop on an OCI container: its sleep, PID 1, ignores SIGTERM, so
	// SIGKILL after the timeout.
	b2 := bundle(t, "ocistop", []string{"sleep", "1000"}, nil)
	removeOnFailure(t, root, "ocistop")
	vcli(t, root, nil, "create", "--bundle", b2, "ocistop").must(t, "create")
	vcli(t, root, nil, "start", "ocistop").must(t, "start")
	vcli(t, root, nil, "stop", "--time", "1", "ocistop").must(t, "stop")
	assert.Equal(t, statusStopped, psRows(t, root)["ocistop"].Status)
	r = vcli(t, root, nil, "wait", "ocistop")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "runc's create")
	vcli(t, root, nil, "rm", "ocistop").must(t, "rm of a stopped OCI container")

	// rm refuses a live container without -f.
	vcli(t, root, nil, "run", "-d", "--name", "live", "--rootfs", rfs, "sleep", "1000").must(t, "run -d")
	liveDirs := cgroupDirsOf(t, root, "live")
	r = vcli(t, root, nil, "rm", "live")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "rm -f")
	vcli(t, root, nil, "rm", "bg", "bg2", "ocibox").must(t, "rm")
	vcli(t, root, nil, "rm", "-f", "live").must(t, "rm -f")
	assertNoDirs(t, liveDirs)
	assertGone(t, root, ociRec)
	assert.Empty(t, psRows(t, root))
}

// TestCrashRecovery kills the controlling `vessel run` with SIGKILL at
// several moments and checks that ps -a, rm -f, a new run of the same
// name and system prune clean up after it.
func TestCrashRecovery(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	rfs := testutil.BusyboxRootfsCopy(t)
	before := testutil.SnapshotHost(t)
	start := func(name string) *exec.Cmd {
		cmd := exec.Command(vesselBin, "--root", root, "run", "--name", name, "--rootfs", rfs, "--network", "bridge", "sleep", "1000")
		cmd.Env = append(os.Environ(), "VESSEL_CGROUP_GROUP="+testutil.CgroupGroup)
		require.NoError(t, cmd.Start())
		return cmd
	}
	crash := func(cmd *exec.Cmd) {
		require.NoError(t, cmd.Process.Kill())
		_ = cmd.Wait()
	}

	// Once it runs: ps -a says dead, rm -f removes everything.
	c := start("crash")
	waitPs(t, root, "crash", statusRunning)
	dirs := cgroupDirsOf(t, root, "crash")
	rec := record(t, root, "crash")
	crash(c)
	waitPs(t, root, "crash", statusDead)
	vcli(t, root, nil, "rm", "-f", "crash").must(t, "rm -f")
	assertNoDirs(t, dirs)
	assertGone(t, root, rec)

	// runc's delete --force does the same.
	c = start("crash2")
	waitPs(t, root, "crash2", statusRunning)
	dirs = cgroupDirsOf(t, root, "crash2")
	rec = record(t, root, "crash2")
	crash(c)
	vcli(t, root, nil, "delete", "--force", "crash2").must(t, "delete --force")
	assertNoDirs(t, dirs)
	assertGone(t, root, rec)

	// A new run of a dead controller's name cleans up first.
	c = start("crash")
	waitPs(t, root, "crash", statusRunning)
	dirs = cgroupDirsOf(t, root, "crash")
	crash(c)
	r := vcli(t, root, nil, "run", "--rm", "--name", "crash", "--rootfs", rfs, "echo", "again")
	r.must(t, "run of a dead controller's name")
	assert.Equal(t, "again\n", r.stdout)
	assertNoDirs(t, dirs)

	// Killed at once, possibly before the container started: whatever is
	// left, system prune removes it.
	for i := 0; i < 3; i++ {
		c = start(fmt.Sprintf("early%d", i))
		time.Sleep(time.Duration(i*15) * time.Millisecond)
		crash(c)
	}
	c = start("crash")
	waitPs(t, root, "crash", statusRunning)
	crash(c)
	time.Sleep(100 * time.Millisecond)
	vcli(t, root, nil, "system", "prune").must(t, "system prune")
	assert.Empty(t, psRows(t, root))
	if entries, _ := os.ReadDir(root); len(entries) > 0 {
		// A controller killed between making its state directory and
		// writing its record: prune takes that directory once it is
		// recordGrace old.
		time.Sleep(recordGrace)
		vcli(t, root, nil, "system", "prune").must(t, "system prune")
	}
	entries, _ := os.ReadDir(root)
	assert.Empty(t, entries, "system prune left state in the store")
	testutil.AssertUnchanged(t, before, testutil.SnapshotHost(t), onlyOurs(root, rfs))
}

// TestRunSameNameInParallel starts 20 runs with one name at once: one runs,
// the others say the name is in use.
func TestRunSameNameInParallel(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	rfs := testutil.BusyboxRootfsCopy(t)
	removeOnFailure(t, root, "same")
	const n = 20
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = vcli(t, root, nil, "run", "-d", "--name", "same", "--rootfs", rfs, "sleep", "1000")
		}()
	}
	wg.Wait()
	ok := 0
	for _, r := range results {
		if r.code == 0 {
			ok++
			assert.Equal(t, "same\n", r.stdout)
			continue
		}
		assert.Equal(t, exitVessel, r.code, r.stderr)
		assert.Contains(t, r.stderr, "name in use")
	}
	assert.Equal(t, 1, ok, "runs that started")
	rows := psRows(t, root)
	require.Len(t, rows, 1)
	assert.Equal(t, statusRunning, rows["same"].Status)
	dirs := cgroupDirsOf(t, root, "same")
	vcli(t, root, nil, "rm", "-f", "same").must(t, "rm -f")
	assertNoDirs(t, dirs)
	st, err := oci.NewStore(root)
	require.NoError(t, err)
	ids, _ := st.List()
	assert.Empty(t, ids)
}

func TestVolumes(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	rfs := testutil.BusyboxRootfsCopy(t)
	// The volume directory is the library's; leave it as it was.
	var made []string
	for _, d := range []string{filepath.Dir(volumeDir), volumeDir} {
		if _, err := os.Stat(d); errors.Is(err, fs.ErrNotExist) {
			made = append([]string{d}, made...)
		}
	}
	removeOnFailure(t, root, "vuser")
	name := fmt.Sprintf("clitest-%d", os.Getpid())
	t.Cleanup(func() {
		os.RemoveAll(filepath.Join(volumeDir, name))
		os.RemoveAll(filepath.Join(volumeDir, name+"-b"))
		for _, d := range made {
			os.Remove(d)
		}
	})
	vcli(t, root, nil, "run", "-d", "--name", "vuser", "-v", name+":/v", "--rootfs", rfs, "sh", "-c", "echo kept > /v/f; sleep 1000").must(t, "run -v NAME:/v")
	// --mount type=volume names the same volume.
	r := vcli(t, root, nil, "run", "--rm", "--mount", "type=volume,source="+name+",target=/w,readonly", "--rootfs", rfs,
		"sh", "-c", "until [ -e /w/f ]; do sleep 0.05; done; cat /w/f; touch /w/g 2>/dev/null || echo ro")
	r.must(t, "run --mount type=volume")
	assert.Equal(t, "kept\nro\n", r.stdout)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(volumeDir, name, "data/f")); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	assert.Contains(t, vcli(t, root, nil, "volume", "ls", "-q").must(t, "volume ls").stdout, name+"\n")
	var docs []volumeDoc
	r = vcli(t, root, nil, "volume", "inspect", name).must(t, "volume inspect")
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &docs))
	require.Len(t, docs, 1)
	assert.Equal(t, []string{"vuser"}, docs[0].InUseBy)
	assert.Equal(t, int64(5), docs[0].Size)
	data, err := os.ReadFile(filepath.Join(docs[0].Path, "f"))
	require.NoError(t, err)
	assert.Equal(t, "kept\n", string(data))

	r = vcli(t, root, nil, "volume", "rm", "-f", name)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "in use by [vuser]")
	vcli(t, root, nil, "rm", "-f", "vuser").must(t, "rm -f")
	vcli(t, root, nil, "volume", "create", name+"-b").must(t, "volume create")
	r = vcli(t, root, nil, "volume", "prune").must(t, "volume prune")
	assert.Contains(t, r.stdout, name+"\n")
	assert.Contains(t, r.stdout, name+"-b\n")
	for _, n := range []string{name, name + "-b"} {
		_, err := os.Stat(filepath.Join(volumeDir, n))
		assert.True(t, errors.Is(err, fs.ErrNotExist), "volume %s left", n)
	}
	assert.Equal(t, 1, vcli(t, root, nil, "volume", "inspect", name).code)
	assert.Equal(t, exitVessel, vcli(t, root, nil, "volume", "create", "../x").code)
}

func TestCompletion(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	rfs := testutil.BusyboxRootfsCopy(t)
	removeOnFailure(t, root, "compme")
	for _, sh := range []string{"bash", "zsh", "fish"} {
		r := vcli(t, root, nil, "completion", sh).must(t, "completion "+sh)
		assert.Contains(t, r.stdout, "vessel", sh)
	}
	bash := vcli(t, root, nil, "completion", "bash").stdout
	out, err := exec.Command("bash", "-n", "-c", bash).CombinedOutput()
	require.NoError(t, err, "the bash script does not parse: %s", out)

	vcli(t, root, nil, "run", "-d", "--name", "compme", "--rootfs", rfs, "sleep", "1000").must(t, "run -d")
	for _, verb := range []string{"rm", "exec", "logs", "kill", "stop"} {
		r := vcli(t, root, nil, "__complete", verb, "comp")
		assert.Contains(t, r.stdout, "compme\n", verb)
	}
	r := vcli(t, root, nil, "__complete", "run", "--pids")
	assert.Contains(t, r.stdout, "--pids-limit")
	r = vcli(t, root, nil, "__complete", "ru")
	assert.Contains(t, r.stdout, "run")
	vcli(t, root, nil, "rm", "-f", "compme").must(t, "rm -f")
}

func TestImages(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	removeOnFailure(t, root, "imguser")
	// The layer store is the library's: leave it as it was.
	var made []string
	for _, d := range []string{filepath.Dir(layerStore), layerStore, filepath.Join(layerStore, "sha256")} {
		if _, err := os.Stat(d); errors.Is(err, fs.ErrNotExist) {
			made = append([]string{d}, made...)
		}
	}
	// A layer of its own (a marker file makes its digest unique).
	rfs := testutil.BusyboxRootfsCopy(t)
	require.NoError(t, os.WriteFile(filepath.Join(rfs, "marker"), []byte(fmt.Sprintf("%s %d", t.Name(), time.Now().UnixNano())), 0o644))
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	require.NoError(t, testutil.AddTree(tw, rfs))
	require.NoError(t, tw.Close())
	img := filepath.Join(t.TempDir(), "image")
	require.NoError(t, testutil.WriteOCILayout(img, []testutil.Layer{testutil.TarLayer(tb.Bytes(), true)}, testutil.ImageConfig{}, "", false))
	digests, err := imageLayers(img)
	require.NoError(t, err)
	require.Len(t, digests, 1)
	digest := digests[0]
	layerPath := filepath.Join(layerStore, "sha256", strings.TrimPrefix(digest, "sha256:"))
	t.Cleanup(func() {
		os.RemoveAll(layerPath)
		for _, d := range made {
			os.Remove(d)
		}
	})

	// On a terminal, the unpacking shows a progress bar (at once here:
	// VESSEL_PROGRESS_DELAY=0; one second by default).
	cmd := exec.Command(vesselBin, "--root", root, "run", "--rm", "--image", img, "true")
	cmd.Env = append(os.Environ(), "VESSEL_CGROUP_GROUP="+testutil.CgroupGroup, "VESSEL_PROGRESS_DELAY=0")
	ptmx, err := pty.Start(cmd)
	require.NoError(t, err)
	defer ptmx.Close()
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(&out, ptmx)
		close(copied)
	}()
	require.NoError(t, cmd.Wait(), "run --image on a terminal: %q", out.String())
	select {
	case <-copied:
	case <-time.After(5 * time.Second):
	}
	assert.Contains(t, out.String(), "unpacking image image")
	assert.Regexp(t, `\d+(\.\d+)? ?[kMG]?B`, out.String())
	// Not on a terminal: no bar.
	assert.NotContains(t, vcli(t, root, nil, "run", "--rm", "--image", img, "true").must(t, "run --image").stderr, "unpacking")

	// --user NAME:GROUP from the image's own /etc/passwd and /etc/group.
	r := vcli(t, root, nil, "run", "--rm", "--image", img, "-u", "nobody:nogroup", "sh", "-c", "id -u; id -g; echo $HOME")
	r.must(t, "run --image -u nobody:nogroup")
	assert.Equal(t, "65534\n65534\n/nonexistent\n", r.stdout)
	r = vcli(t, root, nil, "run", "--rm", "--image", img, "-u", "nosuch", "true")
	assert.Equal(t, exitVessel, r.code)
	assert.Contains(t, r.stderr, "no such user in /etc/passwd of the image")

	vcli(t, root, nil, "run", "-d", "--name", "imguser", "--image", img, "sleep", "1000").must(t, "run --image")
	assert.Contains(t, vcli(t, root, nil, "image", "ls", "-q").must(t, "image ls -q").stdout, digest+"\n")
	ls := vcli(t, root, nil, "image", "ls").must(t, "image ls").stdout
	assert.Regexp(t, `(?m)^`+digest[:19]+`\s+\S+\s+\S+ ago\s+imguser$`, ls)
	r = vcli(t, root, nil, "image", "rm", digest[7:20])
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "in use by imguser")
	_, err = os.Stat(layerPath)
	require.NoError(t, err, "a layer in use was removed")

	vcli(t, root, nil, "rm", "-f", "imguser").must(t, "rm -f")
	r = vcli(t, root, nil, "image", "rm", digest)
	r.must(t, "image rm")
	assert.Equal(t, digest+"\n", r.stdout)
	_, err = os.Stat(layerPath)
	assert.True(t, errors.Is(err, fs.ErrNotExist), "image rm left the layer")
	assert.Equal(t, 1, vcli(t, root, nil, "image", "rm", digest).code, "rm of a removed layer")
	assert.Equal(t, 1, vcli(t, root, nil, "image", "rm", "xyz").code)
}

// TestStoreLocation: root's store is /run/vessel (tests pass --root);
// another user's is $XDG_RUNTIME_DIR/vessel.
func TestStoreLocation(t *testing.T) {
	testutil.RequireRoot(t)
	xdg := t.TempDir()
	require.NoError(t, os.Chown(xdg, 65534, 65534))
	require.NoError(t, os.Chmod(filepath.Dir(xdg), 0o755))
	cmd := exec.Command(vesselBin, "ps", "-a")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "XDG_RUNTIME_DIR=" + xdg}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "NAME")
	fi, err := os.Stat(filepath.Join(xdg, "vessel"))
	require.NoError(t, err, "the store was not made in $XDG_RUNTIME_DIR")
	assert.True(t, fi.IsDir())
	assert.Equal(t, "/run/vessel", defaultRoot())
}
