package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Counter is one accounted resource of a cgroup, in the shape of OpenVZ's
// user beancounters: what is held now, the most ever held, the limit, and
// how many times the limit refused something. The Known fields say which
// of them the kernel provides on this host.
type Counter struct {
	Held uint64 `json:"held"`
	// MaxHeld is the kernel's own peak, when it keeps one (MaxHeldKnown).
	MaxHeld      uint64 `json:"maxHeld,omitempty"`
	MaxHeldKnown bool   `json:"maxHeldKnown,omitempty"`
	// Limit is the hard limit (Limited); otherwise there is none.
	Limit   uint64 `json:"limit,omitempty"`
	Limited bool   `json:"limited,omitempty"`
	// Failcnt counts the times the limit was hit, when the kernel counts
	// them (FailcntKnown).
	Failcnt      uint64 `json:"failcnt,omitempty"`
	FailcntKnown bool   `json:"failcntKnown,omitempty"`
	// Source names the file Held came from, "" when the kernel has nothing
	// for this resource on this host.
	Source string `json:"source,omitempty"`
}

// Accounting is the cgroup's share of finite resources, beyond Stats: the
// kernel's own counters of memory kinds, tasks and huge pages with their
// peaks, limits and failure counts. Resources the host cannot account have
// an empty Source.
type Accounting struct {
	Layout Layout `json:"layout"`
	// Memory is the memory charged to the cgroup (bytes).
	Memory Counter `json:"memory"`
	// Swap is memory plus swap on cgroup v1 (memory.memsw.*), swap alone
	// on v2 (memory.swap.*), in bytes.
	Swap Counter `json:"swap"`
	// KernelMemory is kernel memory charged to the cgroup: slab, stacks,
	// page tables, socket buffers... (bytes). Its limit is gone from recent
	// kernels; it counts towards Memory.
	KernelMemory Counter `json:"kernelMemory"`
	// SocketBuffers is the memory of the cgroup's socket buffers (bytes):
	// the TCP buffers with their own limit and failcnt on cgroup v1
	// (memory.kmem.tcp.*), all sockets' buffers on v2 (memory.stat sock).
	SocketBuffers Counter `json:"socketBuffers"`
	// Shmem is shared memory charged to the cgroup (tmpfs, /dev/shm, System
	// V segments), from memory.stat, in bytes.
	Shmem Counter `json:"shmem"`
	// Unevictable is memory the kernel cannot reclaim (mlocked pages,
	// ramfs), from memory.stat, in bytes.
	Unevictable Counter `json:"unevictable"`
	// Tasks is the number of tasks (threads) under the pids controller.
	Tasks Counter `json:"tasks"`
	// HugeTLB sums the huge pages of every size (bytes).
	HugeTLB Counter `json:"hugetlb"`
	// OOMKills counts processes the OOM killer killed in the cgroup.
	OOMKills uint64 `json:"oomKills"`
}

// Accounting reads the cgroup's resource counters from whichever hierarchy
// holds each controller.
func (m *Manager) Accounting() (*Accounting, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := &Accounting{Layout: m.sys.layout}
	unified, hasUnified := m.dirs[unifiedKey]
	var errs []error
	if dir, ok := m.v1Dir("memory"); ok {
		errs = append(errs, v1Accounting(dir, a))
	} else if hasUnified {
		errs = append(errs, v2Accounting(unified, a))
	}
	pidsDir, ok := m.v1Dir("pids")
	if !ok && hasUnified {
		pidsDir, ok = unified, true
	}
	if ok {
		errs = append(errs, pidsCounter(pidsDir, &a.Tasks))
	}
	hugeDir, ok := m.v1Dir("hugetlb")
	if ok {
		hugeCounter(hugeDir, true, &a.HugeTLB)
	} else if hasUnified {
		hugeCounter(unified, false, &a.HugeTLB)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cgroups: accounting: %w", err)
	}
	return a, nil
}

// v1Counter reads prefix.usage_in_bytes, .max_usage_in_bytes,
// .limit_in_bytes and .failcnt of the v1 memory controller. A limit of
// 2^63 rounded to pages is none.
func v1Counter(dir, prefix string, c *Counter, withLimit bool) error {
	var err error
	file := prefix + ".usage_in_bytes"
	if c.Held, err = readUint(filepath.Join(dir, file)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	c.Source = file
	if c.MaxHeld, err = readUint(filepath.Join(dir, prefix+".max_usage_in_bytes")); err == nil {
		c.MaxHeldKnown = true
	}
	if withLimit {
		if l, err := readUint(filepath.Join(dir, prefix+".limit_in_bytes")); err == nil && l < 1<<62 {
			c.Limit, c.Limited = l, true
		}
	}
	if prefix != "memory" && !oldFailcnt() {
		return nil // the file is there, but stays 0
	}
	if c.Failcnt, err = readUint(filepath.Join(dir, prefix+".failcnt")); err == nil {
		c.FailcntKnown = true
	}
	return nil
}

var (
	oldFailcntOnce sync.Once
	oldFailcntVal  bool
)

// oldFailcnt reports whether the kernel still counts failures of the v1
// memory.memsw, memory.kmem and memory.kmem.tcp counters: from Linux 6.13
// on only memory.failcnt moves (the others' failcnt files stay 0).
func oldFailcnt() bool {
	oldFailcntOnce.Do(func() {
		var u unix.Utsname
		if unix.Uname(&u) != nil {
			return
		}
		var major, minor int
		if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor); err != nil {
			return
		}
		oldFailcntVal = major < 6 || (major == 6 && minor < 13)
	})
	return oldFailcntVal
}

func v1Accounting(dir string, a *Accounting) error {
	if err := v1Counter(dir, "memory", &a.Memory, true); err != nil {
		return err
	}
	if err := v1Counter(dir, "memory.memsw", &a.Swap, true); err != nil {
		return err
	}
	// memory.kmem.limit_in_bytes is no longer enforced (Linux 5.16 on):
	// kernel memory counts towards memory.limit_in_bytes only.
	if err := v1Counter(dir, "memory.kmem", &a.KernelMemory, false); err != nil {
		return err
	}
	if err := v1Counter(dir, "memory.kmem.tcp", &a.SocketBuffers, true); err != nil {
		return err
	}
	kv, err := readKV(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return err
	}
	// The total_ items include descendant cgroups.
	if v, ok := kv["total_shmem"]; ok {
		a.Shmem = Counter{Held: v, Source: "memory.stat total_shmem"}
	}
	if v, ok := kv["total_unevictable"]; ok {
		a.Unevictable = Counter{Held: v, Source: "memory.stat total_unevictable"}
	}
	oc, err := readKV(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		return err
	}
	a.OOMKills = oc["oom_kill"]
	return nil
}

func v2Accounting(dir string, a *Accounting) error {
	var err error
	if a.Memory.Held, err = readUint(filepath.Join(dir, "memory.current")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // memory controller not enabled here
		}
		return err
	}
	a.Memory.Source = "memory.current"
	if a.Memory.MaxHeld, err = readUint(filepath.Join(dir, "memory.peak")); err == nil {
		a.Memory.MaxHeldKnown = true
	}
	if l, ok := readMax(filepath.Join(dir, "memory.max")); ok {
		a.Memory.Limit, a.Memory.Limited = l, true
	}
	ev, err := readKV(filepath.Join(dir, "memory.events"))
	if err != nil {
		return err
	}
	// "max": times usage reached memory.max and the kernel had to reclaim
	// or fail the charge.
	a.Memory.Failcnt, a.Memory.FailcntKnown = ev["max"], true
	a.OOMKills = ev["oom_kill"]
	if v, err := readUint(filepath.Join(dir, "memory.swap.current")); err == nil {
		a.Swap = Counter{Held: v, Source: "memory.swap.current"}
		if p, err := readUint(filepath.Join(dir, "memory.swap.peak")); err == nil {
			a.Swap.MaxHeld, a.Swap.MaxHeldKnown = p, true
		}
		if l, ok := readMax(filepath.Join(dir, "memory.swap.max")); ok {
			a.Swap.Limit, a.Swap.Limited = l, true
		}
		if sv, err := readKV(filepath.Join(dir, "memory.swap.events")); err == nil {
			a.Swap.Failcnt, a.Swap.FailcntKnown = sv["max"]+sv["fail"], true
		}
	}
	kv, err := readKV(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return err
	}
	if v, ok := kv["kernel"]; ok {
		a.KernelMemory = Counter{Held: v, Source: "memory.stat kernel"}
	} else {
		a.KernelMemory = Counter{Held: kv["slab"] + kv["kernel_stack"] + kv["pagetables"] + kv["sock"],
			Source: "memory.stat slab+kernel_stack+pagetables+sock"}
	}
	if v, ok := kv["sock"]; ok {
		a.SocketBuffers = Counter{Held: v, Source: "memory.stat sock"}
	}
	if v, ok := kv["shmem"]; ok {
		a.Shmem = Counter{Held: v, Source: "memory.stat shmem"}
	}
	if v, ok := kv["unevictable"]; ok {
		a.Unevictable = Counter{Held: v, Source: "memory.stat unevictable"}
	}
	return nil
}

// pidsCounter reads the pids controller (same files on v1 and v2).
func pidsCounter(dir string, c *Counter) error {
	var err error
	if c.Held, err = readUint(filepath.Join(dir, "pids.current")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	c.Source = "pids.current"
	if c.MaxHeld, err = readUint(filepath.Join(dir, "pids.peak")); err == nil {
		c.MaxHeldKnown = true
	}
	if l, ok := readMax(filepath.Join(dir, "pids.max")); ok {
		c.Limit, c.Limited = l, true
	}
	// pids.events "max": forks refused because of pids.max.
	if ev, err := readKV(filepath.Join(dir, "pids.events")); err == nil {
		c.Failcnt, c.FailcntKnown = ev["max"], true
	}
	return nil
}

// hugeCounter sums the hugetlb controller's counters over page sizes.
func hugeCounter(dir string, v1 bool, c *Counter) {
	usage := ".current"
	if v1 {
		usage = ".usage_in_bytes"
	}
	files, _ := filepath.Glob(filepath.Join(dir, "hugetlb.*"+usage))
	for _, f := range files {
		base := strings.TrimSuffix(f, usage)
		if strings.HasSuffix(base, ".rsvd") {
			continue
		}
		v, err := readUint(f)
		if err != nil {
			continue
		}
		c.Held += v
		c.Source = "hugetlb.*" + usage
		if v1 {
			if p, err := readUint(base + ".max_usage_in_bytes"); err == nil {
				c.MaxHeld, c.MaxHeldKnown = c.MaxHeld+p, true
			}
			if l, err := readUint(base + ".limit_in_bytes"); err == nil && l < 1<<62 {
				c.Limit, c.Limited = c.Limit+l, true
			}
			if n, err := readUint(base + ".failcnt"); err == nil {
				c.Failcnt, c.FailcntKnown = c.Failcnt+n, true
			}
			continue
		}
		if l, ok := readMax(base + ".max"); ok {
			c.Limit, c.Limited = c.Limit+l, true
		}
		if ev, err := readKV(base + ".events"); err == nil {
			c.Failcnt, c.FailcntKnown = c.Failcnt+ev["max"], true
		}
	}
}

// readMax reads a v2 limit file: ok is false for "max" (no limit) or when
// the file is absent.
func readMax(file string) (uint64, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, false
	}
	v, err := readUint(file)
	return v, err == nil
}
