package vessel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/moby/sys/mountinfo"

	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/internal/child"
	"github.com/openvessel/vessel/internal/pathrs"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/rootfs"
)

// ErrPoolClosed is returned by a Pool's methods after Close.
var ErrPoolClosed = errors.New("vessel: pool closed")

// Pool keeps containers started and idle, so that callers running many
// short jobs (judges, test runners) pay an Exec instead of a whole
// container start per job. Each pooled container runs an idle main process
// (the config's command, or vessel's own idle process, which reaps what
// jobs leave, as PID 1 of the container's pid namespace must) as an
// unprivileged user the
// jobs cannot trace; a job runs in it through Exec, and when the job is
// done the container is reset before it serves the next one: every process
// the job left is killed, every writable mount (the tmpfs mounts, /dev,
// /dev/shm, /dev/mqueue, the generated /etc files) is put back as it was
// when the container started, and the System V IPC objects of its IPC
// namespace are removed. A container that cannot be reset (its idle
// process died, a file could not be restored) is destroyed and replaced in
// the background. Jobs therefore never see each other's files or
// processes.
//
// The root filesystem must be read-only (rootfs.Host() always is; set
// Readonly for a directory) and every bind mount read-only, since their
// contents could not be reset; the container must have a cgroup, through
// which leftover processes are found.
type Pool struct {
	cfg      *Config
	jobUser  User
	size     int
	idle     chan *PooledContainer
	closing  chan struct{}
	mu       sync.Mutex
	live     map[*PooledContainer]bool
	starting int
	lastErr  error
	closed   bool
	bg       sync.WaitGroup
}

// PooledContainer is a container handed out by Pool.Get. Run jobs in it
// with Exec, then give it back with Release.
type PooledContainer struct {
	pool *Pool
	c    *Container
	snap *poolSnapshot
	// released guards against a double Release.
	released atomic.Bool
}

var poolSeq atomic.Int64

// idleUID is the user the idle main process runs as: not the jobs' user,
// so a job can neither ptrace it nor write to its memory.
const idleUID = 65534

// NewPool validates cfg, starts size containers from it and returns once
// all are idle. Close destroys them.
func NewPool(cfg *Config, size int) (*Pool, error) {
	if size < 1 {
		return nil, &ConfigError{Field: "pool.size", Reason: fmt.Sprintf("%d: need at least one container", size)}
	}
	if cfg == nil {
		cfg = NewConfig()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkPoolConfig(cfg); err != nil {
		return nil, err
	}
	pc := cfg.clone()
	p := &Pool{
		cfg:     pc,
		jobUser: cfg.Process.User,
		size:    size,
		idle:    make(chan *PooledContainer, size),
		closing: make(chan struct{}),
		live:    map[*PooledContainer]bool{},
	}
	if len(pc.Process.Args) == 0 {
		// PID 1 of the container's pid namespace inherits what a job
		// leaves behind: vessel's idle process reaps it.
		pc.Process.Args, pc.Process.idle = []string{child.IdleArg0}, true
	}
	uid := uint32(idleUID)
	if p.jobUser.UID == uid {
		uid--
	}
	pc.Process.User = User{UID: uid, GID: uid}
	pc.Process.TTY = false
	errs := make([]error, size)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := 0; i < size; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := p.startOne()
			if err != nil {
				errs[i] = err
				return
			}
			p.idle <- c
		}(i)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// checkPoolConfig rejects what a reset could not undo.
func checkPoolConfig(cfg *Config) error {
	if cfg.Cgroup.Disabled {
		return &ConfigError{Field: "cgroup.disabled", Reason: "a pool needs each container's cgroup to find the processes a job left"}
	}
	if !cfg.Namespaces.IsNew(namespaces.Mount) {
		return &ConfigError{Field: "namespaces", Reason: "a pool needs a new mount namespace (jobs would share the host's files)"}
	}
	if cfg.Rootfs.Kind != rootfs.KindHost && !cfg.Readonly {
		return &ConfigError{Field: "readonly", Reason: "a pool's root filesystem must be read-only (one job's files would be seen by the next); give jobs tmpfs mounts to write to"}
	}
	for i, m := range cfg.Mounts {
		if m.Type == rootfs.TypeBind && !m.ReadOnly {
			return &ConfigError{Field: fmt.Sprintf("mounts[%d]", i), Reason: fmt.Sprintf("bind mount of %s at %s is writable: a pool can only reset tmpfs mounts", m.Source, m.Destination)}
		}
	}
	return nil
}

func (p *Pool) startOne() (*PooledContainer, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	p.starting++
	p.mu.Unlock()
	pc, err := p.startContainer()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.starting--
	if err != nil {
		p.lastErr = err
		return nil, err
	}
	if p.closed {
		go pc.c.Destroy()
		return nil, ErrPoolClosed
	}
	p.live[pc] = true
	return pc, nil
}

func (p *Pool) startContainer() (*PooledContainer, error) {
	id := fmt.Sprintf("pool%d-%d", os.Getpid(), poolSeq.Add(1))
	c, err := New(id, p.cfg)
	if err != nil {
		return nil, err
	}
	if err := c.Start(context.Background()); err != nil {
		c.Destroy()
		return nil, err
	}
	snap, err := takeSnapshot(c)
	if err != nil {
		c.Destroy()
		return nil, err
	}
	return &PooledContainer{pool: p, c: c, snap: snap}, nil
}

// Size returns the number of containers the pool keeps.
func (p *Pool) Size() int { return p.size }

// Get hands out an idle container, waiting for one while all are busy or
// being reset. Give it back with Release.
func (p *Pool) Get(ctx context.Context) (*PooledContainer, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	for {
		select {
		case pc := <-p.idle:
			if pc.alive() {
				pc.released.Store(false)
				return pc, nil
			}
			p.retire(pc)
			continue
		default:
		}
		p.mu.Lock()
		closed, starved, lastErr := p.closed, len(p.live) == 0 && p.starting == 0, p.lastErr
		p.mu.Unlock()
		if closed {
			return nil, ErrPoolClosed
		}
		if starved {
			// Every container was retired and no replacement is on its
			// way: start one here, reporting why if that fails too.
			pc, err := p.startOne()
			if err != nil {
				if lastErr != nil && err != lastErr {
					err = fmt.Errorf("%w (earlier: %v)", err, lastErr)
				}
				return nil, err
			}
			return pc, nil
		}
		select {
		case pc := <-p.idle:
			if pc.alive() {
				pc.released.Store(false)
				return pc, nil
			}
			p.retire(pc)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-p.closing:
			return nil, ErrPoolClosed
		}
	}
}

// Run runs one job in a pooled container: Get, Exec, Wait, Release. The
// command's User defaults to the config's user. It returns how the job
// ended; err is set when the job could not be started (or ctx ended
// before a container was free). Cancelling ctx kills the job.
func (p *Pool) Run(ctx context.Context, cmd *Command) (*ExitStatus, error) {
	var pc *PooledContainer
	var proc *Process
	for attempt := 0; ; attempt++ {
		var err error
		if pc, err = p.Get(ctx); err != nil {
			return nil, err
		}
		proc, err = pc.Exec(ctx, cmd)
		if err == nil {
			break
		}
		pc.Release()
		// A container that died while idle (its end not yet noticed) is
		// retired by the Release: try another.
		if !errors.Is(err, ErrNotRunning) || attempt == 2 {
			return nil, err
		}
	}
	defer pc.Release()
	// Once the job's process has ended, what it left behind goes, so its
	// background processes cannot hold its output open.
	select {
	case <-proc.done:
	case <-ctx.Done():
		<-proc.done
	}
	pc.killJobProcesses()
	_ = proc.Wait()
	st := proc.ExitStatus()
	if st == nil {
		return nil, errors.New("vessel: job ended without an exit status")
	}
	if proc.killedBy {
		st.Killed = true
	}
	return st, nil
}

// Container returns the underlying container (for State, Stats and the
// like). Do not Destroy it; Release it.
func (pc *PooledContainer) Container() *Container { return pc.c }

// Exec starts cmd in the pooled container, as Container.Exec does; a nil
// User runs it as the pool config's user.
func (pc *PooledContainer) Exec(ctx context.Context, cmd *Command) (*Process, error) {
	if cmd != nil && cmd.User == nil {
		c := *cmd
		u := pc.pool.jobUser
		c.User = &u
		cmd = &c
	}
	return pc.c.Exec(ctx, cmd)
}

// Release gives the container back to the pool. It returns at once; the
// reset (killing what the job left, restoring the writable mounts) runs in
// the background, and the container is only handed out again once it is
// clean. Calling Release twice is harmless.
func (pc *PooledContainer) Release() {
	if pc.released.Swap(true) {
		return
	}
	p := pc.pool
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		if err := pc.reset(); err != nil {
			pc.c.logf("pool: container retired", "err", err)
			p.retire(pc)
			return
		}
		p.mu.Lock()
		closed := p.closed
		p.mu.Unlock()
		if closed {
			p.retire(pc)
			return
		}
		p.idle <- pc
	}()
}

// retire destroys a container that cannot be reused and starts a
// replacement in the background.
func (p *Pool) retire(pc *PooledContainer) {
	p.mu.Lock()
	delete(p.live, pc)
	closed := p.closed
	p.mu.Unlock()
	_ = pc.c.Destroy()
	if closed {
		return
	}
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		if n, err := p.startOne(); err == nil {
			p.idle <- n
		}
	}()
}

// Close destroys every container of the pool, waiting for the ones being
// reset or replaced. Containers handed out and not yet released are
// destroyed as well; their jobs are killed.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.closing)
	live := make([]*PooledContainer, 0, len(p.live))
	for pc := range p.live {
		live = append(live, pc)
	}
	p.live = map[*PooledContainer]bool{}
	p.mu.Unlock()
	errs := make([]error, len(live))
	var wg sync.WaitGroup
	for i, pc := range live {
		wg.Add(1)
		go func(i int, pc *PooledContainer) {
			defer wg.Done()
			errs[i] = pc.c.Destroy()
		}(i, pc)
	}
	wg.Wait()
	p.bg.Wait()
	for {
		select {
		case pc := <-p.idle:
			_ = pc.c.Destroy()
			continue
		default:
		}
		break
	}
	return errors.Join(errs...)
}

func (pc *PooledContainer) alive() bool {
	select {
	case <-pc.c.Done():
		return false
	default:
	}
	return pc.c.State().Status == Running
}

// killJobProcesses kills every process but the init and the idle one.
func (pc *PooledContainer) killJobProcesses() {
	c := pc.c
	c.mu.Lock()
	initPid, mainPid, cg := c.initPid, c.mainPid, c.cg
	c.mu.Unlock()
	if cg != nil {
		_ = killLeftovers(procsFile(cg), initPid, mainPid)
	}
}

// reset makes the container as it was when it started.
func (pc *PooledContainer) reset() error {
	c := pc.c
	if !pc.alive() {
		return errors.New("container ended")
	}
	c.mu.Lock()
	initPid, mainPid, cg := c.initPid, c.mainPid, c.cg
	c.mu.Unlock()
	if cg == nil {
		return errors.New("no cgroup")
	}
	if err := killLeftovers(procsFile(cg), initPid, mainPid); err != nil {
		return err
	}
	if !pc.alive() || !processAlive(mainPid) {
		return errors.New("idle process ended")
	}
	if err := pc.snap.restore(initPid); err != nil {
		return err
	}
	if c.cfg.Namespaces.IsNew(namespaces.IPC) {
		if err := clearSysVIPC(initPid); err != nil {
			return fmt.Errorf("clear System V IPC: %w", err)
		}
	}
	return nil
}

// processAlive reports whether pid runs and is not about to die: a
// SIGKILL sent by a job may still be pending when the reset looks.
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	const sigkillBit = 1 << (unix.SIGKILL - 1)
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "State":
			if strings.HasPrefix(v, "Z") || strings.HasPrefix(v, "X") {
				return false
			}
		case "SigPnd", "ShdPnd":
			if m, err := strconv.ParseUint(v, 16, 64); err == nil && m&sigkillBit != 0 {
				return false
			}
		}
	}
	return true
}

// procsFile returns the cgroup.procs file of one hierarchy of the
// container's cgroup that holds all of its processes.
func procsFile(cg *cgroups.Manager) string {
	hs := []string{"pids", "freezer", "memory", "cpu", "unified"}
	if cg.Layout() == cgroups.V2 {
		hs = []string{"unified"}
	}
	for _, h := range hs {
		if dir, ok := cg.Path(h); ok {
			return path.Join(dir, "cgroup.procs")
		}
	}
	return ""
}

// killLeftovers SIGKILLs every process of the cgroup but the init and the
// idle process, until none is left (a forking job is caught on a later
// round; its cgroup's pids limit bounds how many rounds that takes).
func killLeftovers(procs string, keep ...int) error {
	if procs == "" {
		return errors.New("no cgroup.procs to read")
	}
	for round := 0; round < 1000; round++ {
		b, err := os.ReadFile(procs)
		if err != nil {
			return err
		}
		others := 0
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil || pid == keep[0] || pid == keep[1] {
				continue
			}
			others++
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		if others == 0 {
			return nil
		}
		runtime.Gosched()
	}
	return errors.New("processes keep appearing in the cgroup")
}

// poolSnapshot is what the writable mounts of a container held at start.
type poolSnapshot struct {
	mounts []snapMount
	// mountPoints are every mount point, so a walk does not enter them.
	mountPoints map[string]bool
}

type snapMount struct {
	point  string
	fstype string
	// entries maps paths below point ("" is point itself) to what was there.
	entries map[string]snapEntry
	// children lists the names recorded in each directory of entries.
	children map[string][]string
}

type snapEntry struct {
	mode     uint32 // st_mode
	uid, gid uint32
	rdev     uint64
	link     string
	data     []byte // regular files up to snapMaxFile
	size     int64
}

const (
	snapMaxFile    = 1 << 20
	snapMaxEntries = 4096
)

type mountEntry struct {
	point, fstype string
	rw            bool
}

// readMounts reads /proc/PID/mountinfo (with moby/sys/mountinfo, the
// project's one mount-table parser).
func readMounts(pid int) ([]mountEntry, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	infos, err := mountinfo.GetMountsFromReader(f, nil)
	if err != nil {
		return nil, err
	}
	out := make([]mountEntry, 0, len(infos))
	for _, m := range infos {
		opts := "," + m.Options + ","
		out = append(out, mountEntry{point: m.Mountpoint, fstype: m.FSType, rw: strings.Contains(opts, ",rw,")})
	}
	return out, nil
}

// takeSnapshot records the writable mounts of a freshly started
// container, failing for a writable mount whose contents it cannot reset.
func takeSnapshot(c *Container) (*poolSnapshot, error) {
	pid := c.State().InitPid
	mounts, err := readMounts(pid)
	if err != nil {
		return nil, &SetupError{Step: "pool: read container mounts", Err: err}
	}
	s := &poolSnapshot{mountPoints: map[string]bool{}}
	for _, m := range mounts {
		s.mountPoints[m.point] = true
	}
	root, err := openContainerRoot(pid)
	if err != nil {
		return nil, &SetupError{Step: "pool: open container root", Err: err}
	}
	defer unix.Close(root)
	for _, m := range mounts {
		if !m.rw {
			continue
		}
		switch m.fstype {
		case "proc", "sysfs", "devpts", "cgroup", "cgroup2":
			// Kernel views, nothing a job leaves there outlives its
			// processes.
			continue
		case "tmpfs", "mqueue":
		default:
			if isDeviceMount(root, m.point) {
				// A device node bound from the host (/dev/null...).
				continue
			}
			return nil, &ConfigError{Field: "mounts", Reason: fmt.Sprintf("%s (%s) is writable inside the container and a pool cannot reset it", m.point, m.fstype)}
		}
		sm := snapMount{point: m.point, fstype: m.fstype, entries: map[string]snapEntry{}, children: map[string][]string{}}
		if err := s.record(root, &sm); err != nil {
			return nil, &SetupError{Step: "pool: snapshot", Path: m.point, Err: err}
		}
		s.mounts = append(s.mounts, sm)
	}
	return s, nil
}

func isDeviceMount(root int, p string) bool {
	fd, err := openIn(root, p, unix.O_PATH)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return false
	}
	t := st.Mode & unix.S_IFMT
	return t == unix.S_IFCHR || t == unix.S_IFBLK
}

func openContainerRoot(pid int) (int, error) {
	return unix.Open("/proc/"+strconv.Itoa(pid)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// openIn opens p (absolute, inside the container) below root without
// following any symlink.
func openIn(root int, p string, flags uint64) (int, error) {
	return pathrs.OpenInRoot(root, p, flags|unix.O_NOFOLLOW, unix.RESOLVE_NO_SYMLINKS)
}

func statEntry(dirfd int, name string) (snapEntry, error) {
	var st unix.Stat_t
	flags := unix.AT_SYMLINK_NOFOLLOW
	if name == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	if err := unix.Fstatat(dirfd, name, &st, flags); err != nil {
		return snapEntry{}, err
	}
	return snapEntry{mode: st.Mode, uid: st.Uid, gid: st.Gid, rdev: st.Rdev, size: st.Size}, nil
}

func isDir(mode uint32) bool { return mode&unix.S_IFMT == unix.S_IFDIR }
func isReg(mode uint32) bool { return mode&unix.S_IFMT == unix.S_IFREG }

func (s *poolSnapshot) record(root int, sm *snapMount) error {
	var st unix.Stat_t
	fd, err := openIn(root, sm.point, unix.O_PATH)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if !isDir(st.Mode) {
		// A file mount (the generated /etc files): keep its contents.
		e, err := fileEntry(fd, "")
		if err != nil {
			return err
		}
		sm.entries[""] = e
		return nil
	}
	sm.entries[""] = snapEntry{mode: st.Mode, uid: st.Uid, gid: st.Gid}
	return s.recordDir(fd, sm.point, "", sm)
}

func fileEntry(dirfd int, name string) (snapEntry, error) {
	e, err := statEntry(dirfd, name)
	if err != nil {
		return e, err
	}
	switch {
	case isReg(e.mode):
		if e.size > snapMaxFile {
			return e, fmt.Errorf("%s: %d bytes, too large to keep for resets", name, e.size)
		}
		fd, err := openAt(dirfd, name, unix.O_RDONLY)
		if err != nil {
			return e, err
		}
		defer unix.Close(fd)
		buf := make([]byte, e.size)
		n, err := unix.Pread(fd, buf, 0)
		if err != nil {
			return e, err
		}
		e.data = buf[:n]
	case e.mode&unix.S_IFMT == unix.S_IFLNK:
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return e, err
		}
		e.link = string(buf[:n])
	}
	return e, nil
}

// openAt opens name in dirfd without following symlinks; "" reopens dirfd.
func openAt(dirfd int, name string, flags int) (int, error) {
	if name == "" {
		// Reopen through the descriptor's /proc link (a magic link,
		// which O_NOFOLLOW would refuse).
		return unix.Open(procFD(dirfd), flags|unix.O_CLOEXEC, 0)
	}
	return unix.Openat(dirfd, name, flags|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
}

func readDirNames(fd int) ([]string, error) {
	d, err := openAt(fd, "", unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(d), "dir")
	defer f.Close()
	return f.Readdirnames(-1)
}

func (s *poolSnapshot) recordDir(fd int, abs, rel string, sm *snapMount) error {
	names, err := readDirNames(fd)
	if err != nil {
		return err
	}
	for _, n := range names {
		if len(sm.entries) > snapMaxEntries {
			return fmt.Errorf("more than %d entries", snapMaxEntries)
		}
		r := path.Join(rel, n)
		e, err := fileEntry(fd, n)
		if err != nil {
			return err
		}
		sm.entries[r] = e
		sm.children[rel] = append(sm.children[rel], n)
		if !isDir(e.mode) || s.mountPoints[path.Join(abs, n)] {
			continue
		}
		sub, err := openAt(fd, n, unix.O_PATH|unix.O_DIRECTORY)
		if err != nil {
			return err
		}
		err = s.recordDir(sub, path.Join(abs, n), r, sm)
		unix.Close(sub)
		if err != nil {
			return err
		}
	}
	return nil
}

// restore puts every writable mount back as it was recorded.
func (s *poolSnapshot) restore(pid int) error {
	root, err := openContainerRoot(pid)
	if err != nil {
		return err
	}
	defer unix.Close(root)
	for i := range s.mounts {
		sm := &s.mounts[i]
		fd, err := openIn(root, sm.point, unix.O_PATH)
		if err != nil {
			return fmt.Errorf("%s: %w", sm.point, err)
		}
		err = s.restoreEntry(fd, "", sm.point, "", sm)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("%s: %w", sm.point, err)
		}
	}
	return nil
}

// restoreEntry fixes one recorded entry (name in dirfd; "" is dirfd
// itself) and, for a directory, removes what was added below it.
func (s *poolSnapshot) restoreEntry(dirfd int, name, abs, rel string, sm *snapMount) error {
	want := sm.entries[rel]
	got, err := statEntry(dirfd, name)
	if err != nil {
		return err
	}
	if got.mode&unix.S_IFMT != want.mode&unix.S_IFMT || got.rdev != want.rdev {
		return fmt.Errorf("%s was replaced", abs)
	}
	if got.uid != want.uid || got.gid != want.gid {
		if err := chownAt(dirfd, name, want.uid, want.gid); err != nil {
			return err
		}
	}
	if got.mode&0o7777 != want.mode&0o7777 && want.mode&unix.S_IFMT != unix.S_IFLNK {
		if err := chmodAt(dirfd, name, want.mode&0o7777); err != nil {
			return err
		}
	}
	switch {
	case isReg(want.mode):
		return restoreFile(dirfd, name, want.data)
	case want.mode&unix.S_IFMT == unix.S_IFLNK:
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return err
		}
		if string(buf[:n]) != want.link {
			return fmt.Errorf("%s: symlink changed", abs)
		}
		return nil
	case !isDir(want.mode):
		return nil
	}
	if rel != "" && s.mountPoints[abs] {
		return nil
	}
	dir := dirfd
	if name != "" {
		if dir, err = openAt(dirfd, name, unix.O_PATH|unix.O_DIRECTORY); err != nil {
			return err
		}
		defer unix.Close(dir)
	}
	names, err := readDirNames(dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		r := path.Join(rel, n)
		if _, ok := sm.entries[r]; !ok {
			if err := removeAt(dir, n); err != nil {
				return fmt.Errorf("%s: %w", path.Join(abs, n), err)
			}
			continue
		}
		if err := s.restoreEntry(dir, n, path.Join(abs, n), r, sm); err != nil {
			return err
		}
	}
	if len(sm.children[rel]) > 0 {
		have := make(map[string]bool, len(names))
		for _, n := range names {
			have[n] = true
		}
		for _, n := range sm.children[rel] {
			if !have[n] {
				return fmt.Errorf("%s was removed", path.Join(abs, n))
			}
		}
	}
	return nil
}

func procFD(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

func chownAt(dirfd int, name string, uid, gid uint32) error {
	if name == "" {
		return unix.Fchownat(dirfd, "", int(uid), int(gid), unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW)
	}
	return unix.Fchownat(dirfd, name, int(uid), int(gid), unix.AT_SYMLINK_NOFOLLOW)
}

func chmodAt(dirfd int, name string, mode uint32) error {
	if name == "" {
		// An O_PATH descriptor: chmod through its /proc link.
		return unix.Chmod(procFD(dirfd), mode)
	}
	return unix.Fchmodat(dirfd, name, mode, 0)
}

// restoreFile rewrites a regular file whose contents changed.
func restoreFile(dirfd int, name string, want []byte) error {
	fd, err := openAt(dirfd, name, unix.O_RDWR)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Size == int64(len(want)) {
		buf := make([]byte, len(want))
		if n, err := unix.Pread(fd, buf, 0); err == nil && n == len(want) && bytes.Equal(buf, want) {
			return nil
		}
	}
	if err := unix.Ftruncate(fd, 0); err != nil {
		return err
	}
	if len(want) > 0 {
		if _, err := unix.Pwrite(fd, want, 0); err != nil {
			return err
		}
	}
	return nil
}

// removeAt removes name in dirfd and everything below it, never following
// a symlink.
func removeAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return err
	}
	sub, oerr := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if oerr != nil {
		return err
	}
	// A job may have left the directory unreadable or unwritable.
	_ = unix.Fchmod(sub, 0o700)
	f := os.NewFile(uintptr(sub), name)
	names, rerr := f.Readdirnames(-1)
	if rerr != nil {
		f.Close()
		return rerr
	}
	for _, n := range names {
		if err := removeAt(sub, n); err != nil {
			f.Close()
			return err
		}
	}
	f.Close()
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

// clearSysVIPC removes every System V shared memory segment, message queue
// and semaphore set of the IPC namespace of process pid.
func clearSysVIPC(pid int) error {
	return namespaces.Do(namespaces.IPC, "/proc/"+strconv.Itoa(pid)+"/ns/ipc", func() error {
		if sysvIPCEmpty() {
			return nil
		}
		var errs []error
		for _, kind := range []struct {
			file string
			rm   func(id int) error
		}{
			{"shm", func(id int) error { _, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil); return err }},
			{"msg", func(id int) error {
				_, _, e := unix.Syscall(unix.SYS_MSGCTL, uintptr(id), unix.IPC_RMID, 0)
				return errnoErr(e)
			}},
			{"sem", func(id int) error {
				_, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 0, unix.IPC_RMID, 0, 0, 0)
				return errnoErr(e)
			}},
		} {
			ids, err := sysvIDs("/proc/sysvipc/" + kind.file)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, id := range ids {
				if err := kind.rm(id); err != nil && err != unix.EINVAL && err != unix.EIDRM {
					errs = append(errs, fmt.Errorf("%s %d: %w", kind.file, id, err))
				}
			}
		}
		return errors.Join(errs...)
	})
}

// The *_INFO commands of shmctl, msgctl and semctl (linux/shm.h, msg.h,
// sem.h): counts for the caller's IPC namespace.
const (
	ipcShmInfo = 14
	ipcMsgInfo = 12
	ipcSemInfo = 19
)

// sysvIPCEmpty reports whether the calling thread's IPC namespace holds no
// shared memory segment, message queue or semaphore set, from three system
// calls instead of reading the /proc/sysvipc tables; false when unsure.
func sysvIPCEmpty() bool {
	var shm struct {
		usedIDs int32 // struct shm_info
		_       [64]byte
	}
	if _, _, e := unix.Syscall(unix.SYS_SHMCTL, 0, ipcShmInfo, uintptr(unsafe.Pointer(&shm))); e != 0 || shm.usedIDs != 0 {
		return false
	}
	var msg struct {
		msgpool int32 // struct msginfo: with MSG_INFO, the queues that exist
		_       [64]byte
	}
	if _, _, e := unix.Syscall(unix.SYS_MSGCTL, 0, ipcMsgInfo, uintptr(unsafe.Pointer(&msg))); e != 0 || msg.msgpool != 0 {
		return false
	}
	var sem struct {
		_      [7]int32 // struct seminfo: semmap ... semume
		semusz int32    // with SEM_INFO, the sets that exist
		_      [64]byte
	}
	// semctl's fourth argument is a union whose __buf points to the
	// struct.
	if _, _, e := unix.Syscall6(unix.SYS_SEMCTL, 0, 0, ipcSemInfo, uintptr(unsafe.Pointer(&sem)), 0, 0); e != 0 || sem.semusz != 0 {
		return false
	}
	return true
}

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// sysvIDs reads the ids column of a /proc/sysvipc table (the reading
// thread's IPC namespace).
func sysvIDs(file string) ([]int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) == 0 {
		return nil, nil
	}
	head := strings.Fields(lines[0])
	col := -1
	for i, h := range head {
		if h == "shmid" || h == "msqid" || h == "semid" {
			col = i
		}
	}
	if col < 0 {
		return nil, fmt.Errorf("%s: no id column", file)
	}
	var ids []int
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) <= col {
			continue
		}
		if id, err := strconv.Atoi(f[col]); err == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}
