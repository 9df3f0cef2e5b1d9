package probe

import (
	"fmt"
	"time"
)

// Report is what "probe report" prints: the view of one process of its own
// environment. Every field is read independently; a field that could not be
// read keeps its zero value and its JSON name is a key of Errors.
type Report struct {
	PID   int   `json:"pid"`
	PPID  int   `json:"ppid"`
	PGID  int   `json:"pgid"`
	SID   int   `json:"sid"`
	NSPID []int `json:"nspid"` // NSpid: of /proc/self/status, outermost pid namespace first

	UID    int   `json:"uid"`
	GID    int   `json:"gid"`
	EUID   int   `json:"euid"`
	EGID   int   `json:"egid"`
	Groups []int `json:"groups"`

	Hostname   string   `json:"hostname"`
	Domainname string   `json:"domainname"`
	Kernel     string   `json:"kernel"` // uname release
	Cwd        string   `json:"cwd"`
	Exe        string   `json:"exe"` // readlink /proc/self/exe
	Args       []string `json:"args"`
	Umask      string   `json:"umask"` // octal, as in /proc/self/status, e.g. "0022"
	Env        []string `json:"env"`

	UIDMap    []IDMapEntry `json:"uid_map"`
	GIDMap    []IDMapEntry `json:"gid_map"`
	Setgroups string       `json:"setgroups"` // "allow" or "deny"

	// Namespaces maps each /proc/self/ns entry (cgroup, ipc, mnt, net, pid,
	// pid_for_children, time, time_for_children, user, uts) to its inode.
	Namespaces map[string]uint64 `json:"namespaces"`
	Cgroups    []CgroupEntry     `json:"cgroups"`

	Capabilities   Capabilities `json:"capabilities"`
	NoNewPrivs     bool         `json:"no_new_privs"`
	Seccomp        int          `json:"seccomp"` // 0 off, 1 strict, 2 filter
	SeccompFilters int          `json:"seccomp_filters"`
	LandlockABI    int          `json:"landlock_abi"` // 0 when landlock is unavailable (see Errors)
	Dumpable       int          `json:"dumpable"`     // prctl(PR_GET_DUMPABLE)
	LSMLabel       string       `json:"lsm_label"`    // /proc/self/attr/current, empty if none

	Mounts      []Mount           `json:"mounts"`
	Rlimits     map[string]Rlimit `json:"rlimits"` // by name, e.g. "RLIMIT_NOFILE"
	OOMScoreAdj int               `json:"oom_score_adj"`
	CPUsAllowed string            `json:"cpus_allowed"` // Cpus_allowed_list:, e.g. "0-1"
	NumCPU      int               `json:"num_cpu"`      // CPUs in sched_getaffinity

	Clocks Clocks `json:"clocks"`

	Interfaces    []Interface `json:"interfaces"`
	EtcHostname   string      `json:"etc_hostname"`
	EtcHosts      string      `json:"etc_hosts"`
	EtcResolvConf string      `json:"etc_resolv_conf"`

	TTY TTYInfo `json:"tty"`
	// FDs maps each file descriptor the probe was started with (see
	// InheritedFDs) to its /proc/self/fd link target.
	FDs       map[int]string `json:"fds"`
	ProcCount int            `json:"proc_count"` // numeric entries in /proc

	// Errors maps the JSON name of each field that could not be read to why.
	Errors map[string]string `json:"errors"`
}

// Err returns the read error recorded for the field with the given JSON
// name, or nil if the field was read.
func (r *Report) Err(field string) error {
	if msg, ok := r.Errors[field]; ok {
		return fmt.Errorf("probe report field %s: %s", field, msg)
	}
	return nil
}

// MountAt returns the last (topmost) mount whose mount point is path.
func (r *Report) MountAt(path string) (Mount, bool) {
	for i := len(r.Mounts) - 1; i >= 0; i-- {
		if r.Mounts[i].MountPoint == path {
			return r.Mounts[i], true
		}
	}
	return Mount{}, false
}

// Interface returns the network interface with the given name.
func (r *Report) Interface(name string) (Interface, bool) {
	for _, i := range r.Interfaces {
		if i.Name == name {
			return i, true
		}
	}
	return Interface{}, false
}

// IDMapEntry is one line of a uid_map or gid_map: Count ids starting at
// Inside in the process's user namespace map to ids starting at Outside in
// the parent user namespace.
type IDMapEntry struct {
	Inside  uint32 `json:"inside"`
	Outside uint32 `json:"outside"`
	Count   uint32 `json:"count"`
}

// CgroupEntry is one line of /proc/self/cgroup. HierarchyID 0 with no
// controllers is the cgroup v2 hierarchy.
type CgroupEntry struct {
	HierarchyID int      `json:"hierarchy_id"`
	Controllers []string `json:"controllers"` // includes "name=..." entries
	Path        string   `json:"path"`
}

// CapSet is one capability set: the mask as 16 hex digits and the names of
// its bits.
type CapSet struct {
	Hex   string   `json:"hex"`
	Names []string `json:"names"`
}

// Has reports whether the set holds the named capability ("CAP_SYS_ADMIN",
// "sys_admin" and "SYS_ADMIN" are all accepted).
func (c CapSet) Has(name string) bool {
	bit, ok := CapBit(name)
	return ok && c.Mask()&(1<<uint(bit)) != 0
}

// Mask returns the set as a bit mask (0 if Hex is empty or malformed).
func (c CapSet) Mask() uint64 {
	var m uint64
	_, _ = fmt.Sscanf(c.Hex, "%x", &m)
	return m
}

// Capabilities holds the five capability sets of /proc/self/status.
type Capabilities struct {
	Inheritable CapSet `json:"inh"`
	Permitted   CapSet `json:"prm"`
	Effective   CapSet `json:"eff"`
	Bounding    CapSet `json:"bnd"`
	Ambient     CapSet `json:"amb"`
}

// Mount is one parsed line of /proc/self/mountinfo.
type Mount struct {
	ID           int      `json:"id"`
	ParentID     int      `json:"parent_id"`
	Dev          string   `json:"dev"` // major:minor
	Root         string   `json:"root"`
	MountPoint   string   `json:"mount_point"`
	Options      []string `json:"options"`  // per-mount options, e.g. ro, nosuid, nodev
	Optional     []string `json:"optional"` // propagation fields, e.g. shared:1, master:2
	FSType       string   `json:"fstype"`
	Source       string   `json:"source"`
	SuperOptions []string `json:"super_options"`
	ReadOnly     bool     `json:"ro"` // Options contains "ro"
}

// HasOption reports whether the per-mount options include opt.
func (m Mount) HasOption(opt string) bool {
	for _, o := range m.Options {
		if o == opt {
			return true
		}
	}
	return false
}

// RlimInfinity is the value of an unlimited resource limit.
const RlimInfinity = ^uint64(0)

// Rlimit is a soft (Cur) and hard (Max) resource limit; RlimInfinity means
// unlimited.
type Rlimit struct {
	Cur uint64 `json:"cur"`
	Max uint64 `json:"max"`
}

// Timespec is a clock reading.
type Timespec struct {
	Sec  int64 `json:"sec"`
	Nsec int64 `json:"nsec"`
}

// Duration returns the reading as a time.Duration since the clock's epoch.
func (t Timespec) Duration() time.Duration {
	return time.Duration(t.Sec)*time.Second + time.Duration(t.Nsec)
}

// Clocks holds clock_gettime readings; under a time namespace Monotonic and
// Boottime include the namespace's offsets.
type Clocks struct {
	Monotonic Timespec `json:"monotonic"`
	Boottime  Timespec `json:"boottime"`
	Realtime  Timespec `json:"realtime"`
}

// Interface is a network interface as net.Interfaces sees it.
type Interface struct {
	Name         string   `json:"name"`
	Index        int      `json:"index"`
	MTU          int      `json:"mtu"`
	HardwareAddr string   `json:"hardware_addr"`
	Flags        []string `json:"flags"` // e.g. up, loopback, running, multicast
	Up           bool     `json:"up"`
	Loopback     bool     `json:"loopback"`
	Addrs        []string `json:"addrs"` // CIDR notation
}

// TTYInfo tells which standard descriptors are terminals.
type TTYInfo struct {
	Stdin  bool `json:"stdin"`
	Stdout bool `json:"stdout"`
	Stderr bool `json:"stderr"`
	// Name is the /proc/self/fd/0 link target, e.g. "/dev/pts/0" or
	// "pipe:[1234]".
	Name string `json:"name"`
	// ControllingTTY is the tty_nr field of /proc/self/stat (0: none).
	ControllingTTY int `json:"controlling_tty"`
}

// TryResult is what "probe try" prints: the outcome of one attempted action.
type TryResult struct {
	Action string   `json:"action"`
	Args   []string `json:"args"`
	// OK is true when every step of the action succeeded.
	OK bool `json:"ok"`
	// Errno and ErrnoName give the error of the step that failed (Step), 0
	// and "" when OK. A timeout on connect is reported as ETIMEDOUT.
	Errno     int    `json:"errno"`
	ErrnoName string `json:"errnoName"`
	Step      string `json:"step,omitempty"`
	// FS is the filesystem type (from fstatfs) and Object the kind of file
	// ("regular", "dir", "chardev 1:3", ...) an open/read/write acted on, so a
	// write that "succeeded" into a /dev/null mask can be told from one that
	// reached procfs.
	FS     string `json:"fs,omitempty"`
	Object string `json:"object,omitempty"`
	// Data holds up to 4 KiB read by read-root, cat-like actions and dmesg.
	Data string `json:"data,omitempty"`
	// Refused is true when the probe did not attempt the action because it
	// runs in the host's initial mount namespace and the action would damage
	// the host. A refused action is neither allowed nor denied.
	Refused bool   `json:"refused,omitempty"`
	Detail  string `json:"detail"`
}

// DirEntry is one entry printed by "probe ls".
type DirEntry struct {
	Name   string `json:"name"`
	Type   string `json:"type"` // file, dir, symlink, chardev, blockdev, fifo, socket
	Mode   string `json:"mode"` // permission bits in octal, with setuid/setgid/sticky
	UID    int    `json:"uid"`
	GID    int    `json:"gid"`
	Size   int64  `json:"size"`
	Target string `json:"target,omitempty"` // symlink target
	Dev    string `json:"dev,omitempty"`    // major:minor of a device node
}

// WinSize is what "probe tty-size" prints.
type WinSize struct {
	Rows int `json:"rows"`
	Cols int `json:"cols"`
}
