package vessel

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/moby/sys/mountinfo"

	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/internal/child"
	"github.com/openvessel/vessel/internal/filesnap"
	"github.com/openvessel/vessel/internal/pathrs"
	"github.com/openvessel/vessel/internal/procfs"
	"github.com/openvessel/vessel/internal/sysvipc"
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
	snap *filesnap.Snapshot
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
	if cfg.Rootfs.Kind != rootfs.KindHost && !cfg.ReadOnly {
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
func (p *Pool) Run(ctx context.Context, cmd *Cmd) (*ExitStatus, error) {
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
	return st, nil
}

// Container returns the underlying container (for State, Stats and the
// like). Do not Destroy it; Release it.
func (pc *PooledContainer) Container() *Container { return pc.c }

// Exec starts cmd in the pooled container, as Container.Exec does; a nil
// User runs it as the pool config's user.
func (pc *PooledContainer) Exec(ctx context.Context, cmd *Cmd) (*Process, error) {
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
	if !pc.alive() || !procfs.Alive(mainPid) {
		return errors.New("idle process ended")
	}
	if err := restoreFiles(pc.snap, initPid); err != nil {
		return err
	}
	if c.cfg.Namespaces.IsNew(namespaces.IPC) {
		if err := sysvipc.Clear(initPid); err != nil {
			return fmt.Errorf("clear System V IPC: %w", err)
		}
	}
	return nil
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
// idle process until none is left (a forking job is caught on a later
// round; its cgroup's pids limit bounds how many rounds that takes), then
// waits until the killed processes are reaped: a killed process stays
// in cgroup.procs until it has finished exiting, and in the pid
// namespace, where the next job would see it, until its parent reaps it.
// It fails when that takes longer than reapWait.
func killLeftovers(procs string, keep ...int) error {
	if procs == "" {
		return errors.New("no cgroup.procs to read")
	}
	deadline := time.Now().Add(reapWait)
	killed := map[int]bool{}
	for round := 0; ; round++ {
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
			killed[pid] = true
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		if others == 0 {
			return waitReaped(killed, deadline)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes keep appearing in the cgroup (%d after %v)", others, reapWait)
		}
		if round < 1000 {
			runtime.Gosched()
		} else {
			time.Sleep(time.Millisecond)
		}
	}
}

// reapWait bounds how long a reset waits for the last job's processes to
// be killed and reaped.
const reapWait = 5 * time.Second

// waitReaped waits until none of pids is left in /proc, or fails after
// deadline.
func waitReaped(pids map[int]bool, deadline time.Time) error {
	for pid := range pids {
		for {
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); errors.Is(err, fs.ErrNotExist) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("process %d of the last job was not reaped in %v", pid, reapWait)
			}
			time.Sleep(time.Millisecond)
		}
	}
	return nil
}

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
func takeSnapshot(c *Container) (*filesnap.Snapshot, error) {
	pid := c.State().InitPid
	mounts, err := readMounts(pid)
	if err != nil {
		return nil, &SetupError{Step: "pool: read container mounts", Err: err}
	}
	points := make([]string, 0, len(mounts))
	for _, m := range mounts {
		points = append(points, m.point)
	}
	s := filesnap.New(points)
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
		if err := s.Record(root, m.point); err != nil {
			return nil, &SetupError{Step: "pool: snapshot", Path: m.point, Err: err}
		}
	}
	return s, nil
}

// restoreFiles puts the container's writable mounts back as s recorded
// them.
func restoreFiles(s *filesnap.Snapshot, pid int) error {
	root, err := openContainerRoot(pid)
	if err != nil {
		return err
	}
	defer unix.Close(root)
	return s.Restore(root)
}

func isDeviceMount(root int, p string) bool {
	fd, err := pathrs.OpenInRoot(root, p, unix.O_PATH|unix.O_NOFOLLOW, unix.RESOLVE_NO_SYMLINKS)
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
