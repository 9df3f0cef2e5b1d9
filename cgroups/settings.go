package cgroups

import (
	"fmt"
	"math"
	"strconv"

	"github.com/openvessel/vessel/limits"
)

// write is one value for one cgroup file.
type write struct {
	// ctrl is the controller owning the file, by its cgroup v2 name
	// ("io" for v1's blkio).
	ctrl  string
	file  string
	value string
	// alt and altValue are written instead when file does not exist (a
	// kernel with BFQ weights but not the generic ones).
	alt, altValue string
}

// controllerOrder is the order limits are applied in, by v2 name.
var controllerOrder = []string{"cpuset", "cpu", "memory", "pids", "io", "hugetlb"}

// v1Name returns the v1 controller of a v2 controller name.
func v1Name(ctrl string) string {
	if ctrl == "io" {
		return "blkio"
	}
	return ctrl
}

// sharesFromWeight converts a cgroup v2 cpu.weight (1..10000, default
// 100) to a v1 cpu.shares value (default 1024) the way systemd does, so
// that the defaults match.
func sharesFromWeight(w uint64) uint64 {
	return min(max(w*1024/100, 2), 262144)
}

// WeightFromShares converts a cgroup v1 cpu.shares value (2..262144) to a
// cgroup v2 cpu.weight (1..10000) the way runc and crun do, so that an OCI
// spec's shares give the same weight under every runtime.
func WeightFromShares(shares uint64) uint64 {
	if shares == 0 {
		return 100
	}
	shares = min(max(shares, 2), 262144)
	return 1 + (shares-2)*9999/262142
}

// cpuQuota returns the CFS quota and period in microseconds; quota is -1
// when unlimited and ok is false when the CPU spec sets neither.
func cpuQuota(c *limits.CPU) (quota int64, period uint64, ok bool) {
	period = limits.DefaultCPUPeriod
	if c.Period != nil {
		period = *c.Period
	}
	if c.CPUs == nil {
		return -1, period, c.Period != nil
	}
	if *c.CPUs < 0 {
		return -1, period, true
	}
	return int64(math.Round(*c.CPUs * float64(period))), period, true
}

func signed(v int64) string {
	if v == limits.Unlimited {
		return "-1"
	}
	return strconv.FormatInt(v, 10)
}

func maxOr(v int64) string {
	if v < 0 {
		return "max"
	}
	return strconv.FormatInt(v, 10)
}

// ioRates lists the throttles of r with their device numbers resolved.
func ioRates(io *limits.IO) (map[string][]rate, error) {
	out := map[string][]rate{}
	for _, l := range []struct {
		name  string
		rates []limits.DeviceRate
	}{{"rbps", io.ReadBps}, {"wbps", io.WriteBps}, {"riops", io.ReadIOPS}, {"wiops", io.WriteIOPS}} {
		for i, d := range l.rates {
			maj, min, err := d.Device()
			if err != nil {
				return nil, fmt.Errorf("io %s[%d]: %w", l.name, i, err)
			}
			out[l.name] = append(out[l.name], rate{maj, min, d.Rate})
		}
	}
	return out, nil
}

type rate struct {
	major, minor int64
	rate         uint64
}

// v1Writes renders r as cgroup v1 file writes (device rules excepted).
func v1Writes(r *limits.Resources) ([]write, error) {
	var w []write
	add := func(ctrl, file, value string) { w = append(w, write{ctrl: ctrl, file: file, value: value}) }
	if c := r.CPU; c != nil {
		if c.Cpuset != "" {
			add("cpuset", "cpuset.cpus", c.Cpuset)
		}
		if c.Mems != "" {
			add("cpuset", "cpuset.mems", c.Mems)
		}
		if quota, period, ok := cpuQuota(c); ok {
			add("cpu", "cpu.cfs_period_us", strconv.FormatUint(period, 10))
			add("cpu", "cpu.cfs_quota_us", strconv.FormatInt(quota, 10))
		}
		if c.Shares != nil {
			add("cpu", "cpu.shares", strconv.FormatUint(*c.Shares, 10))
		} else if c.Weight != nil {
			add("cpu", "cpu.shares", strconv.FormatUint(sharesFromWeight(*c.Weight), 10))
		}
	}
	if m := r.Memory; m != nil {
		// The order of limit and memsw matters (memsw >= limit at all
		// times); applyV1Memory retries in the other order.
		if m.Limit != nil {
			add("memory", "memory.limit_in_bytes", signed(*m.Limit))
		}
		if m.Swap != nil {
			add("memory", "memory.memsw.limit_in_bytes", signed(*m.Swap))
		}
		if m.Reservation != nil {
			add("memory", "memory.soft_limit_in_bytes", signed(*m.Reservation))
		}
		if m.KernelTCP != nil {
			add("memory", "memory.kmem.tcp.limit_in_bytes", signed(*m.KernelTCP))
		}
		if m.Swappiness != nil {
			add("memory", "memory.swappiness", strconv.FormatUint(*m.Swappiness, 10))
		}
		if m.DisableOOMKiller {
			add("memory", "memory.oom_control", "1")
		}
	}
	if p := r.Pids; p != nil && p.Max != nil {
		add("pids", "pids.max", maxOr(*p.Max))
	}
	if io := r.IO; io != nil {
		if io.Weight != nil {
			n := strconv.Itoa(int(*io.Weight))
			w = append(w, write{ctrl: "io", file: "blkio.weight", value: n, alt: "blkio.bfq.weight", altValue: n})
		}
		rates, err := ioRates(io)
		if err != nil {
			return nil, err
		}
		files := map[string]string{"rbps": "blkio.throttle.read_bps_device", "wbps": "blkio.throttle.write_bps_device",
			"riops": "blkio.throttle.read_iops_device", "wiops": "blkio.throttle.write_iops_device"}
		for _, kind := range []string{"rbps", "wbps", "riops", "wiops"} {
			for _, d := range rates[kind] {
				add("io", files[kind], fmt.Sprintf("%d:%d %d", d.major, d.minor, d.rate))
			}
		}
	}
	for _, h := range r.HugeTLB {
		add("hugetlb", "hugetlb."+h.PageSize+".limit_in_bytes", strconv.FormatUint(h.Limit, 10))
	}
	return w, nil
}

// v2Writes renders r as cgroup v2 file writes (device rules excepted).
func v2Writes(r *limits.Resources) ([]write, error) {
	var w []write
	add := func(ctrl, file, value string) { w = append(w, write{ctrl: ctrl, file: file, value: value}) }
	if c := r.CPU; c != nil {
		if c.Cpuset != "" {
			add("cpuset", "cpuset.cpus", c.Cpuset)
		}
		if c.Mems != "" {
			add("cpuset", "cpuset.mems", c.Mems)
		}
		if quota, period, ok := cpuQuota(c); ok {
			add("cpu", "cpu.max", maxOr(quota)+" "+strconv.FormatUint(period, 10))
		}
		if c.Shares != nil {
			add("cpu", "cpu.weight", strconv.FormatUint(WeightFromShares(*c.Shares), 10))
		} else if c.Weight != nil {
			add("cpu", "cpu.weight", strconv.FormatUint(*c.Weight, 10))
		}
	}
	if m := r.Memory; m != nil {
		if m.Limit != nil {
			add("memory", "memory.max", maxOr(*m.Limit))
		}
		if m.Swap != nil {
			// v2 limits swap alone; the spec counts memory+swap.
			swap := int64(-1)
			if *m.Swap != limits.Unlimited && m.Limit != nil && *m.Limit != limits.Unlimited {
				swap = *m.Swap - *m.Limit
			}
			add("memory", "memory.swap.max", maxOr(swap))
		}
		if m.Reservation != nil {
			low := *m.Reservation
			if low < 0 {
				low = 0 // no protection
			}
			add("memory", "memory.low", strconv.FormatInt(low, 10))
		}
	}
	if p := r.Pids; p != nil && p.Max != nil {
		add("pids", "pids.max", maxOr(*p.Max))
	}
	if io := r.IO; io != nil {
		if io.Weight != nil {
			n := strconv.Itoa(int(*io.Weight))
			w = append(w, write{ctrl: "io", file: "io.weight", value: "default " + n, alt: "io.bfq.weight", altValue: n})
		}
		rates, err := ioRates(io)
		if err != nil {
			return nil, err
		}
		for _, kind := range []string{"rbps", "wbps", "riops", "wiops"} {
			for _, d := range rates[kind] {
				v := "max"
				if d.rate != 0 {
					v = strconv.FormatUint(d.rate, 10)
				}
				add("io", "io.max", fmt.Sprintf("%d:%d %s=%s", d.major, d.minor, kind, v))
			}
		}
	}
	for _, h := range r.HugeTLB {
		add("hugetlb", "hugetlb."+h.PageSize+".max", strconv.FormatUint(h.Limit, 10))
	}
	return w, nil
}

// controllersOf lists, in controllerOrder, the controllers writes use.
func controllersOf(w []write) []string {
	var out []string
	for _, c := range controllerOrder {
		for _, x := range w {
			if x.ctrl == c {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// only returns the writes of one controller.
func only(w []write, ctrl string) []write {
	var out []write
	for _, x := range w {
		if x.ctrl == ctrl {
			out = append(out, x)
		}
	}
	return out
}
