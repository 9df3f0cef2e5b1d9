package vessel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/internal/child"
	"github.com/openvessel/vessel/internal/initproto"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/network"
	"github.com/openvessel/vessel/rootfs"
	"github.com/openvessel/vessel/security"
	"github.com/openvessel/vessel/storage"
)

// Status is where a container is in its life.
type Status string

// Container statuses.
const (
	// Created: New succeeded; nothing runs yet.
	Created Status = "created"
	// Waiting: Create set the container up; its main process waits just
	// before execve for Start (the OCI "created" state).
	Waiting Status = "waiting"
	// Running: the main process runs.
	Running Status = "running"
	// Stopped: the main process has ended.
	Stopped Status = "stopped"
	// Destroyed: Destroy released everything.
	Destroyed Status = "destroyed"
)

// State is a snapshot of a container.
type State struct {
	ID     string `json:"id"`
	Status Status `json:"status"`
	// Pid is the host pid of the main process (0 before start).
	Pid int `json:"pid,omitempty"`
	// InitPid is the host pid of the container's init.
	InitPid int `json:"initPid,omitempty"`
	// Exit is set once the main process has ended.
	Exit      *ExitStatus `json:"exit,omitempty"`
	StartedAt time.Time   `json:"startedAt,omitempty"`
}

// Container is one container. Set Stdin, Stdout, Stderr and ExtraFiles
// before Start, as with os/exec.Cmd.
type Container struct {
	// Stdin is the main process's standard input; nil reads /dev/null.
	Stdin io.Reader
	// Stdout and Stderr receive the main process's output; nil discards.
	Stdout io.Writer
	Stderr io.Writer
	// ExtraFiles become descriptors 3, 4, ... of the main process.
	ExtraFiles []*os.File
	// Detached containers outlive the program that started them (an OCI
	// runtime's create/start); others are killed when it dies.
	Detached bool
	// ControlSocket, when set, is the path of a unix socket through which
	// other programs can Attach to the container (start, signal, exec).
	ControlSocket string
	// Spares, when set, supplies an init started ahead of time, if one of
	// this container's shape is ready (see Spares).
	Spares *Spares

	id  string
	cfg *Config

	mu        sync.Mutex
	status    Status
	cmd       *exec.Cmd
	ctl       *initproto.Conn
	initPid   int
	mainPid   int
	startedAt time.Time
	exit      *ExitStatus
	done      chan struct{}
	reason    endReason
	sess      *session
	startWait chan *initproto.Received
	pty       *os.File
	listener  *os.File // seccomp notify listener, until taken
	ptyWG     sync.WaitGroup
	ptyEnded  chan struct{}
	timer     *time.Timer
	cleanups  []func() error
	ctlDone   chan struct{}
	cg        *cgroups.Manager
	storage   *storage.Prepared
	warnings  []string
	net       *network.Attachment
	secPrep   *security.Prepared
	spareIO   *spareStdio
	// copyErr is the first failed copy of the main process's output.
	copyErr     firstError
	spareRefill *time.Timer
	paused      bool
	// restoreSpec, set by Restore, makes start bring back a checkpoint;
	// restoreFiles then receives the network's generated files (hosts,
	// resolv.conf) that criu is to mount.
	restoreSpec  *child.RestoreSpec
	restoreFiles func([]rootfs.File) error
	// execRefused, when set, is why Exec cannot start processes here (a
	// dynamically linked program's restored container: see start).
	execRefused error
}

// New validates cfg and returns a container that has not started. Nothing
// is created on the host until Start.
func New(id string, cfg *Config) (*Container, error) {
	if !rootfs.ValidName(id) {
		return nil, &ConfigError{Field: "id", Reason: fmt.Sprintf("%q must be 1-128 characters of letters, digits, '_', '.', '-', starting with a letter or digit", id)}
	}
	if cfg == nil {
		cfg = NewConfig()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Container{id: id, cfg: cfg.clone(), status: Created, done: make(chan struct{})}, nil
}

// ID returns the container's id.
func (c *Container) ID() string { return c.id }

// Config returns a copy of the container's configuration.
func (c *Container) Config() *Config { return c.cfg.clone() }

// Run starts the container with args (or the configured command) and waits
// for it to end.
func (c *Container) Run(ctx context.Context, args ...string) error {
	if err := c.Start(ctx, args...); err != nil {
		return err
	}
	return c.Wait()
}

func (c *Container) logf(msg string, a ...any) {
	if c.cfg.Logger != nil {
		c.cfg.Logger.Debug(msg, append([]any{"container", c.id}, a...)...)
	}
}

// processSpec builds the spec of a process (started by the init directly
// or through the exec stage) from a process description.
func (c *Container) processSpec(p *ProcessConfig) child.Process {
	umask := uint32(0o022)
	if p.Umask != nil {
		umask = *p.Umask
	}
	env := defaultEnv(p.Env, p.User.UID, c.hostname(), p.TTY)
	dir := p.Dir
	if dir == "" {
		dir = "/"
	}
	return child.Process{
		Args: p.Args, Env: env, Dir: dir,
		UID: p.User.UID, GID: p.User.GID, Groups: p.User.Groups,
		SetGroups: !c.cfg.Namespaces.IsNew(namespaces.User) || len(c.cfg.GIDMappings) > 0,
		Umask:     umask, TTY: p.TTY, Rows: p.Rows, Cols: p.Cols,
		NoNewPriv:   !c.cfg.Privileged,
		Security:    c.secPrep,
		Rlimits:     c.cfg.Rlimits,
		OOMScoreAdj: c.cfg.OOMScoreAdj,
		Idle:        p.idle,
	}
}

func (c *Container) initConfig(args []string, plan *rootfs.Plan, image *rootfs.ImageConfig) (*child.Config, error) {
	cfg := c.cfg
	ns := cfg.Namespaces
	p := cfg.Process
	if image != nil {
		applyImageDefaults(&p, image)
	}
	if len(args) > 0 {
		p.Args = args
	}
	if len(p.Args) == 0 {
		return nil, &ConfigError{Field: "process.args", Reason: "no command to run"}
	}
	ic := &child.Config{
		Process:     c.processSpec(&p),
		NewCgroupNS: ns.IsNew(namespaces.Cgroup),
		NewTimeNS:   ns.IsNew(namespaces.Time),
		TimeOffsets: cfg.TimeOffsets,
		Sysctls:     cfg.Sysctls,
		NewPIDNS:    ns.IsNew(namespaces.PID),
		LoopbackUp:  ns.IsNew(namespaces.Net) && cfg.network().Mode != network.ModeNone,
		NumExtras:   len(c.ExtraFiles),
	}
	for _, n := range ns {
		if n.Path != "" {
			ic.Joins = append(ic.Joins, n)
		}
	}
	if cfg.buildsRoot() {
		ic.Plan = plan
		ic.Plan.Files = c.generatedFiles()
	}
	if ns.Has(namespaces.UTS) {
		h := cfg.Hostname
		if h == "" && ns.IsNew(namespaces.UTS) {
			h = c.id
			if len(h) > 64 {
				h = h[:64]
			}
		}
		if h != "" {
			ic.Hostname = &h
		}
		if cfg.Domainname != "" {
			d := cfg.Domainname
			ic.Domainname = &d
		}
	}
	return ic, nil
}

// hostname is what the container's /etc/hostname and /etc/hosts say.
func (c *Container) hostname() string {
	if c.cfg.Hostname != "" {
		return c.cfg.Hostname
	}
	if c.cfg.Namespaces.IsNew(namespaces.UTS) {
		return c.id
	}
	h, _ := os.Hostname()
	return h
}

// generatedFiles are /etc/hostname, /etc/hosts and /etc/resolv.conf.
func (c *Container) generatedFiles() []rootfs.File {
	h := c.hostname()
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" + h + "\n"
	files := []rootfs.File{
		{Path: "/etc/hostname", Data: []byte(h + "\n")},
		{Path: "/etc/hosts", Data: []byte(hosts)},
	}
	if c.cfg.Namespaces.IsNew(namespaces.Net) {
		// Only loopback: no nameserver is reachable; an empty resolver
		// config makes lookups fail fast instead of timing out.
		files = append(files, rootfs.File{Path: "/etc/resolv.conf", Data: []byte("# vessel: this container has no network beyond loopback\n")})
	} else if data, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		files = append(files, rootfs.File{Path: "/etc/resolv.conf", Data: data})
	}
	return files
}

// Start starts the container's main process, with args if given, else the
// configured command. It returns once the process has been execve()d (or
// with the *SetupError that prevented it). Cancelling ctx kills the whole
// container, like exec.CommandContext.
//
// After Create, Start lets the waiting process go on (args must be empty).
func (c *Container) Start(ctx context.Context, args ...string) error {
	c.mu.Lock()
	switch c.status {
	case Created:
	case Waiting:
		c.mu.Unlock()
		if len(args) > 0 {
			return &ConfigError{Field: "args", Reason: "the command was given to Create"}
		}
		return c.release(ctx)
	case Destroyed:
		c.mu.Unlock()
		return ErrDestroyed
	default:
		c.mu.Unlock()
		return ErrAlreadyStarted
	}
	c.status = Running // claims the container; reset on failure
	c.mu.Unlock()
	return c.startOrCreate(ctx, args, false)
}

// Create sets the container up and starts its main process up to the
// point just before execve, where it waits (status Waiting) until Start.
// This is the OCI runtime's "created" state: everything that can fail has
// been done, and hooks and the caller can act on the live namespaces.
func (c *Container) Create(ctx context.Context, args ...string) error {
	c.mu.Lock()
	switch c.status {
	case Created:
	case Destroyed:
		c.mu.Unlock()
		return ErrDestroyed
	default:
		c.mu.Unlock()
		return ErrAlreadyStarted
	}
	c.status = Waiting
	c.mu.Unlock()
	return c.startOrCreate(ctx, args, true)
}

func (c *Container) startOrCreate(ctx context.Context, args []string, hold bool) error {
	err := c.start(ctx, args, hold)
	if err != nil {
		c.mu.Lock()
		c.status = Created
		c.mu.Unlock()
		c.runCleanups()
		return err
	}
	return nil
}

// release lets a created container's main process execve.
func (c *Container) release(ctx context.Context) error {
	c.mu.Lock()
	w := make(chan *initproto.Received, 1)
	c.startWait = w
	pid := c.mainPid
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.startWait = nil
		c.mu.Unlock()
	}()
	if err := sendStart(c.ctl, c.hookState("created", pid)); err != nil {
		return &SetupError{Step: "send start", Err: err}
	}
	var r *initproto.Received
	select {
	case r = <-w:
	case <-c.done:
		return &SetupError{Step: "start", Err: errors.New("the container ended before its process started")}
	}
	if r.Type == initproto.TypeError {
		return remoteSetupError(r.Error)
	}
	c.mu.Lock()
	if c.status == Waiting {
		c.status = Running
	}
	c.startedAt = time.Now()
	c.mu.Unlock()
	c.afterStart(ctx)
	return nil
}

// afterStart runs what follows the main process's execve: poststart hooks
// and the limits that count from start.
func (c *Container) afterStart(ctx context.Context) {
	if h := c.cfg.Hooks; h != nil && len(h.Poststart) > 0 {
		if err := runHooks(h.Poststart, c.hookState("running", c.State().Pid)); err != nil {
			c.logf("poststart hook failed", "err", err)
		}
	}
	if c.cfg.Timeout > 0 {
		c.mu.Lock()
		c.timer = time.AfterFunc(c.cfg.Timeout, func() { c.kill(true) })
		c.mu.Unlock()
	}
	if c.cfg.CPUTime > 0 && c.cg != nil {
		go c.watchCPUTime(c.cfg.CPUTime)
	}
	if c.cfg.UsageSampling > 0 && c.cg != nil {
		go c.sampleUsage(c.cfg.UsageSampling)
	}
}

// startRun is one start (or the start part of a restore) as it goes
// through its phases (phases.go), and what they hand on to each other.
type startRun struct {
	c    *Container
	ctx  context.Context
	args []string
	hold bool
	ph   *phases

	plan  *rootfs.Plan
	image *rootfs.ImageConfig
	ic    *child.Config
	// prepare: the parent has work to finish before the init may act.
	prepare bool
	// finishCgroup writes the v1 hierarchies and the limits while the
	// init starts; cgDone has its result once cgStarted.
	finishCgroup        func() error
	cgDone              chan error
	cgStarted, cgWaited bool
	exe                 string
	sys                 *syscall.SysProcAttr
	shape               spareKey
	useSpare            bool
	spare               *spareInit
	// initMove, if set, moves the init where it belongs in the cgroup2
	// hierarchy before the limits are written.
	initMove             func(pid int) error
	listener             *os.File
	ctl                  *initproto.Conn
	childSock            *os.File
	cmd                  *exec.Cmd
	stdio                *spareStdio
	stdioFiles, stdioEnd []*os.File
	cfgFiles             []*os.File
	// cgFiles are the container's cgroup files for the init
	// (child.CgroupFiles), opened beside finishCgroup.
	cgFiles []*os.File
}

func (c *Container) start(ctx context.Context, args []string, hold bool) error {
	if len(c.ExtraFiles) > 200 {
		return &ConfigError{Field: "extraFiles", Reason: "more than 200 files"}
	}
	s := &startRun{c: c, ctx: ctx, args: args, hold: hold, ph: c.newPhases("start")}
	defer s.finish()
	return s.ph.run(
		phaseStep{phaseStorage, s.storage},
		phaseStep{phaseInitConfig, s.initConfig},
		phaseStep{phaseCgroup, s.cgroup},
		phaseStep{phaseInit, s.startInit},
		phaseStep{phasePrepare, s.prepareInit},
		phaseStep{phaseConfig, s.sendConfig},
		phaseStep{phaseWait, s.waitStarted},
		phaseStep{phaseRun, s.run},
	)
}

// finish ends what a start leaves behind whether it worked or not.
func (s *startRun) finish() {
	if s.listener != nil {
		s.listener.Close()
	}
	if s.useSpare && s.spare == nil {
		// None was ready: the next start may find one.
		s.c.Spares.fill(s.shape)
	}
	_ = s.waitCgroup()
	initproto.CloseFiles(s.cgFiles)
	s.cgFiles = nil
}

// waitCgroup waits for the cgroup's limits (once).
func (s *startRun) waitCgroup() error {
	if !s.cgStarted || s.cgWaited {
		return nil
	}
	s.cgWaited = true
	return <-s.cgDone
}

// storage: the security profile, the root's plan and its storage
// (images, layers, overlay), released at cleanup.
func (s *startRun) storage() error {
	c := s.c
	prep, err := c.cfg.preparedSecurity()
	if err != nil {
		return err
	}
	c.secPrep = prep
	if c.cfg.buildsRoot() {
		s.plan = c.cfg.plan()
		if s.plan.NeedsPrepare() {
			sp, err := storage.Prepare(s.ctx, c.id, s.plan, storage.PrepareOptions{})
			if err != nil {
				return &SetupError{Step: "prepare storage", Err: err}
			}
			c.addCleanup(sp.Release)
			c.mu.Lock()
			c.storage = sp
			c.mu.Unlock()
			s.image = sp.ImageConfig
		}
	}
	return nil
}

// initConfig: the init's config, as far as it is known before the init
// runs.
func (s *startRun) initConfig() error {
	c := s.c
	ic, err := c.initConfig(s.args, s.plan, s.image)
	if err != nil {
		return err
	}
	s.ic = ic
	if c.restoreSpec != nil {
		// Restore (checkpoint.go): criu brings the workload back, with
		// its mounts and its pid namespace from the images.
		// criu works in the host's cgroup namespace; the init enters the
		// restored one after.
		ic.Plan, ic.NewPIDNS, ic.NewCgroupNS, ic.Restore = nil, false, false, c.restoreSpec
		if r := c.restoreSpec.Root; r != nil && s.plan != nil && s.plan.Root.Storage != nil {
			// An overlay root: the layers storage.Prepare found, which the
			// init mounts for criu (restorableRoot vetted their kind).
			st := s.plan.Root.Storage
			r.Lower, r.Upper, r.Work = st.Lower, st.UpperDir, st.WorkDir
		}
	}
	ic.Process.WaitStart = s.hold
	ic.Detached = c.Detached
	if h := c.cfg.Hooks; h != nil {
		ic.CreateContainerHooks = childHooks(h.CreateContainer)
		ic.StartContainerHooks = childHooks(h.StartContainer)
		if len(h.Prestart)+len(h.CreateRuntime) > 0 {
			s.prepare = true
		}
	}
	return nil
}

// cgroup: the cgroup's unified directory now, for CLONE_INTO_CGROUP; the
// v1 hierarchies and the limits while the init starts (its config is
// sent once they are done). Removed at cleanup.
func (s *startRun) cgroup() error {
	finish, err := s.c.setupCgroupStaged()
	if err != nil {
		return err
	}
	s.finishCgroup, s.cgDone = finish, make(chan error, 1)
	return nil
}

// startInit: the init, started fresh or taken from Spares, with its
// namespaces; killed if a later phase fails.
func (s *startRun) startInit() error {
	c, ic := s.c, s.ic
	exe, err := selfExe()
	if err != nil {
		return &SetupError{Step: "prepare executable", Err: err}
	}
	s.exe = exe
	// A dynamically linked program (cgo) cannot be started again inside
	// another root: its loader and C library are the host's. The init
	// never needs to, except for the exec stage, which a few profiles
	// still need (child.DirectReason); those are refused here, before
	// anything runs, rather than failing inside. (A restored container's
	// main process is criu's; only its Execs would need the stage: Exec
	// refuses them.)
	if interp := dynamicInterpreter(); interp != "" && c.cfg.Rootfs.Kind != rootfs.KindHost && c.cfg.buildsRoot() {
		if c.restoreSpec != nil {
			refused := &SetupError{Step: "check executable", Path: "/proc/self/exe", Err: fmt.Errorf(
				"this program is dynamically linked (interpreter %s): processes of a restored container start through vessel's exec stage, which would start the program again inside the container's root, where the host's loader is out of reach: build it with CGO_ENABLED=0", interp)}
			c.mu.Lock()
			c.execRefused = refused
			c.mu.Unlock()
		} else if why := child.DirectReason(ic); why != "" {
			return &SetupError{Step: "check executable", Path: "/proc/self/exe", Err: fmt.Errorf(
				"this program is dynamically linked (interpreter %s) and this container's process needs vessel's exec stage (%s), which would start the program again inside the container's root, where the host's loader is out of reach: build it with CGO_ENABLED=0", interp, why)}
		}
	}
	ns := c.cfg.Namespaces
	// Not the pid namespace: the init makes it for the workload, whose
	// main process is its PID 1, and stays outside it.
	sys := &syscall.SysProcAttr{Cloneflags: ns.CloneFlags() &^ unix.CLONE_NEWPID, Setsid: true}
	s.sys = sys
	if !c.Detached {
		sys.Pdeathsig = syscall.SIGKILL
	}
	if ns.IsNew(namespaces.User) && c.cfg.needsIDMapHelpers() {
		// newuidmap/newgidmap write the ranges while the init waits; it
		// then re-executes itself to gain its capabilities in the
		// namespace (they are computed at execve).
		s.prepare = true
		ic.ReexecAfterMap = true
	} else if ns.IsNew(namespaces.User) {
		for _, m := range c.cfg.uidMappings() {
			sys.UidMappings = append(sys.UidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
		}
		for _, m := range c.cfg.gidMappings() {
			sys.GidMappings = append(sys.GidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
		}
		sys.GidMappingsEnableSetgroups = os.Geteuid() == 0
		// Become root of the new namespace before exec, so the init keeps
		// its capabilities there whatever host id root maps to.
		sys.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: os.Geteuid() != 0}
	}
	if c.cg != nil {
		// The cgroup's limits are complete by the time the config is sent.
		s.prepare = true
	}
	ic.CloneParent = c.Detached
	ic.ProcPidns = child.ProcPidns()
	if c.cfg.needsNetworkSetup() || (s.plan != nil && s.plan.NeedsIDMap()) {
		s.prepare = true
	}
	if len(ic.CreateContainerHooks) > 0 {
		// The state createContainer hooks read in the init (startContainer
		// hooks get theirs with the start message).
		ic.HookState = c.hookState("created", 0)
	}
	// An init started ahead (Spares) has its namespaces and is past its
	// own start; it gets the main process's stdio with its config.
	s.shape, s.useSpare = c.spareShape(exe, sys, ic)
	spare := (*spareInit)(nil)
	if s.useSpare {
		spare = c.Spares.take(s.shape)
	}
	// The init stays out of the container's cgroup (see cgroupPlaces).
	s.initMove, err = c.cgroupPlaces(ic, sys, spare != nil)
	if err != nil {
		if spare != nil {
			_ = spare.discard()
		}
		s.spare = spare
		return err
	}
	if spare != nil {
		s.spare = spare
		s.stdio = &spareStdio{}
		if s.stdioFiles, s.stdioEnd, err = pipeStdio(c.Stdin, c.Stdout, c.Stderr, &s.stdio.copies, &s.stdio.closers, &c.copyErr); err != nil {
			_ = spare.discard()
			return &SetupError{Step: "stdio", Err: err}
		}
		s.ctl, s.cmd = spare.ctl, spare.cmd
		ic.Stdio = true
	} else if err := s.freshInit(); err != nil {
		return err
	}
	s.cgStarted = true
	// The cgroup's limits are written while the init starts; its config
	// is sent once they are.
	initPid := make(chan int, 1)
	go func() {
		var err error
		if pid := <-initPid; s.initMove != nil && pid > 0 {
			err = s.initMove(pid)
		}
		if err == nil {
			err = s.finishCgroup()
		}
		if err == nil && len(s.ic.Cgroups) > 0 {
			// The files the init takes the cgroup through, opened now
			// (some 14 us each) while the init starts.
			if s.cgFiles, err = child.CgroupFiles(s.ic.Cgroups); err != nil {
				err = &SetupError{Step: "open container cgroup", Err: err}
			}
		}
		s.cgDone <- err
	}()
	cmd := s.cmd
	if spare == nil {
		var startErr error
		onForkThread(func() { startErr = cmd.Start() })
		s.childSock.Close()
		if startErr != nil {
			initPid <- 0
			s.ctl.Close()
			return &SetupError{Step: "start container init", Path: exe, Err: startErr}
		}
		c.logf("init started", "pid", cmd.Process.Pid)
	} else {
		c.logf("init taken from spares", "pid", cmd.Process.Pid)
	}
	initPid <- cmd.Process.Pid
	c.mu.Lock()
	c.cmd, c.ctl, c.initPid, c.spareIO = cmd, s.ctl, cmd.Process.Pid, s.stdio
	if spare != nil {
		// Its replacement starts when this container ends, or once it
		// has run a while: not beside a short job's start and end.
		spares, shape := c.Spares, s.shape
		c.spareRefill = time.AfterFunc(spareRefillDelay, func() { spares.fill(shape) })
	}
	c.mu.Unlock()
	s.ph.undo(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		s.ctl.Close()
		if l := c.TakeSeccompListener(); l != nil {
			l.Close()
		}
		if s.stdio != nil {
			initproto.CloseFiles(s.stdioEnd)
			s.stdio.wait()
		}
	})
	return nil
}

// freshInit makes the command of a fresh init: its control socket pair,
// the attach socket if asked for, the caller's extra files and stdio.
func (s *startRun) freshInit() error {
	c, ic := s.c, s.ic
	ctl, childSock, err := initproto.ParentPair()
	if err != nil {
		return &SetupError{Step: "socketpair", Err: err}
	}
	extra := append([]*os.File{childSock}, c.ExtraFiles...)
	if c.ControlSocket != "" {
		l, err := listenControl(c.ControlSocket)
		if err != nil {
			childSock.Close()
			ctl.Close()
			return &SetupError{Step: "control socket", Path: c.ControlSocket, Err: err}
		}
		s.listener = l
		ic.ListenFD = 3 + len(extra)
		extra = append(extra, l)
		path := c.ControlSocket
		c.addCleanup(func() error {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			return nil
		})
	}
	s.ctl, s.childSock = ctl, childSock
	s.cmd = initCmd(s.exe, []string{"vessel-init", c.id}, extra, s.sys)
	// With a terminal, it carries all of the process's stdio; the init
	// itself writes nothing, and must not share the caller's writers
	// with the terminal's copier.
	if !c.cfg.Process.TTY {
		s.cmd.Stdin, s.cmd.Stdout, s.cmd.Stderr = c.Stdin, c.Stdout, c.Stderr
	}
	return nil
}

// prepareInit: what the init must find done before it acts on its
// config: the cgroup complete and holding it, the id maps, the
// createRuntime hooks, the network, the idmapped mounts. Its namespaces
// exist already; it is still starting (a fresh Go program) meanwhile,
// and waits for the config that follows.
func (s *startRun) prepareInit() error {
	c, ic, cmd := s.c, s.ic, s.cmd
	ic.Direct = child.DirectReason(ic) == ""
	// clone3 into a cgroup checks the forking process's own right to
	// write there, which an init in a user namespace lacks, and, where
	// cgroup2 delegates at namespaces (nsdelegate), that its cgroup
	// namespace sees both cgroups: on a v2 host the init's is rooted at
	// the container's cgroup, outside which the init lives. A process
	// writing "0" through the files the parent opened is checked against
	// the opener instead.
	ic.Clone3 = ic.Direct && child.Clone3Allowed(ic) && !c.cfg.Namespaces.IsNew(namespaces.User) && !inUserNamespace() &&
		!(c.cg != nil && c.cg.Layout() == cgroups.V2 && ic.NewCgroupNS)
	if !s.prepare {
		return nil
	}
	if err := s.waitCgroup(); err != nil {
		return err
	}
	if ic.ReexecAfterMap {
		if err := writeIDMaps(cmd.Process.Pid, c.cfg.uidMappings(), c.cfg.gidMappings()); err != nil {
			return err
		}
	}
	if h := c.cfg.Hooks; h != nil {
		state := c.hookState("created", cmd.Process.Pid)
		if err := runHooks(append(append([]Hook{}, h.Prestart...), h.CreateRuntime...), state); err != nil {
			return &SetupError{Step: "createRuntime hook", Err: err}
		}
	}
	if c.cfg.needsNetworkSetup() {
		files, err := c.setupNetwork(s.ctx, cmd.Process.Pid)
		if err != nil {
			return err
		}
		if c.restoreFiles != nil {
			if err := c.restoreFiles(files); err != nil {
				return err
			}
		}
		if ic.Plan != nil {
			ic.Plan.Files = child.MergeFiles(ic.Plan.Files, files)
		}
	}
	if s.plan != nil && s.plan.NeedsIDMap() {
		var err error
		if s.cfgFiles, ic.IDMapped, err = makeIDMapped(s.plan, cmd.Process.Pid); err != nil {
			return err
		}
	}
	return nil
}

// sendConfig: the init's config, with the descriptors it needs.
func (s *startRun) sendConfig() error {
	ic := s.ic
	if len(ic.Cgroups) > 0 {
		// Opened here (where the kernel will check the opener's
		// credentials: an init in a user namespace could not open
		// them), while the init started (waitCgroup) or now.
		if err := s.waitCgroup(); err != nil {
			initproto.CloseFiles(s.cfgFiles)
			return err
		}
		cgFiles := s.cgFiles
		s.cgFiles = nil
		if cgFiles == nil {
			var err error
			if cgFiles, err = child.CgroupFiles(ic.Cgroups); err != nil {
				initproto.CloseFiles(s.cfgFiles)
				return &SetupError{Step: "open container cgroup", Err: err}
			}
		}
		s.cfgFiles = append(s.cfgFiles, cgFiles...)
	}
	err := s.ctl.SendRaw(initproto.TypeConfig, child.EncodeConfig(ic), append(s.stdioFiles, s.cfgFiles...)...)
	initproto.CloseFiles(s.cfgFiles)
	initproto.CloseFiles(s.stdioEnd)
	s.stdioEnd = nil
	if err != nil {
		return &SetupError{Step: "send config", Err: err}
	}
	return nil
}

// waitStarted: the init's answer, once the main process has execve()d
// (or waits before it, Create), or the step that failed.
func (s *startRun) waitStarted() error {
	c := s.c
	r, pty, listener, err := awaitInit(s.ctl, func(n *initproto.Conn) {
		s.ctl = n
		c.mu.Lock()
		c.ctl = n
		c.mu.Unlock()
	}, initproto.TypeStarted, initproto.TypeCreated)
	if pty != nil {
		c.pty = pty
	}
	if listener != nil {
		c.mu.Lock()
		c.listener = listener
		c.mu.Unlock()
	}
	var se *SetupError
	switch {
	case r == nil:
		return &SetupError{Step: "container init", Err: fmt.Errorf("exited during setup: %w", c.initDeath(err))}
	case errors.As(err, &se):
		return err
	case err != nil:
		return &SetupError{Step: "container init", Err: err}
	case r.PidOf() == 0:
		return &SetupError{Step: "container init", Err: errors.New("started message without a pid")}
	}
	c.mu.Lock()
	c.mainPid = r.PidOf()
	c.startedAt = time.Now()
	c.mu.Unlock()
	return nil
}

// run: the terminal's copier, the control session and what follows the
// main process's start.
func (s *startRun) run() error {
	c := s.c
	if c.cg != nil {
		// Its processes are in it now: empty again, it is vessel's to
		// remove (cgroups.RemoveGroup).
		c.cg.Settled()
	}
	if c.pty != nil {
		c.ptyEnded = make(chan struct{})
		startPTYCopy(c.pty, c.Stdin, c.Stdout, &c.ptyWG, c.ptyEnded)
	}
	c.ctlDone = make(chan struct{})
	c.sess = newSession(s.ctl)
	c.follow(s.ctx)
	if !s.hold {
		c.afterStart(s.ctx)
	}
	return nil
}

// initDeath explains why the init went away during setup.
func (c *Container) initDeath(err error) error {
	if err != initproto.ErrClosed {
		return err
	}
	return errors.New("the container init died before reporting")
}

// remoteSetupError is the failure the init reported, as a SetupError.
func remoteSetupError(info *initproto.ErrorInfo) *SetupError { return info.StepError() }

// readControl follows the main process's messages from the init after
// start; Exec'd processes are dispatched by the session.
func (c *Container) readControl() {
	defer close(c.ctlDone)
	go c.sess.readLoop()
	for r := range c.sess.main {
		switch r.Type {
		case initproto.TypeExit:
			if r.Exit != nil {
				st := exitStatus(r.Exit)
				c.mu.Lock()
				c.exit = &st
				c.mu.Unlock()
			}
		case initproto.TypeStarted, initproto.TypeError:
			c.mu.Lock()
			w := c.startWait
			c.mu.Unlock()
			if w != nil {
				w <- r
			}
		}
		initproto.CloseFiles(r.Files)
	}
}

// waitInit reaps the init and settles the final status.
func (c *Container) waitInit() {
	err := c.cmd.Wait()
	if ee := (*exec.ExitError)(nil); err != nil && !errors.As(err, &ee) {
		// os/exec's copy of the init's (the main process's) output
		// failed.
		c.copyErr.set(err)
	}
	if c.spareRefill != nil && c.spareRefill.Stop() {
		c.spareRefill.Reset(0)
	}
	if c.spareIO != nil {
		c.spareIO.wait()
	}
	// The init's last messages (the main process's exit) may still be in
	// the socket: read to its end before settling the status.
	<-c.ctlDone
	if l := c.TakeSeccompListener(); l != nil {
		l.Close()
	}
	if c.pty != nil {
		if c.ptyEnded != nil {
			close(c.ptyEnded)
		}
		c.ptyWG.Wait()
		c.pty.Close()
	}
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	st := c.exit
	if st == nil {
		// The init died without reporting the main process: it was killed.
		s := ExitStatus{Code: 137, Signal: syscall.SIGKILL}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				s = ExitStatus{Code: 128 + int(ws.Signal()), Signal: ws.Signal()}
			} else if ok {
				s = ExitStatus{Code: ws.ExitStatus()}
			}
		}
		st = &s
	}
	st.Killed = c.reason.killed
	st.TimedOut = c.reason.timedOut
	st.CPUTimeExceeded = c.reason.cpuTime
	if c.cg != nil && !st.Success() {
		if n, err := c.cg.OOMKilled(); err == nil && n > 0 {
			st.OOMKilled = true
		}
	}
	c.exit = st
	c.status = Stopped
	c.mu.Unlock()
	c.ctl.Close()
	close(c.done)
}

// Wait waits for the main process to end and for its output to be copied.
// It returns nil for exit code 0, else an *ExitError; as os/exec's Wait,
// the error of a failed copy of the output (a Stdout or Stderr that is
// not an *os.File and whose Write failed) when the process succeeded.
func (c *Container) Wait() error {
	c.mu.Lock()
	st := c.status
	c.mu.Unlock()
	if st == Created {
		return ErrNotStarted
	}
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.exit == nil {
		return ErrDestroyed
	}
	if c.exit.Success() && !c.exit.Killed && !c.exit.TimedOut && !c.exit.CPUTimeExceeded {
		// As os/exec's Wait: a failed copy of the output is the error
		// of a process that succeeded.
		return c.copyErr.get()
	}
	return &ExitError{Status: *c.exit, Err: c.contextErr()}
}

// Done is closed when the container's main process has ended.
func (c *Container) Done() <-chan struct{} { return c.done }

// State returns a snapshot of the container.
func (c *Container) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := State{ID: c.id, Status: c.status, Pid: c.mainPid, InitPid: c.initPid, StartedAt: c.startedAt}
	if c.exit != nil {
		e := *c.exit
		s.Exit = &e
	}
	if c.status != Running && c.status != Waiting {
		s.Pid, s.InitPid = 0, 0
	}
	return s
}

// Signal sends sig to the container's main process.
func (c *Container) Signal(sig syscall.Signal) error {
	c.mu.Lock()
	running := c.status == Running && c.ctl != nil
	c.mu.Unlock()
	if !running {
		return ErrNotRunning
	}
	if sig == syscall.SIGKILL {
		return c.Kill()
	}
	return sendSignal(c.ctl, 0, sig)
}

// Kill ends every process of the container at once.
func (c *Container) Kill() error { return c.kill(false) }

func (c *Container) kill(timeout bool) error {
	why := killedByCaller
	if timeout {
		why = killedForTime
	}
	return c.killFor(why)
}

// Why vessel killed a container: the reason its exit status reports.
const (
	killedByCaller = iota
	killedForTime
	killedForCPUTime
)

// killFor kills the container, recording why before the kill, so that the
// exit status settled when the init is reaped names that reason alone.
func (c *Container) killFor(why int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if (c.status != Running && c.status != Waiting) || c.cmd == nil {
		return ErrNotRunning
	}
	select {
	case <-c.done:
		return ErrNotRunning
	default:
	}
	switch why {
	case killedForTime:
		c.reason.timedOut = true
	case killedForCPUTime:
		c.reason.cpuTime = true
	default:
		c.reason.killed = true
	}
	// The init is PID 1 of the container's pid namespace (or, with a
	// shared one, the parent of every container process, each of which
	// dies with it through PR_SET_PDEATHSIG): SIGKILL to it ends them all.
	// The cgroup catches anything that escaped both (double forks with a
	// shared pid namespace).
	err := unix.Kill(c.initPid, unix.SIGKILL)
	if c.cg != nil {
		go c.cg.Kill()
	}
	return err
}

// Resize sets the size of the main process's terminal.
func (c *Container) Resize(rows, cols uint16) error {
	if c.pty == nil {
		return errors.New("vessel: the container has no terminal")
	}
	return unix.IoctlSetWinsize(int(c.pty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
}

// Destroy kills the container if it runs, waits for it, and releases
// everything it holds on the host. It is idempotent.
func (c *Container) Destroy() error {
	c.mu.Lock()
	st := c.status
	c.mu.Unlock()
	if st == Destroyed {
		return nil
	}
	if st == Running || st == Waiting {
		_ = c.kill(false)
		<-c.done
	}
	err := c.runCleanups()
	if h := c.cfg.Hooks; h != nil && len(h.Poststop) > 0 && st != Created {
		if herr := runHooks(h.Poststop, c.hookState("stopped", 0)); herr != nil {
			c.logf("poststop hook failed", "err", herr)
		}
	}
	c.mu.Lock()
	c.status = Destroyed
	c.mu.Unlock()
	return err
}

func (c *Container) runCleanups() error {
	c.mu.Lock()
	fns := c.cleanups
	c.cleanups = nil
	c.mu.Unlock()
	var errs []error
	for i := len(fns) - 1; i >= 0; i-- {
		if err := fns[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// applyImageDefaults fills what the caller left unset from an image's
// configuration: the command, environment, working directory and a numeric
// user.
func applyImageDefaults(p *ProcessConfig, img *rootfs.ImageConfig) {
	if len(p.Args) == 0 {
		p.Args = img.Args()
	}
	env := append([]string(nil), img.Env...)
	imagePath := false
	for _, e := range env {
		imagePath = imagePath || strings.HasPrefix(e, "PATH=")
	}
	for _, e := range p.Env {
		if e == "PATH="+DefaultPath && imagePath {
			continue // NewConfig's default; the image knows its own
		}
		env = setEnv(env, e)
	}
	p.Env = env
	if (p.Dir == "" || p.Dir == "/") && img.WorkingDir != "" {
		p.Dir = img.WorkingDir
	}
	if p.User.UID == 0 && p.User.GID == 0 && img.User != "" {
		var u, g uint32
		if n, _ := fmt.Sscanf(img.User, "%d:%d", &u, &g); n >= 1 {
			if n == 1 {
				g = u
			}
			p.User.UID, p.User.GID = u, g
		}
	}
}

// Storage describes the container's prepared storage (image, overlay
// layers, quotas, loop devices), or nil for plain roots.
func (c *Container) Storage() *storage.Prepared {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.storage
}

// Console returns the pseudo-terminal master of the main process (WithTTY),
// for callers that copy it themselves, such as an OCI runtime handing it
// over a console socket. nil without a terminal.
func (c *Container) Console() *os.File {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pty
}

// TakeSeccompListener returns the seccomp user-notification listener of
// the main process and hands it to the caller, who must close it; nil if
// there is none or it was taken. There is one when the security profile's
// seccomp filter has SCMP_ACT_NOTIFY rules and a ListenerPath: the
// process's notified system calls wait for whoever reads it (an OCI
// runtime sends it to the agent listening at ListenerPath). It is ready
// when Start or Create returns; not taken, it is closed when the
// container ends, and notified calls then fail with ENOSYS.
func (c *Container) TakeSeccompListener() *os.File {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.listener
	c.listener = nil
	return l
}

// makeIDMapped clones the root and the bind sources that ask for it,
// idmapped through the new init's user namespace.
func makeIDMapped(plan *rootfs.Plan, pid int) ([]*os.File, []int, error) {
	userns := fmt.Sprintf("/proc/%d/ns/user", pid)
	var files []*os.File
	var idx []int
	fail := func(path string, err error) ([]*os.File, []int, error) {
		initproto.CloseFiles(files)
		return nil, nil, &SetupError{Step: "idmapped mount", Path: path, Err: err}
	}
	if plan.Root.IDMap {
		f, err := rootfs.IDMapped(plan.Root.Path, userns, true)
		if err != nil {
			return fail(plan.Root.Path, err)
		}
		files, idx = append(files, f), append(idx, -1)
	}
	for i, m := range plan.Mounts {
		if !m.IDMap {
			continue
		}
		f, err := rootfs.IDMapped(m.Source, userns, !m.NonRecursive)
		if err != nil {
			return fail(m.Source, err)
		}
		files, idx = append(files, f), append(idx, i)
	}
	return files, idx, nil
}

// writeIDMaps runs the setuid helpers that write a rootless container's id
// ranges (checked by them against /etc/subuid and /etc/subgid).
func writeIDMaps(pid int, uids, gids []namespaces.IDMap) error {
	for _, h := range []struct {
		tool string
		m    []namespaces.IDMap
	}{{"newuidmap", uids}, {"newgidmap", gids}} {
		args := []string{strconv.Itoa(pid)}
		for _, e := range h.m {
			args = append(args, strconv.FormatUint(uint64(e.ContainerID), 10), strconv.FormatUint(uint64(e.HostID), 10), strconv.FormatUint(uint64(e.Size), 10))
		}
		out, err := exec.Command(h.tool, args...).CombinedOutput()
		if err != nil {
			return &SetupError{Step: h.tool, Err: fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))}
		}
	}
	return nil
}

// follow starts watching a running init: its control messages, its end,
// and ctx, whose end kills the container.
func (c *Container) follow(ctx context.Context) {
	go c.readControl()
	go c.waitInit()
	if ctx != nil && ctx.Done() != nil {
		go func() {
			select {
			case <-ctx.Done():
				c.killForContext(ctx.Err())
			case <-c.done:
			}
		}()
	}
}
