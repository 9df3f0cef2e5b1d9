package child

import (
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Children of the init that never execute anything. After pivot_root the
// container's root is the only one this process can name, and a program
// linked against the host's C library (cgo) cannot be started again from
// its own executable there: the kernel and the dynamic loader would look
// for the host's loader and libraries in the container's root. So what
// the init needs a process for after pivot_root, beyond the workload's
// own programs, runs as a raw fork of the init: like spawn.go's child it
// makes only raw system calls, and it ends without returning to Go.
//
//   - The idle PID 1 of a pooled container (forkIdle): it reaps orphans
//     until it is killed with its container.
//
// It keeps no descriptor of the host: the idle process closes every
// descriptor it inherited before it waits.

// idleAttr is everything the idle PID 1 does after its fork, prepared in
// the parent: the child may only make raw system calls.
type idleAttr struct {
	// cgroups are write-only cgroup files the child writes "0" to
	// (v1 tasks; v2 cgroup.procs when it is not forked into cgroupDir).
	cgroups []int
	// cgroupDir, when >= 0, is the container's cgroup2 directory
	// (clone3 CLONE_INTO_CGROUP).
	cgroupDir int
	// proc are the mounts of the /proc of the pid namespace the child is
	// PID 1 of (procSteps), made right after the cgroup move.
	proc      []procStep
	pdeathsig bool
	ppid      uintptr
	parent    bool
	// cred: become uid and gid (and groups, when any).
	cred     bool
	uid, gid uint32
	groups   []uint32
	// errPipe's write end gets a childReport of a failed step; its
	// closing (with every other descriptor) says the child is idle.
	errPipe int
	// maxFD bounds the descriptors closed one by one where close_range
	// is missing.
	maxFD uintptr
	name  [16]byte
	// args are the init's argument strings (the memory its
	// /proc/PID/cmdline reads), overwritten with name in the child.
	args   []byte
	capHdr unix.CapUserHeader
	capSet [2]unix.CapUserData
	sigset uint64 // SIGCHLD
	sigbuf [128]byte
	pause  unix.Timespec
	clone3 cloneArgs
	report childReport
	// dfl is a kernel struct sigaction of zeroes: SIG_DFL.
	dfl [4]uint64
}

// forkIdle forks the idle PID 1 and returns its pid and pidfd: a plain
// fork, not forkChild's vfork, which would hold the init until an
// execve that never comes. The child joins the container's cgroup,
// mounts its pid namespace's /proc (as forkChild does), starts its own
// session, takes the idle process's name and its user, drops every
// capability, closes every descriptor and reaps: SIGCHLD is blocked and
// read from a signalfd, so no handler of the Go runtime ever runs in it.
// As the PID 1 of its namespace it ignores every signal sent from inside
// (the kernel drops those without a handler); SIGKILL from outside ends
// it.
//
//go:norace
//go:nosplit
func forkIdle(a *idleAttr) (pid int, pidfd int32, err1 syscall.Errno) {
	var (
		r1    uintptr
		i     int
		step  uintptr
		zero  = [1]byte{'0'}
		flags uintptr
		sfd   uintptr
		serr  syscall.Errno
	)
	pidfd = -1
	flags = unix.CLONE_PIDFD | uintptr(unix.SIGCHLD)
	if a.parent {
		flags |= unix.CLONE_PARENT
	}
	if a.cgroupDir >= 0 {
		a.clone3 = cloneArgs{
			flags:      uint64(flags&^0xff) | unix.CLONE_INTO_CGROUP,
			pidfd:      uint64(uintptr(unsafe.Pointer(&pidfd))),
			exitSignal: uint64(unix.SIGCHLD),
			cgroup:     uint64(a.cgroupDir),
		}
	}

	runtimeBeforeFork()
	if a.cgroupDir >= 0 {
		r1, _, err1 = syscall.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&a.clone3)), unsafe.Sizeof(a.clone3), 0)
	} else {
		r1, _, err1 = syscall.RawSyscall6(unix.SYS_CLONE, flags, 0, uintptr(unsafe.Pointer(&pidfd)), 0, 0, 0)
	}
	if err1 != 0 || r1 != 0 {
		runtimeAfterFork()
		return int(r1), pidfd, err1
	}

	// The child: only raw system calls from here. The runtime reset
	// every caught signal to its default action; those the init ignores
	// while it starts are reset here.
	runtimeAfterForkInChild()
	for i = 0; i < len(resetSignals); i++ {
		syscall.RawSyscall6(unix.SYS_RT_SIGACTION, resetSignals[i], uintptr(unsafe.Pointer(&a.dfl)), 0, 8, 0, 0)
	}
	step = stepCgroup
	for i = 0; i < len(a.cgroups); i++ {
		if _, _, err1 = syscall.RawSyscall(unix.SYS_WRITE, uintptr(a.cgroups[i]), uintptr(unsafe.Pointer(&zero[0])), 1); err1 != 0 {
			goto fail
		}
	}
	step = stepProc
	if i, err1 = mountProc(a.proc); err1 != 0 {
		a.report.index = uintptr(i)
		goto fail
	}
	step = stepSession
	if _, _, err1 = syscall.RawSyscall(unix.SYS_SETSID, 0, 0, 0); err1 != 0 {
		goto fail
	}
	step = stepDeathSignal
	if a.pdeathsig {
		if _, _, err1 = syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0, 0); err1 != 0 {
			goto fail
		}
		if r1, _, _ = syscall.RawSyscall(unix.SYS_GETPPID, 0, 0, 0); r1 != 0 && r1 != a.ppid {
			syscall.RawSyscall(unix.SYS_EXIT_GROUP, 253, 0, 0)
		}
	}
	syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_NAME, uintptr(unsafe.Pointer(&a.name[0])), 0, 0, 0, 0)
	// Its command line too (this copy of the init's argument strings,
	// which /proc/PID/cmdline shows).
	for i = 0; i < len(a.args); i++ {
		a.args[i] = 0
	}
	for i = 0; i < len(a.args) && i < len(a.name) && a.name[i] != 0; i++ {
		a.args[i] = a.name[i]
	}
	step = stepCredentials
	if a.cred {
		// Groups only when asked for: a user namespace may deny setgroups.
		if len(a.groups) > 0 {
			if _, _, err1 = syscall.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(a.groups)), uintptr(unsafe.Pointer(&a.groups[0])), 0); err1 != 0 {
				goto fail
			}
		}
		if _, _, err1 = syscall.RawSyscall(unix.SYS_SETGID, uintptr(a.gid), 0, 0); err1 != 0 {
			goto fail
		}
		if _, _, err1 = syscall.RawSyscall(unix.SYS_SETUID, uintptr(a.uid), 0, 0); err1 != 0 {
			goto fail
		}
	}
	// No capability: it only waits for children (its own, or orphans of
	// its namespace); it never executes anything that would get some.
	if _, _, err1 = syscall.RawSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&a.capHdr)), uintptr(unsafe.Pointer(&a.capSet[0])), 0); err1 != 0 {
		goto fail
	}
	// SIGCHLD is read from a signalfd on descriptor 0; every other
	// inherited descriptor goes, the error pipe with them: its
	// end-of-file tells the init the child is idle.
	if _, _, serr = syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_BLOCK, uintptr(unsafe.Pointer(&a.sigset)), 0, 8, 0, 0); serr == 0 {
		sfd, _, serr = syscall.RawSyscall6(unix.SYS_SIGNALFD4, ^uintptr(0), uintptr(unsafe.Pointer(&a.sigset)), 8, unix.SFD_CLOEXEC, 0, 0)
	}
	if serr == 0 && sfd != 0 {
		if _, _, serr = syscall.RawSyscall(unix.SYS_DUP3, sfd, 0, unix.O_CLOEXEC); serr == 0 {
			sfd = 0
		}
	}
	if serr != 0 {
		syscall.RawSyscall(unix.SYS_CLOSE, 0, 0, 0)
	}
	if _, _, err1 = syscall.RawSyscall(unix.SYS_CLOSE_RANGE, 1, ^uintptr(0), 0); err1 != 0 {
		for r1 = 1; r1 < a.maxFD; r1++ {
			syscall.RawSyscall(unix.SYS_CLOSE, r1, 0, 0)
		}
	}
	for {
		for {
			r1, _, _ = syscall.RawSyscall6(unix.SYS_WAIT4, ^uintptr(0), 0, unix.WNOHANG|unix.WALL, 0, 0, 0)
			if int(r1) <= 0 {
				break
			}
		}
		if serr == 0 {
			// A pending SIGCHLD; read even when the queue is empty
			// blocks until the next one.
			syscall.RawSyscall(unix.SYS_READ, sfd, uintptr(unsafe.Pointer(&a.sigbuf[0])), uintptr(len(a.sigbuf)))
		} else {
			// A profile without signalfd: look again now and then.
			syscall.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&a.pause)), 0, 0)
		}
	}
fail:
	a.report.errno, a.report.step = err1, step
	syscall.RawSyscall(unix.SYS_WRITE, uintptr(a.errPipe), uintptr(unsafe.Pointer(&a.report)), unsafe.Sizeof(a.report))
	for {
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, 253, 0, 0)
	}
}

// spawnIdle starts the idle PID 1 of a pooled container from the calling
// thread (in the workload's pid namespace when that thread unshared one)
// and returns once the child is idle.
func spawnIdle(spec *Process, o spawnOpts) (*spawned, error) {
	a := &idleAttr{cgroupDir: -1, proc: o.proc, pdeathsig: !o.parent, parent: o.parent}
	if spec.UID != 0 || spec.GID != 0 || (spec.SetGroups && len(spec.Groups) > 0) {
		a.cred, a.uid, a.gid = true, spec.UID, spec.GID
		if spec.SetGroups {
			a.groups = spec.Groups
		}
	}
	if o.cg != nil {
		a.cgroups = o.cg.v1
		switch {
		case o.cg.v2Dir >= 0 && o.clone3:
			a.cgroupDir = o.cg.v2Dir
		case o.cg.v2Procs >= 0:
			a.cgroups = append(append([]int(nil), a.cgroups...), o.cg.v2Procs)
		}
	}
	copy(a.name[:len(a.name)-1], IdleArg0)
	a.args = argStrings()
	a.capHdr.Version = unix.LINUX_CAPABILITY_VERSION_3
	a.sigset = 1 << (uint(unix.SIGCHLD) - 1)
	a.pause.Sec = 1
	a.maxFD = 1 << 16
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur < uint64(a.maxFD) {
		a.maxFD = uintptr(rl.Cur)
	}
	var errp [2]int
	if err := unix.Pipe2(errp[:], unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	a.errPipe = errp[1]
	a.ppid = uintptr(os.Getpid())
	syscall.ForkLock.Lock()
	pid, pidfd, e := forkIdle(a)
	syscall.ForkLock.Unlock()
	runtime.KeepAlive(a)
	unix.Close(errp[1])
	if e != 0 {
		unix.Close(errp[0])
		return nil, e
	}
	sp := &spawned{pid: pid, pidfd: int(pidfd), errRead: errp[0], proc: a.proc}
	return sp, sp.result()
}

// argStrings is the memory that holds this process's argument strings,
// one after another as execve laid them out, or nil when os.Args does not
// point there as it should.
func argStrings() []byte {
	if len(os.Args) == 0 || len(os.Args[0]) == 0 {
		return nil
	}
	start := unsafe.StringData(os.Args[0])
	n := 0
	for _, arg := range os.Args {
		if len(arg) > 0 && unsafe.StringData(arg) != (*byte)(unsafe.Add(unsafe.Pointer(start), n)) {
			return nil
		}
		n += len(arg) + 1
	}
	return unsafe.Slice(start, n-1)
}
