package child

import (
	"errors"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The init's own fork+exec. syscall.ForkExec cannot do two things a
// container process needs between its fork and its execve: join the
// container's cgroup (the init itself stays outside it, so a process
// forked by the init starts in the init's cgroup and must move before it
// runs anything of its own, or a fork bomb could leave children behind in
// the init's cgroup), and wait for the init (the main process waits while
// the init mounts the /proc of the pid namespace it is PID 1 of, or, in
// the OCI created state, until start). So the init forks with its own
// child code: like syscall's, it runs only raw system calls between the
// fork and execve, with the runtime told about the fork (the same hooks
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
	// hold, when >= 0, is read before anything else but the cgroup move:
	// one byte lets the child go on; end-of-file makes it exit.
	hold     int
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
	// seccomp, when set, is loaded last before execve (with
	// seccompFlags); the thread has no_new_privs already.
	seccomp      *unix.SockFprog
	seccompFlags uintptr
	// errPipe is the write end of a close-on-exec pipe: a failing child
	// writes its errno there.
	errPipe int
	clone3  cloneArgs
}

// forkChild forks; the child does what a says and execs. It returns the
// child's pid and pidfd (CLONE_PIDFD).
//
//go:norace
//go:nosplit
func forkChild(a *spawnAttr) (pid int, pidfd int32, err1 syscall.Errno) {
	var (
		r1    uintptr
		i     int
		next  int
		one   [1]byte
		zero  = [1]byte{'0'}
		flags uintptr
	)
	pidfd = -1
	flags = unix.CLONE_PIDFD | uintptr(unix.SIGCHLD)
	if a.parent {
		flags |= unix.CLONE_PARENT
	}
	// The descriptors are rearranged above every number the child keeps.
	next = len(a.fds)
	for i = 0; i < len(a.fds); i++ {
		if a.fds[i] >= next {
			next = a.fds[i] + 1
		}
	}
	if a.hold >= next {
		next = a.hold + 1
	}
	if a.errPipe >= next {
		next = a.errPipe + 1
	}
	if a.useExecFD && a.execFD >= next {
		next = a.execFD + 1
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

	// The child: only raw system calls from here.
	runtimeAfterForkInChild()
	for i = 0; i < len(a.cgroups); i++ {
		if _, _, err1 = syscall.RawSyscall(unix.SYS_WRITE, uintptr(a.cgroups[i]), uintptr(unsafe.Pointer(&zero[0])), 1); err1 != 0 {
			goto fail
		}
	}
	if a.hold >= 0 {
		r1, _, err1 = syscall.RawSyscall(unix.SYS_READ, uintptr(a.hold), uintptr(unsafe.Pointer(&one[0])), 1)
		if err1 != 0 || r1 != 1 {
			// The init gave up on this process.
			syscall.RawSyscall(unix.SYS_EXIT_GROUP, 253, 0, 0)
		}
		syscall.RawSyscall(unix.SYS_CLOSE, uintptr(a.hold), 0, 0)
	}
	if a.setsid {
		if _, _, err1 = syscall.RawSyscall(unix.SYS_SETSID, 0, 0, 0); err1 != 0 {
			goto fail
		}
	}
	// Descriptors: first move every source that a lower target would
	// overwrite out of the way (close-on-exec), then put each in place.
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
		if _, _, err1 = syscall.RawSyscall(unix.SYS_IOCTL, 0, unix.TIOCSCTTY, 1); err1 != 0 {
			goto fail
		}
	}
	if a.cred {
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
		if _, _, err1 = syscall.RawSyscall(unix.SYS_CHDIR, uintptr(unsafe.Pointer(a.dir)), 0, 0); err1 != 0 {
			goto fail
		}
	}
	if a.pdeathsig {
		if _, _, err1 = syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0, 0); err1 != 0 {
			goto fail
		}
		// The init may have died before the signal was asked for. (In a
		// new pid namespace the parent is not visible: 0.)
		if r1, _, _ = syscall.RawSyscall(unix.SYS_GETPPID, 0, 0, 0); r1 != 0 && r1 != a.ppid {
			syscall.RawSyscall(unix.SYS_EXIT_GROUP, 253, 0, 0)
		}
	}
	if a.seccomp != nil {
		if _, _, err1 = syscall.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, a.seccompFlags, uintptr(unsafe.Pointer(a.seccomp))); err1 != 0 {
			goto fail
		}
	}
	if a.useExecFD {
		_, _, err1 = syscall.RawSyscall6(unix.SYS_EXECVEAT, uintptr(a.execFD), uintptr(unsafe.Pointer(a.path)), uintptr(unsafe.Pointer(&a.argv[0])), uintptr(unsafe.Pointer(&a.envp[0])), unix.AT_EMPTY_PATH, 0)
	} else {
		_, _, err1 = syscall.RawSyscall(unix.SYS_EXECVE, uintptr(unsafe.Pointer(a.path)), uintptr(unsafe.Pointer(&a.argv[0])), uintptr(unsafe.Pointer(&a.envp[0])))
	}
fail:
	syscall.RawSyscall(unix.SYS_WRITE, uintptr(a.errPipe), uintptr(unsafe.Pointer(&err1)), unsafe.Sizeof(err1))
	for {
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, 253, 0, 0)
	}
}

// spawned is a process forkChild started.
type spawned struct {
	pid   int
	pidfd int
	// errRead is the read end of the child's error pipe; release closes
	// it once the child has exec'd or failed.
	errRead int
	// hold is the write end of the hold pipe (-1 when not held).
	hold int
}

// spawnRaw forks and execs path with a; the hold pipe is made when held.
// Without hold it returns once the child has exec'd (or failed).
func spawnRaw(path string, args, env []string, a *spawnAttr, held bool) (*spawned, error) {
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
	a.hold = -1
	var holdp [2]int
	if held {
		if err := unix.Pipe2(holdp[:], unix.O_CLOEXEC); err != nil {
			unix.Close(errp[0])
			unix.Close(errp[1])
			return nil, err
		}
		a.hold = holdp[0]
	}
	a.ppid = uintptr(os.Getpid())
	syscall.ForkLock.Lock()
	pid, pidfd, e := forkChild(a)
	syscall.ForkLock.Unlock()
	unix.Close(errp[1])
	if held {
		unix.Close(holdp[0])
	}
	if e != 0 {
		unix.Close(errp[0])
		if held {
			unix.Close(holdp[1])
		}
		return nil, e
	}
	sp := &spawned{pid: pid, pidfd: int(pidfd), errRead: errp[0], hold: -1}
	if held {
		sp.hold = holdp[1]
		return sp, nil
	}
	return sp, sp.result()
}

// release lets a held child go on to execve and reports how that went.
func (sp *spawned) release() error {
	if sp.hold >= 0 {
		_, err := unix.Write(sp.hold, []byte{1})
		unix.Close(sp.hold)
		sp.hold = -1
		if err != nil {
			sp.abort()
			return err
		}
	}
	return sp.result()
}

// result waits for the child's execve: end-of-file on the error pipe
// means it happened; an errno means the child failed (and is reaped).
func (sp *spawned) result() error {
	defer func() {
		if sp.errRead >= 0 {
			unix.Close(sp.errRead)
			sp.errRead = -1
		}
	}()
	var buf [unsafe.Sizeof(syscall.Errno(0))]byte
	for {
		n, err := unix.Read(sp.errRead, buf[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if n != len(buf) {
			sp.reap()
			return errors.New("short read from the child's error pipe")
		}
		errno := *(*syscall.Errno)(unsafe.Pointer(&buf[0]))
		sp.reap()
		return errno
	}
}

// abort kills a child that will not be released and reaps it.
func (sp *spawned) abort() {
	if sp.hold >= 0 {
		unix.Close(sp.hold)
		sp.hold = -1
	}
	_ = unix.Kill(sp.pid, unix.SIGKILL)
	if sp.errRead >= 0 {
		unix.Close(sp.errRead)
		sp.errRead = -1
	}
	sp.reap()
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
