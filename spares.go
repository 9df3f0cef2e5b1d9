package vessel

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/internal/child"
	"github.com/openvessel/vessel/internal/initproto"
)

// Spares keeps container inits started ahead of time, for programs that
// start many containers (judges, test runners, services that start one per
// request). A container's init is a fresh process of this program: the
// clone of its namespaces, its execve, the Go runtime's start and its
// signal set-up are most of a container's start. A spare has done all of
// that, and the work of its network namespace that no configuration
// changes (its control socket moved there, its loopback up when its shape
// says so), and waits for its configuration. A Container whose Spares field is
// set takes one of its shape (waiting for it if it is still starting: it
// is ahead of a new fork), and its replacement starts when that container
// ends or has run for 50 ms, so that it does not compete with a short
// job's own start and end. Spares start at the lowest CPU priority and get
// the normal one back when taken.
//
// Every container still gets its own namespaces (created with its spare,
// never shared with another container; the pid namespace when its main
// process starts), its own cgroup (which its processes join; the init,
// spare or not, stays in the caller's), its own root
// filesystem and security profile, and the caller's stdio, passed with the
// configuration as os/exec would have set it up. The shape is the set of
// new namespaces, the executable and whether the loopback is up (network
// "none" keeps it down); a container that needs something
// decided when its init forks (a new user namespace, a terminal, extra
// files, a control socket, or Detached) starts the usual way.
//
// What it buys depends on idle CPU: with a spare ready, the start-to-exit
// of /bin/true here drops by half; containers started back to back on a
// busy 2-CPU machine gain nothing, the spare's start competing with theirs.
// A spare waits, and stays, in the caller's own cgroup, as every init
// does. Spares die with the program (parent-death signal); Close kills
// them earlier.
type Spares struct {
	n int

	mu     sync.Mutex
	idle   map[spareKey][]*spareInit // oldest first, some still starting
	closed bool
	stats  SpareStats
	fills  sync.WaitGroup
}

// SpareStats counts what a Spares did.
type SpareStats struct {
	// Started spare inits, Used by containers, Discarded (found dead, or
	// killed by Close), Failed to start.
	Started, Used, Discarded, Failed int
	// Ready is how many have finished starting and wait now.
	Ready int
}

// spareKey is what the fork of an init depends on, and what it does in
// its namespaces while it waits.
type spareKey struct {
	exe        string
	cloneflags uintptr
	// loopback: it brings its loopback up (all configs but network
	// "none" with a network namespace of their own).
	loopback bool
}

// A spareInit is listed as soon as its fork is decided, so a start that
// comes meanwhile waits for it rather than forking beside it.
type spareInit struct {
	// ready is closed once the init has said it waits for its config
	// (err nil), or failed to start or to say so (err set). Until then
	// the goroutine that forks it owns cmd and ctl.
	ready chan struct{}
	err   error
	cmd   *exec.Cmd
	ctl   *initproto.Conn

	mu      sync.Mutex
	wanted  bool // taken: no lowering of its priority any more
	dropped bool // discarded: killed as soon as it is forked
}

// NewSpares returns a Spares that keeps up to n inits ready per shape of
// container (1 to 64).
func NewSpares(n int) (*Spares, error) {
	if n < 1 || n > 64 {
		return nil, &ConfigError{Field: "spares", Reason: fmt.Sprintf("%d spare inits: must be 1 to 64", n)}
	}
	return &Spares{n: n, idle: map[spareKey][]*spareInit{}}, nil
}

// Stats returns the counts so far.
func (s *Spares) Stats() SpareStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	for _, l := range s.idle {
		for _, sp := range l {
			if sp.isReady() {
				st.Ready++
			}
		}
	}
	return st
}

func (sp *spareInit) isReady() bool {
	select {
	case <-sp.ready:
		return sp.err == nil
	default:
		return false
	}
}

// WaitReady waits until n spares of every shape used so far have finished
// starting and wait, or the timeout passes; it reports whether they do.
func (s *Spares) WaitReady(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		s.mu.Lock()
		ready := !s.closed
		for _, l := range s.idle {
			ready = ready && len(l) >= s.n
			for _, sp := range l {
				ready = ready && sp.isReady()
			}
		}
		s.mu.Unlock()
		if ready || time.Now().After(deadline) {
			return ready
		}
		time.Sleep(time.Millisecond)
	}
}

// Close kills and reaps the spares that wait; containers started from
// spares are not affected. Later starts fork their inits the usual way.
func (s *Spares) Close() error {
	s.mu.Lock()
	s.closed = true
	idle := s.idle
	s.idle = map[spareKey][]*spareInit{}
	s.mu.Unlock()
	var errs []error
	for _, l := range idle {
		for _, sp := range l {
			if err := sp.discard(); err != nil {
				errs = append(errs, err)
			}
			s.mu.Lock()
			s.stats.Discarded++
			s.mu.Unlock()
		}
	}
	s.fills.Wait()
	return errors.Join(errs...)
}

// take returns a live spare of the shape, or nil. A spare still starting
// is waited for: it is ahead of a new fork, and a new fork beside it would
// make both start slower.
func (s *Spares) take(key spareKey) *spareInit {
	for {
		s.mu.Lock()
		l := s.idle[key]
		if s.closed || len(l) == 0 {
			s.mu.Unlock()
			return nil
		}
		sp := l[0]
		s.idle[key] = l[1:]
		s.mu.Unlock()
		// Normal priority first: if it is still starting, it is this
		// container's init now.
		sp.mu.Lock()
		sp.wanted = true
		reniced := true
		if sp.cmd != nil {
			reniced = sp.renice(0) == nil
		}
		sp.mu.Unlock()
		<-sp.ready
		if reniced && sp.err == nil && sp.alive() {
			s.mu.Lock()
			s.stats.Used++
			s.mu.Unlock()
			return sp
		}
		_ = sp.discard()
		s.mu.Lock()
		s.stats.Discarded++
		s.mu.Unlock()
	}
}

// fill starts, in the background, the spares the shape lacks.
func (s *Spares) fill(key spareKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.closed && len(s.idle[key]) < s.n {
		sp := &spareInit{ready: make(chan struct{})}
		s.idle[key] = append(s.idle[key], sp)
		s.fills.Add(1)
		go func() {
			defer s.fills.Done()
			err := sp.start(key)
			s.mu.Lock()
			if err != nil {
				s.stats.Failed++
			} else {
				s.stats.Started++
			}
			s.mu.Unlock()
		}()
	}
}

// start forks the spare's init and waits for it to say it is ready.
func (sp *spareInit) start(key spareKey) (err error) {
	defer func() {
		sp.err = err
		close(sp.ready)
	}()
	ctl, childSock, err := initproto.ParentPair()
	if err != nil {
		return err
	}
	sys := &syscall.SysProcAttr{Cloneflags: key.cloneflags, Setsid: true, Pdeathsig: syscall.SIGKILL}
	args := []string{child.SpareArg0}
	if key.loopback {
		args = append(args, child.SpareLoopback)
	}
	cmd := initCmd(key.exe, args, []*os.File{childSock}, sys)
	var startErr error
	onForkThread(func() { startErr = cmd.Start() })
	childSock.Close()
	if startErr != nil {
		ctl.Close()
		return startErr
	}
	sp.mu.Lock()
	sp.cmd, sp.ctl = cmd, ctl
	if sp.dropped {
		_ = cmd.Process.Kill()
	} else if !sp.wanted {
		// The lowest priority while it starts and waits: it takes only
		// the CPU that running containers leave.
		_ = sp.renice(spareNice)
	}
	sp.mu.Unlock()
	// It hands over a control socket made in its network namespace
	// (initproto.Conn.Rebound), then says it is ready.
	r, _, _, err := awaitInit(ctl, func(n *initproto.Conn) {
		sp.mu.Lock()
		sp.ctl = n
		sp.mu.Unlock()
	}, initproto.TypeReady)
	if err != nil && r != nil {
		return fmt.Errorf("spare init: %w", err)
	}
	return err
}

// renice sets the priority of every thread of the spare (a thread the
// init makes later inherits it from its creator).
func (sp *spareInit) renice(nice int) error {
	pid := sp.cmd.Process.Pid
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("renice thread %d of spare init %d: %w", tid, pid, err)
		}
	}
	return nil
}

// initCmd is the command of a container init: this program, with its
// stdio left to the caller to fill.
func initCmd(exe string, args []string, extra []*os.File, sys *syscall.SysProcAttr) *exec.Cmd {
	cmd := &exec.Cmd{
		Path: exe,
		Args: args,
		// One P is plenty for the init: fewer threads, less memory per
		// idle container, a faster start.
		Env:         child.InitEnv(),
		ExtraFiles:  extra,
		SysProcAttr: sys,
		WaitDelay:   2 * time.Second,
	}
	withBinary(cmd)
	return cmd
}

// alive reports whether the spare still waits: its end of the socket is
// open.
func (sp *spareInit) alive() bool {
	rc, err := sp.ctl.File().SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	_ = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
		n, err := unix.Poll(fds, 0)
		ok = err == nil && (n == 0 || fds[0].Revents&(unix.POLLHUP|unix.POLLRDHUP|unix.POLLERR) == 0)
	})
	return ok
}

const spareNice = 19

// spareRefillDelay: a container that took a spare starts its replacement
// when it ends or after this long, whichever comes first.
const spareRefillDelay = 50 * time.Millisecond

func (sp *spareInit) discard() error {
	sp.mu.Lock()
	sp.dropped = true
	if sp.cmd != nil {
		_ = sp.cmd.Process.Kill() // not waiting for it to finish starting
	}
	sp.mu.Unlock()
	<-sp.ready
	if sp.cmd == nil {
		return nil
	}
	_ = sp.cmd.Process.Kill()
	err := sp.cmd.Wait()
	sp.ctl.Close()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return nil // killed, as asked
	}
	return err
}

// spareShape says whether the container may start from a spare, and of
// which shape.
func (c *Container) spareShape(exe string, sys *syscall.SysProcAttr, ic *child.Config) (spareKey, bool) {
	if c.Spares == nil || c.Detached || c.cfg.Process.TTY || c.ControlSocket != "" || len(c.ExtraFiles) > 0 ||
		sys.UidMappings != nil || sys.GidMappings != nil || sys.Credential != nil || ic.ReexecAfterMap {
		return spareKey{}, false
	}
	return spareKey{exe: exe, cloneflags: sys.Cloneflags, loopback: ic.LoopbackUp}, true
}

// spareStdio is the copying of the main process's stdio for a container
// whose init was forked before they were known (pipeStdio made them; they
// went with the config).
type spareStdio struct {
	copies  sync.WaitGroup
	closers []io.Closer
}

// wait waits, once the init has exited, for the output to be copied (at
// most 2 s, as the os/exec WaitDelay of a usual start), then closes the
// stdin pipes.
func (st *spareStdio) wait() {
	done := make(chan struct{})
	go func() { st.copies.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	for _, c := range st.closers {
		c.Close()
	}
}
