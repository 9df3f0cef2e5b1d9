package child

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/rootfs"
	"github.com/openvessel/vessel/security"
	"github.com/openvessel/vessel/steperr"
)

// Direct start. Most of a process's settings are inherited through fork
// and execve: rlimits, umask and oom_score_adj are per process, and the
// bounding set, the capability sets, no_new_privs, the Landlock domain and
// the seccomp filter belong to the forking thread. So when the container's
// profile is one that the init itself can live under, the init puts those
// settings on its own main thread once, after the container is set up,
// and then starts every process with its own fork+exec from that thread
// (spawn.go, which also joins the container's cgroup and sets the
// session, the controlling terminal, uid, gid, groups, the working
// directory, the parent-death signal and the descriptors). The seccomp
// filter is the exception (SeccompInChild): each process loads it last
// before execve, so that the init may use clone3. That replaces a fresh
// start of this program per process (the exec stage) and is what makes
// Exec cheap.
//
// The exec stage remains for what a plain fork cannot express:
//   - the created state (OCI create), which holds the process before execve;
//   - capability sets a plain execve does not reproduce: for root, the
//     effective and permitted sets must equal the bounding set (execve
//     gives root exactly that); no ambient capabilities; no securebits;
//   - a seccomp filter that would stop the init's own system calls (the
//     Go runtime, reaping, the control socket, fork+exec itself);
//   - rlimits that would hamper the init (CPU, AS, DATA, NPROC, a small
//     NOFILE);
//   - a joined pid namespace (the init is not visible there, so a
//     parent-death signal cannot be checked);
//   - Landlock with a pid namespace of the container's own (the main
//     process mounts that namespace's /proc itself, which a Landlock
//     domain forbids).
//
// The init keeps CAP_KILL, CAP_SETUID and CAP_SETGID in its own effective
// set even when the profile drops them (it signals and starts processes of
// other users), and CAP_SYS_ADMIN while the main process must mount its
// /proc; none survives into a process: execve recomputes them from the
// bounding set (root) or clears them (other users).

// initCalls are the system calls the init makes after it applied the
// profile to itself: the Go runtime's, the init's own (reaping, the
// control socket, signals) and those of fork+exec in the child. Only the
// parent needs them (DirectReason): built on first use, not in every
// init's start.
var initCalls = sync.OnceValue(func() []security.Call {
	names := []string{
		// Go runtime
		"futex", "mmap", "munmap", "madvise", "mprotect", "rt_sigreturn",
		"rt_sigprocmask", "rt_sigaction", "sigaltstack", "tgkill", "getpid",
		"gettid", "nanosleep", "sched_yield", "epoll_pwait", "epoll_ctl",
		"epoll_create1", "epoll_wait", "eventfd2", "exit", "exit_group", "sched_getaffinity",
		"clock_gettime", "clock_nanosleep", "getrandom", "read", "write",
		"close", "fcntl", "openat", "newfstatat", "fstat", "uname",
		// the init
		"wait4", "kill", "sendmsg", "recvmsg", "recvfrom", "accept4",
		"setsockopt", "getsockopt", "socketpair", "pidfd_open", "ioctl",
		"faccessat", "faccessat2", "pipe2", "prlimit64",
		// fork+exec
		"setsid", "prctl", "getppid", "setgroups", "setgid", "setuid",
		"chdir", "dup3", "execve", "capset", "capget",
	}
	calls := make([]security.Call, 0, len(names)+2)
	for _, n := range names {
		calls = append(calls, security.Call{Name: n})
	}
	// clone for a runtime thread and for fork+exec (CLONE_VM|CLONE_VFORK).
	const thread = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_SYSVSEM | unix.CLONE_THREAD | unix.CLONE_SETTLS
	calls = append(calls,
		security.Call{Name: "clone", Args: [6]uint64{thread}},
		security.Call{Name: "clone", Args: [6]uint64{unix.CLONE_VM | unix.CLONE_VFORK | unix.CLONE_PIDFD | uint64(unix.SIGCHLD)}})
	return calls
})

// ProcPidns reports, once per program, whether the init can mount the
// /proc of its workload's pid namespace itself (rootfs.ProcPidnsSupported);
// the parent tells the init (Config.ProcPidns).
var ProcPidns = sync.OnceValue(rootfs.ProcPidnsSupported)

// initSafeRlimit says whether the init can carry an rlimit itself without
// harm.
func initSafeRlimit(typ string) bool {
	switch typ {
	case "RLIMIT_CORE", "RLIMIT_FSIZE", "RLIMIT_LOCKS", "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE",
		"RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK", "RLIMIT_RSS":
		return true
	}
	return false
}

// minInitNofile is the smallest RLIMIT_NOFILE soft limit the init accepts
// for itself (it holds a descriptor per control connection and per
// process it is starting).
const minInitNofile = 256

// Capabilities the init keeps for itself when it can.
const initOwnCaps = uint64(1)<<unix.CAP_KILL | uint64(1)<<unix.CAP_SETUID | uint64(1)<<unix.CAP_SETGID

// DirectReason says why processes of this container cannot be started
// directly by the init, or "" when they can. The parent decides, once per
// start, and tells the init (Config.Direct).
func DirectReason(cfg *Config) string {
	p := &cfg.Process
	if cfg.Restore != nil {
		return "the main process is restored by criu"
	}
	if p.WaitStart || len(cfg.StartContainerHooks) > 0 {
		return "the process is held in the created state"
	}
	for _, j := range cfg.Joins {
		switch j.Kind {
		case namespaces.PID:
			return "the pid namespace is joined"
		case namespaces.Mount:
			return "the mount namespace is joined"
		}
	}
	for _, rl := range p.Rlimits {
		if rl.Type == "RLIMIT_NOFILE" && rl.Soft >= minInitNofile {
			continue
		}
		if !initSafeRlimit(rl.Type) {
			return "rlimit " + rl.Type
		}
	}
	sec := p.Security
	if sec == nil {
		return ""
	}
	if sec.Securebits != nil {
		return "securebits"
	}
	if sec.Landlock != nil && sec.Landlock.Enabled && cfg.Plan != nil && cfg.NewPIDNS {
		// The main process mounts its /proc after the init's main
		// thread took the profile, which Landlock forbids.
		return "Landlock with a /proc of the container's own"
	}
	if c := sec.Capabilities; c != nil {
		if c.Ambient != 0 {
			return "ambient capabilities"
		}
		if c.Effective != c.Bounding || c.Permitted != c.Bounding || c.Inheritable&^c.Bounding != 0 {
			return "capability sets other than the bounding set"
		}
	}
	if s := sec.Seccomp; s != nil {
		if s.Listener {
			return "a seccomp notify listener"
		}
		return seccompStopsInit(s)
	}
	return ""
}

// SeccompInChild says whether, in a direct start, each process loads
// p's seccomp filter itself rather than inheriting it from the init's
// thread: with no_new_privs (so an unprivileged process may load it) and
// without a notify listener (which goes to a supervisor).
func SeccompInChild(p *security.Prepared) bool {
	return p != nil && p.NoNewPrivileges && p.Seccomp != nil && !p.Seccomp.Listener && len(p.Seccomp.Filter) > 0
}

// childSeccomp is the filter each directly started process loads.
type childSeccomp struct {
	filter []unix.SockFilter
	prog   unix.SockFprog
	flags  uintptr
}

// processSeccomp is set by applyToInit when processes load the filter.
var processSeccomp *childSeccomp

// Clone3Allowed says whether the init, carrying cfg's profile, may call
// clone3 (parent side; memoised per compiled program).
func Clone3Allowed(cfg *Config) bool {
	sec := cfg.Process.Security
	if sec == nil || sec.Seccomp == nil || SeccompInChild(sec) {
		return true
	}
	if v, ok := clone3Verdicts.Load(sec.Seccomp); ok {
		return v.(bool)
	}
	ok := sec.Seccomp.AllowsAll([]security.Call{{Name: "clone3"}}) == nil
	clone3Verdicts.Store(sec.Seccomp, ok)
	return ok
}

var clone3Verdicts sync.Map // *security.Program -> bool

// seccompVerdicts memoises seccompStopsInit per compiled program (the
// default profile's is compiled once per program).
var seccompVerdicts sync.Map // *security.Program -> string

// seccompStopsInit says which of the init's system calls p stops, or "".
func seccompStopsInit(p *security.Program) string {
	if v, ok := seccompVerdicts.Load(p); ok {
		return v.(string)
	}
	why := ""
	if err := p.AllowsAll(initCalls()); err != nil {
		why = err.Error()
	}
	seccompVerdicts.Store(p, why)
	return why
}

// applyToInit puts the process settings of spec on the init: rlimits,
// oom_score_adj and umask on the process, no supplementary groups, and
// the security profile on the calling (main) thread. The init stays uid
// and gid 0 and keeps initOwnCaps when it holds them.
func applyToInit(spec *Process, extraCaps uint64) error {
	for _, rl := range spec.Rlimits {
		if err := rl.Apply(); err != nil {
			return &steperr.Error{Step: "setrlimit", Path: rl.Type, Err: err}
		}
	}
	if spec.OOMScoreAdj != nil {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(fmt.Sprint(*spec.OOMScoreAdj)), 0); err != nil {
			return &steperr.Error{Step: "oom_score_adj", Path: "/proc/self/oom_score_adj", Err: err}
		}
	}
	unix.Umask(int(spec.Umask))
	prep := spec.Security
	if prep == nil {
		prep = &security.Prepared{NoNewPrivileges: spec.NoNewPriv}
	}
	own := *prep
	if SeccompInChild(prep) {
		// Each process loads the filter itself, last before execve
		// (spawn.go): the init stays unfiltered, free to fork processes
		// into a cgroup2 cgroup with clone3, which filters like Docker's
		// answer with ENOSYS.
		own.Seccomp = nil
		p := prep.Seccomp
		f := &childSeccomp{flags: uintptr(p.Flags)}
		for _, ins := range p.Filter {
			f.filter = append(f.filter, unix.SockFilter{Code: ins.Code, Jt: ins.Jt, Jf: ins.Jf, K: ins.K})
		}
		f.prog = unix.SockFprog{Len: uint16(len(f.filter)), Filter: &f.filter[0]}
		processSeccomp = f
	}
	if c := prep.Capabilities; c != nil {
		var hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			return &steperr.Error{Step: "capget", Err: err}
		}
		have := uint64(data[0].Permitted) | uint64(data[1].Permitted)<<32
		cs := *c
		keep := (c.Bounding | initOwnCaps | extraCaps) & have
		cs.Effective, cs.Permitted = keep, keep
		own.Capabilities = &cs
	}
	if _, err := security.ApplyToThread(&own); err != nil {
		return steperr.Wrap("apply security profile", "", err)
	}
	return nil
}

// spawnOpts is how the init starts one process beyond its spec.
type spawnOpts struct {
	// cg: the container's cgroup, which the process joins before it
	// runs anything.
	cg *cgroupSet
	// proc: the process mounts its pid namespace's /proc (procSteps).
	proc []procStep
	// parent: the process becomes the init's sibling (CLONE_PARENT).
	parent bool
	// clone3: the profile the init carries lets it call clone3.
	clone3 bool
}

// spawnDirect starts spec's process with fork+exec from the calling
// thread, which must be the init's main thread after applyToInit. files
// become descriptors 0, 1, 2, 3...; with a terminal, 0-2 are its slave
// and the master is returned. Unless held, it returns once the process
// has exec'd.
func spawnDirect(spec *Process, files []uintptr, o spawnOpts) (sp *spawned, pty *os.File, err error) {
	fail := func(step, path string, err error) (*spawned, *os.File, error) {
		return nil, nil, &steperr.Error{Step: step, Path: path, Err: err}
	}
	// A path is left to execve, which reports what a check here would
	// (ENOENT, EACCES for a directory or a file without x); a bare name
	// is looked up in PATH.
	path := spec.Args[0]
	args, env := spec.Args, spec.Env
	a := &spawnAttr{setsid: true, pdeathsig: !o.parent, parent: o.parent, cgroupDir: -1}
	if f := processSeccomp; f != nil {
		a.seccomp, a.seccompFlags = &f.prog, f.flags
	}
	if o.cg != nil {
		a.cgroups = o.cg.v1
		switch {
		case o.cg.v2Dir >= 0 && o.clone3:
			a.cgroupDir = o.cg.v2Dir
		case o.cg.v2Procs >= 0:
			// clone3 stopped by the profile the init carries (the
			// default one answers ENOSYS, as Docker's): the child moves
			// itself, a whole-process move.
			a.cgroups = append(append([]int(nil), a.cgroups...), o.cg.v2Procs)
		}
	}
	if spec.Idle {
		path, args, env = "", []string{IdleArg0}, []string{envStage + "=" + stageIdle}
		// This program itself (not the shim, whose interpreter path the
		// container's /proc would resolve): it never executes anything.
		a.execFD, a.useExecFD = selfExeFD, true
		if binaryFD >= 0 {
			a.execFD = binaryFD
		}
	} else if !strings.Contains(path, "/") {
		var err error
		if path, err = lookPath(path, spec.Env); err != nil {
			return fail("exec", spec.Args[0], err)
		}
	}
	if spec.Dir != "" && spec.Dir != "/" {
		var st unix.Stat_t
		if err := unix.Stat(spec.Dir, &st); err != nil {
			return fail("chdir", spec.Dir, err)
		} else if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fail("chdir", spec.Dir, unix.ENOTDIR)
		}
	}
	if spec.Dir != "" {
		d, err := syscall.BytePtrFromString(spec.Dir)
		if err != nil {
			return fail("chdir", spec.Dir, err)
		}
		a.dir = d
	}
	if spec.UID != 0 || spec.GID != 0 || (spec.SetGroups && len(spec.Groups) > 0) {
		a.cred, a.uid, a.gid = true, spec.UID, spec.GID
		a.setgroups, a.groups = spec.SetGroups && len(spec.Groups) > 0, spec.Groups
	}
	var master *os.File
	if spec.TTY {
		m, slave, err := openPTY(spec)
		if err != nil {
			return fail("set up terminal", "/dev/ptmx", err)
		}
		defer unix.Close(slave)
		master = m
		files = append([]uintptr{uintptr(slave), uintptr(slave), uintptr(slave)}, files[min(3, len(files)):]...)
		a.setctty = true
	}
	a.fds = make([]int, len(files))
	for i, f := range files {
		a.fds[i] = int(f)
	}
	a.proc = o.proc
	sp, err = spawnRaw(path, args, env, a)
	if err != nil {
		if master != nil {
			master.Close()
		}
		var ce *childError
		if errors.As(err, &ce) {
			// The step the child failed at, before its execve.
			if ce.Path != "" {
				path = ce.Path
			}
			return nil, nil, &steperr.Error{Step: ce.Step, Path: path, Err: ce.Errno}
		}
		return nil, nil, &steperr.Error{Step: "exec", Path: path, Err: err}
	}
	return sp, master, nil
}

// openPTY allocates a pseudo-terminal from the container's devpts and
// returns its master and the slave's descriptor, sized as spec says.
func openPTY(spec *Process) (*os.File, int, error) {
	master, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, -1, err
	}
	slave, err := ptySlave(master)
	if err != nil {
		unix.Close(master)
		return nil, -1, err
	}
	if spec.Rows > 0 && spec.Cols > 0 {
		_ = unix.IoctlSetWinsize(slave, unix.TIOCSWINSZ, &unix.Winsize{Row: spec.Rows, Col: spec.Cols})
	}
	return os.NewFile(uintptr(master), "pty-master"), slave, nil
}

// ptySlave unlocks the master and opens its slave (close-on-exec).
func ptySlave(master int) (int, error) {
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		return -1, err
	}
	slave, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(master), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno == 0 {
		return int(slave), nil
	}
	// Kernels before 4.13: open the slave by name.
	n, err := unix.IoctlGetInt(master, unix.TIOCGPTN)
	if err != nil {
		return -1, err
	}
	return unix.Open(fmt.Sprintf("/dev/pts/%d", n), unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
}
