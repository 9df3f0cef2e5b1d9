package vessel

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/limits"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/network"
	"github.com/openvessel/vessel/rootfs"
)

// NoLimit is the Limit of a resource that has none.
const NoLimit = math.MaxUint64

// Enforcement says how a resource's limit is enforced.
type Enforcement string

// Kinds of enforcement.
const (
	// EnforcedContainer: the kernel refuses what would go past the limit,
	// for the whole container (a cgroup, a namespace's own limit, a
	// filesystem's size).
	EnforcedContainer Enforcement = "container"
	// EnforcedProcess: an rlimit, which the kernel enforces for each
	// process on its own; Held sums over the processes.
	EnforcedProcess Enforcement = "process"
	// EnforcedUser: an rlimit the kernel counts per user id (in the
	// container's user namespace, or the host's without one).
	EnforcedUser Enforcement = "user"
	// EnforcedRate: a rate (CPU quota per period, bytes per second of
	// traffic); Limit is per second and Failcnt counts the times the rate
	// held something back.
	EnforcedRate Enforcement = "rate"
	// AccountedOnly: counted, with no limit set (or none the kernel can
	// put on it: README says which limit bounds it instead).
	AccountedOnly Enforcement = "accounted"
)

// Beancounter is one finite resource of a container, in the shape of
// OpenVZ's /proc/user_beancounters: what it holds, the most it held, its
// limit and how many times the limit refused something.
type Beancounter struct {
	// Resource is the name (OpenVZ's where one fits: numproc, kmemsize...).
	Resource string `json:"resource"`
	// Unit of Held, MaxHeld and Limit: bytes, tasks, files, ns...
	Unit    string `json:"unit"`
	Held    uint64 `json:"held"`
	MaxHeld uint64 `json:"maxheld"`
	// MaxHeldBy is "kernel" when the kernel keeps the peak, "vessel" when
	// it is the most vessel saw at its readings (Usage calls and
	// Config.UsageSampling).
	MaxHeldBy string `json:"maxheldBy,omitempty"`
	// Limit is NoLimit when there is none.
	Limit uint64 `json:"limit"`
	// Failcnt counts refusals at the limit, when the kernel counts them
	// (FailcntKnown).
	Failcnt      uint64      `json:"failcnt"`
	FailcntKnown bool        `json:"failcntKnown"`
	Enforcement  Enforcement `json:"enforcement"`
	// Source is where Held came from; empty when this host or this
	// container's configuration has no way to account the resource.
	Source string `json:"source,omitempty"`
}

// Usage is a container's use of every finite resource vessel accounts.
type Usage struct {
	Time   time.Time      `json:"time"`
	Layout cgroups.Layout `json:"layout"`
	// Resources, in a fixed order.
	Resources []Beancounter `json:"resources"`
}

// Get returns the named resource's counter.
func (u *Usage) Get(resource string) (Beancounter, bool) {
	for _, b := range u.Resources {
		if b.Resource == resource {
			return b, true
		}
	}
	return Beancounter{}, false
}

// usageTracker keeps the most held of each resource seen by vessel.
type usageTracker struct {
	mu  sync.Mutex
	max map[string]uint64
}

var trackers sync.Map // *Container -> *usageTracker

func (c *Container) tracker() *usageTracker {
	t, loaded := trackers.LoadOrStore(c, &usageTracker{max: map[string]uint64{}})
	if !loaded {
		c.addCleanup(func() error { trackers.Delete(c); return nil })
	}
	return t.(*usageTracker)
}

// validateAccounting checks the Config fields of accounting and limits
// that Usage reports.
func (c *Config) validateAccounting() []error {
	var errs []error
	if c.Ptys < 0 {
		errs = append(errs, &ConfigError{Field: "ptys", Reason: fmt.Sprintf("negative (%d)", c.Ptys)})
	}
	if c.ShmSize < 0 || (c.ShmSize > 0 && c.ShmSize < 4096) {
		errs = append(errs, &ConfigError{Field: "shmSize", Reason: fmt.Sprintf("%d bytes: must be 0 (64 MiB) or at least one page", c.ShmSize)})
	}
	errs = append(errs, c.validateBoot()...)
	if c.UsageSampling < 0 || (c.UsageSampling > 0 && c.UsageSampling < 10*time.Millisecond) {
		errs = append(errs, &ConfigError{Field: "usageSampling", Reason: fmt.Sprintf("%v: must be 0 (off) or at least 10ms", c.UsageSampling)})
	}
	return errs
}

// WithPtys limits the container's pseudo-terminals: opening /dev/ptmx
// beyond n fails with ENOSPC inside (devpts max=; 0: the kernel's
// default).
func (c *Config) WithPtys(n int64) *Config {
	c.Ptys = n
	return c
}

// WithShmSize sets the size of the container's /dev/shm (POSIX shared
// memory) in bytes.
func (c *Config) WithShmSize(bytes int64) *Config { c.ShmSize = bytes; return c }

// WithSysVShm limits the container's System V shared memory: all of its
// segments together to total bytes (kernel.shmall, rounded up to pages)
// and one segment to segment bytes (kernel.shmmax). It needs the
// container's own IPC namespace (the default); 0 leaves a value alone. A
// negative size is reported by Validate (and New).
func (c *Config) WithSysVShm(total, segment int64) *Config {
	if total > 0 {
		page := int64(4096)
		c.WithSysctl("kernel.shmall", strconv.FormatInt((total+page-1)/page, 10))
	} else if total < 0 {
		c.WithSysctl("kernel.shmall", strconv.FormatInt(total, 10))
	}
	if segment != 0 {
		c.WithSysctl("kernel.shmmax", strconv.FormatInt(segment, 10))
	}
	return c
}

// WithSocketBufferLimit limits the memory of the container's TCP socket
// buffers, in bytes (cgroup v1 and hybrid hosts: memory.kmem.tcp; on v2
// socket buffers count towards the memory limit and this is an error).
func (c *Config) WithSocketBufferLimit(bytes int64) *Config {
	r := c.resources()
	if r.Memory == nil {
		r.Memory = &limits.Memory{}
	}
	r.Memory.KernelTCP = limits.Ptr(bytes)
	return c
}

// WithOpenFiles limits the open files of each process (RLIMIT_NOFILE).
func (c *Config) WithOpenFiles(n uint64) *Config {
	return c.WithRlimit(limits.Rlimit{Type: "RLIMIT_NOFILE", Soft: n, Hard: n})
}

// WithLockedMemory limits the memory each process can lock, in bytes
// (RLIMIT_MEMLOCK).
func (c *Config) WithLockedMemory(bytes uint64) *Config {
	return c.WithRlimit(limits.Rlimit{Type: "RLIMIT_MEMLOCK", Soft: bytes, Hard: bytes})
}

// WithPendingSignals limits the signals queued for the container's user
// (RLIMIT_SIGPENDING: counted per user id, so per container only when the
// container has a user namespace of its own).
func (c *Config) WithPendingSignals(n uint64) *Config {
	return c.WithRlimit(limits.Rlimit{Type: "RLIMIT_SIGPENDING", Soft: n, Hard: n})
}

// Usage reads the container's use of every finite resource vessel
// accounts (at least twenty: tasks, memory kinds, shared and locked
// memory, open files and locks, ptys, pending signals, sockets by kind,
// firewall rules, disk space and inodes, traffic, I/O, CPU, OOM kills),
// each with held, maxheld, limit and failcnt where the kernel gives them.
// The container must be running. MaxHeld of the resources whose peak the
// kernel does not keep is the most seen by this Container's Usage calls
// (see Config.UsageSampling).
func (c *Container) Usage() (*Usage, error) {
	c.mu.Lock()
	cg, pid, status, att, storage := c.cg, c.mainPid, c.status, c.net, c.storage
	c.mu.Unlock()
	if cg == nil {
		return nil, fmt.Errorf("vessel: container %s has no cgroup (not started, destroyed, or cgroup disabled)", c.id)
	}
	if status != Running || pid <= 0 {
		return nil, ErrNotRunning
	}
	src := UsageSource{Cgroup: cg, Pid: pid, Config: c.cfg}
	if storage != nil {
		src.QuotaMethod = storage.QuotaMethod
	}
	if att != nil {
		src.HostInterface = att.HostInterface()
	}
	u, err := ReadUsage(src)
	if err != nil {
		return nil, err
	}
	c.tracker().track(u)
	return u, nil
}

// UsageSource is what ReadUsage needs to account a running container,
// also one that another program started (a CLI finds these in the
// container's recorded state).
type UsageSource struct {
	// Cgroup is the container's cgroup.
	Cgroup *cgroups.Manager
	// Pid is a process inside the container (its main process), through
	// which its namespaces and files are read.
	Pid int
	// Config is the container's configuration (namespaces, limits).
	Config *Config
	// QuotaMethod is how its root's quota is enforced
	// (Container.Storage().QuotaMethod); "" when it has none.
	QuotaMethod string
	// HostInterface is the host end of its veth, if it has one.
	HostInterface string
}

// ReadUsage reads what Container.Usage reads, for src. MaxHeld of the
// resources whose peak the kernel does not keep is the current value.
func ReadUsage(src UsageSource) (*Usage, error) {
	cg, pid, cfg := src.Cgroup, src.Pid, src.Config
	if cg == nil || pid <= 0 || cfg == nil {
		return nil, errors.New("vessel: ReadUsage needs the container's cgroup, a pid inside it and its config")
	}
	acc, err := cg.Accounting()
	if err != nil {
		return nil, err
	}
	st, err := cg.Stats()
	if err != nil {
		return nil, err
	}
	pids, err := cg.Pids()
	if err != nil {
		return nil, err
	}
	pu, err := limits.ReadProcessUsage(pids)
	if err != nil {
		return nil, err
	}
	fsu, err := rootfs.ReadUsage(pid, src.QuotaMethod != "", cfg.Ptys)
	if err != nil {
		return nil, err
	}
	var nu *network.Usage
	if cfg.Namespaces.IsNew(namespaces.Net) {
		var host []string
		if src.HostInterface != "" && cfg.Network != nil && cfg.Network.IngressRate > 0 {
			host = append(host, src.HostInterface)
		}
		if nu, err = network.ReadUsage(pid, host...); err != nil {
			return nil, err
		}
	}
	var ipc *namespaces.IPCUsage
	if cfg.Namespaces.IsNew(namespaces.IPC) {
		if ipc, err = namespaces.ReadIPCUsage(fmt.Sprintf("/proc/%d/ns/ipc", pid)); err != nil {
			return nil, err
		}
	}
	rlimit := func(name string) uint64 {
		r, err := limits.ReadRlimit(pid, name)
		if err != nil || r.Soft == limits.RlimInfinity {
			return NoLimit
		}
		return r.Soft
	}

	u := &Usage{Time: time.Now(), Layout: acc.Layout}
	add := func(b Beancounter) {
		if b.MaxHeldBy == "" {
			b.MaxHeldBy = "vessel"
		}
		u.Resources = append(u.Resources, b)
	}
	fromCounter := func(name, unit string, cn cgroups.Counter, enforced bool) Beancounter {
		b := Beancounter{Resource: name, Unit: unit, Held: cn.Held, Limit: NoLimit, Failcnt: cn.Failcnt,
			FailcntKnown: cn.FailcntKnown, Enforcement: AccountedOnly, Source: cn.Source}
		if cn.MaxHeldKnown {
			b.MaxHeld, b.MaxHeldBy = cn.MaxHeld, "kernel"
		}
		if cn.Limited {
			b.Limit = cn.Limit
		}
		if enforced {
			b.Enforcement = EnforcedContainer
		}
		return b
	}
	add(fromCounter("numproc", "tasks", acc.Tasks, true))
	add(fromCounter("physpages", "bytes", acc.Memory, true))
	add(fromCounter("swappages", "bytes", acc.Swap, true))
	add(fromCounter("kmemsize", "bytes", acc.KernelMemory, false))
	// TCP buffers have a limit of their own on v1; on v2 socket buffers
	// count towards physpages only.
	add(fromCounter("sockbuf", "bytes", acc.SocketBuffers, acc.SocketBuffers.Limited))
	add(fromCounter("shmpages", "bytes", acc.Shmem, false))
	add(fromCounter("hugetlb", "bytes", acc.HugeTLB, acc.HugeTLB.Limited))

	sysv := Beancounter{Resource: "sysvshm", Unit: "bytes", Limit: NoLimit, Enforcement: AccountedOnly}
	if ipc != nil {
		sysv.Held, sysv.Limit, sysv.Enforcement, sysv.Source = ipc.ShmBytes, ipc.ShmAllBytes, EnforcedContainer, "/proc/sysvipc/shm"
	}
	add(sysv)
	add(Beancounter{Resource: "devshm", Unit: "bytes", Held: fsu.ShmBytes, Limit: fsu.ShmSize,
		Enforcement: EnforcedContainer, Source: "statfs /dev/shm"})
	add(Beancounter{Resource: "lockedpages", Unit: "bytes", Held: pu.LockedBytes, Limit: rlimit("RLIMIT_MEMLOCK"),
		Enforcement: EnforcedProcess, Source: "/proc/PID/status VmLck"})
	add(Beancounter{Resource: "privvmpages", Unit: "bytes", Held: pu.PrivateBytes, Limit: rlimit("RLIMIT_DATA"),
		Enforcement: EnforcedProcess, Source: "/proc/PID/status VmData+VmStk"})
	add(Beancounter{Resource: "numfile", Unit: "files", Held: pu.OpenFiles, Limit: rlimit("RLIMIT_NOFILE"),
		Enforcement: EnforcedProcess, Source: "/proc/PID/fd"})
	add(Beancounter{Resource: "numflock", Unit: "locks", Held: pu.FileLocks, Limit: NoLimit,
		Enforcement: AccountedOnly, Source: "/proc/locks"})
	pty := Beancounter{Resource: "numpty", Unit: "ptys", Held: fsu.Ptys, Limit: NoLimit, Enforcement: AccountedOnly, Source: "/dev/pts"}
	if fsu.PtyMax > 0 {
		pty.Limit, pty.Enforcement = fsu.PtyMax, EnforcedContainer
	}
	add(pty)
	add(Beancounter{Resource: "numsiginfo", Unit: "signals", Held: pu.PendingSignals, Limit: rlimit("RLIMIT_SIGPENDING"),
		Enforcement: EnforcedUser, Source: "/proc/PID/status SigPnd+ShdPnd"})

	// Without a network namespace of its own, the sockets and traffic
	// are the host's: not the container's to account.
	ownNet := nu != nil
	if !ownNet {
		nu = &network.Usage{}
	}
	sock := func(name string, held uint64) {
		b := Beancounter{Resource: name, Unit: "sockets", Held: held, Limit: NoLimit, Enforcement: AccountedOnly}
		if ownNet {
			b.Source = "/proc/PID/net/sockstat"
		}
		add(b)
	}
	sock("numsock", nu.Sockets)
	sock("numtcpsock", nu.TCP+nu.TCPTimeWait)
	sock("numudpsock", nu.UDP)
	sock("numunixsock", nu.Unix)
	sock("numothersock", nu.Raw+nu.Other)
	ipt := Beancounter{Resource: "numiptent", Unit: "rules", Held: nu.FirewallRules, Limit: NoLimit, Enforcement: AccountedOnly}
	if ownNet {
		ipt.Source = "nftables"
	}
	add(ipt)

	disk := Beancounter{Resource: "diskspace", Unit: "bytes", Limit: NoLimit, Enforcement: AccountedOnly}
	inodes := Beancounter{Resource: "diskinodes", Unit: "inodes", Limit: NoLimit, Enforcement: AccountedOnly}
	if fsu.DiskKnown {
		disk.Held, disk.Limit, disk.Enforcement, disk.Source = fsu.DiskBytes, fsu.DiskBytesLimit, EnforcedContainer, "statfs / ("+src.QuotaMethod+")"
		inodes.Held, inodes.Limit, inodes.Enforcement, inodes.Source = fsu.DiskInodes, fsu.DiskInodesLimit, EnforcedContainer, disk.Source
	}
	add(disk)
	add(inodes)

	traffic := func(name, unit string, held, rateBits, overlimits uint64, shaped bool) {
		b := Beancounter{Resource: name, Unit: unit, Held: held, Limit: NoLimit, Enforcement: AccountedOnly}
		if ownNet {
			b.Source = "/proc/PID/net/dev"
		}
		if rateBits > 0 && shaped {
			b.Limit, b.Enforcement = rateBits/8, EnforcedRate
			b.Failcnt, b.FailcntKnown = overlimits, true
		}
		add(b)
	}
	var egress, ingress uint64
	if cfg.Network != nil {
		egress, ingress = cfg.Network.EgressRate, cfg.Network.IngressRate
	}
	traffic("netrxbytes", "bytes", nu.RxBytes, ingress, nu.IngressOverlimits, true)
	traffic("nettxbytes", "bytes", nu.TxBytes, egress, nu.EgressOverlimits, true)
	traffic("netrxpackets", "packets", nu.RxPackets, 0, 0, false)
	traffic("nettxpackets", "packets", nu.TxPackets, 0, 0, false)

	io := func(name, unit string, held uint64) {
		add(Beancounter{Resource: name, Unit: unit, Held: held, Limit: NoLimit, Enforcement: AccountedOnly, Source: "blkio/io.stat"})
	}
	io("ioreadbytes", "bytes", st.IO.ReadBytes)
	io("iowritebytes", "bytes", st.IO.WriteBytes)
	io("ioreadops", "ops", st.IO.ReadOps)
	io("iowriteops", "ops", st.IO.WriteOps)

	cpu := Beancounter{Resource: "cputime", Unit: "ns", Held: uint64(st.CPU.Total), Limit: NoLimit,
		Failcnt: st.CPU.ThrottledPeriods, FailcntKnown: true, Enforcement: AccountedOnly, Source: "cpuacct/cpu.stat"}
	if r := cfg.Resources; r != nil && r.CPU != nil && r.CPU.CPUs != nil && *r.CPU.CPUs > 0 {
		cpu.Limit, cpu.Enforcement = uint64(*r.CPU.CPUs*float64(time.Second)), EnforcedRate
	}
	add(cpu)
	add(Beancounter{Resource: "oomkills", Unit: "kills", Held: acc.OOMKills, Limit: NoLimit, Enforcement: AccountedOnly, Source: "memory oom_kill"})
	for i := range u.Resources {
		b := &u.Resources[i]
		if b.MaxHeldBy == "vessel" {
			b.MaxHeld = b.Held
		}
		if b.Limit >= 1<<62 {
			// The kernels' "unlimited" values (2^63 rounded to pages,
			// shmall's default) are no limit.
			b.Limit = NoLimit
		}
		if b.Limit == NoLimit {
			b.Enforcement = AccountedOnly
		}
	}
	return u, nil
}

// track raises the remembered peaks with u's values and sets MaxHeld of
// u's resources to the most seen.
func (t *usageTracker) track(u *Usage) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range u.Resources {
		b := &u.Resources[i]
		m := max(t.max[b.Resource], b.Held, b.MaxHeld)
		t.max[b.Resource] = m
		if b.MaxHeldBy == "vessel" || m > b.MaxHeld {
			b.MaxHeld = m
		}
	}
}

// sampleUsage reads Usage every d until the container ends, to keep the
// peaks of resources whose peak the kernel does not keep.
func (c *Container) sampleUsage(d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			c.Usage() // errors: the container is ending
		}
	}
}

// WriteTable prints u as /proc/user_beancounters does: one line per
// resource with held, maxheld, limit and failcnt ("-" where the kernel
// gives none), followed by the unit and how the limit is enforced.
func (u *Usage) WriteTable(w io.Writer, id string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "id\tresource\theld\tmaxheld\tlimit\tfailcnt\t unit\t enforcement\t\n")
	for i, b := range u.Resources {
		name := ""
		if i == 0 {
			name = id
		}
		held, maxheld, limit, failcnt := strconv.FormatUint(b.Held, 10), strconv.FormatUint(b.MaxHeld, 10), "unlimited", "-"
		if b.Limit != NoLimit {
			limit = strconv.FormatUint(b.Limit, 10)
		}
		if b.FailcntKnown {
			failcnt = strconv.FormatUint(b.Failcnt, 10)
		}
		enf := string(b.Enforcement)
		if b.Source == "" {
			held, maxheld, limit, enf = "-", "-", "-", "unavailable"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t %s\t %s\t\n", name, b.Resource, held, maxheld, limit, failcnt, b.Unit, enf)
	}
	return tw.Flush()
}
