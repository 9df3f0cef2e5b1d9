package oci

import (
	"fmt"
	"math"
	"slices"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/limits"
)

// cpu.shares (cgroup v1, 2..262144) and cpu.weight (cgroup v2, 1..10000)
// are converted as runc and crun do (cgroups.WeightFromShares).
const (
	minShares = 2
	maxShares = 262144
	maxWeight = 10000
)

// sharesFromWeight is the inverse of cgroups.WeightFromShares, rounded up
// so that WeightFromShares(sharesFromWeight(w)) == w.
func sharesFromWeight(w uint64) uint64 {
	w = min(max(w, 1), maxWeight)
	num := (w - 1) * (maxShares - minShares)
	return minShares + (num+maxWeight-2)/(maxWeight-1)
}

// defaultDeviceAllows are the rules every OCI runtime adds after the
// spec's own device rules so that the default devices (/dev/null, ...,
// the pseudo-terminals) stay usable: those of cgroups.DefaultDevices after
// its deny-all rule.
func defaultDeviceAllows() []limits.DeviceRule { return cgroups.DefaultDevices()[1:] }

func (c *converter) resources(r *specs.LinuxResources) *limits.Resources {
	if r == nil {
		return nil
	}
	const f = "linux.resources."
	out := &limits.Resources{}
	if m := r.Memory; m != nil {
		out.Memory = &limits.Memory{Limit: clonePtr(m.Limit), Reservation: clonePtr(m.Reservation), Swap: clonePtr(m.Swap),
			KernelTCP: clonePtr(m.KernelTCP)}
		// runc ignores it (the kernel dropped kernel memory limits in
		// 6.1): a warning, not a refusal.
		if m.Kernel != nil {
			c.warn(f+"memory.kernel", "ignored: kernel memory limits are gone from current kernels (runc ignores it too)")
		}
		if m.Swappiness != nil {
			// runc takes values above 100 (the spec's -1 as uint64) as unset.
			if *m.Swappiness <= 100 {
				out.Memory.Swappiness = clonePtr(m.Swappiness)
			} else {
				c.warn(f+"memory.swappiness", "%d is above 100: left as the parent has it", *m.Swappiness)
			}
		}
		if m.DisableOOMKiller != nil {
			out.Memory.DisableOOMKiller = *m.DisableOOMKiller
		}
		if m.UseHierarchy != nil && !*m.UseHierarchy {
			c.unsupported(f+"memory.useHierarchy", "false: hierarchical accounting is the only mode of current kernels")
		}
		if m.CheckBeforeUpdate != nil && *m.CheckBeforeUpdate {
			c.unsupported(f+"memory.checkBeforeUpdate", "not supported yet")
		}
	}
	if cpu := r.CPU; cpu != nil {
		o := &limits.CPU{Period: clonePtr(cpu.Period), Cpuset: cpu.Cpus, Mems: cpu.Mems}
		if cpu.Shares != nil && *cpu.Shares != 0 { // runc treats 0 as unset
			// Written to cpu.shares as it is on v1 (the kernel clamps it to
			// 2..262144, as it does for runc); converted on v2.
			o.Shares = limits.Ptr(min(max(*cpu.Shares, minShares), maxShares))
		}
		if q := cpu.Quota; q != nil && *q != 0 { // 0 is unset, as in runc
			if *q < 0 {
				o.CPUs = limits.Ptr(-1.0)
			} else {
				period := limits.DefaultCPUPeriod
				if cpu.Period != nil && *cpu.Period != 0 {
					period = *cpu.Period
				}
				o.CPUs = limits.Ptr(float64(*q) / float64(period))
			}
		}
		for _, x := range []struct {
			name string
			set  bool
		}{
			{"burst", cpu.Burst != nil}, {"realtimeRuntime", cpu.RealtimeRuntime != nil},
			{"realtimePeriod", cpu.RealtimePeriod != nil}, {"idle", cpu.Idle != nil},
		} {
			if x.set {
				c.unsupported(f+"cpu."+x.name, "not supported yet")
			}
		}
		out.CPU = o
	}
	if p := r.Pids; p != nil {
		out.Pids = &limits.Pids{}
		if p.Limit != nil {
			v := *p.Limit
			if v <= 0 { // the spec: zero or less is no limit
				v = limits.Unlimited
			}
			out.Pids.Max = &v
		}
	}
	if b := r.BlockIO; b != nil {
		io := &limits.IO{Weight: clonePtr(b.Weight)}
		if b.LeafWeight != nil {
			c.unsupported(f+"blockIO.leafWeight", "not supported yet")
		}
		if len(b.WeightDevice) > 0 {
			c.unsupported(f+"blockIO.weightDevice", "per-device weights are not supported yet")
		}
		io.ReadBps = rates(b.ThrottleReadBpsDevice)
		io.WriteBps = rates(b.ThrottleWriteBpsDevice)
		io.ReadIOPS = rates(b.ThrottleReadIOPSDevice)
		io.WriteIOPS = rates(b.ThrottleWriteIOPSDevice)
		out.IO = io
	}
	for _, h := range r.HugepageLimits {
		out.HugeTLB = append(out.HugeTLB, limits.HugeTLB{PageSize: h.Pagesize, Limit: h.Limit})
	}
	if r.Network != nil {
		c.unsupported(f+"network", "net_cls and net_prio are not supported yet")
	}
	if len(r.Rdma) > 0 {
		c.unsupported(f+"rdma", "not supported yet")
	}
	if len(r.Unified) > 0 {
		c.unsupported(f+"unified", "raw cgroup v2 files are not supported yet")
	}
	if len(r.Devices) > 0 {
		for i, d := range r.Devices {
			rule := limits.DeviceRule{Allow: d.Allow, Type: d.Type, Major: limits.Wildcard, Minor: limits.Wildcard, Access: d.Access}
			if rule.Type == "" {
				rule.Type = "a"
			}
			if rule.Access == "" {
				rule.Access = "rwm"
			}
			if d.Major != nil {
				rule.Major = *d.Major
			}
			if d.Minor != nil {
				rule.Minor = *d.Minor
			}
			if err := (&limits.Resources{Devices: []limits.DeviceRule{rule}}).Validate(); err != nil {
				c.bad(fmt.Sprintf("%sdevices[%d]", f, i), "%v", err)
			}
			out.Devices = append(out.Devices, rule)
		}
		out.Devices = append(out.Devices, defaultDeviceAllows()...)
	}
	return out
}

func rates(list []specs.LinuxThrottleDevice) []limits.DeviceRate {
	var out []limits.DeviceRate
	for _, d := range list {
		out = append(out, limits.DeviceRate{Major: d.Major, Minor: d.Minor, Rate: d.Rate})
	}
	return out
}

// specResources is the reverse of converter.resources.
func (t *problems) specResources(r *limits.Resources) *specs.LinuxResources {
	if r == nil {
		return nil
	}
	const f = "resources."
	out := &specs.LinuxResources{}
	if m := r.Memory; m != nil {
		out.Memory = &specs.LinuxMemory{Limit: clonePtr(m.Limit), Reservation: clonePtr(m.Reservation), Swap: clonePtr(m.Swap),
			KernelTCP: clonePtr(m.KernelTCP), Swappiness: clonePtr(m.Swappiness)}
		if m.DisableOOMKiller {
			out.Memory.DisableOOMKiller = limits.Ptr(true)
		}
	}
	if c := r.CPU; c != nil {
		o := &specs.LinuxCPU{Period: clonePtr(c.Period), Cpus: c.Cpuset, Mems: c.Mems}
		if c.Shares != nil {
			o.Shares = clonePtr(c.Shares)
		} else if c.Weight != nil {
			o.Shares = limits.Ptr(sharesFromWeight(*c.Weight))
		}
		if c.CPUs != nil {
			switch v := *c.CPUs; {
			case v < 0:
				o.Quota = limits.Ptr(int64(-1))
			case math.IsNaN(v) || math.IsInf(v, 0) || v == 0:
				t.bad(f+"cpu.cpus", "%v has no OCI form", v)
			default:
				period := limits.DefaultCPUPeriod
				if c.Period != nil {
					period = *c.Period
				}
				o.Quota = limits.Ptr(int64(math.Round(v * float64(period))))
			}
		}
		out.CPU = o
	}
	if p := r.Pids; p != nil {
		out.Pids = &specs.LinuxPids{Limit: clonePtr(p.Max)}
	}
	if io := r.IO; io != nil {
		b := &specs.LinuxBlockIO{Weight: clonePtr(io.Weight)}
		b.ThrottleReadBpsDevice = t.specRates(f+"io.readBps", io.ReadBps)
		b.ThrottleWriteBpsDevice = t.specRates(f+"io.writeBps", io.WriteBps)
		b.ThrottleReadIOPSDevice = t.specRates(f+"io.readIOPS", io.ReadIOPS)
		b.ThrottleWriteIOPSDevice = t.specRates(f+"io.writeIOPS", io.WriteIOPS)
		out.BlockIO = b
	}
	for _, h := range r.HugeTLB {
		out.HugepageLimits = append(out.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: h.PageSize, Limit: h.Limit})
	}
	if len(r.Devices) > 0 {
		allows := defaultDeviceAllows()
		n := len(r.Devices) - len(allows)
		if n < 0 || !slices.Equal(r.Devices[n:], allows) {
			t.unsupported(f+"devices", "OCI runtimes always allow the default devices after the spec's rules; a rule list that does not end with them (cgroups.DefaultDevices) has no OCI form")
			return out
		}
		for _, d := range r.Devices[:n] {
			out.Devices = append(out.Devices, specs.LinuxDeviceCgroup{
				Allow: d.Allow, Type: d.Type, Major: limits.Ptr(d.Major), Minor: limits.Ptr(d.Minor), Access: d.Access,
			})
		}
	}
	return out
}

func (t *problems) specRates(field string, list []limits.DeviceRate) []specs.LinuxThrottleDevice {
	var out []specs.LinuxThrottleDevice
	for i, d := range list {
		major, minor := d.Major, d.Minor
		if d.Path != "" && major == 0 && minor == 0 {
			var err error
			if major, minor, err = d.Device(); err != nil {
				t.bad(fmt.Sprintf("%s[%d].path", field, i), "%v (OCI names devices by number)", err)
				continue
			}
		}
		out = append(out, specs.LinuxThrottleDevice{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: major, Minor: minor}, Rate: d.Rate})
	}
	return out
}
