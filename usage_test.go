package vessel_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/internal/probe"
	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/network"
	"github.com/openvessel/vessel/rootfs"
)

// holdIn starts "probe hold ARGS" as the container's main process and
// returns what it got of each resource.
func holdIn(t *testing.T, cfg *vessel.Config, args ...string) (*vessel.Container, map[string]probe.HoldResult) {
	t.Helper()
	c, out := newContainer(t, cfg)
	require.NoError(t, c.Start(context.Background(), append([]string{testutil.RootfsProbePath, "hold"}, args...)...))
	got := map[string]probe.HoldResult{}
	jsonLine(t, out, &got)
	t.Logf("probe hold: %+v", got)
	return c, got
}

func counter(t *testing.T, u *vessel.Usage, name string) vessel.Beancounter {
	t.Helper()
	b, ok := u.Get(name)
	require.True(t, ok, "Usage has no %s", name)
	return b
}

// TestUsageLimitsHitFromInside sets every limit vessel offers on one
// container, has the probe take more than each allows from inside, and
// checks the kernel's answer inside and what Usage reports outside.
func TestUsageLimitsHitFromInside(t *testing.T) {
	testutil.RequireRoot(t)
	root := rootfs.EphemeralOverlay(testutil.BusyboxRootfs(t)).WithQuota(8 << 20).WithInodeQuota(400)
	cfg := newConfig().WithRootfs(root).
		WithPids(48).WithMemoryLimit(256<<20).
		WithPtys(4).WithShmSize(1<<20).WithSysVShm(2<<20, 1<<20).
		WithOpenFiles(64).WithLockedMemory(256 << 10).WithPendingSignals(8)
	layout, err := cgroups.Detect()
	require.NoError(t, err)
	v2 := layout == cgroups.V2
	if !v2 {
		cfg.WithSocketBufferLimit(1 << 20)
	}
	c, got := holdIn(t, cfg,
		"ptys=10", "flocks=3", "mlock=1048576", "sysvshm=8388608", "devshm=4194304", "disk=16777216",
		"inodes=1000", "signals=20", "tcp=3", "udp=2", "unix=2", "tcpbuf=67108864",
		"threads=40", "files=200")

	u, err := c.Usage()
	require.NoError(t, err)
	var table bytes.Buffer
	require.NoError(t, u.WriteTable(&table, c.ID()))
	t.Logf("\n%s", table.String())
	assert.GreaterOrEqual(t, len(u.Resources), 20)

	// Hard limits: the kernel refused inside, Usage shows held at the limit.
	assert.Equal(t, probe.HoldResult{Got: 4, Errno: "ENOSPC"}, stripError(got["ptys"]))
	pty := counter(t, u, "numpty")
	assert.Equal(t, uint64(4), pty.Held)
	assert.Equal(t, uint64(4), pty.Limit)
	assert.Equal(t, vessel.EnforcedContainer, pty.Enforcement)

	assert.Equal(t, probe.HoldResult{Got: 256 << 10, Errno: "ENOMEM"}, stripError(got["mlock"]))
	lck := counter(t, u, "lockedpages")
	assert.Equal(t, uint64(256<<10), lck.Held)
	assert.Equal(t, uint64(256<<10), lck.Limit)

	assert.Equal(t, probe.HoldResult{Got: 2 << 20, Errno: "ENOSPC"}, stripError(got["sysvshm"]))
	sysv := counter(t, u, "sysvshm")
	assert.Equal(t, uint64(2<<20), sysv.Held)
	assert.Equal(t, uint64(2<<20), sysv.Limit)

	assert.Equal(t, "ENOSPC", got["devshm"].Errno)
	assert.Equal(t, int64(1<<20), got["devshm"].Got)
	shm := counter(t, u, "devshm")
	assert.Equal(t, uint64(1<<20), shm.Held)
	assert.Equal(t, uint64(1<<20), shm.Limit)
	assert.GreaterOrEqual(t, counter(t, u, "shmpages").Held, uint64(1<<20), "memory.stat shmem counts /dev/shm")

	assert.Equal(t, "ENOSPC", got["disk"].Errno)
	disk := counter(t, u, "diskspace")
	assert.Equal(t, uint64(8<<20), disk.Limit)
	assert.GreaterOrEqual(t, disk.Held, uint64(got["disk"].Got))
	assert.Equal(t, "ENOSPC", got["inodes"].Errno)
	inodes := counter(t, u, "diskinodes")
	assert.Equal(t, uint64(400), inodes.Limit)
	assert.Equal(t, inodes.Limit, inodes.Held)

	assert.Equal(t, "EAGAIN", got["signals"].Errno)
	assert.LessOrEqual(t, got["signals"].Got, int64(8))
	sig := counter(t, u, "numsiginfo")
	assert.Equal(t, uint64(got["signals"].Got), sig.Held)
	assert.Equal(t, uint64(8), sig.Limit)

	assert.Equal(t, "EAGAIN", got["threads"].Errno)
	tasks := counter(t, u, "numproc")
	assert.Equal(t, uint64(48), tasks.Limit)
	assert.True(t, tasks.FailcntKnown)
	assert.Positive(t, tasks.Failcnt, "pids.events max counts the refused forks")

	assert.Equal(t, "EMFILE", got["files"].Errno)
	files := counter(t, u, "numfile")
	assert.Equal(t, uint64(64), files.Limit)
	assert.GreaterOrEqual(t, files.Held, uint64(64))

	if !v2 {
		buf := counter(t, u, "sockbuf")
		assert.Equal(t, uint64(1<<20), buf.Limit)
		// The buffers stopped growing at the limit (unlimited, loopback
		// takes several MiB here); Linux 6.13 and later no longer count
		// the refusals (FailcntKnown false there).
		assert.Less(t, got["tcpbuf"].Got, int64(3<<20))
		assert.GreaterOrEqual(t, buf.Held, uint64(1<<20-64<<10))
		if buf.FailcntKnown {
			assert.Positive(t, buf.Failcnt, "memory.kmem.tcp.failcnt counts refused buffer growth: %+v", buf)
		}
	}

	// Accounted only: what the probe holds is counted.
	assert.GreaterOrEqual(t, counter(t, u, "numtcpsock").Held, uint64(3+3))
	assert.GreaterOrEqual(t, counter(t, u, "numudpsock").Held, uint64(2))
	assert.GreaterOrEqual(t, counter(t, u, "numunixsock").Held, uint64(4))
	assert.GreaterOrEqual(t, counter(t, u, "numflock").Held, uint64(3))
	assert.GreaterOrEqual(t, counter(t, u, "numsock").Held, uint64(3+3+2+4))
	assert.Equal(t, uint64(vessel.NoLimit), counter(t, u, "numflock").Limit)

	// Vessel keeps the peak of what the kernel keeps none of.
	u2, err := c.Usage()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, counter(t, u2, "numpty").MaxHeld, uint64(4))
}

// TestUsageMemoryFailcntAndOOM: a process that allocates past the memory
// limit is OOM-killed; physpages' failcnt and oomkills move.
func TestUsageMemoryFailcntAndOOM(t *testing.T) {
	testutil.RequireRoot(t)
	cfg := newConfig().WithRootfs(rootfs.Dir(testutil.BusyboxRootfs(t))).WithReadOnlyRootfs(true).
		WithMemoryLimit(48 << 20)
	swaps, err := os.ReadFile("/proc/swaps")
	require.NoError(t, err)
	withSwap := strings.Count(string(swaps), "\n") > 1
	if withSwap {
		// Else the allocation goes to swap instead of being stopped. The
		// memory+swap counter then fails first, and on cgroup v1 Linux
		// 6.13+ no longer counts that.
		cfg.WithMemorySwap(48 << 20)
	}
	c, out := newContainer(t, cfg)
	require.NoError(t, c.Start(context.Background(), testutil.RootfsProbePath, "hold", "memory=1048576"))
	jsonLine(t, out, &map[string]probe.HoldResult{})
	before, err := c.Usage()
	require.NoError(t, err)
	assert.Zero(t, counter(t, before, "oomkills").Held)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := c.Exec(ctx, vessel.Command(testutil.RootfsProbePath, "hold", "memory=134217728"))
	require.NoError(t, err)
	require.Error(t, p.Wait())
	require.NoError(t, ctx.Err(), "the allocation was not stopped")
	after, err := c.Usage()
	require.NoError(t, err)
	mem := counter(t, after, "physpages")
	assert.Equal(t, uint64(48<<20), mem.Limit)
	assert.Equal(t, vessel.EnforcedContainer, mem.Enforcement)
	assert.True(t, mem.FailcntKnown)
	if !withSwap {
		assert.Greater(t, mem.Failcnt, counter(t, before, "physpages").Failcnt)
	}
	assert.GreaterOrEqual(t, mem.MaxHeld, uint64(40<<20))
	assert.Equal(t, uint64(1), counter(t, after, "oomkills").Held)
}

func stripError(r probe.HoldResult) probe.HoldResult { r.Error = ""; return r }

// TestUsageNeedsRunning: no Usage before the start.
func TestUsageNeedsRunning(t *testing.T) {
	c, err := vessel.New(newID(t), newConfig())
	require.NoError(t, err)
	defer c.Destroy()
	_, err = c.Usage()
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "no cgroup"), err.Error())
}

// TestUsageConfigErrors: bad limits are refused naming the field.
func TestUsageConfigErrors(t *testing.T) {
	for field, cfg := range map[string]*vessel.Config{
		"ptys":          newConfig().WithPtys(-1),
		"shmSize":       newConfig().WithShmSize(100),
		"usageSampling": func() *vessel.Config { c := newConfig(); c.UsageSampling = 1; return c }(),
	} {
		_, err := vessel.New(newID(t), cfg)
		var ce *vessel.ConfigError
		require.ErrorAs(t, err, &ce, field)
		assert.Equal(t, field, ce.Field)
	}
	_, err := vessel.New(newID(t), newConfig().WithRootfs(rootfs.EphemeralOverlay("/").WithInodeQuota(10)))
	require.ErrorContains(t, err, "quotaInodes")
}

// TestUsageNetwork: on a bridge with an egress rate, a UDP flood from
// inside is held back by the rate (nettxbytes' failcnt: the qdisc's
// overlimits; most of the flood is dropped there and never counted as
// sent), traffic is counted, and nftables rules put in the
// container's namespace are counted by numiptent.
func TestUsageNetwork(t *testing.T) {
	testutil.RequireRoot(t)
	nc := testBridge(t)
	nc.EgressRate = 1 << 20 // 1 Mbit/s
	cfg := newConfig().WithRootfs(rootfs.Dir(testutil.BusyboxRootfs(t))).WithReadOnlyRootfs(true).WithNetwork(nc)
	c, out := newContainer(t, cfg)
	require.NoError(t, c.Start(context.Background(), testutil.RootfsProbePath, "hold", "udp=1"))
	jsonLine(t, out, &map[string]probe.HoldResult{})
	gw, ok := c.Network().Gateway()
	require.True(t, ok)

	// A rule in the container's own network namespace, added from here.
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", c.State().Pid))
	require.NoError(t, err)
	defer ns.Close()
	conn, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())))
	require.NoError(t, err)
	tbl := conn.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "vps_test"})
	ch := conn.AddChain(&nftables.Chain{Table: tbl, Name: "out", Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter})
	conn.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{&expr.Counter{}}})
	conn.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{&expr.Counter{}}})
	require.NoError(t, conn.Flush())

	p, err := c.Exec(context.Background(), vessel.Command(testutil.RootfsProbePath, "hold", "udpflood="+gw.String()+":9,3000"))
	require.NoError(t, err)
	deadline := time.Now().Add(30 * time.Second)
	var u *vessel.Usage
	for {
		u, err = c.Usage()
		require.NoError(t, err)
		if tx := counter(t, u, "nettxbytes"); (tx.Failcnt > 0 && tx.Held > 20*1400) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.Signal(9)
	p.Wait()
	var table bytes.Buffer
	require.NoError(t, u.WriteTable(&table, c.ID()))
	t.Logf("\n%s", table.String())

	tx := counter(t, u, "nettxbytes")
	assert.Equal(t, uint64(nc.EgressRate/8), tx.Limit)
	assert.Equal(t, vessel.EnforcedRate, tx.Enforcement)
	assert.True(t, tx.FailcntKnown)
	assert.Positive(t, tx.Failcnt, "the tbf qdisc held packets back")
	assert.Greater(t, tx.Held, uint64(20*1400))
	assert.Greater(t, counter(t, u, "nettxpackets").Held, uint64(20))
	assert.Equal(t, uint64(2), counter(t, u, "numiptent").Held)
	assert.GreaterOrEqual(t, counter(t, u, "numudpsock").Held, uint64(1))
}

// TestUsageHostNetworkUnavailable: with the host's network the sockets,
// rules and traffic are the host's, and Usage says it does not account
// them instead of reporting the host's as the container's.
func TestUsageHostNetworkUnavailable(t *testing.T) {
	testutil.RequireRoot(t)
	cfg := newConfig().WithRootfs(rootfs.Dir(testutil.BusyboxRootfs(t))).WithReadOnlyRootfs(true).WithNetwork(network.Host())
	c, out := newContainer(t, cfg)
	require.NoError(t, c.Start(context.Background(), testutil.RootfsProbePath, "hold", "files=1"))
	jsonLine(t, out, &map[string]probe.HoldResult{})
	u, err := c.Usage()
	require.NoError(t, err)
	for _, name := range []string{"numsock", "numtcpsock", "numiptent", "netrxbytes", "nettxpackets"} {
		b := counter(t, u, name)
		assert.Empty(t, b.Source, "%s: %+v", name, b)
		assert.Zero(t, b.Held, name)
	}
	assert.NotEmpty(t, counter(t, u, "numfile").Source)
	var table bytes.Buffer
	require.NoError(t, u.WriteTable(&table, c.ID()))
	assert.Regexp(t, `numtcpsock\s+-\s+-\s+-\s+-\s+sockets\s+unavailable`, table.String())
}
