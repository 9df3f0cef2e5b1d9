package cgroups

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644))
	}
	return dir
}

// TestV2Accounting reads cgroup v2 files as the kernel writes them.
func TestV2Accounting(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"memory.current":      "8388608\n",
		"memory.peak":         "16777216\n",
		"memory.max":          "33554432\n",
		"memory.events":       "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n",
		"memory.swap.current": "4096\n",
		"memory.swap.max":     "max\n",
		"memory.swap.events":  "high 0\nmax 2\nfail 1\n",
		"memory.stat":         "anon 1000\nfile 2000\nkernel 3000\nkernel_stack 100\nsock 4096\nshmem 8192\nunevictable 12288\n",
		"pids.current":        "5\n",
		"pids.peak":           "9\n",
		"pids.max":            "64\n",
		"pids.events":         "max 3\n",
	})
	var a Accounting
	require.NoError(t, v2Accounting(dir, &a))
	require.NoError(t, pidsCounter(dir, &a.Tasks))
	assert.Equal(t, Counter{Held: 8 << 20, MaxHeld: 16 << 20, MaxHeldKnown: true, Limit: 32 << 20, Limited: true,
		Failcnt: 7, FailcntKnown: true, Source: "memory.current"}, a.Memory)
	assert.Equal(t, uint64(1), a.OOMKills)
	assert.Equal(t, Counter{Held: 4096, Failcnt: 3, FailcntKnown: true, Source: "memory.swap.current"}, a.Swap)
	assert.Equal(t, uint64(3000), a.KernelMemory.Held)
	assert.Equal(t, Counter{Held: 4096, Source: "memory.stat sock"}, a.SocketBuffers)
	assert.Equal(t, uint64(8192), a.Shmem.Held)
	assert.Equal(t, uint64(12288), a.Unevictable.Held)
	assert.Equal(t, Counter{Held: 5, MaxHeld: 9, MaxHeldKnown: true, Limit: 64, Limited: true, Failcnt: 3,
		FailcntKnown: true, Source: "pids.current"}, a.Tasks)
}

// TestV1Accounting reads cgroup v1 memory files; the kmem and memsw
// failcnts count only on kernels that still count them.
func TestV1Accounting(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"memory.usage_in_bytes":              "8388608\n",
		"memory.max_usage_in_bytes":          "16777216\n",
		"memory.limit_in_bytes":              "9223372036854771712\n",
		"memory.failcnt":                     "4\n",
		"memory.kmem.usage_in_bytes":         "65536\n",
		"memory.kmem.max_usage_in_bytes":     "131072\n",
		"memory.kmem.failcnt":                "0\n",
		"memory.kmem.tcp.usage_in_bytes":     "4096\n",
		"memory.kmem.tcp.max_usage_in_bytes": "8192\n",
		"memory.kmem.tcp.limit_in_bytes":     "1048576\n",
		"memory.kmem.tcp.failcnt":            "0\n",
		"memory.stat":                        "shmem 1\ntotal_shmem 8192\ntotal_unevictable 4096\n",
		"memory.oom_control":                 "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
	})
	var a Accounting
	require.NoError(t, v1Accounting(dir, &a))
	assert.Equal(t, Counter{Held: 8 << 20, MaxHeld: 16 << 20, MaxHeldKnown: true, Failcnt: 4, FailcntKnown: true,
		Source: "memory.usage_in_bytes"}, a.Memory, "2^63 rounded to pages is no limit")
	assert.Equal(t, Counter{}, a.Swap, "no memsw files: swap accounting off")
	assert.Equal(t, uint64(131072), a.KernelMemory.MaxHeld)
	assert.False(t, a.KernelMemory.Limited)
	assert.Equal(t, uint64(1<<20), a.SocketBuffers.Limit)
	assert.Equal(t, oldFailcnt(), a.SocketBuffers.FailcntKnown)
	assert.Equal(t, uint64(8192), a.Shmem.Held)
	assert.Equal(t, uint64(2), a.OOMKills)
}
