package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/limits"
)

// Options says where a container's cgroup goes and what it may use.
type Options struct {
	// Name is the cgroup's path below Parent, relative: "vessel/job-42".
	// Missing intermediate cgroups are created (and removed again by
	// Destroy once empty).
	Name string
	// Parent is the absolute cgroup path (as /proc/self/cgroup shows it)
	// below which Name goes in every hierarchy, like "/vessel". Empty means
	// the calling process's own cgroup in each hierarchy; on hybrid and v1
	// hosts these may differ from one hierarchy to the next.
	Parent string
	// Resources are the limits Create applies; nil applies none.
	Resources *limits.Resources
}

// State is what a Manager needs to find its cgroups again from another
// process, for instance to destroy the cgroups of a container whose
// controlling program crashed. It is plain data for storing as JSON.
type State struct {
	Layout Layout `json:"layout"`
	// Name is Options.Name.
	Name string `json:"name"`
	// Dirs maps each hierarchy ("memory", "cpu,cpuacct", "name=systemd",
	// "unified") to the cgroup's directory in it.
	Dirs map[string]string `json:"dirs"`
	// Keep lists parent cgroups that existed before this one was created
	// (see KeepExistingParents): Destroy never removes them, even empty.
	Keep []string `json:"keep,omitempty"`
}

// Manager controls one container's cgroup in every hierarchy of the host.
// Its methods are safe for concurrent use.
type Manager struct {
	mu   sync.Mutex
	sys  *system
	name string
	// dirs maps hierarchy key to the cgroup's directory in it.
	dirs map[string]string
	res  *limits.Resources
	fd   int
	// created marks the hierarchies where Create made the cgroup, for
	// cleaning up after a failed Create.
	created map[string]bool
	// keep holds parents Destroy must leave (State.Keep).
	keep map[string]bool
	// groupLock is 1 + the descriptor of the shared lock on the cgroup's
	// parent directory, held from Create until Settled (see lockGroup),
	// or 0.
	groupLock int
}

// ErrNotExist is returned (wrapped) by Load and Open when the container's
// cgroup exists in no hierarchy. It is fs.ErrNotExist.
var ErrNotExist = fs.ErrNotExist

// New checks opts and works out where the cgroup goes; nothing is created
// until Create.
func New(opts Options) (*Manager, error) {
	if err := checkName("name", opts.Name); err != nil {
		return nil, err
	}
	if err := checkParent(opts.Parent); err != nil {
		return nil, err
	}
	if err := opts.Resources.Validate(); err != nil {
		return nil, fmt.Errorf("cgroups: resources: %w", err)
	}
	sys, err := currentSystem()
	if err != nil {
		return nil, err
	}
	self, err := procCgroups(0)
	if err != nil {
		return nil, fmt.Errorf("cgroups: reading /proc/self/cgroup: %w", err)
	}
	dirs, err := placement(sys, self, opts.Parent, opts.Name)
	if err != nil {
		return nil, err
	}
	return &Manager{sys: sys, name: opts.Name, dirs: dirs, res: opts.Resources, fd: -1}, nil
}

// placement computes the cgroup's directory in every hierarchy of sys.
// self is the calling process's cgroups (used when parent is empty).
func placement(sys *system, self map[string]string, parent, name string) (map[string]string, error) {
	dirs := map[string]string{}
	for _, h := range sys.hierarchies() {
		cg := parent
		if cg == "" {
			var ok bool
			if cg, ok = self[h.key]; !ok {
				if h.key == unifiedKey && sys.layout == V2 {
					return nil, errors.New("cgroups: /proc/self/cgroup has no cgroup v2 entry")
				}
				continue // a hierarchy this process is not attached to
			}
		}
		base, err := h.dirOf(cg)
		if err != nil {
			return nil, err
		}
		dirs[h.key] = filepath.Join(base, name)
	}
	if len(dirs) == 0 {
		return nil, errors.New("cgroups: no usable cgroup hierarchy")
	}
	return dirs, nil
}

// Load is New for a container whose cgroup already exists (it does not
// apply opts.Resources). It fails with an error wrapping ErrNotExist when
// the cgroup exists in no hierarchy.
func Load(opts Options) (*Manager, error) {
	opts.Resources = nil
	m, err := New(opts)
	if err != nil {
		return nil, err
	}
	if !m.exists() {
		return nil, fmt.Errorf("cgroups: %s: %w", opts.Name, ErrNotExist)
	}
	return m, nil
}

// Open returns a Manager for the cgroups st describes (see Manager.State),
// whichever process created them. It fails with an error wrapping
// ErrNotExist when none of them exists.
func Open(st State) (*Manager, error) {
	if err := checkName("name", st.Name); err != nil {
		return nil, err
	}
	sys, err := currentSystem()
	if err != nil {
		return nil, err
	}
	m := &Manager{sys: sys, name: st.Name, dirs: map[string]string{}, fd: -1}
	for key, dir := range st.Dirs {
		h, ok := m.hierarchy(key)
		if !ok {
			return nil, fmt.Errorf("cgroups: state names hierarchy %q, which is not mounted here", key)
		}
		clean := filepath.Clean(dir)
		if _, ok := h.cgroupOf(clean); !ok || clean != dir || !strings.HasSuffix(clean, "/"+st.Name) {
			return nil, fmt.Errorf("cgroups: state directory %q is not cgroup %q below %s", dir, st.Name, h.mountpoint)
		}
		m.dirs[key] = clean
	}
	for _, d := range st.Keep {
		if m.keep == nil {
			m.keep = map[string]bool{}
		}
		m.keep[filepath.Clean(d)] = true
	}
	if !m.exists() {
		return nil, fmt.Errorf("cgroups: %s: %w", st.Name, ErrNotExist)
	}
	return m, nil
}

// State returns what Open needs to find these cgroups again.
func (m *Manager) State() State {
	dirs := map[string]string{}
	for k, v := range m.dirs {
		dirs[k] = v
	}
	var keep []string
	for d := range m.keep {
		keep = append(keep, d)
	}
	sort.Strings(keep)
	return State{Layout: m.sys.layout, Name: m.name, Dirs: dirs, Keep: keep}
}

// KeepExistingParents records the parents of the cgroup (the directories
// of Name above it) that exist now, in every hierarchy, so that Destroy
// leaves them even when they end up empty: a cgroup that another program
// made, such as a kubelet's pod cgroup with its own limits, is not vessel's
// to remove (runc never removes one either). Call it before Create; the
// list goes into State.
func (m *Manager) KeepExistingParents() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, key := range m.keys() {
		chain := m.chain(key)
		for _, dir := range chain[:len(chain)-1] {
			if _, err := os.Stat(dir); err == nil {
				if m.keep == nil {
					m.keep = map[string]bool{}
				}
				m.keep[dir] = true
			}
		}
	}
}

// Layout returns the host's cgroup layout.
func (m *Manager) Layout() Layout { return m.sys.layout }

// Path returns the cgroup's directory in a hierarchy: a v1 controller
// ("memory", "cpu"), "name=systemd", or "unified" for the cgroup2 hierarchy
// (on v2 and hybrid hosts). ok is false when there is no such hierarchy.
func (m *Manager) Path(hierarchy string) (dir string, ok bool) {
	if hierarchy == unifiedKey {
		dir, ok = m.dirs[unifiedKey]
		return dir, ok
	}
	for key, d := range m.dirs {
		if h, found := m.hierarchy(key); found && h.has(hierarchy) {
			return d, true
		}
	}
	return "", false
}

func (m *Manager) hierarchy(key string) (hierarchy, bool) {
	for _, h := range m.sys.hierarchies() {
		if h.key == key {
			return h, true
		}
	}
	return hierarchy{}, false
}

// keys returns the hierarchy keys in a stable order, unified last.
func (m *Manager) keys() []string {
	var keys []string
	for k := range m.dirs {
		if k != unifiedKey {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if _, ok := m.dirs[unifiedKey]; ok {
		keys = append(keys, unifiedKey)
	}
	return keys
}

func (m *Manager) exists() bool {
	for _, d := range m.dirs {
		if _, err := os.Stat(d); err == nil {
			return true
		}
	}
	return false
}

// base returns the parent directory below which Name goes in a hierarchy.
func (m *Manager) base(key string) string {
	return strings.TrimSuffix(m.dirs[key], "/"+m.name)
}

// chain returns the directories from the base (exclusive) down to the
// cgroup (inclusive).
func (m *Manager) chain(key string) []string {
	dir := m.base(key)
	var out []string
	for _, part := range strings.Split(m.name, "/") {
		dir = filepath.Join(dir, part)
		out = append(out, dir)
	}
	return out
}

// v1Dir returns the cgroup's directory in the v1 hierarchy of ctrl.
func (m *Manager) v1Dir(ctrl string) (string, bool) {
	if m.sys.layout == V2 {
		return "", false
	}
	h, ok := m.sys.v1For(ctrl)
	if !ok {
		return "", false
	}
	d, ok := m.dirs[h.key]
	return d, ok
}

// Create creates the cgroup in every hierarchy and applies the resources
// of Options. It fails, leaving nothing behind, when the cgroup exists
// already (the error wraps fs.ErrExist) or a limit cannot be applied.
func (m *Manager) Create() error {
	finish, err := m.CreateStaged()
	if err != nil {
		return err
	}
	return finish()
}

// CreateStaged is Create in two steps, for a caller that wants to start
// a process into the cgroup (CLONE_INTO_CGROUP, see FD) as early as
// possible: it creates the cgroup's directory in the unified hierarchy
// only, and returns finish, which creates it in the other hierarchies
// and applies the resources. finish may run concurrently with the start
// of that process (not with other methods); the process must not run
// anything of its own before finish returned. On failure either step
// removes what was created.
func (m *Manager) CreateStaged() (finish func() error, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.created = map[string]bool{}
	v2Need, err := m.v2Controllers(m.res)
	if err != nil {
		return nil, err
	}
	if err := m.lockGroup(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			m.unlockGroup()
		}
	}()
	if _, ok := m.dirs[unifiedKey]; ok {
		if err := m.makeKey(unifiedKey); err != nil {
			m.removeDirs(false, m.created)
			return nil, err
		}
	}
	return func() (err error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		defer func() {
			if err != nil {
				m.removeDirs(false, m.created)
				m.unlockGroup()
			}
		}()
		for _, key := range m.keys() {
			if key == unifiedKey {
				continue
			}
			if err := m.makeKey(key); err != nil {
				return err
			}
		}
		if _, ok := m.dirs[unifiedKey]; ok {
			if err := m.enableControllers(v2Need); err != nil {
				return err
			}
		}
		return m.apply(m.res)
	}, nil
}

// makeKey creates the cgroup in one hierarchy and records it as created.
func (m *Manager) makeKey(key string) error {
	err := m.makeDirs(key)
	if !errors.Is(err, fs.ErrExist) {
		m.created[key] = true
	}
	return err
}

// makeDirs creates the cgroup and missing intermediates in one hierarchy.
// An intermediate removed by a concurrent Destroy is created again.
func (m *Manager) makeDirs(key string) error {
	chain := m.chain(key)
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		err = nil
		for i, dir := range chain {
			e := unix.Mkdir(dir, 0o755)
			if e == unix.EEXIST {
				if i == len(chain)-1 {
					return fmt.Errorf("cgroups: creating %s: %w", dir, fs.ErrExist)
				}
				continue
			}
			if e != nil {
				err = fmt.Errorf("cgroups: creating %s: %w", dir, e)
				break
			}
			if h, _ := m.hierarchy(key); h.has("cpuset") {
				if e := copyCpuset(dir); e != nil {
					return e
				}
			}
		}
		if !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	return err
}

// copyCpuset fills an empty v1 cpuset.cpus and cpuset.mems from the
// parent's, without which no task may join the cgroup.
func copyCpuset(dir string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return fmt.Errorf("cgroups: %w", err)
		}
		if strings.TrimSpace(string(cur)) != "" {
			continue
		}
		parent, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
		if err != nil {
			return fmt.Errorf("cgroups: %w", err)
		}
		if strings.TrimSpace(string(parent)) == "" {
			// The parent is a shared intermediate another program has just
			// created and not filled in yet: fill it in first, or this
			// cgroup would get an empty set and refuse tasks (ENOSPC).
			if err := copyCpuset(filepath.Dir(dir)); err != nil {
				return err
			}
			if parent, err = os.ReadFile(filepath.Join(filepath.Dir(dir), f)); err != nil {
				return fmt.Errorf("cgroups: %w", err)
			}
		}
		if err := writeFile(dir, f, strings.TrimSpace(string(parent))); err != nil {
			return err
		}
	}
	return nil
}

// v2Controllers returns the controllers the unified hierarchy must
// provide for res: on v2 all that res limits, on hybrid those no v1
// hierarchy has. It fails when a needed controller is not mounted at all.
func (m *Manager) v2Controllers(res *limits.Resources) ([]string, error) {
	if res == nil {
		return nil, nil
	}
	w, err := v2Writes(res)
	if err != nil {
		return nil, err
	}
	var need []string
	for _, c := range controllersOf(w) {
		if _, ok := m.v1Dir(v1Name(c)); ok {
			continue
		}
		if _, ok := m.dirs[unifiedKey]; !ok {
			return nil, fmt.Errorf("cgroups: %s limits need the %s controller, which is not mounted", c, v1Name(c))
		}
		need = append(need, c)
	}
	return need, nil
}

// accountingControllers are enabled on v2 when available, so that Stats
// can report usage even without limits.
var accountingControllers = []string{"cpu", "memory", "pids", "io"}

// enableControllers enables, in cgroup.subtree_control of every ancestor
// from the base down, the controllers need names (an error when one cannot
// be) and, where possible, the accounting controllers.
func (m *Manager) enableControllers(need []string) error {
	base := m.base(unifiedKey)
	available, err := readFields(filepath.Join(base, "cgroup.controllers"))
	if err != nil {
		return fmt.Errorf("cgroups: %w", err)
	}
	for _, c := range need {
		if !slices.Contains(available, c) {
			return fmt.Errorf("cgroups: the %s controller is not available in %s (cgroup.controllers: %q); enable it in the parent's cgroup.subtree_control or choose another parent", c, base, strings.Join(available, " "))
		}
	}
	want := append([]string(nil), need...)
	for _, c := range accountingControllers {
		if slices.Contains(available, c) && !slices.Contains(want, c) {
			want = append(want, c)
		}
	}
	if len(want) == 0 {
		return nil
	}
	// The base is not ours: write to it only what is missing, and only
	// where the no-internal-process rule allows.
	enabled, err := readFields(filepath.Join(base, "cgroup.subtree_control"))
	if err != nil {
		return fmt.Errorf("cgroups: %w", err)
	}
	var missing []string
	for _, c := range want {
		if !slices.Contains(enabled, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		h, _ := m.hierarchy(unifiedKey)
		procs, _ := readPids(filepath.Join(base, "cgroup.procs"))
		internal := base != h.mountpoint && len(procs) > 0
		for _, c := range missing {
			needed := slices.Contains(need, c)
			if internal {
				if needed {
					return fmt.Errorf("cgroups: cannot enable the %s controller for children of %s: it has processes and is not the root, and cgroup v2's no-internal-process rule forbids that; give a Parent without processes (or move those processes to a leaf cgroup first)", c, base)
				}
			} else if err := writeFile(base, "cgroup.subtree_control", "+"+c); err == nil {
				continue
			} else if needed {
				return err
			}
			want = slices.DeleteFunc(want, func(x string) bool { return x == c })
		}
	}
	chain := m.chain(unifiedKey)
	for _, dir := range chain[:len(chain)-1] {
		if len(want) == 0 {
			break
		}
		if err := writeFile(dir, "cgroup.subtree_control", "+"+strings.Join(want, " +")); err != nil {
			return err
		}
	}
	return nil
}

// Update applies res to the running cgroup; nil fields stay as they are.
// Device rules given replace the previous ones.
func (m *Manager) Update(res *limits.Resources) error {
	if err := res.Validate(); err != nil {
		return fmt.Errorf("cgroups: resources: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	need, err := m.v2Controllers(res)
	if err != nil {
		return err
	}
	if len(need) > 0 {
		if err := m.enableControllers(need); err != nil {
			return err
		}
	}
	return m.apply(res)
}

// apply writes res to the cgroup's files, each controller in the
// hierarchy that has it.
func (m *Manager) apply(res *limits.Resources) error {
	if res == nil {
		return nil
	}
	w1, err := v1Writes(res)
	if err != nil {
		return err
	}
	w2, err := v2Writes(res)
	if err != nil {
		return err
	}
	if mem := res.Memory; mem != nil && mem.KernelTCP != nil && *mem.KernelTCP != limits.Unlimited {
		if _, ok := m.v1Dir("memory"); !ok {
			return errors.New("cgroups: memory.kernelTCP: cgroup v2 has no separate TCP buffer limit (socket buffers count towards memory.max)")
		}
	}
	for _, ctrl := range controllerOrder {
		if dir, ok := m.v1Dir(v1Name(ctrl)); ok {
			ws := only(w1, ctrl)
			if ctrl == "memory" {
				err = applyV1Memory(dir, ws)
			} else {
				err = writeAll(dir, ws)
			}
		} else if dir, ok := m.dirs[unifiedKey]; ok {
			err = writeAll(dir, only(w2, ctrl))
		} else if len(only(w1, ctrl)) > 0 {
			err = fmt.Errorf("cgroups: %s limits need the %s controller, which is not mounted", ctrl, v1Name(ctrl))
		}
		if err != nil {
			return err
		}
	}
	if res.Devices != nil {
		if dir, ok := m.v1Dir("devices"); ok {
			return applyV1Devices(dir, res.Devices)
		}
		if dir, ok := m.dirs[unifiedKey]; ok && m.sys.layout == V2 {
			return attachDeviceFilter(dir, res.Devices)
		}
		return errors.New("cgroups: device rules need the v1 devices controller or cgroup v2")
	}
	return nil
}

func writeAll(dir string, ws []write) error {
	for _, x := range ws {
		err := writeFile(dir, x.file, x.value)
		if err != nil && x.alt != "" && errors.Is(err, fs.ErrNotExist) {
			err = writeFile(dir, x.alt, x.altValue)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// applyV1Memory writes memory limits; when the new limit and memsw limit
// cannot be written in the given order (memsw must stay >= limit), it
// writes them in the other.
func applyV1Memory(dir string, ws []write) error {
	err := writeAll(dir, ws)
	if err == nil || !errors.Is(err, unix.EINVAL) {
		if err != nil && errors.Is(err, fs.ErrNotExist) && strings.Contains(err.Error(), "memsw") {
			return fmt.Errorf("%w (memory.swap needs swap accounting: boot with swapaccount=1)", err)
		}
		return err
	}
	var swapFirst []write
	for _, x := range ws {
		if x.file == "memory.memsw.limit_in_bytes" {
			swapFirst = append([]write{x}, swapFirst...)
		} else {
			swapFirst = append(swapFirst, x)
		}
	}
	return writeAll(dir, swapFirst)
}

// applyV1Devices denies every device, then applies the rules in order.
func applyV1Devices(dir string, rules []limits.DeviceRule) error {
	if err := writeFile(dir, "devices.deny", "a"); err != nil {
		return err
	}
	for _, r := range rules {
		file := "devices.deny"
		if r.Allow {
			file = "devices.allow"
		}
		if err := writeFile(dir, file, r.String()); err != nil {
			return err
		}
	}
	return nil
}

// Add moves process pid into the cgroup in every hierarchy where it is not
// yet (a process started with CLONE_INTO_CGROUP is already in the unified
// one).
func (m *Manager) Add(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("cgroups: add: invalid pid %d", pid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, err := procCgroups(pid)
	if err != nil {
		return fmt.Errorf("cgroups: add %d: %w", pid, err)
	}
	for _, key := range m.keys() {
		h, _ := m.hierarchy(key)
		want, ok := h.cgroupOf(m.dirs[key])
		if !ok || cur[key] == want {
			continue
		}
		var err error
		for i := 0; i < 10; i++ {
			err = writeFile(m.dirs[key], "cgroup.procs", strconv.Itoa(pid))
			// EINVAL: the task is still being created (TASK_NEW).
			if !errors.Is(err, unix.EINVAL) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err != nil {
			return err
		}
	}
	// It holds a process now (Settled).
	m.unlockGroup()
	return nil
}

// FD returns a descriptor of the cgroup's directory in the cgroup2
// hierarchy (on v2 and hybrid hosts), for SysProcAttr.UseCgroupFD and
// CgroupFD: the child then starts in the cgroup (CLONE_INTO_CGROUP). On
// hybrid hosts the child must still be Added to the v1 hierarchies. The
// descriptor belongs to the Manager (Close releases it). ok is false on v1
// hosts or before Create.
func (m *Manager) FD() (fd int, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fd >= 0 {
		return m.fd, true
	}
	dir, ok := m.dirs[unifiedKey]
	if !ok {
		return -1, false
	}
	// Not O_PATH: clone3 rejects O_PATH descriptors for CLONE_INTO_CGROUP.
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, false
	}
	m.fd = fd
	return fd, true
}

// Close releases the descriptor FD returned. The cgroup stays.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closeFD()
}

// A new cgroup is empty until the container's processes join it, which
// they do themselves as they start (the init stays out of it): RemoveGroup,
// which removes the empty cgroups of a group, must not take it meanwhile.
// So the directory holding it (the group's, in one hierarchy: lockKey)
// carries a lock: shared from Create until Settled, exclusive for
// RemoveGroup's pass.

// groupLockPatience is how long RemoveGroup waits for the starts under
// way in its group (and a start for a RemoveGroup pass).
const groupLockPatience = 30 * time.Second

// lockKey is the hierarchy whose directory carries the lock.
func lockKey(dirs map[string]string) string {
	if _, ok := dirs[unifiedKey]; ok {
		return unifiedKey
	}
	var first string
	for k := range dirs {
		if first == "" || k < first {
			first = k
		}
	}
	return first
}

// lockDir opens dir (made if missing) and takes the lock how says on it,
// waiting for it until patience has passed (unix.EWOULDBLOCK then); a
// directory RemoveGroup removed meanwhile is made again.
func lockDir(dir string, how int, patience time.Duration) (int, error) {
	deadline := time.Now().Add(patience)
	for try := 0; ; try++ {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return -1, fmt.Errorf("cgroups: %w", err)
		}
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == nil {
			for delay := time.Millisecond; ; {
				err = unix.Flock(fd, how|unix.LOCK_NB)
				if err != unix.EWOULDBLOCK && err != unix.EINTR || time.Now().After(deadline) {
					break
				}
				time.Sleep(delay)
				delay = min(2*delay, 50*time.Millisecond)
			}
			if err == unix.EWOULDBLOCK {
				unix.Close(fd)
				return -1, fmt.Errorf("cgroups: lock %s: %w", dir, err)
			}
			var held, now unix.Stat_t
			if err == nil && unix.Fstat(fd, &held) == nil && unix.Stat(dir, &now) == nil && held.Ino == now.Ino && held.Dev == now.Dev {
				return fd, nil
			}
			unix.Close(fd)
		}
		if try == 10 {
			if err == nil {
				err = errors.New("removed while locking")
			}
			return -1, fmt.Errorf("cgroups: lock %s: %w", dir, err)
		}
	}
}

// lockGroup takes the shared lock on the cgroup's parent directory.
func (m *Manager) lockGroup() error {
	fd, err := lockDir(filepath.Dir(m.dirs[lockKey(m.dirs)]), unix.LOCK_SH, groupLockPatience)
	if err != nil {
		return err
	}
	m.groupLock = fd + 1
	return nil
}

func (m *Manager) unlockGroup() {
	if m.groupLock > 0 {
		unix.Close(m.groupLock - 1)
		m.groupLock = 0
	}
}

// Settled says the container's processes are in its cgroup (or the
// container is gone): RemoveGroup may take the cgroup once it is empty.
// Add says it too; a caller that starts processes into the cgroup on its
// own (FD, or processes that join it themselves) calls it.
func (m *Manager) Settled() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.unlockGroup()
}

func (m *Manager) closeFD() error {
	if m.fd < 0 {
		return nil
	}
	err := unix.Close(m.fd)
	m.fd = -1
	return err
}

// Pids returns the processes in the cgroup and its descendants, in any
// hierarchy (the v1 ones on a hybrid host: see unifiedHoldsMore), sorted.
func (m *Manager) Pids() ([]int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pids()
}

func (m *Manager) pids() ([]int, error) {
	set := map[int]bool{}
	for key, dir := range m.dirs {
		if key == unifiedKey && m.unifiedHoldsMore() && len(m.dirs) > 1 {
			continue
		}
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if !d.IsDir() {
				return nil
			}
			pids, err := readPids(filepath.Join(p, "cgroup.procs"))
			if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENODEV) {
				return err
			}
			for _, pid := range pids {
				set[pid] = true
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("cgroups: listing processes: %w", err)
		}
	}
	out := make([]int, 0, len(set))
	for pid := range set {
		out = append(out, pid)
	}
	sort.Ints(out)
	return out, nil
}

// Destroy kills every process left in the cgroup and removes the cgroup
// (with any cgroups created below it, and the intermediates of Name that
// are then empty) from every hierarchy. It may be called again, also on a
// cgroup already gone, and then returns nil. Processes the caller started
// must be reaped (Wait) for the removal to finish; Destroy retries a busy
// cgroup for a few seconds.
//
// One exception: in a v1 cpuset hierarchy the intermediates stay (as a
// runtime's parent cgroup does). The kernel patches its own code when the
// first cpuset cgroup of the system appears and when the last goes (a
// static key), which costs milliseconds per container on some machines;
// a lasting parent keeps that from happening at every start and stop.
// RemoveGroup removes such parents when they are no longer wanted.
func (m *Manager) Destroy() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closeFD()
	m.unlockGroup()
	if m.removeEmpty() {
		return nil
	}
	if !m.exists() {
		return nil
	}
	if pids, err := m.pids(); err == nil && len(pids) > 0 {
		if err := m.kill(); err != nil {
			return err
		}
	}
	return m.removeDirs(true, nil)
}

// removeEmpty is Destroy's usual case: every process has ended and no
// cgroup was made below, so one rmdir per hierarchy does (the kernel
// refuses to remove a populated cgroup, so trying loses nothing). It
// removes what it can, with the intermediates only this cgroup used, and
// reports whether the cgroup is gone from every hierarchy.
func (m *Manager) removeEmpty() bool {
	gone := true
	for _, key := range m.keys() {
		if err := unix.Rmdir(m.dirs[key]); err != nil && err != unix.ENOENT {
			gone = false
			continue
		}
		m.removeIntermediates(key)
	}
	return gone
}

// removeIntermediates removes the now empty directories between the base
// and the cgroup in one hierarchy; shared ones stay while other cgroups
// use them.
func (m *Manager) removeIntermediates(key string) {
	if h, _ := m.hierarchy(key); h.has("cpuset") && key != unifiedKey {
		return // see Destroy
	}
	chain := m.chain(key)
	for i := len(chain) - 2; i >= 0; i-- {
		if m.keep[chain[i]] {
			break // existed before: someone else's (and so are its parents)
		}
		if err := unix.Rmdir(chain[i]); err != nil {
			break
		}
	}
}

// removeDirs removes the cgroup (and its sub-cgroups) bottom-up in every
// hierarchy (only those in keys when keys is not nil), then the empty
// intermediates. With wait it retries EBUSY for a bounded time.
func (m *Manager) removeDirs(wait bool, keys map[string]bool) error {
	deadline := time.Now().Add(5 * time.Second)
	var errs []error
	for _, key := range m.keys() {
		if keys != nil && !keys[key] {
			continue
		}
		if err := removeTree(m.dirs[key], wait, deadline, false); err != nil {
			errs = append(errs, err)
			continue
		}
		m.removeIntermediates(key)
	}
	return errors.Join(errs...)
}

// removeTree removes dir and every cgroup below it, deepest first. With
// keepBusy, cgroups still in use (and so their parents) stay without an
// error, and the others go.
func removeTree(dir string, wait bool, deadline time.Time, keepBusy bool) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cgroups: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name()), wait, deadline, keepBusy); err != nil {
				return err
			}
		}
	}
	delay := time.Millisecond
	for {
		err := unix.Rmdir(dir)
		if err == nil || err == unix.ENOENT || keepBusy && (err == unix.EBUSY || err == unix.ENOTEMPTY) {
			return nil
		}
		if !wait || err != unix.EBUSY || time.Now().After(deadline) {
			pids, _ := readPids(filepath.Join(dir, "cgroup.procs"))
			return fmt.Errorf("cgroups: removing %s: %w (processes left: %v)", dir, err, pids)
		}
		time.Sleep(delay)
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
}

// writeFile writes value to a cgroup file in one write, as the kernel
// wants, and names the file and value in errors.
func writeFile(dir, file, value string) error {
	p := filepath.Join(dir, file)
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("cgroups: write %q to %s: %w", value, p, err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(value)); err != nil {
		return fmt.Errorf("cgroups: write %q to %s: %w", value, p, err)
	}
	return nil
}

func readFields(p string) ([]string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}

func readPids(p string) ([]int, error) {
	f, err := readFields(p)
	if err != nil {
		return nil, err
	}
	out := make([]int, 0, len(f))
	for _, s := range f {
		if n, err := strconv.Atoi(s); err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// RemoveGroup removes what is left of group, a path below the calling
// process's own cgroup such as "vessel", in every hierarchy: the
// directories Destroy keeps (the parents of containers' cgroups in a v1
// cpuset hierarchy, see Destroy) and any other empty cgroup in it, such
// as one another runtime placed there and removed only its own cgroup
// from. The empty cgroups below group go, then group itself and its empty
// parents. A cgroup that holds processes stays, with everything above it.
// Programs that want to leave no cgroup behind once done with containers
// call it last.
func RemoveGroup(group string) error {
	if err := checkName("group", group); err != nil {
		return err
	}
	sys, err := currentSystem()
	if err != nil {
		return err
	}
	self, err := procCgroups(0)
	if err != nil {
		return fmt.Errorf("cgroups: reading /proc/self/cgroup: %w", err)
	}
	dirs, err := placement(sys, self, "", group)
	if err != nil {
		return err
	}
	// Not while a container of the group is starting (lockGroup).
	key := lockKey(dirs)
	if _, err := os.Stat(dirs[key]); err == nil {
		fd, err := lockDir(dirs[key], unix.LOCK_EX, groupLockPatience)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("cgroups: group %s: a container of it is still starting after %v: %w", group, groupLockPatience, err)
		}
		if err != nil {
			return err
		}
		defer unix.Close(fd)
	}
	var errs []error
	for _, h := range sys.hierarchies() {
		dir, ok := dirs[h.key]
		if !ok {
			continue
		}
		if err := removeTree(dir, false, time.Time{}, true); err != nil {
			errs = append(errs, err)
			continue
		}
		// Then the group's own parents, up to the caller's cgroup.
		for p, n := filepath.Dir(dir), strings.Count(group, "/"); n > 0; p, n = filepath.Dir(p), n-1 {
			if unix.Rmdir(p) != nil {
				break
			}
		}
	}
	return errors.Join(errs...)
}

// Place is the cgroup's directory in one hierarchy, beside the directory
// of the calling process's own cgroup there.
type Place struct {
	// Hierarchy is the hierarchy's key ("memory", "cpu,cpuacct", "unified").
	Hierarchy string
	Dir       string
	// Own is the calling process's cgroup directory ("" when it is not
	// attached to the hierarchy or its cgroup is not visible).
	Own string
	// V2 marks the cgroup2 hierarchy.
	V2 bool
}

// Places returns the cgroup's directory in every hierarchy with the
// caller's own, for a process that starts outside the cgroup and puts
// others in it (a container's init).
func (m *Manager) Places() ([]Place, error) {
	self, err := procCgroups(0)
	if err != nil {
		return nil, fmt.Errorf("cgroups: reading /proc/self/cgroup: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Place
	for _, key := range m.keys() {
		h, _ := m.hierarchy(key)
		p := Place{Hierarchy: key, Dir: m.dirs[key], V2: key == unifiedKey}
		if cg, ok := self[key]; ok {
			if dir, err := h.dirOf(cg); err == nil {
				p.Own = dir
			}
		}
		out = append(out, p)
	}
	return out, nil
}
