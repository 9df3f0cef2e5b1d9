package limits

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/fielderr"
)

// Unlimited is the value of a signed limit (memory, swap, pids) that removes
// the limit.
const Unlimited int64 = -1

// Wildcard is the Major or Minor number of a [DeviceRule] that matches every
// number.
const Wildcard int64 = -1

// DefaultCPUPeriod is the CFS period, in microseconds, used when
// [CPU.Period] is not set: 100ms, as in the kernel and Docker.
const DefaultCPUPeriod uint64 = 100000

// Resources is what a container may use. Every field is optional: a nil
// pointer or a nil slice leaves that resource as the parent cgroup has it
// (and, in an update, unchanged).
type Resources struct {
	Memory  *Memory      `json:"memory,omitempty"`
	CPU     *CPU         `json:"cpu,omitempty"`
	Pids    *Pids        `json:"pids,omitempty"`
	IO      *IO          `json:"io,omitempty"`
	HugeTLB []HugeTLB    `json:"hugetlb,omitempty"`
	Devices []DeviceRule `json:"devices,omitempty"`
}

// Memory limits, in bytes.
type Memory struct {
	// Limit is the hard limit: above it the kernel reclaims, then OOM-kills.
	// Unlimited (-1) removes it.
	Limit *int64 `json:"limit,omitempty"`
	// Swap is memory plus swap together, as in Docker's --memory-swap: it
	// must be at least Limit. Unlimited (-1) allows unlimited swap; equal to
	// Limit forbids swapping.
	Swap *int64 `json:"swap,omitempty"`
	// Reservation is the soft limit (memory.low on v2, the soft limit on v1):
	// the kernel reclaims other cgroups first while usage stays below it.
	Reservation *int64 `json:"reservation,omitempty"`
	// KernelTCP limits the memory of the container's TCP socket buffers
	// (send and receive queues), in bytes: beyond it the kernel shrinks
	// windows and refuses to grow buffers (the memory.kmem.tcp.* files of
	// cgroup v1, which count the refusals in memory.kmem.tcp.failcnt).
	// Unlimited (-1) removes it. cgroup v2 has no such limit: socket
	// buffers count towards Limit there, and setting it is an error.
	KernelTCP *int64 `json:"kernelTCP,omitempty"`
	// Swappiness is the kernel's tendency to swap the container's anonymous
	// memory, 0..100 (cgroup v1's memory.swappiness; cgroup v2 has no such
	// knob and it is ignored there, as runc ignores it).
	Swappiness *uint64 `json:"swappiness,omitempty"`
	// DisableOOMKiller makes processes that hit the limit wait for memory
	// instead of being killed (cgroup v1's memory.oom_control; ignored on
	// cgroup v2, which has no such mode, as runc ignores it).
	DisableOOMKiller bool `json:"disableOOMKiller,omitempty"`
}

// CPU limits.
type CPU struct {
	// CPUs is a quota in cores: 0.5 lets the container run half of one core's
	// time every Period; 2 lets it use two cores fully. -1 removes the quota.
	CPUs *float64 `json:"cpus,omitempty"`
	// Period is the CFS period in microseconds (1000..1000000); the default
	// is DefaultCPUPeriod.
	Period *uint64 `json:"period,omitempty"`
	// Weight is the relative share of CPU time under contention, 1..10000
	// with 100 the default (cgroup v2 semantics; converted to cpu.shares on
	// cgroup v1).
	Weight *uint64 `json:"weight,omitempty"`
	// Shares is a cgroup v1 cpu.shares value (2..262144, default 1024),
	// written as it is on v1 and converted to cpu.weight on v2 the way
	// runc converts it. It takes precedence over Weight (OCI specs carry
	// shares).
	Shares *uint64 `json:"shares,omitempty"`
	// Cpuset lists the CPUs the container may run on, like "0-1" or "0,2".
	Cpuset string `json:"cpuset,omitempty"`
	// Mems lists the memory nodes the container may allocate on, like "0".
	Mems string `json:"mems,omitempty"`
}

// Pids limits the number of tasks (processes and threads).
type Pids struct {
	// Max is the most tasks that may exist at once; Unlimited (-1) removes
	// the limit.
	Max *int64 `json:"max,omitempty"`
}

// IO limits block device input/output.
type IO struct {
	// Weight is the relative share of disk time, 10..1000 (default 100).
	Weight    *uint16      `json:"weight,omitempty"`
	ReadBps   []DeviceRate `json:"readBps,omitempty"`
	WriteBps  []DeviceRate `json:"writeBps,omitempty"`
	ReadIOPS  []DeviceRate `json:"readIOPS,omitempty"`
	WriteIOPS []DeviceRate `json:"writeIOPS,omitempty"`
}

// DeviceRate is a throttle on one block device: bytes or operations per
// second. The device is named by Path or, when Path is empty, by Major and
// Minor. A Rate of 0 removes the throttle.
type DeviceRate struct {
	Path  string `json:"path,omitempty"`
	Major int64  `json:"major,omitempty"`
	Minor int64  `json:"minor,omitempty"`
	Rate  uint64 `json:"rate"`
}

// Device returns the device numbers of d: Major and Minor when either is
// set, otherwise those of the block device at Path.
func (d DeviceRate) Device() (major, minor int64, err error) {
	if d.Major != 0 || d.Minor != 0 || d.Path == "" {
		return d.Major, d.Minor, nil
	}
	var st unix.Stat_t
	if err := unix.Stat(d.Path, &st); err != nil {
		return 0, 0, fmt.Errorf("stat %s: %w", d.Path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, 0, fmt.Errorf("%s is not a block device", d.Path)
	}
	return int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev)), nil
}

// HugeTLB limits the huge pages of one size.
type HugeTLB struct {
	// PageSize is the page size as the kernel names it: "2MB", "1GB", "64KB".
	PageSize string `json:"pageSize"`
	// Limit is the most bytes of such pages the container may use.
	Limit uint64 `json:"limit"`
}

// DeviceRule allows or denies access to device nodes. When a container has
// device rules, every access is denied first and the rules apply in order,
// a later rule overriding an earlier one.
type DeviceRule struct {
	Allow bool `json:"allow"`
	// Type is "a" (all devices), "c" (character) or "b" (block).
	Type string `json:"type"`
	// Major and Minor select the device; Wildcard (-1) matches any number.
	Major int64 `json:"major"`
	Minor int64 `json:"minor"`
	// Access is a combination of "r" (read), "w" (write) and "m" (mknod).
	Access string `json:"access"`
}

// String returns the rule in the form of the cgroup v1 devices files,
// like "c 1:3 rwm" or "a *:* rwm".
func (d DeviceRule) String() string {
	num := func(n int64) string {
		if n == Wildcard {
			return "*"
		}
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("%s %s:%s %s", d.Type, num(d.Major), num(d.Minor), d.Access)
}

// Ptr returns a pointer to a copy of v, for filling the optional fields of
// [Resources]: limits.Ptr(int64(256 << 20)).
func Ptr[T any](v T) *T { return &v }

// Validate reports the first problem of each field, joined, naming the field
// ("memory.limit: must be > 0 or -1 (unlimited)"). A nil Resources is valid.
// Device paths in IO rates must name existing block devices.
func (r *Resources) Validate() error {
	if r == nil {
		return nil
	}
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fielderr.New(field, format, args...))
	}
	if m := r.Memory; m != nil {
		if m.Limit != nil && *m.Limit <= 0 && *m.Limit != Unlimited {
			add("memory.limit", "must be > 0 or -1 (unlimited), got %d", *m.Limit)
		}
		if m.Swap != nil {
			switch {
			case *m.Swap <= 0 && *m.Swap != Unlimited:
				add("memory.swap", "must be > 0 or -1 (unlimited), got %d", *m.Swap)
			case m.Limit == nil || *m.Limit == Unlimited:
				add("memory.swap", "needs memory.limit (swap is the memory+swap total)")
			case *m.Swap != Unlimited && *m.Swap < *m.Limit:
				add("memory.swap", "%d is less than memory.limit %d (swap is the memory+swap total)", *m.Swap, *m.Limit)
			}
		}
		if m.Reservation != nil {
			switch {
			case *m.Reservation <= 0 && *m.Reservation != Unlimited:
				add("memory.reservation", "must be > 0 or -1 (unlimited), got %d", *m.Reservation)
			case m.Limit != nil && *m.Limit != Unlimited && *m.Reservation > *m.Limit:
				add("memory.reservation", "%d is more than memory.limit %d", *m.Reservation, *m.Limit)
			}
		}
		if m.KernelTCP != nil && *m.KernelTCP <= 0 && *m.KernelTCP != Unlimited {
			add("memory.kernelTCP", "must be > 0 or -1 (unlimited), got %d", *m.KernelTCP)
		}
		if m.Swappiness != nil && *m.Swappiness > 100 {
			add("memory.swappiness", "must be 0..100, got %d", *m.Swappiness)
		}
	}
	if c := r.CPU; c != nil {
		period := DefaultCPUPeriod
		if c.Period != nil {
			period = *c.Period
			if period < 1000 || period > 1000000 {
				add("cpu.period", "must be 1000..1000000 microseconds, got %d", period)
			}
		}
		if c.CPUs != nil {
			v := *c.CPUs
			switch {
			case v == 0:
				add("cpu.cpus", "0 is not a valid quota (use -1 for unlimited)")
			case math.IsNaN(v) || math.IsInf(v, 0) || (v < 0 && v != -1):
				add("cpu.cpus", "must be > 0 or -1 (unlimited), got %v", v)
			case v > 0 && v*float64(period) < 1000:
				add("cpu.cpus", "%v cores over a %dus period is a quota under the kernel's 1000us minimum", v, period)
			case v > 0 && v > 1<<20:
				add("cpu.cpus", "%v is too large", v)
			}
		}
		if c.Weight != nil && (*c.Weight < 1 || *c.Weight > 10000) {
			add("cpu.weight", "must be 1..10000, got %d", *c.Weight)
		}
		if c.Shares != nil && (*c.Shares < 2 || *c.Shares > 262144) {
			add("cpu.shares", "must be 2..262144, got %d", *c.Shares)
		}
		if err := validateCPUList(c.Cpuset); err != nil {
			add("cpu.cpuset", "%v", err)
		}
		if err := validateCPUList(c.Mems); err != nil {
			add("cpu.mems", "%v", err)
		}
	}
	if p := r.Pids; p != nil && p.Max != nil && *p.Max <= 0 && *p.Max != Unlimited {
		add("pids.max", "must be > 0 or -1 (unlimited), got %d", *p.Max)
	}
	if io := r.IO; io != nil {
		if io.Weight != nil && (*io.Weight < 10 || *io.Weight > 1000) {
			add("io.weight", "must be 10..1000, got %d", *io.Weight)
		}
		for _, list := range []struct {
			name  string
			rates []DeviceRate
		}{{"io.readBps", io.ReadBps}, {"io.writeBps", io.WriteBps}, {"io.readIOPS", io.ReadIOPS}, {"io.writeIOPS", io.WriteIOPS}} {
			for i, d := range list.rates {
				field := fmt.Sprintf("%s[%d]", list.name, i)
				switch {
				case d.Path == "" && d.Major == 0 && d.Minor == 0:
					add(field, "needs a device path or major:minor")
				case d.Major < 0 || d.Minor < 0:
					add(field, "major and minor must be >= 0")
				default:
					if _, _, err := d.Device(); err != nil {
						add(field, "%v", err)
					}
				}
			}
		}
	}
	seen := map[string]bool{}
	for i, h := range r.HugeTLB {
		field := fmt.Sprintf("hugetlb[%d].pageSize", i)
		if _, err := hugePageBytes(h.PageSize); err != nil {
			add(field, "%v", err)
		} else if seen[h.PageSize] {
			add(field, "%s is listed twice", h.PageSize)
		}
		seen[h.PageSize] = true
	}
	for i, d := range r.Devices {
		if err := d.validate(); err != nil {
			add(fmt.Sprintf("devices[%d]", i), "%v", err)
		}
	}
	return errors.Join(errs...)
}

func (d DeviceRule) validate() error {
	switch d.Type {
	case "a", "b", "c":
	default:
		return fmt.Errorf("type must be \"a\", \"b\" or \"c\", got %q", d.Type)
	}
	if d.Major < Wildcard || d.Minor < Wildcard {
		return fmt.Errorf("major and minor must be >= 0 or -1 (any), got %d:%d", d.Major, d.Minor)
	}
	if d.Access == "" {
		return errors.New("access must not be empty (use a combination of r, w, m)")
	}
	for i, c := range d.Access {
		if !strings.ContainsRune("rwm", c) || strings.ContainsRune(d.Access[:i], c) {
			return fmt.Errorf("access %q must be a combination of r, w and m, each once", d.Access)
		}
	}
	return nil
}

// validateCPUList checks the kernel's list syntax: "0-3,5,7-8".
func validateCPUList(s string) error {
	if s == "" {
		return nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := parseSmallUint(lo)
		b, err2 := a, error(nil)
		if isRange {
			b, err2 = parseSmallUint(hi)
		}
		if err1 != nil || err2 != nil || b < a {
			return fmt.Errorf("%q is not a list like \"0-3,5\"", s)
		}
	}
	return nil
}

func parseSmallUint(s string) (int, error) {
	if s == "" || len(s) > 6 {
		return 0, errors.New("bad number")
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, errors.New("bad number")
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}

// hugePageBytes parses a kernel huge page size name ("2MB", "1GB", "64KB")
// and checks that this kernel has pages of that size when it says which it
// has.
func hugePageBytes(size string) (uint64, error) {
	var mult uint64
	num := size
	switch {
	case strings.HasSuffix(size, "KB"):
		mult, num = 1<<10, strings.TrimSuffix(size, "KB")
	case strings.HasSuffix(size, "MB"):
		mult, num = 1<<20, strings.TrimSuffix(size, "MB")
	case strings.HasSuffix(size, "GB"):
		mult, num = 1<<30, strings.TrimSuffix(size, "GB")
	default:
		return 0, fmt.Errorf("%q is not a page size like \"2MB\" or \"1GB\"", size)
	}
	n, err := parseSmallUint(num)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a page size like \"2MB\" or \"1GB\"", size)
	}
	b := uint64(n) * mult
	entries, err := os.ReadDir("/sys/kernel/mm/hugepages")
	if err != nil {
		return b, nil // the kernel does not say; let the cgroup write decide
	}
	var have []string
	for _, e := range entries {
		if name, ok := strings.CutPrefix(e.Name(), "hugepages-"); ok {
			if kb, err := parseSmallUint(strings.TrimSuffix(name, "kB")); err == nil {
				if uint64(kb)<<10 == b {
					return b, nil
				}
				have = append(have, HugePageSizeName(uint64(kb)<<10))
			}
		}
	}
	return 0, fmt.Errorf("%s pages are not supported by this kernel (it has %s)", size, strings.Join(have, ", "))
}

// HugePageSizeName returns the kernel's name for a huge page size in bytes,
// as used in hugetlb cgroup file names: 2<<20 is "2MB", 1<<30 is "1GB".
func HugePageSizeName(bytes uint64) string {
	switch {
	case bytes >= 1<<30 && bytes%(1<<30) == 0:
		return fmt.Sprintf("%dGB", bytes>>30)
	case bytes >= 1<<20 && bytes%(1<<20) == 0:
		return fmt.Sprintf("%dMB", bytes>>20)
	default:
		return fmt.Sprintf("%dKB", bytes>>10)
	}
}

// IsZero reports whether r sets no limit at all.
func (r *Resources) IsZero() bool {
	return r == nil || (r.Memory == nil && r.CPU == nil && r.Pids == nil && r.IO == nil && len(r.HugeTLB) == 0 && len(r.Devices) == 0)
}
