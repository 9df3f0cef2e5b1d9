package vessel

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/openvessel/vessel/fielderr"
	"github.com/openvessel/vessel/internal/child"
	"github.com/openvessel/vessel/limits"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/network"
	"github.com/openvessel/vessel/rootfs"
	"github.com/openvessel/vessel/security"
)

// DefaultPath is the PATH a container process gets when its environment
// has none. A process also gets HOME (/root for uid 0, else /), HOSTNAME
// and, with a terminal, TERM=xterm, unless its environment sets them.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// User is the identity a container process runs as, in the container's
// user namespace (or the host's when the user namespace is shared).
type User struct {
	// UID and GID are the process's user and group ids.
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
	// Groups are its supplementary groups.
	Groups []uint32 `json:"groups,omitempty"`
}

// childUser converts u for the container init (nil stays nil).
func childUser(u *User) *child.User {
	if u == nil {
		return nil
	}
	return &child.User{UID: u.UID, GID: u.GID, Groups: append([]uint32(nil), u.Groups...)}
}

// ProcessConfig describes the container's main process.
type ProcessConfig struct {
	Args []string `json:"args,omitempty"`
	Env  []string `json:"env,omitempty"`
	Dir  string   `json:"cwd,omitempty"`
	User User     `json:"user"`
	// Umask for the process; nil means 0022.
	Umask *uint32 `json:"umask,omitempty"`
	// TTY gives the process a pseudo-terminal from the container's own
	// devpts as its stdin, stdout and stderr.
	TTY bool `json:"terminal,omitempty"`
	// Rows and Cols are the terminal's initial size.
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
	// idle: the main process is vessel's idle PID 1 (Pool), not Args.
	idle bool
}

// Config is what a container is. Build it with NewConfig and the With
// methods, or fill the struct directly (it has JSON tags, so it can be
// stored and diffed). The With methods never fail: they record problems,
// which Validate and New report, each naming the field and the reason.
type Config struct {
	// Rootfs is the root filesystem: rootfs.Host() (the default) or
	// rootfs.Dir(path).
	Rootfs rootfs.Root `json:"rootfs"`
	// ReadOnly makes the root filesystem read-only (a host root always is).
	ReadOnly bool `json:"readonly,omitempty"`
	// Mounts are added, in order, after the system mounts.
	Mounts []rootfs.Mount `json:"mounts,omitempty"`
	// MaskedPaths and ReadOnlyPaths override rootfs's defaults when not nil.
	MaskedPaths   []string `json:"maskedPaths,omitempty"`
	ReadOnlyPaths []string `json:"readonlyPaths,omitempty"`

	// Namespaces lists the container's own namespaces: new ones, or joined
	// ones (with a path). A kind not listed is shared with the host.
	Namespaces namespaces.Set `json:"namespaces"`
	// UIDMappings and GIDMappings map ids of a new user namespace. Empty
	// maps container root to the calling user.
	UIDMappings []namespaces.IDMap `json:"uidMappings,omitempty"`
	GIDMappings []namespaces.IDMap `json:"gidMappings,omitempty"`
	// TimeOffsets shift the clocks of a new time namespace.
	TimeOffsets namespaces.TimeOffsets `json:"timeOffsets,omitempty"`

	Hostname   string `json:"hostname,omitempty"`
	Domainname string `json:"domainname,omitempty"`

	// Process is the main process; Start's arguments override Args.
	Process ProcessConfig `json:"process"`

	// Timeout, when positive, kills the container that long after Start.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Sysctls are written under /proc/sys inside the container.
	Sysctls map[string]string `json:"sysctl,omitempty"`
	// Privileged gives the container the host's /dev.
	Privileged bool `json:"privileged,omitempty"`
	// Devices are device nodes created in the container (an OCI spec's
	// linux.devices). Resources.Devices must allow their use.
	Devices []rootfs.Device `json:"devices,omitempty"`
	// RootPropagation is the root mount's propagation (an OCI spec's
	// linux.rootfsPropagation); "" keeps it private.
	RootPropagation string `json:"rootPropagation,omitempty"`

	// Network is the network mode; nil means loopback only when the
	// container has its own network namespace (see WithNetwork).
	Network *network.Config `json:"network,omitempty"`

	// Security is the privilege profile: capabilities, no_new_privs,
	// seccomp, landlock. nil means security.DefaultProfile(); use
	// security.Privileged() (or WithPrivileged) to loosen it.
	Security *security.Profile `json:"security,omitempty"`

	// Resources are the container's cgroup limits (nil: a cgroup with no
	// limits, still used for accounting, pause and kill-all).
	Resources *limits.Resources `json:"resources,omitempty"`
	// Cgroup places the container's cgroup.
	Cgroup CgroupConfig `json:"cgroup,omitempty"`
	// Rlimits are set on the container's processes (setrlimit).
	Rlimits []limits.Rlimit `json:"rlimits,omitempty"`
	// OOMScoreAdj is written to /proc/PID/oom_score_adj of each process.
	OOMScoreAdj *int `json:"oomScoreAdj,omitempty"`
	// CPUTime, when positive, kills the container once its processes
	// together have used that much CPU time.
	CPUTime time.Duration `json:"cpuTime,omitempty"`
	// Ptys limits the pseudo-terminals of the container's devpts (its
	// max= option); 0 is the kernel's default (Usage: numpty).
	Ptys int64 `json:"ptys,omitempty"`
	// ShmSize is the size of the container's /dev/shm in bytes; 0 is 64
	// MiB (Usage: devshm).
	ShmSize int64 `json:"shmSize,omitempty"`
	// UsageSampling, when positive, reads the container's Usage that often
	// while it runs, so that MaxHeld also covers peaks between calls for
	// the resources whose peak the kernel does not keep.
	UsageSampling time.Duration `json:"usageSampling,omitempty"`
	// Boot says the main process is the image's own init (WithBoot).
	Boot bool `json:"boot,omitempty"`
	// StopSignal is what Stop sends first (0: SIGTERM).
	StopSignal syscall.Signal `json:"stopSignal,omitempty"`

	// Hooks run at points of the container's life (OCI hooks).
	Hooks *Hooks `json:"hooks,omitempty"`
	// Bundle and Annotations are reported to hooks in the OCI state.
	Bundle      string            `json:"bundle,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`

	// Logger receives debug logs; nil is silent.
	Logger *slog.Logger `json:"-"`
}

// CgroupConfig says where a container's cgroup goes: Parent/Group/Name in
// every cgroup hierarchy. An empty Parent means the calling program's own
// cgroup, so a program that is itself limited cannot escape its limits by
// starting containers. An empty Group is $VESSEL_CGROUP_GROUP, else
// "vessel"; an empty Name is the container's id.
type CgroupConfig struct {
	// Path, when set, is the cgroup's exact absolute path in every
	// hierarchy ("/jobs/42"), overriding Parent, Group and Name.
	Path   string `json:"path,omitempty"`
	Parent string `json:"parent,omitempty"`
	Group  string `json:"group,omitempty"`
	Name   string `json:"name,omitempty"`
	// Disabled runs the container without a cgroup of its own (no limits,
	// no accounting; Kill relies on the pid namespace).
	Disabled bool `json:"disabled,omitempty"`
}

// NewConfig returns the default configuration: the host's files read-only
// as root, new mount, pid, uts, ipc, net (loopback only) and cgroup
// namespaces, and a process running as root in "/".
//
// For a program running as an ordinary (non-root) user the default also
// has a new user namespace, where container root is that user: rootless
// containers need one to own their other namespaces.
func NewConfig() *Config {
	ns := namespaces.Default()
	if os.Geteuid() != 0 {
		ns = ns.With(namespaces.User, "")
	}
	return &Config{
		Rootfs:     rootfs.Host(),
		Namespaces: ns,
		Process:    ProcessConfig{Env: []string{"PATH=" + DefaultPath}, Dir: "/"},
	}
}

// WithRootfs sets the root filesystem.
func (c *Config) WithRootfs(r rootfs.Root) *Config { c.Rootfs = r; return c }

// WithReadOnlyRootfs makes the root filesystem read-only.
func (c *Config) WithReadOnlyRootfs(ro bool) *Config { c.ReadOnly = ro; return c }

// WithMount adds mounts.
func (c *Config) WithMount(m ...rootfs.Mount) *Config { c.Mounts = append(c.Mounts, m...); return c }

// WithBind adds a recursive bind mount of host path src at dst.
func (c *Config) WithBind(src, dst string, readonly bool) *Config {
	m := rootfs.Bind(src, dst)
	m.ReadOnly = readonly
	return c.WithMount(m)
}

// WithTmpfs adds a tmpfs at dst limited to size bytes (0: kernel default).
func (c *Config) WithTmpfs(dst string, size int64) *Config {
	return c.WithMount(rootfs.Tmpfs(dst, size))
}

// WithMaskedPaths replaces the default masked paths.
func (c *Config) WithMaskedPaths(p ...string) *Config {
	c.MaskedPaths = append([]string{}, p...)
	return c
}

// WithReadOnlyPaths replaces the default read-only paths.
func (c *Config) WithReadOnlyPaths(p ...string) *Config {
	c.ReadOnlyPaths = append([]string{}, p...)
	return c
}

// WithNamespaces replaces the namespace set.
func (c *Config) WithNamespaces(s namespaces.Set) *Config { c.Namespaces = s; return c }

// WithNamespace gives the container its own namespace of kind k: a new one
// when path is empty, else the existing one at path. An unknown kind is
// reported by Validate (and New).
func (c *Config) WithNamespace(k namespaces.Kind, path string) *Config {
	c.Namespaces = c.Namespaces.With(k, path)
	return c
}

// WithSharedNamespace shares the host's namespace of kind k.
func (c *Config) WithSharedNamespace(k namespaces.Kind) *Config {
	c.Namespaces = c.Namespaces.Without(k)
	return c
}

// WithUserNamespace gives the container a new user namespace with these id
// mappings (nil: container root is the calling user).
func (c *Config) WithUserNamespace(uids, gids []namespaces.IDMap) *Config {
	c.Namespaces = c.Namespaces.With(namespaces.User, "")
	c.UIDMappings, c.GIDMappings = uids, gids
	return c
}

// WithTimeNamespace gives the container a new time namespace whose
// monotonic and boot-time clocks are shifted by the offsets.
func (c *Config) WithTimeNamespace(monotonic, boottime time.Duration) *Config {
	c.Namespaces = c.Namespaces.With(namespaces.Time, "")
	c.TimeOffsets = namespaces.TimeOffsets{Monotonic: monotonic, Boottime: boottime}
	return c
}

// WithHostname sets the container's hostname (needs a UTS namespace).
func (c *Config) WithHostname(h string) *Config { c.Hostname = h; return c }

// WithDomainname sets the container's NIS domain name.
func (c *Config) WithDomainname(d string) *Config { c.Domainname = d; return c }

// WithArgs sets the main process's command line.
func (c *Config) WithArgs(args ...string) *Config { c.Process.Args = args; return c }

// WithEnv adds KEY=VALUE pairs to the environment (a key set twice keeps
// the last value). A pair without "=" is reported by Validate (and New).
func (c *Config) WithEnv(kv ...string) *Config {
	for _, e := range kv {
		c.Process.Env = setEnv(c.Process.Env, e)
	}
	return c
}

// defaultEnv fills in what a process's environment lacks, as a login
// would: PATH (DefaultPath, the usual directories), HOME (/root for uid
// 0, else /), HOSTNAME (the container's hostname) and, with a terminal,
// TERM=xterm. What env sets already is kept.
func defaultEnv(env []string, uid uint32, hostname string, tty bool) []string {
	env = append([]string(nil), env...)
	home := "/"
	if uid == 0 {
		home = "/root"
	}
	defaults := []string{"PATH=" + DefaultPath, "HOME=" + home}
	if hostname != "" {
		defaults = append(defaults, "HOSTNAME="+hostname)
	}
	if tty {
		defaults = append(defaults, "TERM=xterm")
	}
	for _, kv := range defaults {
		k, _, _ := strings.Cut(kv, "=")
		if !hasEnv(env, k) {
			env = append(env, kv)
		}
	}
	return env
}

// hasEnv reports whether env sets key.
func hasEnv(env []string, key string) bool {
	for _, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == key {
			return true
		}
	}
	return false
}

func setEnv(env []string, kv string) []string {
	k, _, ok := strings.Cut(kv, "=")
	if !ok || k == "" {
		return append(env, kv)
	}
	out := env[:0:0]
	for _, e := range env {
		if ek, _, _ := strings.Cut(e, "="); ek != k {
			out = append(out, e)
		}
	}
	return append(out, kv)
}

// WithWorkDir sets the main process's working directory.
func (c *Config) WithWorkDir(dir string) *Config { c.Process.Dir = dir; return c }

// WithUser sets the uid and gid of the main process.
func (c *Config) WithUser(uid, gid uint32) *Config {
	c.Process.User.UID, c.Process.User.GID = uid, gid
	return c
}

// WithGroups sets supplementary groups.
func (c *Config) WithGroups(gids ...uint32) *Config { c.Process.User.Groups = gids; return c }

// WithUmask sets the umask of the main process (at most 0o777).
func (c *Config) WithUmask(mask uint32) *Config {
	c.Process.Umask = &mask
	return c
}

// WithTTY gives the main process a pseudo-terminal of the given size.
func (c *Config) WithTTY(on bool) *Config { c.Process.TTY = on; return c }

// WithTimeout kills the container d after it starts (0: never).
func (c *Config) WithTimeout(d time.Duration) *Config {
	c.Timeout = d
	return c
}

// WithSysctl sets a namespaced sysctl inside the container.
func (c *Config) WithSysctl(key, value string) *Config {
	if c.Sysctls == nil {
		c.Sysctls = map[string]string{}
	}
	c.Sysctls[key] = value
	return c
}

// WithPrivileged gives the container the host's devices.
func (c *Config) WithPrivileged(on bool) *Config { c.Privileged = on; return c }

// WithLogger sets a logger for debug output.
func (c *Config) WithLogger(l *slog.Logger) *Config { c.Logger = l; return c }

// Validate reports every problem found, each a *ConfigError naming the
// field, joined with errors.Join. It changes nothing on the host.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, &ConfigError{Field: field, Reason: fmt.Sprintf(format, a...)})
	}
	errs = append(errs, c.validateAccounting()...)
	ns := c.Namespaces
	if err := ns.Validate(); err != nil {
		errs = append(errs, err)
	}
	if os.Geteuid() != 0 && !ns.IsNew(namespaces.User) && len(ns) > 0 {
		bad("namespaces", "an unprivileged user (uid %d) needs a new user namespace to own the container's other namespaces", os.Geteuid())
	}
	if os.Geteuid() != 0 && ns.IsNew(namespaces.User) {
		if err := rootlessMappings(c.UIDMappings, uint32(os.Geteuid()), "uidMappings"); err != nil {
			errs = append(errs, err)
		}
		if err := rootlessMappings(c.GIDMappings, uint32(os.Getegid()), "gidMappings"); err != nil {
			errs = append(errs, err)
		}
	}
	if !ns.IsNew(namespaces.User) {
		if len(c.UIDMappings) > 0 {
			bad("uidMappings", "set, but the container has no new user namespace")
		}
		if len(c.GIDMappings) > 0 {
			bad("gidMappings", "set, but the container has no new user namespace")
		}
	}
	for _, m := range []struct {
		f string
		m []namespaces.IDMap
	}{{"uidMappings", c.UIDMappings}, {"gidMappings", c.GIDMappings}} {
		if err := namespaces.ValidateMappings(m.f, m.m); err != nil {
			errs = append(errs, err)
		}
	}
	if !c.TimeOffsets.IsZero() && !ns.IsNew(namespaces.Time) {
		bad("timeOffsets", "set, but the container has no new time namespace")
	}
	if (c.Hostname != "" || c.Domainname != "") && !ns.Has(namespaces.UTS) {
		bad("hostname", "needs a UTS namespace (it would change the host's)")
	}
	if c.Hostname != "" {
		if err := namespaces.CheckUTSName(c.Hostname); err != nil {
			bad("hostname", "%v", err)
		}
	}
	if c.Domainname != "" {
		if err := namespaces.CheckUTSName(c.Domainname); err != nil {
			bad("domainname", "%v", err)
		}
	}
	if ns.IsJoined(namespaces.Mount) {
		if c.Rootfs.Kind == rootfs.KindDir {
			if err := joinableMountNS(ns); err != nil {
				bad("namespaces["+string(namespaces.Mount)+"].path", "%v", err)
			}
		} else if len(c.Mounts) > 0 || c.ReadOnly || (c.Rootfs.Kind != rootfs.KindHost && c.Rootfs.Kind != "") {
			bad("rootfs", "a joined mount namespace takes only a directory root (rootfs.Dir): images, overlays and the host view are mounted on the host, where the joined namespace cannot see them")
		}
	}
	if !ns.Has(namespaces.Mount) && c.Rootfs.Kind != rootfs.KindDir && (len(c.Mounts) > 0 || c.ReadOnly || (c.Rootfs.Kind != rootfs.KindHost && c.Rootfs.Kind != "")) {
		bad("rootfs", "without a mount namespace only a directory root (rootfs.Dir) is built (a detached tree the process is chrooted into): images, overlays, the host view and mounts without a root need one")
	}
	if !ns.Has(namespaces.Mount) && c.Rootfs.Kind == rootfs.KindDir {
		// The root is built in a scratch mount namespace and the init
		// goes back to the caller's: not possible from a new user
		// namespace (the caller's belongs to the host's), and a new pid
		// namespace's /proc would have to be mounted in the caller's.
		if ns.IsNew(namespaces.User) {
			bad("namespaces", "a new user namespace without a mount namespace: the root filesystem is built in a scratch mount namespace and the container returns to the host's, which a new user namespace may not enter")
		}
		if ns.IsNew(namespaces.PID) {
			bad("namespaces", "a new pid namespace without a mount namespace: its /proc could only be mounted in the host's mount namespace")
		}
	}
	if c.buildsRoot() {
		if err := c.plan().Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.validateNetwork(); err != nil {
		errs = append(errs, err)
	}
	for i, e := range c.Process.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			bad(fmt.Sprintf("process.env[%d]", i), "%q is not KEY=VALUE", e)
		}
	}
	if c.Process.Dir != "" && !path.IsAbs(c.Process.Dir) {
		bad("process.cwd", "%q is not absolute", c.Process.Dir)
	}
	for k := range c.Sysctls {
		field := "sysctl[" + k + "]"
		if !strings.Contains(k, ".") || strings.ContainsAny(k, " ") {
			bad(field, "%q is not a sysctl name like net.ipv4.ip_forward", k)
			continue
		}
		// Only sysctls the container's own namespaces isolate: anything
		// else would change the host.
		if err := security.CheckSysctl(k, ns.IsNew(namespaces.Net) || ns.IsJoined(namespaces.Net), ns.Has(namespaces.IPC), ns.Has(namespaces.UTS)); err != nil {
			bad(field, "%v", err)
		}
		if k == "kernel.shmall" || k == "kernel.shmmax" {
			if _, err := strconv.ParseUint(c.Sysctls[k], 10, 64); err != nil {
				bad(field, "%q is not a size (bytes or pages, >= 0)", c.Sysctls[k])
			}
		}
	}
	// The profile's names and rules (Start compiles it).
	if prof := c.securityProfile(); prof != nil {
		if err := prof.Validate(); err != nil {
			errs = append(errs, fielderr.Prefix("security.", err))
		}
	}
	errs = append(errs, c.validateLimits()...)
	return errors.Join(errs...)
}

// buildsRoot reports whether the init builds the container's root
// filesystem: in a new mount namespace, or, given a directory root, in
// the joined one (as runc does: the root is mounted and pivoted to there).
//
// Without a mount namespace in the set, a directory root is built as a
// detached tree the process is chrooted into, in the caller's mount
// namespace (rootfs.Plan.InheritMountNS): what runc does for such a
// container (mounts in the host's namespace, then chroot) without
// mounting anything there.
func (c *Config) buildsRoot() bool {
	ns := c.Namespaces
	return ns.IsNew(namespaces.Mount) || (!ns.IsNew(namespaces.Mount) && c.Rootfs.Kind == rootfs.KindDir)
}

// joinableMountNS refuses to build a root in a joined mount namespace that
// is this process's own or the host's first one (PID 1's): mounting the
// container's root there and pivoting into it would change the root of
// every process of the host.
func joinableMountNS(ns namespaces.Set) error {
	n, _ := ns.Get(namespaces.Mount)
	var target syscall.Stat_t
	if syscall.Stat(n.Path, &target) != nil {
		return nil // namespaces' own check names the path and the error
	}
	for _, own := range []string{"/proc/self/ns/mnt", "/proc/1/ns/mnt"} {
		var st syscall.Stat_t
		if syscall.Stat(own, &st) == nil && st.Dev == target.Dev && st.Ino == target.Ino {
			return fmt.Errorf("%s is the host's mount namespace (%s): a root filesystem built and pivoted to there would replace the host's", n.Path, own)
		}
	}
	return nil
}

// plan turns the config into the rootfs package's plan.
func (c *Config) plan() *rootfs.Plan {
	ns := c.Namespaces
	ttyGid := 5
	if ns.IsNew(namespaces.User) {
		if _, ok := namespaces.ToHost(c.gidMappings(), 5); !ok {
			ttyGid = -1
		}
	}
	return &rootfs.Plan{
		Root:            c.Rootfs,
		Readonly:        c.ReadOnly,
		Mounts:          c.Mounts,
		MaskedPaths:     c.MaskedPaths,
		ReadonlyPaths:   c.ReadOnlyPaths,
		UserNS:          ns.IsNew(namespaces.User) || inUserNamespace(),
		NewPID:          ns.IsNew(namespaces.PID),
		NewNet:          ns.IsNew(namespaces.Net),
		NewIPC:          ns.IsNew(namespaces.IPC),
		NewCgroup:       ns.IsNew(namespaces.Cgroup),
		CgroupV2:        cgroupV2Host(),
		CgroupV1:        cgroupV1View(),
		TTYGid:          ttyGid,
		PtyMax:          c.Ptys,
		ShmSize:         c.ShmSize,
		Console:         c.Boot && c.Process.TTY,
		Privileged:      c.Privileged,
		Devices:         c.Devices,
		RootPropagation: c.RootPropagation,
		InheritMountNS:  !ns.Has(namespaces.Mount),
	}
}

func (c *Config) uidMappings() []namespaces.IDMap {
	if len(c.UIDMappings) > 0 {
		return c.UIDMappings
	}
	u, _ := namespaces.DefaultMappings()
	return u
}

func (c *Config) gidMappings() []namespaces.IDMap {
	if len(c.GIDMappings) > 0 {
		return c.GIDMappings
	}
	_, g := namespaces.DefaultMappings()
	return g
}

// clone returns a deep enough copy that a started container is not
// affected by later changes to the caller's Config.
func (c *Config) clone() *Config {
	n := *c
	n.Mounts = append([]rootfs.Mount(nil), c.Mounts...)
	n.Devices = append([]rootfs.Device(nil), c.Devices...)
	n.Namespaces = append(namespaces.Set(nil), c.Namespaces...)
	n.Process.Args = append([]string(nil), c.Process.Args...)
	n.Process.Env = append([]string(nil), c.Process.Env...)
	if c.Network != nil {
		nc := *c.Network
		n.Network = &nc
	}
	return &n
}

// rootlessMappings checks the mappings an unprivileged user may have:
// its own id once (written by vessel itself), or ranges that the setuid
// helpers newuidmap/newgidmap (Debian's uidmap package) write after
// checking them against /etc/subuid and /etc/subgid.
func rootlessMappings(m []namespaces.IDMap, own uint32, field string) error {
	if len(m) == 0 || singleOwnID(m, own) {
		return nil
	}
	helper := "newuidmap"
	if field == "gidMappings" {
		helper = "newgidmap"
	}
	if _, err := exec.LookPath(helper); err != nil {
		return &ConfigError{Field: field, Reason: fmt.Sprintf("an unprivileged user can map only its own id (%d) without %s (Debian package uidmap), which is not installed", own, helper)}
	}
	return nil
}

func singleOwnID(m []namespaces.IDMap, own uint32) bool {
	return len(m) == 1 && m[0].HostID == own && m[0].Size == 1
}

// needsIDMapHelpers reports whether the container's id ranges must be
// written by newuidmap/newgidmap (rootless with more than one id).
func (c *Config) needsIDMapHelpers() bool {
	if os.Geteuid() == 0 || !c.Namespaces.IsNew(namespaces.User) {
		return false
	}
	return !singleOwnID(c.uidMappings(), uint32(os.Geteuid())) || !singleOwnID(c.gidMappings(), uint32(os.Getegid()))
}

// SubIDMappings maps container root to the calling user and container ids
// 1..n to the user's first range in /etc/subuid and /etc/subgid: what a
// rootless container with more than one user needs.
func SubIDMappings() (uids, gids []namespaces.IDMap, err error) {
	u, err := user.Current()
	if err != nil {
		return nil, nil, err
	}
	read := func(file string, own uint32) ([]namespaces.IDMap, error) {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Split(strings.TrimSpace(l), ":")
			if len(f) != 3 || (f[0] != u.Username && f[0] != u.Uid) {
				continue
			}
			var start, count uint32
			if _, err := fmt.Sscanf(f[1]+" "+f[2], "%d %d", &start, &count); err != nil {
				continue
			}
			return []namespaces.IDMap{{ContainerID: 0, HostID: own, Size: 1}, {ContainerID: 1, HostID: start, Size: count}}, nil
		}
		return nil, fmt.Errorf("%s has no range for %s", file, u.Username)
	}
	if uids, err = read("/etc/subuid", uint32(os.Geteuid())); err != nil {
		return nil, nil, err
	}
	if gids, err = read("/etc/subgid", uint32(os.Getegid())); err != nil {
		return nil, nil, err
	}
	return uids, gids, nil
}
