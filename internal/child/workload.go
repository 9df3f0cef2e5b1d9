package child

import (
	"errors"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/rootfs"
)

// The workload owns its container: the init lives outside the pid
// namespace and the cgroup of the processes it starts. It stays in the
// pid namespace and the cgroups of whoever started it; the workload's main
// process is PID 1 of a pid namespace of its own (the init unshares it on
// its main thread before the first fork), every process joins the
// container's cgroup before it runs anything of its own, and the cgroup
// namespace is rooted at that cgroup. So the workload's pids, memory and
// CPU limits count the workload alone, nothing it does can starve or
// signal the init, and it sees nothing of vessel.

// cgroupSet is the container's cgroup as the init holds it: files the
// parent opened (so that an init in a user namespace, which could not
// open them, can use them: the kernel checks the opener's credentials).
//
// Moving a whole process between cgroups takes a global lock whose
// release waits for an RCU grace period (milliseconds here); moving the
// calling thread alone (v1's tasks file, "0") does not. So in v1 every
// process the init starts moves itself, single-threaded, through tasks;
// in v2, where only whole processes move, it is forked into the cgroup
// (clone3 CLONE_INTO_CGROUP) instead. On a hybrid host the init lives in
// the container's cgroup of the unified hierarchy (it holds no limits:
// the v1 controllers do), so nothing moves there.
type cgroupSet struct {
	// v1 are the container's tasks files, v1Home the init's own.
	v1, v1Home []int
	// v2Dir is the container's cgroup2 directory (CLONE_INTO_CGROUP),
	// v2Procs its cgroup.procs (the exec stage, a Go program, moves
	// itself late: its threads must not count there), v2Home the init's
	// own cgroup.procs (for the cgroup namespace of a spare), or -1.
	v2Dir, v2Procs, v2Home int
	// list is a cgroup.procs open for reading (the container's processes).
	list int
}

// joinFDs are the files a process writes "0" to, to join the container's
// cgroup (the exec stage: v1's tasks and v2's cgroup.procs).
func (cg *cgroupSet) joinFDs() []int {
	if cg == nil {
		return nil
	}
	fds := append([]int(nil), cg.v1...)
	if cg.v2Procs >= 0 {
		fds = append(fds, cg.v2Procs)
	}
	return fds
}

// CgroupFiles opens what the init of a container with these places
// needs, in the order it takes them (takeCgroups). Per v1 place: its
// tasks, then, with a Home, the home's tasks. Per v2 place: its
// directory and its cgroup.procs, then, with a Home, the home's
// cgroup.procs. Last, a cgroup.procs to read. The caller closes them once
// sent.
func CgroupFiles(places []CgroupPlace) ([]*os.File, error) {
	var files []*os.File
	open := func(p string, flag int) error {
		f, err := os.OpenFile(p, flag|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		files = append(files, f)
		return nil
	}
	fail := func(err error) ([]*os.File, error) {
		for _, f := range files {
			f.Close()
		}
		return nil, err
	}
	for _, p := range places {
		if p.V2 {
			if err := open(p.Dir, os.O_RDONLY|unix.O_DIRECTORY); err != nil {
				return fail(err)
			}
			if err := open(p.Dir+"/cgroup.procs", os.O_WRONLY); err != nil {
				return fail(err)
			}
			if p.Home != "" {
				if err := open(p.Home+"/cgroup.procs", os.O_WRONLY); err != nil {
					return fail(err)
				}
			}
			continue
		}
		if err := open(p.Dir+"/tasks", os.O_WRONLY); err != nil {
			return fail(err)
		}
		if p.Home != "" {
			if err := open(p.Home+"/tasks", os.O_WRONLY); err != nil {
				return fail(err)
			}
		}
	}
	if len(places) > 0 {
		if err := open(places[0].Dir+"/cgroup.procs", os.O_RDONLY); err != nil {
			return fail(err)
		}
	}
	return files, nil
}

// takeCgroups takes the files CgroupFiles opened (they stay open for the
// init's life).
func takeCgroups(places []CgroupPlace, files []*os.File) (*cgroupSet, error) {
	cg := &cgroupSet{v2Dir: -1, v2Procs: -1, v2Home: -1, list: -1}
	take := func() (int, error) {
		if len(files) == 0 {
			return -1, errors.New("fewer cgroup files than the config's cgroups need")
		}
		f := files[0]
		files = files[1:]
		nfd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 3)
		f.Close()
		return nfd, err
	}
	for _, p := range places {
		fd, err := take()
		if err != nil {
			return nil, err
		}
		if p.V2 {
			cg.v2Dir = fd
			if cg.v2Procs, err = take(); err != nil {
				return nil, err
			}
			if p.Home != "" {
				if cg.v2Home, err = take(); err != nil {
					return nil, err
				}
			}
			continue
		}
		cg.v1 = append(cg.v1, fd)
		if p.Home != "" {
			h, err := take()
			if err != nil {
				return nil, err
			}
			cg.v1Home = append(cg.v1Home, h)
		}
	}
	if len(places) > 0 {
		fd, err := take()
		if err != nil {
			return nil, err
		}
		cg.list = fd
	}
	return cg, nil
}

// pids lists the processes in the container's cgroup (host pids: the
// init sees the whole tree below its own pid namespace), or nil without
// a cgroup.
func (cg *cgroupSet) pids() []int {
	if cg == nil || cg.list < 0 {
		return nil
	}
	buf := make([]byte, 64<<10)
	var data []byte
	for off := int64(0); ; {
		n, err := unix.Pread(cg.list, buf, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			break
		}
		data = append(data, buf[:n]...)
		off += int64(n)
	}
	pids := []int{}
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// unshareNS makes the init's main thread a cgroup namespace rooted at
// the container's cgroup: the namespace's root is the cgroup the thread
// is in when it unshares, so the thread goes there for that moment and
// back home after (in v1 that thread alone; in v2, for a spare only, the
// whole init, before any workload process exists).
func (cg *cgroupSet) unshareNS() error {
	self := []byte("0")
	move := func(fds []int) error {
		for _, fd := range fds {
			if _, err := unix.Write(fd, self); err != nil {
				return err
			}
		}
		return nil
	}
	var there, home []int
	if len(cg.v1Home) == len(cg.v1) {
		there, home = cg.v1, cg.v1Home
	}
	if cg.v2Home >= 0 {
		there, home = append(append([]int(nil), there...), cg.v2Procs), append(append([]int(nil), home...), cg.v2Home)
	}
	err := move(there)
	if err == nil {
		err = unix.Unshare(unix.CLONE_NEWCGROUP)
	}
	if herr := move(home); err == nil {
		err = herr
	}
	return err
}

// joinsPID reports whether the init joins a pid namespace.
func joinsPID(joins []namespaces.Namespace) bool {
	for _, j := range joins {
		if j.Kind == namespaces.PID {
			return true
		}
	}
	return false
}

// pidfdGetPidNamespace is PIDFD_GET_PID_NAMESPACE (Linux 6.11): a
// descriptor of the pid namespace of the process a pidfd refers to.
const pidfdGetPidNamespace = 0xFF<<8 | 5

// swapProcOf gives the container the /proc of the pid namespace of the
// process pidfd refers to (its PID 1, or a member of a joined namespace).
// It runs on a thread of the init other than the main one: the main
// thread has the workload's security profile by now, the others keep the
// init's privileges.
func swapProcOf(swap *rootfs.ProcSwap, pidfd int) error {
	errc := make(chan error, 1)
	go func() {
		ns, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(pidfd), pidfdGetPidNamespace, 0)
		if e != 0 {
			errc <- e
			return
		}
		defer unix.Close(int(ns))
		errc <- rootfs.SwapProc(swap, int(ns))
	}()
	return <-errc
}

// selfExeFD is this program's executable, opened when the init starts
// (the exec stage is executed from it: /proc/self means nothing to the
// init in the container's own /proc).
var selfExeFD = -1

func openSelfExe() error {
	fd, err := unix.Open("/proc/self/exe", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	selfExeFD = fd
	return nil
}

// IdleArg0 is the argv[0] of an idle PID 1 (Process.Idle).
const IdleArg0 = "vessel-idle"

// runIdle is an idle PID 1: it only reaps the processes its namespace's
// other processes leave behind (orphans are re-parented to it), so that
// they neither stay zombies nor hold pids of the container's limit.
func runIdle() {
	// Its name in ps, whatever the executable is called.
	name := []byte(IdleArg0 + "\x00")
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGCHLD)
	for {
		for {
			pid, err := unix.Wait4(-1, nil, unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if pid <= 0 || err != nil {
				break
			}
		}
		<-sigs
	}
}
