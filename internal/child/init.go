package child

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/internal/initproto"
	"github.com/openvessel/vessel/limits"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/rootfs"
	"github.com/openvessel/vessel/security"
	"github.com/openvessel/vessel/steperr"
)

// Environment markers that make a re-executed binary a container child.
// They are set by vessel only; the user's environment travels in the
// config message, never in the child's own environment.
const (
	envStage = "_VESSEL_STAGE"
	envSync  = "_VESSEL_SYNC"

	stageInit = "init"
	stageExec = "exec"
	stageIdle = "idle"
)

// ControlFD is the descriptor the init finds its control socket on.
const ControlFD = 3

// InitEnv is the whole environment of a freshly started init.
func InitEnv() []string {
	// One P is plenty for the init: fewer threads, less memory per idle
	// container, a faster start.
	return []string{envStage + "=" + stageInit, envSync + "=" + strconv.Itoa(ControlFD), "GOMAXPROCS=1"}
}

// The container's processes run from this package's initialisation.
// Go initialises a program's packages in dependency order, and among
// those ready, by import path; this package needs few, so in a container
// child it runs before the bulk of the program's packages (the network,
// checkpoint and image code, and whatever else the program links) have
// been initialised, and never returns. Their initialisation is work a
// container's init does not need: skipping it roughly halves the time
// from execve to a running init.
func init() {
	if !IsChild() {
		refuseStrayStart()
		return
	}
	// From here on every namespace change, mount and fork happens on the
	// main thread, so the processes we start inherit exactly what we set.
	runtime.LockOSThread()
	// No process in the container may reach this binary through
	// /proc/PID/exe or ptrace it.
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	Main()
}

// Main runs the container child this process was started as (the init or
// an exec stage) and never returns; in any other process it returns at
// once.
func Main() {
	switch os.Getenv(envStage) {
	case "":
		return
	case stageInit:
		runInit()
	case stageExec:
		runExecStage()
	case stageIdle:
		runIdle()
	}
	os.Exit(125)
}

// SpareArg0 is the argv[0] of an init started ahead of its container.
const SpareArg0 = "vessel-spare"

// SpareLoopback, as a spare init's argv[1], has it bring its loopback up
// while it waits: its containers' configs all ask for it (Config.LoopbackUp
// is part of a spare's shape).
const SpareLoopback = "lo"

// IsChild reports whether this process is a vessel container child.
func IsChild() bool { return os.Getenv(envStage) != "" }

// Config is what the parent sends the container's init.
type Config struct {
	Plan        *rootfs.Plan           `json:"plan,omitempty"`
	Joins       []namespaces.Namespace `json:"joins,omitempty"`
	NewCgroupNS bool                   `json:"newCgroupNS,omitempty"`
	NewTimeNS   bool                   `json:"newTimeNS,omitempty"`
	TimeOffsets namespaces.TimeOffsets `json:"timeOffsets,omitempty"`
	Hostname    *string                `json:"hostname,omitempty"`
	Domainname  *string                `json:"domainname,omitempty"`
	Sysctls     map[string]string      `json:"sysctls,omitempty"`
	Process     Process                `json:"process"`
	// Detached containers outlive the program that started them (the OCI
	// CLI); others die with it.
	Detached bool `json:"detached,omitempty"`
	NewPIDNS bool `json:"newPIDNS,omitempty"`
	// ListenFD, when positive, is a listening control socket other
	// programs attach through (Attach).
	ListenFD int `json:"listenFD,omitempty"`
	// CreateContainerHooks run in the container's namespaces before
	// pivot_root; StartContainerHooks right before the main process's
	// execve. HookState is the OCI state they read on stdin.
	CreateContainerHooks []Hook `json:"createContainerHooks,omitempty"`
	StartContainerHooks  []Hook `json:"startContainerHooks,omitempty"`
	HookState            []byte `json:"hookState,omitempty"`
	// ReexecAfterMap: newuidmap wrote the id maps after this init
	// started, so it re-executes itself to hold capabilities there.
	ReexecAfterMap bool `json:"reexecAfterMap,omitempty"`
	// LoopbackUp brings lo up in a new network namespace.
	LoopbackUp bool `json:"loopbackUp,omitempty"`
	NumExtras  int  `json:"numExtras,omitempty"`
	// Direct: the init carries the process settings itself and starts
	// processes with fork+exec (see DirectReason).
	Direct bool `json:"direct,omitempty"`
	// IDMapped says what each descriptor sent with the config is: an
	// idmapped clone of the root (-1) or of the i-th mount's source (i).
	IDMapped []int `json:"idmapped,omitempty"`
	// Stdio: the first three descriptors sent with the config are the
	// main process's stdin, stdout and stderr (an init started ahead of
	// its container, see vessel.Spares).
	Stdio bool `json:"stdio,omitempty"`
	// Cgroups is the container's cgroup in each hierarchy. The init stays
	// out of it (in Home); every process it starts joins it before it
	// runs anything.
	Cgroups []CgroupPlace `json:"cgroups,omitempty"`
	// CloneParent: the main process becomes the init's sibling, the
	// child of whoever started the init (an OCI supervisor reaps it).
	CloneParent bool `json:"cloneParent,omitempty"`
	// Clone3: the security profile the init carries (Direct) lets it call
	// clone3, to fork processes into a cgroup2 cgroup.
	Clone3 bool `json:"clone3,omitempty"`
	// CgroupNSMade: the init was cloned into the container's cgroup2
	// cgroup with a new cgroup namespace (a pure v2 host), rooted there.
	CgroupNSMade bool `json:"cgroupNSMade,omitempty"`
	// ProcPidns: the kernel lets the init mount its workload's /proc
	// (ProcPidns). Without it a main process that is PID 1 of a new pid
	// namespace starts through the exec stage, which mounts it.
	ProcPidns bool `json:"procPidns,omitempty"`
	// Restore: the main process is a checkpointed one that criu brings
	// back (see RestoreSpec), not Process.
	Restore *RestoreSpec `json:"restore,omitempty"`
}

// CgroupPlace is the container's cgroup directory in one hierarchy and
// the init's own there.
type CgroupPlace struct {
	Dir  string `json:"dir"`
	Home string `json:"home,omitempty"`
	// V2: a cgroup2 hierarchy (processes move whole; in v1 one thread can).
	V2 bool `json:"v2,omitempty"`
}

// Process is what the init (directly) or the exec stage needs to start
// one process.
type Process struct {
	Args      []string `json:"args"`
	Env       []string `json:"env"`
	Dir       string   `json:"cwd"`
	UID       uint32   `json:"uid"`
	GID       uint32   `json:"gid"`
	Groups    []uint32 `json:"groups,omitempty"`
	SetGroups bool     `json:"setGroups,omitempty"`
	Umask     uint32   `json:"umask"`
	TTY       bool     `json:"tty,omitempty"`
	Rows      uint16   `json:"rows,omitempty"`
	Cols      uint16   `json:"cols,omitempty"`
	NoNewPriv bool     `json:"noNewPrivileges,omitempty"`
	// WaitStart holds the process just before execve until a start message.
	WaitStart bool `json:"waitStart,omitempty"`
	// Security is applied last, right before execve.
	Security    *security.Prepared `json:"security,omitempty"`
	Rlimits     []limits.Rlimit    `json:"rlimits,omitempty"`
	OOMScoreAdj *int               `json:"oomScoreAdj,omitempty"`
	// Proc, for an exec stage that is PID 1 of the container's pid
	// namespace: the /proc mounts it replaces with its namespace's.
	Proc *rootfs.ProcSwap `json:"proc,omitempty"`
	// CgroupFDs are the exec stage's descriptors of the container's
	// cgroup.procs files; it joins them right before execve.
	CgroupFDs []int `json:"cgroupFDs,omitempty"`
	// Sibling: the process is not the init's child (CloneParent), so no
	// parent-death signal.
	Sibling bool `json:"sibling,omitempty"`
	// Idle: instead of Args, this program runs as an idle PID 1 that
	// reaps what other processes leave (runIdle; vessel.Pool's).
	Idle bool `json:"idle,omitempty"`
}

// exitWith reports a setup failure to the parent and exits. A step error
// err holds names the failure; step and path do when it holds none.
func exitWith(conn *initproto.Conn, step, path string, err error) {
	_ = conn.Send(&initproto.Message{Type: initproto.TypeError, Error: initproto.InfoOf(step, path, err)})
	os.Exit(125)
}

func syncFD() int {
	fd, err := strconv.Atoi(os.Getenv(envSync))
	if err != nil {
		fd = ControlFD
	}
	return fd
}

// firstSignals are caught before the main process starts (see runInit).
// They are the ones a supervisor or the container's own tools send to PID
// 1, SIGCHLD, and those the Go runtime would die of if they came before
// they are caught (ABRT, SYS, STKFLT, ILL, TRAP sent by someone).
var firstSignals = append([]os.Signal{syscall.SIGCHLD}, ignoredFirst...)

// ignoredFirst are firstSignals but SIGCHLD (ignoring it would have the
// kernel reap children), ignored from the init's first instruction until
// caught. forkChild resets them in every child: resetSignals.
var ignoredFirst = []os.Signal{
	syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP,
	syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH,
	syscall.SIGCONT, syscall.SIGTSTP, syscall.SIGALRM, syscall.SIGPWR,
	syscall.SIGABRT, syscall.SIGSYS, syscall.SIGSTKFLT, syscall.SIGILL, syscall.SIGTRAP,
}

// resetSignals are ignoredFirst's numbers, for the forked child.
var resetSignals = func() []uintptr {
	out := make([]uintptr, len(ignoredFirst))
	for i, s := range ignoredFirst {
		out[i] = uintptr(s.(syscall.Signal))
	}
	return out
}()

// restSignalsAfter is how long after the main process starts the init
// catches signals (firstSignals first, then the real-time ones, TTIN,
// TTOU, URG, XCPU, ...) and forwards them. Until then firstSignals are
// ignored and the rest dropped by the runtime. A container that ends
// sooner never pays for catching them: a round trip to the runtime's
// signal-mask thread each, on the init's only P, about 40 us each on a
// 2-CPU VM (0.7 ms for firstSignals alone).
const restSignalsAfter = 20 * time.Millisecond

// takeStdio makes the first three files descriptors 0, 1 and 2 (inherited
// by the processes the init starts) and closes them.
func takeStdio(files []*os.File) error {
	if len(files) < 3 {
		return fmt.Errorf("%d stdio descriptors sent, want 3", len(files))
	}
	for i, f := range files[:3] {
		if err := unix.Dup3(int(f.Fd()), i, 0); err != nil {
			return fmt.Errorf("descriptor %d: %w", i, err)
		}
		f.Close()
	}
	return nil
}

// runInit is the container's init: it finishes the namespaces, builds the
// root filesystem, starts the main process and then serves the parent.
func runInit() {
	// Catching a signal takes a round trip to the runtime's signal-mask
	// thread, one thread switch each way: too slow for a start, which the
	// round trips would also keep from the only P. So firstSignals are
	// ignored from the start (no round trip; a signal must not kill the
	// init), and caught restSignalsAfter the main process started, or
	// before something needs them. Every process the init forks sets them
	// back to their defaults (forkChild), so nothing it starts inherits
	// the ignoring; os/exec does not, so hooks wait until they are caught.
	// A spare catches them all while it waits.
	sigs := make(chan os.Signal, 64)
	sigsReady, allSigs := make(chan struct{}), make(chan struct{})
	spare := os.Args[0] == SpareArg0
	signal.Ignore(ignoredFirst...)
	var catchOnce sync.Once
	catchSignals := func() {
		catchOnce.Do(func() {
			go func() {
				signal.Notify(sigs, firstSignals...)
				close(sigsReady)
				if spare {
					signal.Notify(sigs)
					close(allSigs)
				}
			}()
		})
	}
	// caught waits until the first signals are caught.
	caught := func() {
		catchSignals()
		<-sigsReady
	}
	if spare {
		catchSignals()
	}
	conn := initproto.FromFD(syncFD())
	if err := openSelfExe(); err != nil {
		os.Exit(125)
	}
	// The network namespace work a spare does while it waits, its
	// namespaces being those of its container already.
	rebound, loUp := false, false
	if spare {
		if err := rebindControl(conn); err != nil {
			os.Exit(125)
		}
		rebound = true
		if len(os.Args) > 1 && os.Args[1] == SpareLoopback {
			if err := loopbackUp(); err != nil {
				os.Exit(125)
			}
			loUp = true
		}
		// A spare (vessel.Spares) says when it is done starting, all
		// signals caught, and waits for a container.
		<-allSigs
		if err := conn.Send(&initproto.Message{Type: initproto.TypeReady}); err != nil {
			os.Exit(125)
		}
	}
	var cfg Config
	// The descriptors that came with the config (idmapped mounts), closed
	// once the root filesystem is built.
	var cfgFiles []*os.File
	if data, ok := configFromReexec(); ok {
		if err := decodeConfig(data, &cfg); err != nil {
			exitWith(conn, "read config", "", err)
		}
	} else {
		r, err := conn.Expect(initproto.TypeConfig)
		if err != nil {
			os.Exit(125)
		}
		if err := decodeConfig(r.Raw, &cfg); err != nil {
			exitWith(conn, "read config", "", err)
		}
		cfgFiles = r.Files
		if cfg.Stdio {
			if err := takeStdio(cfgFiles); err != nil {
				exitWith(conn, "stdio", "", err)
			}
			cfgFiles = cfgFiles[3:]
		}
	}
	// Descriptors the host program inherited without close-on-exec must
	// not reach the container: only stdio, the sync socket and the
	// caller's extra files pass.
	if err := unix.CloseRange(uint(syncFD()+1+cfg.NumExtras), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		exitWith(conn, "close inherited descriptors", "", err)
	}
	// The container's cgroup files come last (cgroupFiles).
	var cgFiles []*os.File
	if n := len(cfgFiles) - len(cfg.IDMapped); n > 0 {
		cgFiles = cfgFiles[len(cfg.IDMapped):]
		cfgFiles = cfgFiles[:len(cfg.IDMapped)]
	}
	// Idmapped mounts the parent made come with the config, in the order
	// cfg.IDMapped lists: -1 the root, i the i-th mount.
	for i, idx := range cfg.IDMapped {
		if i >= len(cfgFiles) || cfg.Plan == nil {
			break
		}
		fd := int(cfgFiles[i].Fd())
		if idx < 0 {
			cfg.Plan.Root.FD = fd
		} else if idx < len(cfg.Plan.Mounts) {
			cfg.Plan.Mounts[idx].FD = fd
		}
	}
	if cfg.ReexecAfterMap {
		cfg.ReexecAfterMap = false
		err := reexecWithConfig(EncodeConfig(&cfg), cfg.NumExtras, cfg.ListenFD)
		exitWith(conn, "re-exec after id mapping", "/proc/self/exe", err)
	}
	// The workload's stdio, kept apart from the init's own from here: the
	// init writes nothing there, not even a crash of its own (its caller
	// learns of that from its control socket).
	if err := keepStdioApart(); err != nil {
		exitWith(conn, "stdio", "", err)
	}
	for _, j := range cfg.Joins {
		if err := namespaces.Join(j.Kind, j.Path); err != nil {
			exitWith(conn, "join "+string(j.Kind)+" namespace", j.Path, err)
		}
	}
	// The container's cgroup, opened by the parent: each process joins
	// it from these, and the cgroup namespace is rooted there.
	if cfg.Plan != nil && cfg.Plan.UserNS {
		security.SetgroupsDenied() // while /proc/self is this process
	}
	cg, err := takeCgroups(cfg.Cgroups, cgFiles)
	if err != nil {
		exitWith(conn, "container cgroup", "", err)
	}
	if cfg.NewCgroupNS && !cfg.CgroupNSMade {
		if err := cg.unshareNS(); err != nil {
			exitWith(conn, "unshare cgroup namespace", "", err)
		}
	}
	if !rebound || joinsNet(cfg.Joins) {
		if err := rebindControl(conn); err != nil {
			exitWith(conn, "control socket", "", err)
		}
	}
	if cfg.NewTimeNS {
		if err := namespaces.UnshareTime(cfg.TimeOffsets); err != nil {
			exitWith(conn, "create time namespace", "/proc/self/timens_offsets", err)
		}
	}
	if cfg.LoopbackUp && !loUp {
		if err := loopbackUp(); err != nil {
			exitWith(conn, "bring lo up", "lo", err)
		}
	}
	// Sysctls before the root filesystem: /proc/sys becomes read-only
	// there. The host's /proc still shows this thread's namespaces.
	for k, v := range cfg.Sysctls {
		p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
		if err := os.WriteFile(p, []byte(v), 0); err != nil {
			exitWith(conn, "sysctl", k, err)
		}
	}
	// fds 0-2 are the main process's stdio; 4.. its extra files.
	files := []uintptr{uintptr(workloadStdio[0]), uintptr(workloadStdio[1]), uintptr(workloadStdio[2])}
	for i := 0; i < cfg.NumExtras; i++ {
		files = append(files, uintptr(syncFD()+1+i))
	}
	// The workload's /proc is its pid namespace's. A directly started
	// main process, PID 1 there, mounts it itself before its execve
	// (procSteps); one started by the exec stage gets it from Setup
	// (pidns=) or mounts it itself in the stage.
	swapNeeded := cfg.Plan != nil && (cfg.NewPIDNS || joinsPID(cfg.Joins))
	mainStage := cfg.Restore == nil && !cfg.Direct
	// A main process started by the stage is forked now, PID 1 of the
	// new namespace before the root filesystem is built: its Go start
	// overlaps with that work, and /proc is mounted for its namespace in
	// its place among the mounts (pidns=).
	var early *stageProc
	forkMain := func() {
		caught()
		if early, err = forkStage(files, cg.joinFDs(), cfg.CloneParent); err != nil {
			exitWith(conn, "start exec stage", "/proc/self/exe", err)
		}
	}
	// A root built as a detached tree (no mount namespace of the
	// container's own) is the root of this thread only, not of a process
	// forked before it: the stage is forked after it.
	detachedRoot := cfg.Plan != nil && cfg.Plan.InheritMountNS
	if mainStage && !detachedRoot {
		if cfg.NewPIDNS {
			if err := unix.Unshare(unix.CLONE_NEWPID); err != nil {
				exitWith(conn, "unshare pid namespace", "", err)
			}
		}
		forkMain()
		if swapNeeded && cfg.ProcPidns {
			ns, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(early.pidfd), pidfdGetPidNamespace, 0)
			if e != 0 {
				exitWith(conn, "pid namespace of the main process", "", e)
			}
			cfg.Plan.PidnsFD = int(ns) + 1
			swapNeeded = false
		}
	}
	if cfg.Plan != nil {
		// A directly started main process gets its /proc after its
		// fork: what would be hidden in the one Setup mounts is hidden
		// once, in that one.
		cfg.Plan.DeferProc = swapNeeded && !mainStage
		if len(cfg.CreateContainerHooks) > 0 {
			cfg.Plan.BeforePivot = func() error {
				caught()
				return RunHooks(cfg.CreateContainerHooks, cfg.HookState)
			}
		}
		if err := rootfs.Setup(cfg.Plan); err != nil {
			if early != nil {
				unix.Kill(early.pid, unix.SIGKILL)
			}
			exitWith(conn, "rootfs", "", err)
		}
		if cfg.Plan.PidnsFD > 0 {
			unix.Close(cfg.Plan.PidnsFD - 1)
		}
	}
	initproto.CloseFiles(cfgFiles)
	if cfg.Hostname != nil {
		if err := unix.Sethostname([]byte(*cfg.Hostname)); err != nil {
			exitWith(conn, "sethostname", *cfg.Hostname, err)
		}
	}
	if cfg.Domainname != nil {
		if err := unix.Setdomainname([]byte(*cfg.Domainname)); err != nil {
			exitWith(conn, "setdomainname", *cfg.Domainname, err)
		}
	}
	// The main process's working directory is made when missing, as
	// docker makes WORKDIR (a read-only root leaves it to chdir to say).
	if d := cfg.Process.Dir; cfg.Plan != nil && d != "" && d != "/" {
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			_ = os.MkdirAll(d, 0o755)
		}
	}
	in := &initState{conn: conn, cfg: &cfg, procs: map[int]procRef{}, cg: cg}
	in.direct = cfg.Direct
	in.sigsCaught = caught
	// The workload's own pid namespace: the next process this thread
	// forks is its PID 1, those after it join it. The init stays where it
	// is, invisible from inside.
	if cfg.NewPIDNS && early == nil {
		if err := unix.Unshare(unix.CLONE_NEWPID); err != nil {
			exitWith(conn, "unshare pid namespace", "", err)
		}
	}
	// Its /proc, where Setup mounted one for the init's namespace.
	var (
		swap       *rootfs.ProcSwap
		steps      []procStep
		closeSteps = func() {}
	)
	if swapNeeded {
		swap = cfg.Plan.ProcSwap()
		if !mainStage && cfg.Restore == nil {
			if steps, closeSteps, err = procSteps(swap); err != nil {
				exitWith(conn, "mount /proc", "/proc", err)
			}
		}
	}
	carry := func() {
		// The main process mounts its /proc with the init's main
		// thread's capabilities (none survives its execve but those of
		// its profile).
		var extra uint64
		if steps != nil {
			extra = 1 << unix.CAP_SYS_ADMIN
		}
		if err := applyToInit(&cfg.Process, extra); err != nil {
			exitWith(conn, "apply process settings", "", err)
		}
	}
	if in.direct && !mainStage {
		carry()
	}
	var (
		pid      int
		pidfd    = -1
		pty      *os.File
		listener *os.File
		sp       *stageProc
	)
	if cfg.Restore != nil {
		pid, pidfd, err = restoreTree(cfg.Restore, files)
		if err != nil {
			err = &steperr.Error{Step: "restore", Path: cfg.Restore.Args[0], Err: err}
		}
	} else if !mainStage {
		var ds *spawned
		ds, pty, err = spawnDirect(&cfg.Process, files, spawnOpts{cg: cg, proc: steps, parent: cfg.CloneParent, clone3: cfg.Clone3})
		closeSteps()
		if err == nil {
			pid, pidfd = ds.pid, ds.pidfd
		}
	} else {
		spec := cfg.Process
		spec.Proc = swap
		if early == nil {
			forkMain()
		}
		sp = early
		if err = sp.send(&spec); err == nil {
			if err = sp.await(cfg.Process.WaitStart); err == nil {
				pid, pty, sp.pty = sp.pid, sp.pty, nil
				listener, sp.listener = sp.listener, nil
			}
		}
		if err == nil && in.direct {
			carry()
		}
	}
	for i := 0; i < cfg.NumExtras; i++ {
		unix.Close(syncFD() + 1 + i)
	}
	if !spare {
		time.AfterFunc(restSignalsAfter, func() {
			caught()
			signal.Notify(sigs)
		})
	}
	if err != nil {
		exitWith(conn, "start process", cfg.Process.Args[0], err)
	}
	in.main, in.mainFD = pid, pidfd
	in.procs[pid] = procRef{id: 0, conn: conn}
	if pty != nil {
		_ = conn.Send(&initproto.Message{Type: initproto.TypePTY}, pty)
		pty.Close()
	}
	if listener != nil {
		_ = conn.Send(&initproto.Message{Type: initproto.TypeSeccomp}, listener)
		listener.Close()
	}
	typ := initproto.TypeStarted
	if cfg.Process.WaitStart {
		in.held, typ = sp, initproto.TypeCreated
	}
	if err := conn.SendAs(&initproto.Message{Type: typ, Pid: pid}, pid); err != nil && !cfg.Detached {
		os.Exit(125)
	}
	if in.direct {
		in.carrySeccomp()
	}
	in.serve(sigs)
}

// carrySeccomp puts the seccomp filter each directly started process
// loads (processSeccomp) on the init's main thread, once the main process
// (which had to mount its /proc before loading it) has started: the
// processes forked from there on inherit it instead of compiling it each
// (tens of microseconds of an Exec). Not where those processes are forked
// into a cgroup2 cgroup with clone3, which the filter may refuse (Docker's
// profile answers ENOSYS); the profile lets the init's own system calls
// through, or the start would not be direct (DirectReason).
func (in *initState) carrySeccomp() {
	f := processSeccomp
	if f == nil || (in.cg != nil && in.cg.v2Dir >= 0 && in.cfg.Clone3) {
		return
	}
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, f.flags, uintptr(unsafe.Pointer(&f.prog))); e == 0 {
		processSeccomp = nil
	}
}

// procRef is a process the init started: its id in the session of the
// connection that asked for it.
type procRef struct {
	id   int
	conn *initproto.Conn
}

// initState is the running init's bookkeeping.
type initState struct {
	conn  *initproto.Conn // the parent's socket pair
	conns map[*initproto.Conn]bool
	cfg   *Config
	main  int
	// mainFD is the main process's pidfd from its clone, or -1.
	mainFD int
	procs  map[int]procRef // pid -> who started it
	held   *stageProc      // the main process's stage while it waits for start
	// direct: the init carries the process settings itself and starts
	// processes with fork+exec (direct.go), not through the exec stage.
	direct bool
	// cg is the container's cgroup, which every process joins.
	cg *cgroupSet
	// sigsCaught returns once firstSignals are caught (ignored before:
	// see runInit).
	sigsCaught func()

	// The main thread waits in epoll for everything at once: control
	// connections, the attach socket, pidfds of the processes it started
	// (a process's end wakes it directly) and an eventfd through which
	// caught signals arrive. No goroutine hand-offs on the way.
	ep     int
	byFD   map[int]*initproto.Conn
	pidfd  map[int]int // pid -> pidfd
	pidOf_ map[int]int // pidfd -> pid
	sigEv  int
	sigMu  sync.Mutex
	sigBuf []syscall.Signal
}

func (in *initState) watch(fd int) error {
	return unix.EpollCtl(in.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)})
}

func (in *initState) follow(c *initproto.Conn) {
	fd := int(c.File().Fd())
	if err := in.watch(fd); err != nil {
		c.Close()
		return
	}
	in.conns[c] = true
	in.byFD[fd] = c
}

func (in *initState) unfollow(c *initproto.Conn) {
	fd := int(c.File().Fd())
	_ = unix.EpollCtl(in.ep, unix.EPOLL_CTL_DEL, fd, nil)
	delete(in.byFD, fd)
	delete(in.conns, c)
	c.Close()
}

// track watches a started process's pidfd (fd, or one opened here when
// fd < 0) so that its end wakes the loop at once; without pidfds SIGCHLD
// does the same, later.
func (in *initState) track(pid, fd int) {
	if fd < 0 {
		var err error
		if fd, err = unix.PidfdOpen(pid, 0); err != nil {
			return
		}
	}
	if in.watch(fd) != nil {
		unix.Close(fd)
		return
	}
	in.pidfd[pid], in.pidOf_[fd] = fd, pid
}

func (in *initState) untrack(pid int) {
	if fd, ok := in.pidfd[pid]; ok {
		_ = unix.EpollCtl(in.ep, unix.EPOLL_CTL_DEL, fd, nil)
		unix.Close(fd)
		delete(in.pidfd, pid)
		delete(in.pidOf_, fd)
	}
}

// accept takes every pending connection on the attach socket.
func (in *initState) accept(fd int) {
	for {
		nfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
		if err == unix.EINTR || err == unix.ECONNABORTED {
			continue
		}
		if err != nil {
			return
		}
		_ = unix.SetsockoptInt(nfd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
		in.follow(initproto.New(os.NewFile(uintptr(nfd), "vessel-control")))
	}
}

func (in *initState) serve(sigs chan os.Signal) {
	var err error
	if in.ep, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		os.Exit(125)
	}
	if in.sigEv, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		os.Exit(125)
	}
	in.conns, in.byFD = map[*initproto.Conn]bool{}, map[int]*initproto.Conn{}
	in.pidfd, in.pidOf_ = map[int]int{}, map[int]int{}
	if err := in.watch(in.sigEv); err != nil {
		os.Exit(125)
	}
	go func() {
		one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
		for s := range sigs {
			in.sigMu.Lock()
			in.sigBuf = append(in.sigBuf, s.(syscall.Signal))
			in.sigMu.Unlock()
			_, _ = unix.Write(in.sigEv, one)
		}
	}()
	in.follow(in.conn)
	in.track(in.main, in.mainFD)
	listen := in.cfg.ListenFD
	if listen > 0 {
		unix.CloseOnExec(listen)
		if unix.SetNonblock(listen, true) != nil || in.watch(listen) != nil {
			listen = 0
		}
	}
	events := make([]unix.EpollEvent, 32)
	var buf [8]byte
	for {
		n, err := unix.EpollWait(in.ep, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			os.Exit(125)
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == in.sigEv {
				_, _ = unix.Read(in.sigEv, buf[:])
				in.sigMu.Lock()
				pending := in.sigBuf
				in.sigBuf = nil
				in.sigMu.Unlock()
				for _, sig := range pending {
					switch sig {
					case syscall.SIGCHLD:
						in.reap()
					case syscall.SIGURG, syscall.SIGPIPE:
						// SIGURG is the Go runtime's own preemption signal.
					default:
						_ = unix.Kill(in.main, sig)
					}
				}
				continue
			}
			if listen > 0 && fd == listen {
				in.accept(listen)
				continue
			}
			if pid, ok := in.pidOf_[fd]; ok {
				if pid == in.main && in.cfg.CloneParent {
					// Not our child: its parent reaps it and has its
					// status. The container is over.
					in.broadcast(&initproto.Message{Type: initproto.TypeExit, Exit: &initproto.ExitInfo{}}, 0)
					in.killAll()
					os.Exit(0)
				}
				in.reap()
				continue
			}
			c := in.byFD[fd]
			if c == nil {
				continue
			}
			r, err := c.Recv()
			if err != nil {
				in.unfollow(c)
				if c == in.conn && !in.cfg.Detached {
					// The program that started us is gone: take
					// everything down.
					in.killAll()
					os.Exit(137)
				}
				continue
			}
			in.handle(r, c)
		}
	}
}

func (in *initState) killAll() { in.signalAll(unix.SIGKILL) }

// signalAll sends sig to every process of the container: to each in its
// cgroup when it has one, else to each the init started. SIGKILL to the
// main process, PID 1 of the container's own pid namespace, ends every
// process in that namespace too. The init never signals anything of its
// own namespace beyond what it started.
func (in *initState) signalAll(sig syscall.Signal) {
	if in.cfg.NewPIDNS && sig == unix.SIGKILL && in.main > 0 {
		_ = unix.Kill(in.main, sig)
	}
	if pids := in.cg.pids(); pids != nil {
		for _, pid := range pids {
			_ = unix.Kill(pid, sig)
		}
		return
	}
	for pid := range in.procs {
		_ = unix.Kill(pid, sig)
	}
}

func (in *initState) pidOf(id int, from *initproto.Conn) (int, bool) {
	for pid, ref := range in.procs {
		if ref.id == id && (id == 0 || ref.conn == from) {
			return pid, true
		}
	}
	return 0, false
}

// broadcast sends m to every live control connection.
func (in *initState) broadcast(m *initproto.Message, asPid int) {
	for c := range in.conns {
		if asPid > 0 {
			_ = c.SendAs(m, asPid)
		} else {
			_ = c.Send(m)
		}
	}
}

func (in *initState) handle(r *initproto.Received, from *initproto.Conn) {
	defer initproto.CloseFiles(r.Files)
	switch r.Type {
	case initproto.TypeSignal:
		if r.ID == -1 {
			in.signalAll(syscall.Signal(r.Signal))
			return
		}
		if pid, ok := in.pidOf(r.ID, from); ok {
			_ = unix.Kill(pid, syscall.Signal(r.Signal))
		}
	case initproto.TypeStart:
		if in.held == nil {
			_ = from.Send(&initproto.Message{Type: initproto.TypeError, Error: &initproto.ErrorInfo{Step: "start", Msg: "the container's process is not waiting to start"}})
			return
		}
		in.sigsCaught()
		if err := RunHooks(in.cfg.StartContainerHooks, r.Payload); err != nil {
			_ = from.Send(&initproto.Message{Type: initproto.TypeError, Error: &initproto.ErrorInfo{Step: "startContainer hook", Msg: err.Error()}})
			return
		}
		sp := in.held
		in.held = nil
		if err := sp.release(); err != nil {
			delete(in.procs, sp.pid)
			in.broadcast(&initproto.Message{Type: initproto.TypeError, Error: initproto.InfoOf("start", "", err)}, 0)
			in.broadcast(&initproto.Message{Type: initproto.TypeExit, Exit: &initproto.ExitInfo{Code: 127}}, 0)
			os.Exit(0)
		}
		in.broadcast(&initproto.Message{Type: initproto.TypeStarted, Pid: sp.pid}, sp.pid)
	case initproto.TypeExec:
		var req ExecRequest
		if err := initproto.Decode(r.Payload, &req); err != nil || len(req.Args) == 0 {
			in.execFailed(from, r.ID, &initproto.ErrorInfo{Step: "read exec request", Msg: fmt.Sprint(err)})
			return
		}
		spec := in.cfg.Process.forExec(&req)
		fds := make([]uintptr, len(r.Files))
		for i, f := range r.Files {
			fds[i] = f.Fd()
		}
		var (
			pid, pidfd    int
			pty, listener *os.File
			err           error
		)
		err = in.cg.startExec(in.main, func(cg *cgroupSet) (err error) {
			if in.direct {
				var ds *spawned
				if ds, pty, err = spawnDirect(&spec, fds, spawnOpts{cg: cg, clone3: in.cfg.Clone3}); err == nil {
					pid, pidfd = ds.pid, ds.pidfd
				}
			} else {
				pid, pidfd, pty, listener, err = spawn(&spec, fds, cg.joinFDs())
			}
			return err
		})
		if err != nil {
			in.execFailed(from, r.ID, initproto.InfoOf("start process", "", err))
			return
		}
		in.procs[pid] = procRef{id: r.ID, conn: from}
		in.track(pid, pidfd)
		if pty != nil {
			_ = from.Send(&initproto.Message{Type: initproto.TypePTY, ID: r.ID}, pty)
			pty.Close()
		}
		if listener != nil {
			_ = from.Send(&initproto.Message{Type: initproto.TypeSeccomp, ID: r.ID}, listener)
			listener.Close()
		}
		// The tracked pidfd goes along when credentials cannot.
		pidfd, ok := in.pidfd[pid]
		if !ok {
			pidfd = -1
		}
		_ = from.SendAsWith(&initproto.Message{Type: initproto.TypeStarted, ID: r.ID, Pid: pid}, pid, pidfd)
	}
}

func (in *initState) execFailed(to *initproto.Conn, id int, info *initproto.ErrorInfo) {
	_ = to.Send(&initproto.Message{Type: initproto.TypeError, ID: id, Error: info})
}

// reap collects every exited child. Orphans re-parented to us (we are PID 1
// of the container) are reaped silently.
func (in *initState) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		in.untrack(pid)
		ref, ok := in.procs[pid]
		if !ok {
			continue
		}
		delete(in.procs, pid)
		exit := &initproto.Message{Type: initproto.TypeExit, ID: ref.id, Exit: initproto.FromWaitStatus(ws)}
		if pid == in.main {
			in.broadcast(exit, 0)
			in.killAll()
			// Exit with the main process's code (128+N for signal N), so a
			// supervisor that only waits for the init (an OCI shim) sees it.
			os.Exit(exit.Exit.Code)
		}
		if in.conns[ref.conn] {
			_ = ref.conn.Send(exit)
		}
	}
}

// stageProc is an exec stage: a fresh exec of this binary that applies one
// process's settings and execve()s it.
type stageProc struct {
	pid  int
	conn *initproto.Conn
	pty  *os.File
	// listener is the process's seccomp notify listener, for an agent.
	listener *os.File
	execing  bool
	// From its fork until its spec is sent: its pidfd, where its
	// cgroup files are, and whether it is the init's sibling.
	pidfd     int
	cgroupFDs []int
	sibling   bool
}

// startStage starts the exec stage for spec; files become the process's
// descriptors 0, 1, 2, 3...
func startStage(spec *Process, files []uintptr, cgroups []int, sibling bool) (*stageProc, error) {
	sp, err := forkStage(files, cgroups, sibling)
	if err != nil {
		return nil, err
	}
	if err := sp.send(spec); err != nil {
		return nil, err
	}
	return sp, nil
}

// forkStage starts an exec stage that waits for its process's spec
// (send): its Go start can overlap with the init's own work.
func forkStage(files []uintptr, cgroups []int, sibling bool) (*stageProc, error) {
	parentEnd, child, err := initproto.Pair()
	if err != nil {
		return nil, err
	}
	all := append(append([]uintptr{}, files...), child.Fd())
	sync := len(all) - 1
	sp := &stageProc{sibling: sibling, pidfd: -1}
	for _, fd := range cgroups {
		sp.cgroupFDs = append(sp.cgroupFDs, len(all))
		all = append(all, uintptr(fd))
	}
	env := []string{envStage + "=" + stageExec, envSync + "=" + strconv.Itoa(sync), "GOMAXPROCS=1"}
	// The stage is this program, executed from the descriptor the init
	// opened before the container's /proc replaced its own, or as the
	// stages' shim from a procfs of its own (exeguard.go), then back in
	// the init's working directory. No parent-death signal here: the
	// stage sets it itself.
	a := &spawnAttr{parent: sibling, execFD: selfExeFD, useExecFD: true, withBinary: true, cgroupDir: -1}
	cwd := -1
	if shim := stageShim(); shim >= 0 {
		if cwd, err = unix.Open(".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			parentEnd.Close()
			child.Close()
			return nil, &steperr.Error{Step: "start exec stage", Path: ".", Err: err}
		}
		defer unix.Close(cwd)
		a.execFD, a.privateProc = shim, true
		env = append(env, envCwd+"="+strconv.Itoa(len(all)))
		all = append(all, uintptr(cwd))
	}
	for _, fd := range all {
		a.fds = append(a.fds, int(fd))
	}
	ds, err := spawnRaw("", []string{"vessel-exec"}, env, a)
	child.Close()
	if err != nil {
		parentEnd.Close()
		return nil, &steperr.Error{Step: "start exec stage", Path: "/proc/self/exe", Err: err}
	}
	sp.pid, sp.pidfd, sp.conn = ds.pid, ds.pidfd, parentEnd
	return sp, nil
}

// send gives the stage its process's spec.
func (sp *stageProc) send(spec *Process) error {
	s := *spec
	s.CgroupFDs, s.Sibling = sp.cgroupFDs, sp.sibling
	if sp.pidfd >= 0 {
		unix.Close(sp.pidfd)
		sp.pidfd = -1
	}
	if err := sp.conn.SendRaw(initproto.TypeConfig, encodeProcess(&s)); err != nil {
		unix.Kill(sp.pid, unix.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(sp.pid, &ws, 0, nil)
		sp.conn.Close()
		return err
	}
	return nil
}

// await follows the stage until it has execve()d (its socket, close-on-exec,
// ends after its start marker), failed, or, when held, reports that it
// waits for a start message.
func (sp *stageProc) await(held bool) error {
	for {
		r, err := sp.conn.Recv()
		if err != nil {
			if sp.execing {
				sp.conn.Close()
				return nil
			}
			// The stage died before reaching execve.
			var ws unix.WaitStatus
			unix.Wait4(sp.pid, &ws, 0, nil)
			sp.fail()
			return &steperr.Error{Step: "exec stage", Err: fmt.Errorf("died before exec (%v)", ws)}
		}
		switch r.Type {
		case initproto.TypePTY:
			if len(r.Files) == 1 {
				sp.pty = r.Files[0]
			}
		case initproto.TypeSeccomp:
			if len(r.Files) == 1 {
				sp.listener = r.Files[0]
			}
		case initproto.TypeReady:
			if held {
				return nil
			}
		case initproto.TypeStart:
			sp.execing = true
		case initproto.TypeError:
			var ws unix.WaitStatus
			unix.Wait4(sp.pid, &ws, 0, nil)
			sp.fail()
			return r.Error.StepError()
		}
	}
}

func (sp *stageProc) fail() {
	sp.conn.Close()
	if sp.pty != nil {
		sp.pty.Close()
		sp.pty = nil
	}
	if sp.listener != nil {
		sp.listener.Close()
		sp.listener = nil
	}
}

// release lets a held stage go on to execve.
func (sp *stageProc) release() error {
	if err := sp.conn.Send(&initproto.Message{Type: initproto.TypeStart}); err != nil {
		sp.fail()
		return err
	}
	return sp.await(false)
}

// spawn starts a process through the exec stage and returns once it has
// been execve()d (without a pidfd: -1).
// Its terminal's master and its seccomp notify listener (for an agent)
// come back when it has them.
func spawn(spec *Process, files []uintptr, cgroups []int) (int, int, *os.File, *os.File, error) {
	sp, err := startStage(spec, files, cgroups, false)
	if err != nil {
		return 0, -1, nil, nil, err
	}
	if err := sp.await(false); err != nil {
		return 0, -1, nil, nil, err
	}
	return sp.pid, -1, sp.pty, sp.listener, nil
}

// runExecStage applies one process's settings and execve()s it. Its sync
// socket is close-on-exec: the parent sees end-of-file once execve worked.
func runExecStage() {
	conn := initproto.FromFD(syncFD())
	if err := returnToCwd(); err != nil {
		exitWith(conn, "return to the working directory", "", err)
	}
	r, err := conn.Expect(initproto.TypeConfig)
	if err != nil {
		os.Exit(125)
	}
	var spec Process
	if err := decodeProcess(r.Raw, &spec); err != nil {
		exitWith(conn, "read process config", "", err)
	}
	if !spec.Sibling {
		// Die with the init: its death would not end us otherwise.
		_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
	}
	if spec.Proc != nil {
		// PID 1 of the container's pid namespace: its /proc, mounted
		// from here (the init is not in that namespace).
		if err := rootfs.SwapProc(spec.Proc, -1); err != nil {
			exitWith(conn, "mount /proc", "/proc", err)
		}
	}
	if spec.TTY {
		if err := setupTTY(conn, &spec); err != nil {
			exitWith(conn, "set up terminal", "/dev/ptmx", err)
		}
	} else if _, err := unix.Setsid(); err != nil {
		exitWith(conn, "setsid", "", err)
	}
	// The limits that would hamper this Go program itself, only lowered,
	// are set last, right before execve: Go's setuid family signals every
	// thread with a real-time signal, which RLIMIT_SIGPENDING (it counts
	// the user's queued signals on the whole host) can refuse, and the
	// program waits for those threads forever; the runtime's memory may
	// outgrow an address-space or data limit meant for the process.
	var late []limits.Rlimit
	for _, rl := range spec.Rlimits {
		switch rl.Type {
		case "RLIMIT_SIGPENDING", "RLIMIT_NPROC", "RLIMIT_AS", "RLIMIT_DATA":
			if cur, err := limits.Current(rl.Type); err == nil && rl.Hard <= cur.Hard {
				late = append(late, rl)
				continue
			}
		}
		if err := rl.Apply(); err != nil {
			exitWith(conn, "setrlimit", rl.Type, err)
		}
	}
	if spec.OOMScoreAdj != nil {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(*spec.OOMScoreAdj)), 0); err != nil {
			exitWith(conn, "oom_score_adj", "/proc/self/oom_score_adj", err)
		}
	}
	unix.Umask(int(spec.Umask))
	if spec.Dir != "" {
		if err := unix.Chdir(spec.Dir); err != nil {
			exitWith(conn, "chdir", spec.Dir, err)
		}
	}
	path, err := lookPath(spec.Args[0], spec.Env)
	if spec.Idle {
		path, err = "/proc/self/exe", nil
		spec.Args, spec.Env = []string{IdleArg0}, []string{envStage + "=" + stageIdle}
	}
	if err != nil {
		exitWith(conn, "exec", spec.Args[0], err)
	}
	joinCgroup := func() {
		for _, fd := range spec.CgroupFDs {
			if _, err := unix.Write(fd, []byte("0")); err != nil {
				exitWith(conn, "join container cgroup", "", err)
			}
			unix.Close(fd)
		}
		spec.CgroupFDs = nil
	}
	prep := spec.Security
	if prep == nil {
		prep = &security.Prepared{NoNewPrivileges: spec.NoNewPriv}
	}
	cred := security.Credential{UID: spec.UID, GID: spec.GID, Groups: spec.Groups}
	if !spec.SetGroups {
		cred.Groups = nil
	}
	applyProfile := func() int {
		listener, err := security.Apply(prep, cred)
		if err != nil {
			var se *security.StepError
			if errors.As(err, &se) {
				exitWith(conn, se.Step, "", se.Err)
			}
			exitWith(conn, "apply security profile", "", err)
		}
		return listener
	}
	// A seccomp notify listener that goes to an agent (OCI listenerPath)
	// is made before the process is held, as runc makes it: the agent
	// gets it while the container is created. The profile is applied
	// then, so the few calls left before execve (this socket's sendmsg
	// and recvmsg, close, execve, the Go runtime's own) must not be ones
	// the profile notifies (oci.FromSpec refuses those).
	notify := prep.Seccomp != nil && prep.Seccomp.Listener && prep.Seccomp.ListenerPath != ""
	if notify {
		debug.SetGCPercent(-1)
		joinCgroup()
		if fd := applyProfile(); fd >= 0 {
			lf := os.NewFile(uintptr(fd), "seccomp-listener")
			err := conn.Send(&initproto.Message{Type: initproto.TypeSeccomp}, lf)
			lf.Close()
			if err != nil {
				os.Exit(125)
			}
		}
	}
	if spec.WaitStart {
		// A created container's process waits in its cgroup, as runc's
		// does: supervisors and the OCI runtime-tools find the cgroup
		// through /proc/PID/cgroup of the state's pid before start.
		joinCgroup()
		if err := conn.Send(&initproto.Message{Type: initproto.TypeReady}); err != nil {
			os.Exit(125)
		}
		if _, err := conn.Expect(initproto.TypeStart); err != nil {
			os.Exit(125)
		}
	}
	// Tell the init we are about to drop privileges and exec: from here a
	// strict seccomp profile may forbid even reporting an error.
	if err := conn.Send(&initproto.Message{Type: initproto.TypeStart}); err != nil {
		os.Exit(125)
	}
	if !notify {
		// No garbage collection between the filter and execve: the
		// runtime must not need a system call the profile denies.
		debug.SetGCPercent(-1)
		// Into the container's cgroup last, so that this Go program's
		// own threads count there as briefly as can be (execve ends
		// them).
		joinCgroup()
		if fd := applyProfile(); fd >= 0 {
			unix.Close(fd) // nobody to hand it to: notified calls fail (ENOSYS)
		}
	}
	for _, rl := range late {
		if err := rl.Apply(); err != nil {
			exitWith(conn, "setrlimit", rl.Type, err)
		}
	}
	if spec.Idle && shimmed() {
		// Executed as the shim, this stage has no copy of the program
		// to execute again (exeguard.go): it is the idle PID 1 itself.
		conn.Close()
		debug.SetGCPercent(100)
		runIdle()
	}
	err = syscall.Exec(path, spec.Args, spec.Env)
	exitWith(conn, "exec", path, err)
}

// lookPath finds file in the PATH of env (not of this process).
func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		return file, checkExecutable(file)
	}
	pathEnv := DefaultPath
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			pathEnv = e[5:]
		}
	}
	var firstErr error = unix.ENOENT
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		err := checkExecutable(p)
		if err == nil {
			return p, nil
		}
		if err != unix.ENOENT && firstErr == unix.ENOENT {
			firstErr = err
		}
	}
	return "", firstErr
}

func checkExecutable(p string) error {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return unix.EACCES
	}
	return unix.Access(p, unix.X_OK)
}

// setupTTY allocates a pseudo-terminal from the container's own devpts,
// hands the master to the parent, and makes the slave the controlling
// terminal and stdio of this process.
func setupTTY(conn *initproto.Conn, spec *Process) error {
	master, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	slave, err := ptySlave(master)
	if err != nil {
		unix.Close(master)
		return err
	}
	return ttyStdio(conn, spec, master, slave)
}

func ttyStdio(conn *initproto.Conn, spec *Process, master, slave int) error {
	if spec.Rows > 0 && spec.Cols > 0 {
		_ = unix.IoctlSetWinsize(slave, unix.TIOCSWINSZ, &unix.Winsize{Row: spec.Rows, Col: spec.Cols})
	}
	mf := os.NewFile(uintptr(master), "pty-master")
	err := conn.Send(&initproto.Message{Type: initproto.TypePTY}, mf)
	mf.Close()
	if err != nil {
		return err
	}
	if _, err := unix.Setsid(); err != nil {
		return err
	}
	if err := unix.IoctlSetInt(slave, unix.TIOCSCTTY, 0); err != nil {
		return err
	}
	for fd := 0; fd < 3; fd++ {
		if err := unix.Dup3(slave, fd, 0); err != nil {
			return err
		}
	}
	if slave > 2 {
		unix.Close(slave)
	}
	return nil
}

// joinsNet reports whether the init joins a network namespace.
func joinsNet(joins []namespaces.Namespace) bool {
	for _, j := range joins {
		if j.Kind == namespaces.Net {
			return true
		}
	}
	return false
}

// loopbackUp sets IFF_UP on lo in the calling thread's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// MergeFiles replaces files of the same path and appends new ones.
func MergeFiles(base, over []rootfs.File) []rootfs.File {
	out := append([]rootfs.File(nil), base...)
	for _, f := range over {
		replaced := false
		for i := range out {
			if out[i].Path == f.Path {
				out[i], replaced = f, true
			}
		}
		if !replaced {
			out = append(out, f)
		}
	}
	return out
}

// forExec derives an Exec'd process's spec from the main process's.
func (p Process) forExec(req *ExecRequest) Process {
	out := p
	out.Args = req.Args
	if req.SetEnv {
		out.Env = WithDefaultEnv(req.Env, "")
	}
	if req.Dir != "" {
		out.Dir = req.Dir
	}
	if req.User != nil {
		out.UID, out.GID, out.Groups = req.User.UID, req.User.GID, req.User.Groups
	}
	out.TTY, out.Rows, out.Cols = req.TTY, req.Rows, req.Cols
	out.WaitStart, out.Idle, out.Sibling, out.Proc = false, false, false, nil
	return out
}

// WithDefaultEnv adds PATH (and HOSTNAME) when env lacks them.
func WithDefaultEnv(env []string, hostname string) []string {
	env = setEnvIfMissing(append([]string(nil), env...), "PATH="+DefaultPath)
	if hostname != "" {
		env = setEnvIfMissing(env, "HOSTNAME="+hostname)
	}
	return env
}

const envConfigFD = "_VESSEL_CONFIG_FD"

// reexecWithConfig re-executes the init, keeping its sync socket and the
// main process's extra files, with the (already received) config in a
// memfd. It returns only on failure.
func reexecWithConfig(config []byte, numExtras, listenFD int) error {
	fd, err := unix.MemfdCreate("vessel-config", 0)
	if err != nil {
		return err
	}
	if _, err := unix.Write(fd, config); err != nil {
		return err
	}
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		return err
	}
	keep := []int{}
	for i := 0; i <= numExtras; i++ {
		keep = append(keep, syncFD()+i)
	}
	if listenFD > 0 {
		keep = append(keep, listenFD)
	}
	for _, k := range keep {
		if _, err := unix.FcntlInt(uintptr(k), unix.F_SETFD, 0); err != nil {
			return err
		}
	}
	env := []string{envStage + "=" + stageInit, envSync + "=" + strconv.Itoa(syncFD()), envConfigFD + "=" + strconv.Itoa(fd)}
	if binaryFD >= 0 {
		// Executed as the shim: the program where the shim names it, and
		// a copy for the next init (exeguard.go).
		if err := unix.Dup3(binaryFD, shimInterpFD, unix.O_CLOEXEC); err != nil {
			return err
		}
		if _, err := unix.FcntlInt(uintptr(binaryFD), unix.F_SETFD, 0); err != nil {
			return err
		}
		env = append(env, BinaryEnv(binaryFD, shimInterpFD))
	}
	return syscall.Exec("/proc/self/exe", []string{"vessel-init"}, env)
}

// configFromReexec reads the config a re-executed init was handed.
func configFromReexec() ([]byte, bool) {
	v := os.Getenv(envConfigFD)
	if v == "" {
		return nil, false
	}
	fd, err := strconv.Atoi(v)
	if err != nil {
		return nil, false
	}
	f := os.NewFile(uintptr(fd), "vessel-config")
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, false
	}
	return data, true
}
