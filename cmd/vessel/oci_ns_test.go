package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/openvessel/vessel/internal/testutil"
)

// holdMountNS starts `unshare --mount --fork sleep` (what runtime-tools'
// linux_ns_path does) and returns the path of the mount namespace it holds;
// the holder is killed when the test ends.
func holdMountNS(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("unshare", "--mount", "--fork", "sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	host, err := os.Readlink("/proc/self/ns/mnt")
	require.NoError(t, err)
	path := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/mnt"
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if ns, err := os.Readlink(path); err == nil && ns != host {
			return path
		}
		require.False(t, time.Now().After(deadline), "unshare did not enter a new mount namespace")
	}
}

// TestOCIJoinMountNamespaceByPath: linux.namespaces mount with a path puts
// the container in that mount namespace, with its root and mounts built
// there (as runc does), nothing mounted in the host's; joining the host's
// own mount namespace is refused, naming the field.
func TestOCIJoinMountNamespaceByPath(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	nsPath := holdMountNS(t)
	want, err := os.Readlink(nsPath)
	require.NoError(t, err)
	joinMount := func(path string) func(*specs.Spec) {
		return func(s *specs.Spec) {
			for i, n := range s.Linux.Namespaces {
				if n.Type == specs.MountNamespace {
					s.Linux.Namespaces[i].Path = path
				}
			}
		}
	}
	var roots []string
	marked := func(s *specs.Spec) {
		roots = append(roots, s.Root.Path)
		joinMount(nsPath)(s)
		require.NoError(t, os.WriteFile(filepath.Join(s.Root.Path, "etc", "marker"), []byte("bundle root\n"), 0o644))
	}
	b := bundle(t, "mntjoin", []string{"sleep", "100"}, marked)
	r := cli(t, root, "create", "--bundle", b, "mntjoin")
	require.Equal(t, 0, r.code, "create: %s", r.stderr)
	st := state(t, root, "mntjoin")
	got, err := os.Readlink("/proc/" + strconv.Itoa(st.Pid) + "/ns/mnt")
	require.NoError(t, err)
	assert.Equal(t, want, got, "the container's mount namespace is the one at the path")
	assert.Empty(t, testutil.MountsBelow(t, roots[0]), "nothing mounted in the host's mount namespace")
	rec := record(t, root, "mntjoin")
	cli(t, root, "delete", "--force", "mntjoin").ok(t, "delete")
	assertGone(t, root, rec)

	// The workload's view, run in the foreground. A namespace a container
	// joined has that container's root from then on (pivot_root moves
	// every process whose root was the old one, as under runc): a fresh
	// one here.
	nsPath = holdMountNS(t)
	want, err = os.Readlink(nsPath)
	require.NoError(t, err)
	stdout := runInside(t, root, "mntjoin2", "readlink /proc/self/ns/mnt; cat /etc/marker 2>&1; ls /proc/1/ns/mnt", marked)
	assert.Equal(t, want+"\nbundle root\n/proc/1/ns/mnt\n", stdout)
	assert.Empty(t, testutil.MountsBelow(t, roots[1]), "nothing mounted in the host's mount namespace")

	// The host's own mount namespace (the runtime's: /proc/self is the
	// vessel command's): refused, nothing left.
	b = bundle(t, "mnthost", []string{"true"}, joinMount("/proc/self/ns/mnt"))
	r = cli(t, root, "create", "--bundle", b, "mnthost")
	assert.NotEqual(t, 0, r.code)
	assert.Contains(t, r.stderr, "namespaces[mount].path")
	assert.Contains(t, r.stderr, "is the host's mount namespace")
}

// TestOCINoNamespaces: a container that lists no namespaces inherits
// every one of the runtime's, the mount namespace included (what
// runtime-tools' linux_ns_itype checks, as runc does), yet its root is the
// bundle's with its /proc, and nothing is mounted in the host's mount
// namespace while it runs or after (its root is a detached tree). A new
// pid or user namespace without a mount namespace is refused, naming the
// reason.
func TestOCINoNamespaces(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	var roots []string
	noNamespaces := func(s *specs.Spec) {
		roots = append(roots, s.Root.Path)
		s.Linux.Namespaces = nil
		s.Hostname = ""
		require.NoError(t, os.WriteFile(filepath.Join(s.Root.Path, "etc", "marker"), []byte("bundle root\n"), 0o644))
	}
	b := bundle(t, "nons", []string{"sleep", "100"}, noNamespaces)
	r := cli(t, root, "create", "--bundle", b, "nons")
	require.Equal(t, 0, r.code, "create: %s", r.stderr)
	st := state(t, root, "nons")
	for _, ns := range []string{"cgroup", "ipc", "mnt", "net", "pid", "user", "uts"} {
		want, err := os.Readlink("/proc/self/ns/" + ns)
		require.NoError(t, err)
		got, err := os.Readlink("/proc/" + strconv.Itoa(st.Pid) + "/ns/" + ns)
		require.NoError(t, err)
		assert.Equal(t, want, got, "namespace %s inherited", ns)
	}
	assert.Empty(t, testutil.MountsBelow(t, roots[0]), "nothing mounted in the host's mount namespace")
	rec := record(t, root, "nons")
	cli(t, root, "delete", "--force", "nons").ok(t, "delete")
	assertGone(t, root, rec)

	out := runInside(t, root, "nons2", "cat /etc/marker; [ -e /proc/self/ns/mnt ] && echo proc; wc -l </proc/self/mountinfo", noNamespaces)
	// The root is the bundle's; /proc is mounted in it; the host's mount
	// table shows nothing below that root (it is not in the table).
	assert.Equal(t, "bundle root\nproc\n0\n", out)
	assert.Empty(t, testutil.MountsBelow(t, roots[1]), "nothing mounted in the host's mount namespace")

	for _, c := range []struct{ ns, reason string }{
		{"pid", "a new pid namespace without a mount namespace"},
		{"user", "a new user namespace without a mount namespace"},
	} {
		b := bundle(t, "nons3", []string{"true"}, func(s *specs.Spec) {
			noNamespaces(s)
			s.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.LinuxNamespaceType(c.ns)}}
			if c.ns == "user" {
				s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
				s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
			}
		})
		r := cli(t, root, "create", "--bundle", b, "nons3")
		assert.NotEqual(t, 0, r.code, c.ns)
		assert.Contains(t, r.stderr, c.reason)
	}
	for _, root := range roots {
		assert.Empty(t, testutil.MountsBelow(t, root), "nothing mounted in the host's mount namespace")
	}
}
