package child

import (
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The init's own fork+exec. syscall.ForkExec cannot do two things a
// container process needs between its fork and its execve: join the
// container's cgroup (the init itself stays outside it, so a process
// forked by the init starts in the init's cgroup and must move before it
// runs anything of its own, or a fork bomb could leave children behind in
// the init's cgroup), and, for the main process, mount the /proc of the
// pid namespace it is PID 1 of (only a process of that namespace can,
// without proc's pidns= option; doing it there also spares the init a
// hand-over). So the init forks with its own child code: like syscall's,
// a vfork (vforkSyscall) running only raw system calls between the fork
// and execve, with the runtime told about the fork (the same hooks
// os/exec uses).

//go:linkname runtimeBeforeFork syscall.runtime_BeforeFork
func runtimeBeforeFork()

//go:linkname runtimeAfterFork syscall.runtime_AfterFork
func runtimeAfterFork()

//go:linkname runtimeAfterForkInChild syscall.runtime_AfterForkInChild
func runtimeAfterForkInChild()

// cloneArgs is the kernel's struct clone_args (clone3), up to cgroup.
type cloneArgs struct {
	flags, pidfd, childTID, parentTID, exitSignal, stack, stackSize, tls, setTID, setTIDSize, cgroup uint64
}

// spawnAttr is everything the forked child does, prepared in the parent:
// the child may only make raw system calls.
type spawnAttr struct {
	path *byte
	argv []*byte // nil-terminated
	envp []*byte // nil-terminated
	dir  *byte   // nil: stay
	// fds[i] becomes the child's descriptor i; -1 closes i.
	fds []int
	// cgroups are open v1 tasks files of the container's cgroup: the
	// child, single-threaded, writes "0" (itself) to each first.
	cgroups []int
	// cgroupDir, when >= 0, is the container's cgroup2 directory: the
	// child is forked into it (clone3 CLONE_INTO_CGROUP).
	cgroupDir int
	// proc are the mounts of the /proc of the pid namespace the child is
	// the first process of, made by the child before anything else but
	// the cgroup move (procSteps).
	proc     []procStep
	setsid   bool
	setctty  bool // descriptor 0 becomes the controlling terminal
	cred     bool
	uid, gid uint32
	groups   []uint32
	// setgroups: call setgroups(groups) (else leave the groups alone).
	setgroups bool
	// pdeathsig: SIGKILL when the init dies (not with CLONE_PARENT).
	pdeathsig bool
	ppid      uintptr
	// parent: CLONE_PARENT, the child becomes the init's sibling (its
	// parent reaps it).
	parent bool
	// execFD, with useExecFD, is executed instead of path (execveat).
	execFD    int
	useExecFD bool
	// shimAt is the descriptor the shim's interpreter path names, or -1
	// (spawnRaw sets it and binary, exeguard.go). At execve it holds
	// binary, this program, when withBinary (execFD is then the shim,
	// and binary is executed itself if the shim cannot be: ENOENT, no
	// /proc); otherwise it is closed, so that no process started here
	// can run the shim as this program.
	shimAt, binary int
	withBinary     bool
	// privateProc: execFD is the stages' shim, whose relative
	// interpreter path is resolved from a procfs instance of the child's
	// own (chdirPrivateProc); where there can be none, binary is executed
	// itself.
	privateProc bool
	// seccomp, when set, is loaded last before execve (with
	// seccompFlags); the thread has no_new_privs already.
	seccomp      *unix.SockFprog
	seccompFlags uintptr
	// plainFork: the child gets its own copy of memory (see spawnRaw).
	plainFork bool
	// errPipe is the write end of a close-on-exec pipe: a failing child
	// writes its report there.
	errPipe int
	clone3  cloneArgs
}

// Steps of the child, named in its errors (childError).
const (
	stepCgroup = iota + 1
	stepProc
	stepSession
	stepFiles
	stepTerminal
	stepCredentials
	stepChdir
	stepDeathSignal
	stepSeccomp
	stepExec
)

var stepNames = [...]string{
	stepCgroup:      "join cgroup",
	stepProc:        "mount /proc",
	stepSession:     "setsid",
	stepFiles:       "set up descriptors",
	stepTerminal:    "set controlling terminal",
	stepCredentials: "set credentials",
	stepChdir:       "chdir",
	stepDeathSignal: "parent-death signal",
	stepSeccomp:     "load seccomp filter",
	stepExec:        "exec",
}

// childReport is what a failing child writes to its error pipe.
type childReport struct {
	errno syscall.Errno
	step  uintptr
	// index is the failing procStep's (stepProc).
	index uintptr
}

// childError is a child's failure before its execve.
type childError struct {
	Step  string
	Path  string // the procStep's path, for stepProc
	Errno syscall.Errno
}

func (e *childError) Error() string {
	if e.Path != "" {
		return e.Step + " " + e.Path + ": " + e.Errno.Error()
	}
	return e.Step + ": " + e.Errno.Error()
}

func (e *childError) Unwrap() error { return e.Errno }

// forkChild forks (a vfork where vforkFlags has one: no page tables
// copied, no copy-on-write faults in the init afterwards, nothing to tear
// down at the child's execve); the child does what a says and
// execs, and the parent returns once it has, or has failed. It returns
// the child's pid and pidfd (CLONE_PIDFD). The child writes nothing the
// parent reads again but a's slices and its own frame, which the parent
// leaves at once. The caller has called runtimeBeforeFork and calls
// runtimeAfterFork.
//
//go:noinline
//go:norace
//go:nosplit
func forkChild(a *spawnAttr) (pid int, pidfd int32, err1 syscall.Errno) {
	var (
		r1     uintptr
		i      int
		next   int
		step   uintptr
		zero   = [1]byte{'0'}
		flags  uintptr
		e      uintptr
		report childReport
		// dfl is a kernel struct sigaction of zeroes: SIG_DFL.
		dfl [4]uint64
	)
	pidfd = -1
	flags = unix.CLONE_PIDFD | uintptr(unix.SIGCHLD)
	if !a.plainFork {
		flags |= vforkFlags
	}
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
		r1, e = vforkSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&a.clone3)), unsafe.Sizeof(a.clone3), 0)
	} else {
		r1, e = vforkSyscall(unix.SYS_CLONE, flags, 0, uintptr(unsafe.Pointer(&pidfd)))
	}
	err1 = syscall.Errno(e)
	if err1 != 0 || r1 != 0 {
		// The parent: only the results of vforkSyscall, written after the
		// child has gone.
		return int(r1), pidfd, err1
	}

	// The child: only raw system calls from here.
	runtimeAfterForkInChild()
	// The signals the init ignores while it starts are not the child's to
	// inherit (an ignored signal stays ignored across execve).
	for i = 0; i < len(resetSignals); i++ {
		syscall.RawSyscall6(unix.SYS_RT_SIGACTION, resetSignals[i], uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
	}
	step = stepCgroup
	for i = 0; i < len(a.cgroups); i++ {
		if _, _, err1 = syscall.RawSyscall(unix.SYS_WRITE, uintptr(a.cgroups[i]), uintptr(unsafe.Pointer(&zero[0])), 1); err1 != 0 {
			goto fail
		}
	}
	// The /proc of the pid namespace this process is the first of: a new
	// proc instance replaces the init's, then what Setup would hide and
	// protect below it is hidden and protected again.
	step = stepProc
	if i, err1 = mountProc(a.proc); err1 != 0 {
		goto fail
	}
	if a.setsid {
		step = stepSession
		if _, _, err1 = syscall.RawSyscall(unix.SYS_SETSID, 0, 0, 0); err1 != 0 {
			goto fail
		}
	}
	// Descriptors: first move every source that a lower target would
	// overwrite out of the way (close-on-exec), then put each in place.
	// The numbers above every one the child keeps are free.
	step = stepFiles
	next = len(a.fds)
	for i = 0; i < len(a.fds); i++ {
		if a.fds[i] >= next {
			next = a.fds[i] + 1
		}
	}
	if a.errPipe >= next {
		next = a.errPipe + 1
	}
	if a.useExecFD && a.execFD >= next {
		next = a.execFD + 1
	}
	if a.withBinary && a.binary >= next {
		next = a.binary + 1
	}
	// The moved descriptors stay clear of the shim's.
	if a.shimAt >= next && a.shimAt <= next+len(a.fds)+3 {
		next = a.shimAt + 1
	}
	if a.errPipe < len(a.fds) {
		if _, _, err1 = syscall.RawSyscall(unix.SYS_DUP3, uintptr(a.errPipe), uintptr(next), unix.O_CLOEXEC); err1 != 0 {
			goto fail
		}
		a.errPipe = next
		next++
	}
	if a.useExecFD && a.execFD < len(a.fds) {
		if _, _, err1 = syscall.RawSyscall(unix.SYS_DUP3, uintptr(a.execFD), uintptr(next), unix.O_CLOEXEC); err1 != 0 {
			goto fail
		}
		a.execFD = next
		next++
	}
	if a.withBinary && a.binary < len(a.fds) {
		if _, _, err1 = syscall.RawSyscall(unix.SYS_DUP3, uintptr(a.binary), uintptr(next), unix.O_CLOEXEC); err1 != 0 {
			goto fail
		}
		a.binary = next
		next++
	}
	for i = 0; i < len(a.fds); i++ {
		if a.fds[i] >= 0 && a.fds[i] < i {
			if _, _, err1 = syscall.RawSyscall(unix.SYS_DUP3, uintptr(a.fds[i]), uintptr(next), unix.O_CLOEXEC); err1 != 0 {
				goto fail
			}
			a.fds[i] = next
			next++
		}
	}
	for i = 0; i < len(a.fds); i++ {
		if a.fds[i] < 0 {
			syscall.RawSyscall(unix.SYS_CLOSE, uintptr(i), 0, 0)
			continue
		}
		if a.fds[i] == i {
			if _, _, err1 = syscall.RawSyscall(unix.SYS_FCNTL, uintptr(i), unix.F_SETFD, 0); err1 != 0 {
				goto fail
			}
			continue
		}
		if _, _, err1 = syscall.RawSyscall(unix.SYS_DUP3, uintptr(a.fds[i]), uintptr(i), 0); err1 != 0 {
			goto fail
		}
	}
	if a.setctty {
		step = stepTerminal
		if _, _, err1 = syscall.RawSyscall(unix.SYS_IOCTL, 0, unix.TIOCSCTTY, 1); err1 != 0 {
			goto fail
		}
	}
	if a.cred {
		step = stepCredentials
		if a.setgroups {
			var p uintptr
			if len(a.groups) > 0 {
				p = uintptr(unsafe.Pointer(&a.groups[0]))
			}
			if _, _, err1 = syscall.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(a.groups)), p, 0); err1 != 0 {
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
	if a.dir != nil {
		step = stepChdir
		if _, _, err1 = syscall.RawSyscall(unix.SYS_CHDIR, uintptr(unsafe.Pointer(a.dir)), 0, 0); err1 != 0 {
			goto fail
		}
	}
	if a.pdeathsig {
		step = stepDeathSignal
		if _, _, err1 = syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0, 0); err1 != 0 {
			goto fail
		}
		// The init may have died before the signal was asked for. (In a
		// new pid namespace the parent is not visible: 0.)
		if r1, _, _ = syscall.RawSyscall(unix.SYS_GETPPID, 0, 0, 0); r1 != 0 && r1 != a.ppid {
			syscall.RawSyscall(unix.SYS_EXIT_GROUP, 253, 0, 0)
		}
	}
	if a.privateProc && a.withBinary && chdirPrivateProc() != 0 {
		a.execFD = a.binary
	}
	if a.shimAt >= 0 {
		if !a.withBinary {
			syscall.RawSyscall(unix.SYS_CLOSE, uintptr(a.shimAt), 0, 0)
		} else if _, _, err1 = syscall.RawSyscall(unix.SYS_DUP3, uintptr(a.binary), uintptr(a.shimAt), unix.O_CLOEXEC); err1 != 0 {
			// No room for the shim's descriptor: this program itself.
			a.execFD = a.binary
		}
	}
	if a.seccomp != nil {
		step = stepSeccomp
		if _, _, err1 = syscall.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, a.seccompFlags, uintptr(unsafe.Pointer(a.seccomp))); err1 != 0 {
			goto fail
		}
	}
	step = stepExec
	if a.useExecFD {
		_, _, err1 = syscall.RawSyscall6(unix.SYS_EXECVEAT, uintptr(a.execFD), uintptr(unsafe.Pointer(a.path)), uintptr(unsafe.Pointer(&a.argv[0])), uintptr(unsafe.Pointer(&a.envp[0])), unix.AT_EMPTY_PATH, 0)
		if err1 == unix.ENOENT && a.withBinary && a.execFD != a.binary {
			_, _, err1 = syscall.RawSyscall6(unix.SYS_EXECVEAT, uintptr(a.binary), uintptr(unsafe.Pointer(a.path)), uintptr(unsafe.Pointer(&a.argv[0])), uintptr(unsafe.Pointer(&a.envp[0])), unix.AT_EMPTY_PATH, 0)
		}
	} else {
		_, _, err1 = syscall.RawSyscall(unix.SYS_EXECVE, uintptr(unsafe.Pointer(a.path)), uintptr(unsafe.Pointer(&a.argv[0])), uintptr(unsafe.Pointer(&a.envp[0])))
	}
fail:
	report.errno, report.step, report.index = err1, step, uintptr(i)
	syscall.RawSyscall(unix.SYS_WRITE, uintptr(a.errPipe), uintptr(unsafe.Pointer(&report)), unsafe.Sizeof(report))
	for {
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, 253, 0, 0)
	}
}

// vforkRefused is set once the kernel refused a vfork (see spawnRaw).
var vforkRefused atomic.Bool

// mountProc mounts the /proc of the calling process's pid namespace as
// steps say (procSteps): a new proc instance replaces the init's, then
// what Setup would hide and protect below it is hidden and protected
// again. It runs in a forked child, raw system calls only, and returns
// the failing step's index and errno.
//
//go:norace
//go:nosplit
func mountProc(steps []procStep) (i int, err1 syscall.Errno) {
	var r1, fsfd, mnt uintptr
	for i = 0; i < len(steps); i++ {
		switch steps[i].op {
		case procMount:
			if r1, _, err1 = syscall.RawSyscall(unix.SYS_FSOPEN, uintptr(unsafe.Pointer(&procName[0])), unix.FSOPEN_CLOEXEC, 0); err1 != 0 {
				return i, err1
			}
			fsfd = r1
			// The source runc and Setup give it (mountinfo shows it).
			if _, _, err1 = syscall.RawSyscall6(unix.SYS_FSCONFIG, fsfd, unix.FSCONFIG_SET_STRING, uintptr(unsafe.Pointer(&sourceKey[0])), uintptr(unsafe.Pointer(&procName[0])), 0, 0); err1 != 0 {
				return i, err1
			}
			if _, _, err1 = syscall.RawSyscall6(unix.SYS_FSCONFIG, fsfd, unix.FSCONFIG_CMD_CREATE, 0, 0, 0, 0); err1 != 0 {
				return i, err1
			}
			if r1, _, err1 = syscall.RawSyscall(unix.SYS_FSMOUNT, fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC); err1 != 0 {
				return i, err1
			}
			syscall.RawSyscall(unix.SYS_CLOSE, fsfd, 0, 0)
			mnt = r1
			if _, _, err1 = syscall.RawSyscall(unix.SYS_UMOUNT2, uintptr(unsafe.Pointer(steps[i].path)), unix.MNT_DETACH, 0); err1 != 0 {
				return i, err1
			}
			if _, _, err1 = syscall.RawSyscall6(unix.SYS_MOVE_MOUNT, mnt, uintptr(unsafe.Pointer(&emptyPath[0])), uintptr(unix.AT_FDCWD&0xffffffff), uintptr(unsafe.Pointer(steps[i].path)), unix.MOVE_MOUNT_F_EMPTY_PATH, 0); err1 != 0 {
				return i, err1
			}
			syscall.RawSyscall(unix.SYS_CLOSE, mnt, 0, 0)
		case procMask:
			// A mount the init made, detached: tmpfs over a directory,
			// /dev/null over a file.
			if _, _, err1 = syscall.RawSyscall6(unix.SYS_MOVE_MOUNT, uintptr(steps[i].fd), uintptr(unsafe.Pointer(&emptyPath[0])), uintptr(unix.AT_FDCWD&0xffffffff), uintptr(unsafe.Pointer(steps[i].path)), unix.MOVE_MOUNT_F_EMPTY_PATH, 0); err1 != 0 {
				return i, err1
			}
		case procReadonly:
			r1, _, err1 = syscall.RawSyscall(unix.SYS_OPEN_TREE, uintptr(unix.AT_FDCWD&0xffffffff), uintptr(unsafe.Pointer(steps[i].path)), unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
			if err1 == unix.ENOENT {
				continue
			}
			if err1 != 0 {
				return i, err1
			}
			mnt = r1
			if _, _, err1 = syscall.RawSyscall6(unix.SYS_MOUNT_SETATTR, mnt, uintptr(unsafe.Pointer(&emptyPath[0])), unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, uintptr(unsafe.Pointer(&readonlyAttr)), unsafe.Sizeof(readonlyAttr), 0); err1 != 0 {
				return i, err1
			}
			if _, _, err1 = syscall.RawSyscall6(unix.SYS_MOVE_MOUNT, mnt, uintptr(unsafe.Pointer(&emptyPath[0])), uintptr(unix.AT_FDCWD&0xffffffff), uintptr(unsafe.Pointer(steps[i].path)), unix.MOVE_MOUNT_F_EMPTY_PATH, 0); err1 != 0 {
				return i, err1
			}
			syscall.RawSyscall(unix.SYS_CLOSE, mnt, 0, 0)
		}
	}
	return 0, 0
}

// Constants the child reads.
var (
	procName     = [...]byte{'p', 'r', 'o', 'c', 0}
	sourceKey    = [...]byte{'s', 'o', 'u', 'r', 'c', 'e', 0}
	emptyPath    = [...]byte{0}
	readonlyAttr = unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC}
)

// spawned is a process forkChild started.
type spawned struct {
	pid   int
	pidfd int
	// errRead is the read end of the child's error pipe; result closes
	// it.
	errRead int
	// proc is what the child was told to mount, for its errors.
	proc []procStep
}

// spawnRaw forks and execs path with a, and returns once the child has
// exec'd (or failed: result).
func spawnRaw(path string, args, env []string, a *spawnAttr) (*spawned, error) {
	var err error
	if a.path, err = syscall.BytePtrFromString(path); err != nil {
		return nil, err
	}
	if a.argv, err = syscall.SlicePtrFromStrings(args); err != nil {
		return nil, err
	}
	if a.envp, err = syscall.SlicePtrFromStrings(env); err != nil {
		return nil, err
	}
	var errp [2]int
	if err := unix.Pipe2(errp[:], unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	a.errPipe = errp[1]
	a.ppid = uintptr(os.Getpid())
	a.plainFork = vforkRefused.Load()
	a.shimAt, a.binary = shimInterpFD, binaryFD
	if binaryFD < 0 {
		a.withBinary = false
	}
	syscall.ForkLock.Lock()
	runtimeBeforeFork()
	pid, pidfd, e := forkChild(a)
	runtimeAfterFork()
	if e == unix.EINVAL && !a.plainFork {
		// Before Linux 6.3 a process whose children get another time
		// namespace cannot share its memory with a child (CLONE_VM):
		// a plain fork then, for this init's every process.
		vforkRefused.Store(true)
		a.plainFork = true
		runtimeBeforeFork()
		pid, pidfd, e = forkChild(a)
		runtimeAfterFork()
	}
	syscall.ForkLock.Unlock()
	unix.Close(errp[1])
	if e != 0 {
		unix.Close(errp[0])
		return nil, e
	}
	sp := &spawned{pid: pid, pidfd: int(pidfd), errRead: errp[0], proc: a.proc}
	return sp, sp.result()
}

// result waits for the child's execve: end-of-file on the error pipe
// means it happened; a report means the child failed (and is reaped): a
// *childError.
func (sp *spawned) result() error {
	defer func() {
		if sp.errRead >= 0 {
			unix.Close(sp.errRead)
			sp.errRead = -1
		}
	}()
	var r childReport
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&r)), unsafe.Sizeof(r))
	for {
		n, err := unix.Read(sp.errRead, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		sp.reap()
		if n != len(buf) {
			return errors.New("short read from the child's error pipe")
		}
		ce := &childError{Step: "exec", Errno: r.errno}
		if r.step < uintptr(len(stepNames)) && stepNames[r.step] != "" {
			ce.Step = stepNames[r.step]
		}
		if r.step == stepProc && r.index < uintptr(len(sp.proc)) {
			ce.Path = sp.proc[r.index].name
		}
		return ce
	}
}

// reap collects a failed child (not one started with CLONE_PARENT, which
// is not ours to wait for) and closes its pidfd.
func (sp *spawned) reap() {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(sp.pid, &ws, 0, nil)
		if err != unix.EINTR {
			break
		}
	}
	if sp.pidfd >= 0 {
		unix.Close(sp.pidfd)
		sp.pidfd = -1
	}
}
