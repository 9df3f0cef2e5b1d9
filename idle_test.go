package vessel_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/rootfs"
)

// A pool's idle PID 1 is a fork of the init that never executes
// anything: seen from the host it holds no descriptor (none of the init's
// control sockets, cgroup files or its executable), no capability, runs
// as the pool's idle user in the container's root, and is named
// vessel-idle. Then it still reaps: a job's orphan leaves no zombie.
func TestPoolIdleProcessHoldsNothing(t *testing.T) {
	root := testutil.BusyboxRootfs(t)
	pool, err := vessel.NewPool(vessel.NewConfig().WithRootfs(rootfs.Dir(root)).WithReadOnlyRootfs(true), 1)
	require.NoError(t, err)
	defer pool.Close()
	pc, err := pool.Get(context.Background())
	require.NoError(t, err)
	defer pc.Release()
	pid := pc.Container().State().Pid
	require.NotZero(t, pid)
	proc := fmt.Sprintf("/proc/%d/", pid)

	// Its one descriptor is the signalfd it waits on, made after it
	// closed everything else.
	fds, err := os.ReadDir(proc + "fd")
	require.NoError(t, err)
	var links []string
	for _, fd := range fds {
		l, err := os.Readlink(proc + "fd/" + fd.Name())
		require.NoError(t, err)
		links = append(links, fd.Name()+" "+l)
	}
	assert.Equal(t, []string{"0 anon_inode:[signalfd]"}, links, "descriptors of the idle PID 1")
	status, err := os.ReadFile(proc + "status")
	require.NoError(t, err)
	for _, cap := range []string{"CapInh", "CapPrm", "CapEff", "CapAmb"} {
		assert.Regexp(t, cap+`:\s+0+\n`, string(status))
	}
	assert.Regexp(t, `Uid:\s+65534\s+65534\s+65534\s+65534\n`, string(status))
	comm, err := os.ReadFile(proc + "comm")
	require.NoError(t, err)
	assert.Equal(t, "vessel-idle\n", string(comm))
	cmdline, err := os.ReadFile(proc + "cmdline")
	require.NoError(t, err)
	assert.Equal(t, "vessel-idle", strings.TrimRight(string(cmdline), "\x00"))
	// Its root is the container's: busybox there, not this test binary.
	_, err = os.Stat(proc + "root/bin/busybox")
	assert.NoError(t, err)
	self, err := os.Executable()
	require.NoError(t, err)
	_, err = os.Stat(proc + "root" + self)
	assert.True(t, os.IsNotExist(err), "the host's %s is visible from the idle process: %v", self, err)

	// An orphan (the background sleep, re-parented to PID 1 when its
	// shell exits) is reaped once it ends.
	var out strings.Builder
	cmd := vessel.Command("/bin/sh", "-c", "sleep 0.2 & echo started")
	cmd.Stdout = &out
	p, err := pc.Exec(context.Background(), cmd)
	require.NoError(t, err)
	require.NoError(t, p.Wait())
	require.Equal(t, "started\n", out.String())
	out.Reset()
	cmd = vessel.Command("/bin/sh", "-c", `sleep 1; for s in /proc/[0-9]*/stat; do read -r line < $s && echo "$line"; done | grep -c ") Z " || true`)
	cmd.Stdout = &out
	p, err = pc.Exec(context.Background(), cmd)
	require.NoError(t, err)
	require.NoError(t, p.Wait())
	assert.Equal(t, "0\n", out.String(), "zombies in the pooled container")
}
