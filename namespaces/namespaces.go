package namespaces

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/fielderr"
)

// Kind is one namespace type.
type Kind string

// The namespace kinds Linux has.
const (
	Mount  Kind = "mount"
	PID    Kind = "pid"
	UTS    Kind = "uts"
	IPC    Kind = "ipc"
	Net    Kind = "network"
	User   Kind = "user"
	Cgroup Kind = "cgroup"
	Time   Kind = "time"
)

// Kinds lists every kind in the order the container child joins or creates
// them (user first: it owns the others).
var Kinds = []Kind{User, Mount, PID, UTS, IPC, Net, Cgroup, Time}

var info = map[Kind]struct {
	flag  uintptr
	proc  string
	alias []string
}{
	Mount:  {unix.CLONE_NEWNS, "mnt", []string{"mnt", "mount", "ns"}},
	PID:    {unix.CLONE_NEWPID, "pid", []string{"pid"}},
	UTS:    {unix.CLONE_NEWUTS, "uts", []string{"uts"}},
	IPC:    {unix.CLONE_NEWIPC, "ipc", []string{"ipc"}},
	Net:    {unix.CLONE_NEWNET, "net", []string{"net", "network"}},
	User:   {unix.CLONE_NEWUSER, "user", []string{"user", "userns"}},
	Cgroup: {unix.CLONE_NEWCGROUP, "cgroup", []string{"cgroup"}},
	Time:   {unix.CLONE_NEWTIME, "time", []string{"time"}},
}

// ParseKind accepts the OCI names ("network", "mount") and the /proc/PID/ns
// names ("net", "mnt").
func ParseKind(s string) (Kind, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	for k, i := range info {
		if s == string(k) {
			return k, nil
		}
		for _, a := range i.alias {
			if s == a {
				return k, nil
			}
		}
	}
	return "", fmt.Errorf("unknown namespace kind %q (want one of mount, pid, uts, ipc, net, user, cgroup, time)", s)
}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { _, ok := info[k]; return ok }

// CloneFlag is the CLONE_NEW* flag of the kind.
func (k Kind) CloneFlag() uintptr { return info[k].flag }

// ProcName is the kind's file name under /proc/PID/ns.
func (k Kind) ProcName() string { return info[k].proc }

// Namespace says that a container gets a namespace of Kind: a new one when
// Path is empty, or the existing one at Path. A kind absent from a Set is
// shared with the host (the caller's own namespace).
type Namespace struct {
	Kind Kind   `json:"type"`
	Path string `json:"path,omitempty"`
}

// Set is the namespaces of a container.
type Set []Namespace

// All returns a new namespace of every kind, the user namespace included.
// With no explicit id mappings a new user namespace maps container root to
// the calling user (see DefaultMappings).
func All() Set {
	s := make(Set, 0, len(Kinds))
	for _, k := range Kinds {
		s = append(s, Namespace{Kind: k})
	}
	return s
}

// Default returns what `vessel run` uses: new mount, pid, uts, ipc, net and
// cgroup namespaces; user and time namespaces are shared unless asked for.
func Default() Set {
	return Set{{Kind: Mount}, {Kind: PID}, {Kind: UTS}, {Kind: IPC}, {Kind: Net}, {Kind: Cgroup}}
}

// Get returns the entry for k.
func (s Set) Get(k Kind) (Namespace, bool) {
	for _, n := range s {
		if n.Kind == k {
			return n, true
		}
	}
	return Namespace{}, false
}

// Has reports whether the container gets its own (new or joined) namespace
// of kind k rather than the host's.
func (s Set) Has(k Kind) bool { _, ok := s.Get(k); return ok }

// IsNew reports whether a new namespace of kind k is created.
func (s Set) IsNew(k Kind) bool { n, ok := s.Get(k); return ok && n.Path == "" }

// IsJoined reports whether an existing namespace of kind k is joined.
func (s Set) IsJoined(k Kind) bool { n, ok := s.Get(k); return ok && n.Path != "" }

// With returns a copy of s where kind k is new (path "") or joined (path).
func (s Set) With(k Kind, path string) Set {
	out := s.Without(k)
	return append(out, Namespace{Kind: k, Path: path})
}

// Without returns a copy of s where kind k is shared with the host.
func (s Set) Without(k Kind) Set {
	out := make(Set, 0, len(s))
	for _, n := range s {
		if n.Kind != k {
			out = append(out, n)
		}
	}
	return out
}

// CloneFlags are the flags for clone(2): every new namespace that can be
// created at clone time. Cgroup and time namespaces are left out on purpose:
// the child unshares them itself once it sits in its final cgroup and once
// the time offsets are written.
func (s Set) CloneFlags() uintptr {
	var f uintptr
	for _, n := range s {
		if n.Path == "" && n.Kind != Cgroup && n.Kind != Time {
			f |= n.Kind.CloneFlag()
		}
	}
	return f
}

// Validate checks kinds, duplicates and join paths.
func (s Set) Validate() error {
	seen := map[Kind]bool{}
	for i, n := range s {
		if !n.Kind.Valid() {
			return fielderr.New(fmt.Sprintf("namespaces[%d].type", i), "unknown kind %q", n.Kind)
		}
		if seen[n.Kind] {
			return fielderr.New(fmt.Sprintf("namespaces[%d].type", i), "%s listed twice", n.Kind)
		}
		seen[n.Kind] = true
		if n.Path == "" {
			continue
		}
		if !filepath.IsAbs(n.Path) {
			return fielderr.New(fmt.Sprintf("namespaces[%s].path", n.Kind), "%q is not absolute", n.Path)
		}
		if err := CheckFile(n.Path, n.Kind); err != nil {
			return fielderr.Wrap(fmt.Sprintf("namespaces[%s].path", n.Kind), err)
		}
		if n.Kind == User {
			return fielderr.New("namespaces[user].path", "joining an existing user namespace is not supported: a multi-threaded Go process cannot setns(2) into one; start the container from a process inside it instead")
		}
	}
	return nil
}

// Kinds returns the kinds in s, sorted.
func (s Set) Kinds() []Kind {
	out := make([]Kind, 0, len(s))
	for _, n := range s {
		out = append(out, n.Kind)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

const nsGetNstype = 0xb703 // _IO(0xb7, 0x3)

// CheckFile verifies that path is a namespace file of kind k.
func CheckFile(path string, k Kind) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer unix.Close(fd)
	t, err := unix.IoctlRetInt(fd, nsGetNstype)
	if err != nil {
		return fmt.Errorf("%s: not a namespace file (%v)", path, err)
	}
	if uintptr(t) != k.CloneFlag() {
		return fmt.Errorf("%s: is not a %s namespace", path, k)
	}
	return nil
}

// Join enters the namespace at path on the calling thread. The caller must
// have locked the goroutine to its thread. For a mount namespace the thread
// first gets its own filesystem attributes (unshare CLONE_FS), which the
// kernel requires of a thread in a multi-threaded process.
func Join(k Kind, path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if k == Mount {
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			return fmt.Errorf("unshare CLONE_FS: %w", err)
		}
	}
	if err := unix.Setns(fd, int(k.CloneFlag())); err != nil {
		return err
	}
	return nil
}

// IDMap maps a range of ids inside a user namespace to ids outside it.
type IDMap struct {
	ContainerID uint32 `json:"containerID"`
	HostID      uint32 `json:"hostID"`
	Size        uint32 `json:"size"`
}

// DefaultMappings maps container root to the calling user and group, one id
// each (what `unshare --map-root-user` does).
func DefaultMappings() (uids, gids []IDMap) {
	return []IDMap{{0, uint32(os.Geteuid()), 1}}, []IDMap{{0, uint32(os.Getegid()), 1}}
}

// ValidateMappings checks ranges for overflow and overlap.
func ValidateMappings(field string, m []IDMap) error {
	if len(m) > 340 {
		return fielderr.New(field, "%d ranges, the kernel allows 340", len(m))
	}
	for i, a := range m {
		if a.Size == 0 {
			return fielderr.New(fmt.Sprintf("%s[%d].size", field, i), "must be at least 1")
		}
		if uint64(a.ContainerID)+uint64(a.Size) > 1<<32-1 || uint64(a.HostID)+uint64(a.Size) > 1<<32-1 {
			return fielderr.New(fmt.Sprintf("%s[%d]", field, i), "range overflows 32-bit ids")
		}
		for j := 0; j < i; j++ {
			b := m[j]
			if a.ContainerID < b.ContainerID+b.Size && b.ContainerID < a.ContainerID+a.Size {
				return fielderr.New(fmt.Sprintf("%s[%d]", field, i), "container ids overlap entry %d", j)
			}
			if a.HostID < b.HostID+b.Size && b.HostID < a.HostID+a.Size {
				return fielderr.New(fmt.Sprintf("%s[%d]", field, i), "host ids overlap entry %d", j)
			}
		}
	}
	return nil
}

// ToHost returns the host id that id maps to, if any.
func ToHost(m []IDMap, id uint32) (uint32, bool) {
	for _, e := range m {
		if id >= e.ContainerID && id-e.ContainerID < e.Size {
			return e.HostID + (id - e.ContainerID), true
		}
	}
	return 0, false
}

// TimeOffsets shift the monotonic and boot-time clocks a time namespace sees.
type TimeOffsets struct {
	Monotonic time.Duration `json:"monotonic,omitempty"`
	Boottime  time.Duration `json:"boottime,omitempty"`
}

// IsZero reports whether no offset is set.
func (t TimeOffsets) IsZero() bool { return t.Monotonic == 0 && t.Boottime == 0 }

// UnshareTime creates a new time namespace for the children of the calling
// thread and writes its offsets. It must run on a locked thread, and the
// offsets can only be written before any process enters the namespace.
func UnshareTime(off TimeOffsets) error {
	if err := unix.Unshare(unix.CLONE_NEWTIME); err != nil {
		return fmt.Errorf("unshare CLONE_NEWTIME: %w", err)
	}
	if off.IsZero() {
		return nil
	}
	var b strings.Builder
	write := func(clock string, d time.Duration) {
		if d == 0 {
			return
		}
		sec := int64(d / time.Second)
		nsec := int64(d % time.Second)
		if nsec < 0 {
			sec--
			nsec += int64(time.Second)
		}
		fmt.Fprintf(&b, "%s %d %d\n", clock, sec, nsec)
	}
	write("monotonic", off.Monotonic)
	write("boottime", off.Boottime)
	// The offsets belong to time_for_children of this thread.
	// The offsets belong to time_for_children of the thread group leader's
	// /proc entry; the container child calls this on its main thread.
	path := "/proc/self/timens_offsets"
	if unix.Gettid() != unix.Getpid() {
		return fmt.Errorf("time offsets must be written from the main thread")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ErrNotSupported is returned for combinations the kernel cannot do.
var ErrNotSupported = errors.New("not supported")

// Do runs fn on a thread that has entered the namespace of kind k at path
// (net, ipc, uts, cgroup or time), and puts the thread back into its own
// namespace afterwards. Parking a changed thread instead would be wrong:
// when Go happens to run the goroutine on the main thread, that thread is
// never released, and the whole process's /proc/self/ns would show the
// foreign namespace from then on.
func Do(k Kind, path string, fn func() error) error {
	switch k {
	case Net, IPC, UTS, Cgroup, Time:
	default:
		return fmt.Errorf("namespaces.Do: a %s namespace cannot be entered and left by one thread", k)
	}
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(target)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := unix.Open(fmt.Sprintf("/proc/thread-self/ns/%s", k.ProcName()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer unix.Close(own)
		if err := unix.Setns(target, int(k.CloneFlag())); err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		ferr := fn()
		if unix.Setns(own, int(k.CloneFlag())) == nil {
			runtime.UnlockOSThread()
		} // else: the thread stays locked and goes with the goroutine
		done <- ferr
	}()
	return <-done
}
