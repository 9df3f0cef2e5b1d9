package child

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/internal/initproto"
	"github.com/openvessel/vessel/steperr"
)

// unifiedRoot is where this host mounts its cgroup2 hierarchy: /sys/fs/cgroup
// on a pure v2 host, /sys/fs/cgroup/unified on a hybrid one.
func unifiedRoot(t *testing.T) string {
	t.Helper()
	for _, dir := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(dir, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return dir
		}
	}
	t.Fatal("no cgroup2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified")
	return ""
}

// sleeper starts a process to place in cgroups; it is killed at test end.
func sleeper(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd.Process.Pid
}

func cgroupLine(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			return p
		}
	}
	t.Fatalf("no cgroup2 line in /proc/%d/cgroup: %s", pid, b)
	return ""
}

// TestLeafOfFindsPIDBelow: the cgroup that holds a process somewhere
// below the container's is found, and another process joins it through
// the cgroup.procs leafOf opened.
func TestLeafOfFindsPIDBelow(t *testing.T) {
	root := unifiedRoot(t)
	parent := filepath.Join(root, "vessel-test")
	if _, err := os.Stat(parent); os.IsNotExist(err) {
		t.Cleanup(func() { os.Remove(parent) }) // unless another test uses it meanwhile
	}
	base := filepath.Join(parent, fmt.Sprintf("leaf-%d", os.Getpid()))
	for _, d := range []string{"a", "c", "a/b"} {
		require.NoError(t, os.MkdirAll(filepath.Join(base, d), 0o755))
	}
	t.Cleanup(func() {
		// After the sleepers are killed (cleanups run last-in first-out).
		for _, d := range []string{"a/b", "a", "c", ""} {
			for i := 0; i < 100 && os.Remove(filepath.Join(base, d)) != nil; i++ {
				unix.Nanosleep(&unix.Timespec{Nsec: 10e6}, nil)
			}
		}
	})
	pid1, other := sleeper(t), sleeper(t)
	require.NoError(t, os.WriteFile(filepath.Join(base, "a/b/cgroup.procs"), []byte(strconv.Itoa(pid1)), 0))

	dir, err := unix.Open(base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(dir)
	cg := &cgroupSet{v2Dir: dir, v2Procs: -1, v2Home: -1, v2NS: -1, list: -1}

	rel, err := cg.cgroupOf(pid1)
	require.NoError(t, err)
	assert.Equal(t, "a/b", rel)
	_, err = cg.cgroupOf(other)
	assert.ErrorContains(t, err, "no cgroup below the container's holds its PID 1")

	leaf, err := cg.leafOf(pid1)
	require.NoError(t, err)
	require.NotNil(t, leaf)
	defer unix.Close(leaf.procs)
	assert.Equal(t, "a/b", leaf.rel)
	_, err = unix.Write(leaf.procs, []byte(strconv.Itoa(other)))
	require.NoError(t, err)
	assert.Equal(t, strings.TrimPrefix(base, root)+"/a/b", cgroupLine(t, other))
}

// TestCgroupRefused: what the init's process starts report when the
// cgroup2 cgroup they join refuses them, and nothing else, retries.
func TestCgroupRefused(t *testing.T) {
	assert.True(t, cgroupRefused(unix.EBUSY))
	// As the init's own start reports it, and as an exec stage's crosses
	// the protocol.
	assert.True(t, cgroupRefused(&steperr.Error{Step: "exec", Path: "/bin/sh", Err: unix.EBUSY}))
	assert.True(t, cgroupRefused(initproto.InfoOf("join container cgroup", "", unix.ENODEV).StepError()))
	assert.False(t, cgroupRefused(&steperr.Error{Step: "exec", Path: "/bin/sh", Err: unix.ENOENT}))
	assert.False(t, cgroupRefused(initproto.InfoOf("exec", "/bin/sh", unix.EACCES).StepError()))
}

// TestPidsListsTheSubtree: the processes the init signals for a signal to
// every process (pids) are those of the container's cgroup2 cgroup and
// of every cgroup below it, where a booted system's init moves them.
func TestPidsListsTheSubtree(t *testing.T) {
	root := unifiedRoot(t)
	parent := filepath.Join(root, "vessel-test")
	if _, err := os.Stat(parent); os.IsNotExist(err) {
		t.Cleanup(func() { os.Remove(parent) })
	}
	base := filepath.Join(parent, fmt.Sprintf("subtree-%d", os.Getpid()))
	require.NoError(t, os.MkdirAll(filepath.Join(base, "init.scope"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(base, "system.slice/a.service"), 0o755))
	t.Cleanup(func() {
		for _, d := range []string{"system.slice/a.service", "system.slice", "init.scope", ""} {
			for i := 0; i < 100 && os.Remove(filepath.Join(base, d)) != nil; i++ {
				unix.Nanosleep(&unix.Timespec{Nsec: 10e6}, nil)
			}
		}
	})
	inScope, inService, outside := sleeper(t), sleeper(t), sleeper(t)
	require.NoError(t, os.WriteFile(filepath.Join(base, "init.scope/cgroup.procs"), []byte(strconv.Itoa(inScope)), 0))
	require.NoError(t, os.WriteFile(filepath.Join(base, "system.slice/a.service/cgroup.procs"), []byte(strconv.Itoa(inService)), 0))

	dir, err := unix.Open(base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(dir)
	cg := &cgroupSet{v2Dir: dir, v2Procs: -1, v2Home: -1, v2NS: -1, list: -1}
	pids := cg.pids()
	assert.ElementsMatch(t, []int{inScope, inService}, pids)
	assert.NotContains(t, pids, outside)
}
