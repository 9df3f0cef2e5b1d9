package vessel_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/internal/testutil"
)

// rootlessTests are the core tests that run again as an ordinary user.
var rootlessTests = []string{
	"TestExitCode", "TestExitBySignal", "TestSignalForwarded", "TestExecErrorsAreTyped",
	"TestStateTransitions", "TestTimeout", "TestStdioAndEnv", "TestExtraFiles",
	"TestContextCancelKillsTree", "TestSetupErrorFromChild",
	"TestPIDNamespace", "TestUTSNamespace", "TestIPCNamespace", "TestNetNamespace",
	"TestCgroupNamespace", "TestTimeNamespace", "TestSystemMounts", "TestMaskedAndReadonlyPaths",
	"TestDirRootfsAndReadonly", "TestTTY", "TestOverlayContainersShareABase",
}

// TestRootless runs the core suite again as an unprivileged host user
// (nobody): containers get a user namespace where container root is that
// user, no cgroup (none is delegated here, which the container reports),
// and loopback networking. Run as root it starts that run (this test
// binary as nobody, with the core tests and TestRootless itself); inside
// it, as nobody, it checks what only a rootless container has.
func TestRootless(t *testing.T) {
	if os.Getenv("VESSEL_ROOTLESS") == "1" {
		t.Run("Report", rootlessReport)
		if _, err := exec.LookPath("newuidmap"); err == nil {
			t.Run("Ranges", rootlessRanges)
		}
		return
	}
	const uid, gid = 65534, 65534
	dir, bin := copyTestBinary(t, "vessel-rootless-")
	probePath := testutil.BuildProbe(t)
	// Give nobody a subordinate id range for the newuidmap test, and put
	// the files back as they were afterwards.
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		old, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		existed := err == nil
		if err := os.WriteFile(f, append(append([]byte{}, old...), []byte("nobody:400000:65536\n")...), 0o644); err != nil {
			t.Fatal(err)
		}
		f := f
		t.Cleanup(func() {
			if existed {
				os.WriteFile(f, old, 0o644)
			} else {
				os.Remove(f)
			}
		})
	}
	work := filepath.Join(dir, "tmp")
	os.Mkdir(work, 0o1777)
	os.Chmod(work, 0o1777)
	// The uidmap package may be missing (the qemu guest's busybox
	// userland): then only own-id mappings are tested.
	_, noHelpers := exec.LookPath("newuidmap")
	tests := append(append([]string{}, rootlessTests...), "TestRootless")
	cmd := exec.Command(bin, "-test.run", "^("+strings.Join(tests, "|")+")$", "-test.count=1", "-test.v")
	cmd.Dir = work
	cmd.Env = []string{"VESSEL_ROOTLESS=1", "PATH=" + os.Getenv("PATH"), "TMPDIR=" + work, "HOME=" + work,
		"VESSEL_PROBE=" + probePath, "VESSEL_BUSYBOX=/bin/busybox"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil || !strings.Contains(out.String(), "PASS") {
		t.Fatalf("rootless run: %v\n%s", err, out.String())
	}
	want := append(append([]string{}, rootlessTests...), "TestRootless/Report")
	if noHelpers == nil {
		want = append(want, "TestRootless/Ranges")
	}
	for _, name := range want {
		if !strings.Contains(out.String(), "--- PASS: "+name+" ") {
			t.Errorf("%s did not pass as an ordinary user", name)
		}
	}
	t.Logf("rootless run:\n%s", lastLines(out.String(), 30))
}

// rootlessReport checks what a rootless container is: container root
// is the calling user, and the missing cgroup is reported, not hidden.
func rootlessReport(t *testing.T) {
	r := report(t, newConfig())
	if len(r.UIDMap) != 1 || r.UIDMap[0].Outside != uint32(os.Geteuid()) || r.UID != 0 {
		t.Fatalf("uid map %+v uid %d", r.UIDMap, r.UID)
	}
	c, _ := start(t, newConfig(), "sleep", "10")
	if w := c.Warnings(); len(w) == 0 || !strings.Contains(w[0], "cgroup") {
		t.Fatalf("no report of the missing cgroup: %v", w)
	}
	if _, err := c.Stats(); err == nil {
		t.Fatal("Stats worked without a cgroup")
	}
	// Asking for limits without a delegated cgroup is an error, not a
	// silent skip.
	_, err := run(t, newConfig().WithMemoryLimit(64<<20), "true")
	if err == nil || !strings.Contains(err.Error(), "limits unavailable") {
		t.Fatalf("memory limit without a cgroup: %v", err)
	}
	// Both say how to get a delegated cgroup on this host's layout.
	layout, _ := cgroups.Detect()
	hint := "systemd-run --user --scope -p Delegate=yes"
	if layout != cgroups.V2 {
		hint = "every hierarchy"
	}
	if !strings.Contains(err.Error(), hint) || !strings.Contains(c.Warnings()[0], hint) {
		t.Fatalf("no word on delegating a cgroup (%q) on this %s host:\nerror: %v\nwarning: %s", hint, layout, err, c.Warnings()[0])
	}
}

// copyTestBinary copies this test binary to dir/vessel.test, in a new
// directory named with prefix that every user may enter (for an
// unprivileged user, or a bind mount into a container), removed when the
// test ends.
func copyTestBinary(t testing.TB, prefix string) (dir, bin string) {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	bin = filepath.Join(dir, "vessel.test")
	in, err := os.Open("/proc/self/exe")
	require.NoError(t, err)
	defer in.Close()
	out, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(out, in)
	require.NoError(t, errors.Join(err, out.Close()))
	return dir, bin
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// rootlessRanges maps a range of ids for an ordinary user through
// newuidmap/newgidmap (Debian's uidmap) and /etc/subuid: container root is
// the user, container user 1000 is a subordinate id on the host.
func rootlessRanges(t *testing.T) {
	uids, gids, err := vessel.SubIDMappings()
	if err != nil {
		t.Fatal(err)
	}
	r := report(t, newConfig().WithUserNamespace(uids, gids))
	if len(r.UIDMap) != 2 || r.UIDMap[1].Outside != 400000 || r.UID != 0 {
		t.Fatalf("uid map %+v uid %d", r.UIDMap, r.UID)
	}
	if r.Capabilities.Effective.Hex == "0000000000000000" {
		t.Fatal("container root has no capabilities after newuidmap")
	}
	c, _ := start(t, newConfig().WithUserNamespace(uids, gids).WithUser(1000, 1000), "sleep", "10")
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.State().Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(st), "Uid:\t400999\t400999\t400999\t400999") {
		t.Fatalf("container uid 1000 on the host:\n%s", st)
	}
}

// TestRootlessDelegatedCgroup follows the README's Rootless section: root
// delegates a cgroup to an ordinary user (nobody) in every hierarchy the
// host has (on this hybrid machine the v1 controllers, the unified one and
// name=systemd), the program starts inside it, and its containers get
// their limits, statistics and no warning. Inside that run, as nobody, it
// checks the limits from the host side.
func TestRootlessDelegatedCgroup(t *testing.T) {
	if os.Getenv("VESSEL_DELEGATED") == "1" {
		rootlessDelegated(t)
		return
	}
	const uid, gid = 65534, 65534
	dir, bin := copyTestBinary(t, "vessel-delegated-")
	work := filepath.Join(dir, "tmp")
	require.NoError(t, os.Mkdir(work, 0o1777))
	require.NoError(t, os.Chmod(work, 0o1777))

	// The user's program waits (read) until root has moved it into the
	// delegated cgroups, then becomes the test binary.
	cmd := exec.Command("/bin/sh", "-c", `read go && exec "$0" "$@"`, bin,
		"-test.run", "^TestRootlessDelegatedCgroup$", "-test.count=1", "-test.v")
	cmd.Dir = work
	cmd.Env = []string{"VESSEL_ROOTLESS=1", "VESSEL_DELEGATED=1", "PATH=" + os.Getenv("PATH"), "TMPDIR=" + work, "HOME=" + work}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	// Delegate: a cgroup below this program's own in every hierarchy,
	// owned by the user, with the user's program in it.
	dirs := testutil.GroupDirs(t, fmt.Sprintf("%s/delegated-%d", testutil.CgroupGroup, os.Getpid()))
	require.NotEmpty(t, dirs)
	v2 := false
	if layout, _ := cgroups.Detect(); layout == cgroups.V2 {
		v2 = true
		cmd.Env = append(cmd.Env, "VESSEL_DELEGATED_PARENT="+strings.TrimPrefix(dirs[0], "/sys/fs/cgroup"))
	}
	release, err := cmd.StdinPipe()
	require.NoError(t, err)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	defer cmd.Process.Kill()

	defer func() {
		for _, d := range dirs {
			// Whatever the user's containers left would show up here.
			ents, _ := os.ReadDir(d)
			for _, e := range ents {
				if e.IsDir() {
					t.Errorf("left behind in the delegated cgroup: %s", filepath.Join(d, e.Name()))
				}
			}
			if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
				t.Errorf("removing %s: %v", d, err)
			}
		}
	}()
	for _, d := range dirs {
		require.NoError(t, os.MkdirAll(d, 0o755))
		if _, err := os.Stat(filepath.Join(d, "cgroup.subtree_control")); err == nil {
			// cgroup v2: the limits' controllers enabled down to d (best
			// effort: a hybrid unified hierarchy has none of them).
			for _, level := range []string{filepath.Dir(filepath.Dir(d)), filepath.Dir(d)} {
				_ = os.WriteFile(filepath.Join(level, "cgroup.subtree_control"), []byte("+memory +pids"), 0o644)
			}
		}
		if strings.HasPrefix(d, "/sys/fs/cgroup/cpuset/") {
			// A v1 cpuset takes no task until it has CPUs and nodes.
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				for _, level := range []string{filepath.Dir(d), d} {
					v, err := os.ReadFile(filepath.Join(filepath.Dir(level), f))
					require.NoError(t, err)
					require.NoError(t, os.WriteFile(filepath.Join(level, f), v, 0o644))
				}
			}
		}
		for _, f := range []string{"", "cgroup.procs", "tasks", "cgroup.subtree_control", "cgroup.threads"} {
			if err := os.Chown(filepath.Join(d, f), uid, gid); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
		}
		into := d
		if v2 {
			// cgroup v2: a cgroup with processes cannot enable
			// controllers for its children (the no-internal-process
			// rule), so the user's program goes into a leaf and its
			// containers go beside it, below the delegated cgroup (as
			// systemd's Delegate=yes services arrange it).
			into = filepath.Join(d, "leaf")
			require.NoError(t, os.Mkdir(into, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte("+memory +pids"), 0o644))
			for _, f := range []string{"", "cgroup.procs", "cgroup.threads"} {
				require.NoError(t, os.Chown(filepath.Join(into, f), uid, gid))
			}
			defer os.Remove(into)
		}
		require.NoError(t, os.WriteFile(filepath.Join(into, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644))
	}
	_, err = release.Write([]byte("go\n"))
	require.NoError(t, err)
	err = cmd.Wait()
	require.NoError(t, err, "delegated rootless run:\n%s", out.String())
	assert.Contains(t, out.String(), "--- PASS: TestRootlessDelegatedCgroup ")
	t.Logf("delegated rootless run:\n%s", lastLines(out.String(), 10))
}

// rootlessDelegated runs as the ordinary user inside a delegated cgroup:
// a container's limits are set, its statistics read, and nothing warns.
func rootlessDelegated(t *testing.T) {
	require.NotZero(t, os.Geteuid())
	cfg := newConfig().WithMemoryLimit(64 << 20).WithPids(32)
	if parent := os.Getenv("VESSEL_DELEGATED_PARENT"); parent != "" {
		cfg.Cgroup.Parent = parent
	}
	c, _ := start(t, cfg, "sleep", "10")
	assert.Empty(t, c.Warnings())
	st, err := c.Stats()
	require.NoError(t, err)
	assert.Positive(t, st.Pids.Current)
	layout, err := cgroups.Detect()
	require.NoError(t, err)
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", c.State().Pid))
	require.NoError(t, err)
	limits := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
		parts := strings.SplitN(l, ":", 3)
		require.Len(t, parts, 3)
		switch {
		case layout == cgroups.V2 && parts[0] == "0":
			for _, f := range []string{"memory.max", "pids.max"} {
				b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", parts[2], f))
				require.NoError(t, err)
				limits[f] = strings.TrimSpace(string(b))
			}
		case layout != cgroups.V2 && (parts[1] == "memory" || parts[1] == "pids"):
			f := map[string]string{"memory": "memory.limit_in_bytes", "pids": "pids.max"}[parts[1]]
			b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", parts[1], parts[2], f))
			require.NoError(t, err)
			limits[strings.Replace(f, "limit_in_bytes", "max", 1)] = strings.TrimSpace(string(b))
		}
	}
	assert.Equal(t, map[string]string{"memory.max": "67108864", "pids.max": "32"}, limits)
}
