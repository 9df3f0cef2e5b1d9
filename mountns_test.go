package vessel_test

import (
	"errors"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/rootfs"
)

// TestRootInJoinedMountNamespace: a directory root with a joined mount
// namespace is built in that namespace (the probe sees it as its own,
// with its /proc), nothing is mounted in the host's, and joining the
// host's own mount namespace to build a root there is refused by name.
func TestRootInJoinedMountNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	holder := exec.Command("unshare", "--mount", "--fork", "sleep", "1000")
	holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, holder.Start())
	t.Cleanup(func() {
		_ = syscall.Kill(-holder.Process.Pid, syscall.SIGKILL)
		_ = holder.Wait()
	})
	nsPath := "/proc/" + strconv.Itoa(holder.Process.Pid) + "/ns/mnt"
	var want unix.Stat_t
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		require.NoError(t, unix.Stat(nsPath, &want))
		if want.Ino != hostNS(t, "mnt") {
			break
		}
		require.False(t, time.Now().After(deadline), "unshare did not enter a new mount namespace")
	}
	root := testutil.BusyboxRootfsCopy(t)
	cfg := newConfig().WithRootfs(rootfs.Dir(root)).WithNamespace(namespaces.Mount, nsPath)
	r := report(t, cfg)
	assert.Equal(t, want.Ino, r.Namespaces["mnt"], "the probe's mount namespace is the joined one")
	assert.Equal(t, "proc", mountAt(t, r, "/proc").FSType)
	assert.Empty(t, testutil.MountsBelow(t, root), "mounted in the host's mount namespace")

	_, err := vessel.New("own-mntns", newConfig().WithRootfs(rootfs.Dir(testutil.BusyboxRootfsCopy(t))).
		WithNamespace(namespaces.Mount, "/proc/self/ns/mnt"))
	var ce *vessel.ConfigError
	require.True(t, errors.As(err, &ce), "joining the host's mount namespace: %v", err)
	assert.Equal(t, "namespaces[mount].path", ce.Field)
}

// TestNoMountNamespace: without a mount namespace of its own a container
// with a directory root is in the host's mount namespace, its root that
// directory with the standard mounts (the probe runs from it and sees
// its /proc), and the host's mount table never changes: the root is a
// detached tree.
func TestNoMountNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	root := testutil.BusyboxRootfsCopy(t)
	cfg := newConfig().WithRootfs(rootfs.Dir(root))
	cfg.Namespaces = cfg.Namespaces.Without(namespaces.Mount).Without(namespaces.PID).Without(namespaces.User)
	cfg.Hostname = ""
	r := report(t, cfg)
	assert.Equal(t, hostNS(t, "mnt"), r.Namespaces["mnt"], "the host's mount namespace")
	assert.NotEqual(t, hostNS(t, "uts"), r.Namespaces["uts"], "its own UTS namespace still")
	assert.Equal(t, "/probe", r.Exe, "the probe ran from the container's root")
	assert.Empty(t, testutil.MountsBelow(t, root), "mounted in the host's mount namespace")

	// A new pid or user namespace needs a mount namespace of its own.
	for _, k := range []namespaces.Kind{namespaces.PID, namespaces.User} {
		c := newConfig().WithRootfs(rootfs.Dir(testutil.BusyboxRootfsCopy(t)))
		c.Namespaces = namespaces.Set{{Kind: k}}
		c.Hostname = ""
		_, err := vessel.New("nomnt", c)
		var ce *vessel.ConfigError
		require.True(t, errors.As(err, &ce), "%s without a mount namespace: %v", k, err)
		assert.Equal(t, "namespaces", ce.Field)
	}
}
