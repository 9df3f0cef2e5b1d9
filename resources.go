package vessel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/fielderr"
	"github.com/openvessel/vessel/internal/child"
	"github.com/openvessel/vessel/limits"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/rootfs"
	"github.com/openvessel/vessel/security"
)

// Stats is a container's resource use, read from its cgroup.
type Stats struct {
	cgroups.Stats
	// Layout is the host's cgroup layout the figures came from.
	Layout cgroups.Layout `json:"layout"`
}

// WithResources sets the container's cgroup limits.
func (c *Config) WithResources(r *limits.Resources) *Config { c.Resources = r; return c }

func (c *Config) resources() *limits.Resources {
	if c.Resources == nil {
		c.Resources = &limits.Resources{}
	}
	return c.Resources
}

// WithMemoryLimit sets Resources.Memory.Limit: memory in bytes (> 0),
// beyond which the OOM killer acts; limits.Unlimited (-1) removes the
// limit. Other values are reported by Validate (and New).
func (c *Config) WithMemoryLimit(bytes int64) *Config {
	r := c.resources()
	if r.Memory == nil {
		r.Memory = &limits.Memory{}
	}
	r.Memory.Limit = limits.Ptr(bytes)
	return c
}

// WithMemorySwap sets Resources.Memory.Swap: memory plus swap in bytes
// (at least the memory limit; limits.Unlimited: unlimited swap).
func (c *Config) WithMemorySwap(bytes int64) *Config {
	r := c.resources()
	if r.Memory == nil {
		r.Memory = &limits.Memory{}
	}
	r.Memory.Swap = limits.Ptr(bytes)
	return c
}

// WithMemoryReservation sets Resources.Memory.Reservation, a soft memory
// limit in bytes (> 0).
func (c *Config) WithMemoryReservation(bytes int64) *Config {
	r := c.resources()
	if r.Memory == nil {
		r.Memory = &limits.Memory{}
	}
	r.Memory.Reservation = limits.Ptr(bytes)
	return c
}

// WithCPUs sets Resources.CPU.CPUs: CPU time limited to n cores' worth
// (0.5: half a core; n > 0); limits.Unlimited (-1) removes the limit.
// Other values (0 among them) are reported by Validate (and New).
func (c *Config) WithCPUs(n float64) *Config {
	r := c.resources()
	if r.CPU == nil {
		r.CPU = &limits.CPU{}
	}
	r.CPU.CPUs = limits.Ptr(n)
	return c
}

// WithCPUWeight sets the relative CPU weight (1-10000, default 100).
func (c *Config) WithCPUWeight(w uint64) *Config {
	r := c.resources()
	if r.CPU == nil {
		r.CPU = &limits.CPU{}
	}
	r.CPU.Weight = limits.Ptr(w)
	return c
}

// WithCPUSet pins the container to CPUs ("0-1") and memory nodes ("0").
func (c *Config) WithCPUSet(cpus, mems string) *Config {
	r := c.resources()
	if r.CPU == nil {
		r.CPU = &limits.CPU{}
	}
	r.CPU.Cpuset, r.CPU.Mems = cpus, mems
	return c
}

// WithPids sets Resources.Pids.Max: the number of tasks (processes and
// threads; > 0); limits.Unlimited (-1) removes the limit. Other values
// are reported by Validate (and New).
func (c *Config) WithPids(max int64) *Config {
	r := c.resources()
	r.Pids = &limits.Pids{Max: limits.Ptr(max)}
	return c
}

// WithRlimit adds a resource limit (setrlimit) for the container's
// processes; a bad one is reported by Validate (and New).
func (c *Config) WithRlimit(rl limits.Rlimit) *Config {
	c.Rlimits = append(c.Rlimits, rl)
	return c
}

// WithOOMScoreAdj sets oom_score_adj (-1000..1000) of the processes.
func (c *Config) WithOOMScoreAdj(v int) *Config {
	c.OOMScoreAdj = &v
	return c
}

// WithCPUTime kills the container once it has used d of CPU time (0:
// never).
func (c *Config) WithCPUTime(d time.Duration) *Config {
	c.CPUTime = d
	return c
}

// validateLimits checks the resource fields of a Config however they were
// filled (With methods or the struct), naming each field at fault.
func (c *Config) validateLimits() []error {
	var errs []error
	if err := errors.Join(c.Resources.Validate(), c.Resources.CheckContainer()); err != nil {
		errs = append(errs, fielderr.Split(fielderr.Prefix("resources.", err))...)
	}
	for i, rl := range c.Rlimits {
		if err := rl.Validate(); err != nil {
			errs = append(errs, fielderr.Prefix(fmt.Sprintf("rlimits[%d]", i), err))
		}
	}
	if v := c.OOMScoreAdj; v != nil && (*v < -1000 || *v > 1000) {
		errs = append(errs, fielderr.New("oomScoreAdj", "%d is outside -1000..1000", *v))
	}
	if c.Timeout < 0 {
		errs = append(errs, fielderr.New("timeout", "negative duration %v", c.Timeout))
	}
	if c.CPUTime < 0 {
		errs = append(errs, fielderr.New("cpuTime", "negative duration %v", c.CPUTime))
	}
	if u := c.Process.Umask; u != nil && *u > 0o777 {
		errs = append(errs, fielderr.New("process.umask", "%#o is not a permission mask", *u))
	}
	return errs
}

// WithCgroup places the container's cgroup at parent/name in every
// hierarchy (see CgroupConfig).
func (c *Config) WithCgroup(parent, name string) *Config {
	c.Cgroup.Parent, c.Cgroup.Name = parent, name
	return c
}

// WithSecurity sets the security profile.
func (c *Config) WithSecurity(p *security.Profile) *Config { c.Security = p; return c }

// WithCapAdd adds capabilities to the profile's sets.
func (c *Config) WithCapAdd(names ...string) *Config {
	c.security().Capabilities = c.security().Capabilities.WithAdd(names...)
	return c
}

// WithCapDrop removes capabilities ("ALL" for every one).
func (c *Config) WithCapDrop(names ...string) *Config {
	c.security().Capabilities = c.security().Capabilities.WithDrop(names...)
	return c
}

// WithSeccomp sets the seccomp filter (nil: unconfined).
func (c *Config) WithSeccomp(s *security.Seccomp) *Config { c.security().Seccomp = s; return c }

func (c *Config) security() *security.Profile {
	if c.Security == nil {
		c.Security = security.DefaultProfile()
	}
	if c.Security.Capabilities == nil {
		c.Security.Capabilities = security.DefaultCapabilities()
	}
	return c.Security
}

// securityProfile is the profile the container runs under: nil for the
// default one, Privileged's for a privileged container without one, and
// an enabled Landlock ruleset without paths filled in with the
// container's own filesystem.
func (c *Config) securityProfile() *security.Profile {
	prof := c.Security
	if c.Privileged && prof == nil {
		prof = security.Privileged()
	}
	if prof == nil {
		return nil
	}
	if l := prof.Landlock; l != nil && l.Enabled && !l.HasPaths() {
		// An enabled ruleset without paths means: the container's own
		// filesystem, as its mounts say.
		cp := *prof
		ll := c.landlockPaths(*l)
		cp.Landlock = &ll
		prof = &cp
	}
	return prof
}

// preparedSecurity compiles the profile (Validate has checked it), once
// per program for the default profile.
func (c *Config) preparedSecurity() (*security.Prepared, error) {
	prof := c.securityProfile()
	if prof == nil {
		p, err := security.PrepareDefault()
		if err != nil {
			return nil, &ConfigError{Field: "security", Reason: err.Error()}
		}
		return p, nil
	}
	p, err := prof.Prepare()
	if err != nil {
		return nil, &ConfigError{Field: "security", Reason: err.Error()}
	}
	if p.Capabilities != nil && !c.Namespaces.IsNew(namespaces.User) {
		// Without a user namespace of its own the container cannot hold
		// a capability this program lacks: "all" means all of ours.
		if own, err := security.CallerPermitted(); err == nil {
			p = p.LimitCapabilities(own)
		}
	}
	return p, nil
}

// WithLandlock restricts the container's processes with Landlock to the
// container's own filesystem: the root readable and executable (writable
// when the root is), each mount as its options say, /dev, /tmp and /run
// writable; and, when ports are given, TCP bind and connect to those
// ports only (Landlock ABI 4+). Best effort by the kernel's ABI.
func (c *Config) WithLandlock(bindTCP, connectTCP []uint16) *Config {
	c.security().Landlock = &security.Landlock{Enabled: true, BindTCP: bindTCP, ConnectTCP: connectTCP}
	return c
}

// landlockPaths derives a ruleset's paths from the container's mounts.
func (c *Config) landlockPaths(l security.Landlock) security.Landlock {
	fs := security.ContainerFS{
		RootWritable: c.Rootfs.Kind != rootfs.KindHost && !c.ReadOnly,
		HostRoot:     c.Rootfs.Kind == rootfs.KindHost,
	}
	for _, m := range c.Mounts {
		fs.Mounts = append(fs.Mounts, security.MountAccess{Destination: m.Destination, ReadOnly: m.ReadOnly})
	}
	return l.WithContainerFS(fs)
}

func (c *Container) cgroupOptions() cgroups.Options {
	return cgroupOptions(c.id, c.cfg.Cgroup, c.cfg.Resources)
}

// DefaultCgroupGroup is the group a container's cgroup goes under when its
// CgroupConfig names none: $VESSEL_CGROUP_GROUP, else "vessel".
func DefaultCgroupGroup() string { return cgroups.DefaultGroup() }

// CgroupOptions says where the cgroup of container id placed by cc goes,
// without limits: for a program that must find or make it on its own (the
// OCI CLI records it before the container exists).
func CgroupOptions(id string, cc CgroupConfig) cgroups.Options {
	return cgroupOptions(id, cc, nil)
}

func cgroupOptions(id string, cc CgroupConfig, r *limits.Resources) cgroups.Options {
	return cgroups.Placement{Path: cc.Path, Parent: cc.Parent, Group: cc.Group, Name: cc.Name}.Options(id, r)
}

// delegationHint says how an unprivileged program gets a cgroup of its
// own to put containers' limits in, for this host's cgroup layout (the
// README's "Rootless" section says more). It is part of the errors and
// warnings of containers that run without one.
func delegationHint() string {
	layout, _ := cgroups.Detect()
	switch layout {
	case cgroups.V2:
		return "to get limits, run the program in a delegated cgroup: systemd-run --user --scope -p Delegate=yes PROGRAM " +
			"(or have root make a cgroup, chown it and its cgroup.procs, cgroup.subtree_control and cgroup.threads to the user, " +
			"and start the program in it)"
	case cgroups.Hybrid, cgroups.V1:
		return "to get limits on this " + string(layout) + " host, root must delegate a cgroup in every hierarchy " +
			"(each v1 controller, name=systemd and the unified one; systemd's Delegate=yes covers only the unified one): " +
			"make a directory in each under /sys/fs/cgroup, chown it and its cgroup.procs, tasks, cgroup.subtree_control " +
			"and cgroup.threads to the user, and start the program with its pid in each cgroup.procs (README: Rootless)"
	}
	return "to get limits, run the program in a cgroup delegated to its user"
}

// DestroyStale removes what a container left on the host when the program
// that started it died without calling Destroy: its cgroup (killing any
// process still in it). cc must be the container's cgroup placement. It is
// not an error when nothing is left.
func DestroyStale(id string, cc CgroupConfig) error {
	if !rootfs.ValidName(id) {
		return &ConfigError{Field: "id", Reason: fmt.Sprintf("%q is not a container id", id)}
	}
	if cc.Disabled {
		return nil
	}
	return cgroups.DestroyStale(cgroupOptions(id, cc, nil))
}

// setupCgroupStaged creates the container's cgroup where a process can be
// started into it (the unified hierarchy, for CLONE_INTO_CGROUP) and
// returns finish, which creates the rest and applies the limits, to run
// while the init starts. The init's config goes only once finish
// returned. The cgroup's removal is registered as a cleanup at once.
func (c *Container) setupCgroupStaged() (finish func() error, err error) {
	done := func() error { return nil }
	if c.cfg.Cgroup.Disabled {
		return done, nil
	}
	unprivileged := os.Geteuid() != 0 || inUserNamespace()
	noCgroup := func(err error) error {
		// Rootless or nested, and no cgroup delegated to us: run without
		// one if no limit was asked for, but say so; refuse otherwise.
		if c.cfg.Resources != nil && !c.cfg.Resources.IsZero() {
			return &SetupError{Step: "create cgroup", Path: c.cgroupOptions().Name,
				Err: fmt.Errorf("limits unavailable: no cgroup can be created here (none delegated to this user or container); %s: %w", delegationHint(), err)}
		}
		c.warn("no cgroup: none can be created here (limits, stats, pause, resume, the CPU-time limit and cgroup kill are unavailable; namespaces, the root filesystem, networking and security work); " + delegationHint() + ": " + err.Error())
		return nil
	}
	opts := c.cgroupOptions()
	if !c.cfg.Privileged && !unprivileged && (opts.Resources == nil || len(opts.Resources.Devices) == 0) {
		// Only the devices a container needs: without this rule a
		// container keeping CAP_MKNOD could make and open any host device
		// node on a writable root. An unprivileged caller can neither
		// write a v1 device rule (that needs CAP_SYS_ADMIN on the host)
		// nor give its containers a mknod that makes a usable device
		// node (the kernel refuses it outside the initial user
		// namespace), so it gets none.
		r := limits.Resources{}
		if opts.Resources != nil {
			r = *opts.Resources
		}
		r.Devices = cgroups.DefaultDevices()
		opts.Resources = &r
	}
	m, err := cgroups.New(opts)
	if err != nil {
		if unprivileged {
			if err := noCgroup(err); err != nil {
				return nil, err
			}
			return done, nil
		}
		return nil, &ConfigError{Field: "cgroup", Reason: err.Error()}
	}
	createErr := func(err error) error {
		if errors.Is(err, fs.ErrExist) {
			return &SetupError{Step: "create cgroup", Path: c.cgroupOptions().Name, Err: fmt.Errorf(
				"%w: %q: its cgroup exists, so a container with this id runs (or one ended without Destroy: DestroyStale removes what it left): %w",
				ErrIDInUse, c.id, err)}
		}
		if unprivileged && (errors.Is(err, fs.ErrPermission) || errors.Is(err, unix.EROFS) || errors.Is(err, fs.ErrNotExist)) {
			return noCgroup(err)
		}
		return &SetupError{Step: "create cgroup", Path: c.cgroupOptions().Name, Err: err}
	}
	if unprivileged {
		// All at once: a permission problem anywhere means no cgroup.
		if err := m.Create(); err != nil {
			if err := createErr(err); err != nil {
				return nil, err
			}
			return done, nil
		}
		c.adoptCgroup(m)
		return done, nil
	}
	rest, err := m.CreateStaged()
	if err != nil {
		return nil, createErr(err)
	}
	c.adoptCgroup(m)
	return func() error {
		if err := rest(); err != nil {
			return createErr(err)
		}
		return nil
	}, nil
}

// adoptCgroup makes m the container's cgroup, removed at cleanup.
func (c *Container) adoptCgroup(m *cgroups.Manager) {
	c.mu.Lock()
	c.cg = m
	c.mu.Unlock()
	c.addCleanup(func() error {
		err := m.Destroy()
		c.mu.Lock()
		c.cg = nil
		c.mu.Unlock()
		return err
	})
}

func (c *Container) addCleanup(f func() error) {
	c.mu.Lock()
	c.cleanups = append(c.cleanups, f)
	c.mu.Unlock()
}

// Stats returns the container's resource use.
func (c *Container) Stats() (*Stats, error) {
	c.mu.Lock()
	cg := c.cg
	c.mu.Unlock()
	if cg == nil {
		return nil, fmt.Errorf("vessel: container %s has no cgroup (not started, destroyed, or cgroup disabled)", c.id)
	}
	st, err := cg.Stats()
	if err != nil {
		return nil, err
	}
	return &Stats{Stats: *st, Layout: cg.Layout()}, nil
}

// Update changes the limits of a running container. Only the parts of r
// that are set change.
func (c *Container) Update(r *limits.Resources) error {
	if err := errors.Join(r.Validate(), r.CheckContainer()); err != nil {
		return fielderr.Prefix("resources.", err)
	}
	c.mu.Lock()
	cg := c.cg
	c.mu.Unlock()
	if cg == nil {
		return ErrNotRunning
	}
	return cg.Update(r)
}

// Pause freezes every process of the container.
func (c *Container) Pause() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status != Running || c.cg == nil {
		return ErrNotRunning
	}
	if err := c.cg.Freeze(); err != nil {
		return err
	}
	c.paused = true
	return nil
}

// Resume thaws a paused container.
func (c *Container) Resume() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cg == nil {
		return ErrNotRunning
	}
	if err := c.cg.Thaw(); err != nil {
		return err
	}
	c.paused = false
	return nil
}

// Paused reports whether the container is frozen.
func (c *Container) Paused() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.paused
}

// watchCPUTime kills the container once its cgroup has used the limit.
func (c *Container) watchCPUTime(limit time.Duration) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			st, err := c.Stats()
			if err != nil {
				continue
			}
			if st.CPU.Total >= limit {
				_ = c.killFor(killedForCPUTime)
				return
			}
		}
	}
}

// warn records something the caller should know about how the container
// runs (see Warnings).
func (c *Container) warn(msg string) {
	c.mu.Lock()
	c.warnings = append(c.warnings, msg)
	c.mu.Unlock()
	c.logf("warning", "msg", msg)
}

// Warnings lists what the container runs without that a caller might
// expect (for example no cgroup for a rootless container).
func (c *Container) Warnings() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.warnings...)
}

var (
	userNSOnce sync.Once
	inUserNS   bool
)

// inUserNamespace reports whether this program runs in a user namespace
// other than the host's (a nested or rootless-style container), where
// root's powers stop at that namespace.
func inUserNamespace() bool {
	userNSOnce.Do(func() {
		b, err := os.ReadFile("/proc/self/uid_map")
		if err != nil {
			return
		}
		f := strings.Fields(string(b))
		inUS := !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
		inUserNS = inUS
	})
	return inUserNS
}

// WithNesting lets the container run containers itself (vessel, or any
// runtime) without any extra privilege on the host: it gets a user
// namespace (container root maps to an unprivileged host id range when the
// caller is root), and inside it every capability, which only reaches
// namespaces that user namespace owns. The default seccomp profile then
// allows the namespace and mount system calls, as Docker's does for
// CAP_SYS_ADMIN. Containers inside run without cgroups of their own
// unless one is delegated.
func (c *Config) WithNesting() *Config {
	if !c.Namespaces.IsNew(namespaces.User) {
		if os.Geteuid() == 0 {
			c.WithUserNamespace(
				[]namespaces.IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
				[]namespaces.IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}})
		} else {
			c.WithUserNamespace(nil, nil)
		}
	}
	return c.WithCapAdd("ALL")
}

// cgroupPlaces tells the init where the container's cgroup is, and places
// the init itself: never in the container's cgroup where it holds limits.
// On a hybrid host the init lives in the container's cgroup of the unified
// hierarchy, which holds none (the v1 controllers do): it is cloned there,
// or, a spare, moved there before its config (the returned move). On a
// v2 host it is cloned into the container's cgroup with a new cgroup
// namespace (rooted there) and moved back to the caller's cgroup before
// the limits are written (the returned move); a spare instead roots its
// namespace there itself, moving for that moment. In v1 hierarchies the
// init's main thread alone moves for that moment (cheap: see
// internal/child's cgroupSet).
func (c *Container) cgroupPlaces(ic *child.Config, sys *syscall.SysProcAttr, spare bool) (move func(pid int) error, err error) {
	if c.cg == nil {
		return nil, nil
	}
	places, err := c.cg.Places()
	if err != nil {
		return nil, &SetupError{Step: "cgroup", Err: err}
	}
	hybrid := c.cg.Layout() == cgroups.Hybrid
	var v2Dir, v2Own string
	for _, p := range places {
		if p.V2 {
			v2Dir, v2Own = p.Dir, p.Own
			if hybrid && !spare {
				continue // the init lives there
			}
			if !spare || hybrid {
				// The namespace is made at the clone; or, for a spare on
				// a hybrid host, not rooted there (see below). Processes
				// are forked into it either way.
				p.Own = ""
			}
		}
		ic.Cgroups = append(ic.Cgroups, child.CgroupPlace{Dir: p.Dir, Home: p.Own, V2: p.V2})
	}
	if v2Dir == "" {
		return nil, nil
	}
	writePid := func(dir string) func(int) error {
		return func(pid int) error {
			if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
				return &SetupError{Step: "place init", Path: dir, Err: err}
			}
			return nil
		}
	}
	if spare {
		// A spare already runs in the caller's cgroup; moving a whole
		// process waits for an RCU grace period (most of a start from a
		// spare). On a hybrid host it stays there (its processes are
		// forked into the container's unified cgroup): its cgroup
		// namespace is rooted at the container's cgroup in the v1
		// hierarchies, which hold the limits, and the unified one (which
		// holds none) is not shown inside.
		if hybrid && ic.Plan != nil {
			view := ic.Plan.CgroupV1[:0:0]
			for _, h := range ic.Plan.CgroupV1 {
				if !h.V2 {
					view = append(view, h)
				}
			}
			ic.Plan.CgroupV1 = view
		}
		return nil, nil
	}
	fd, ok := c.cg.FD()
	if !ok {
		return nil, nil
	}
	sys.UseCgroupFD, sys.CgroupFD = true, fd
	if hybrid {
		return nil, nil
	}
	if ic.NewCgroupNS {
		sys.Cloneflags |= unix.CLONE_NEWCGROUP
		ic.CgroupNSMade = true
	}
	if v2Own == "" {
		return nil, &SetupError{Step: "cgroup", Err: errors.New("this program's own cgroup2 cgroup is not visible: the container's init would stay inside its limits")}
	}
	return writePid(v2Own), nil
}
