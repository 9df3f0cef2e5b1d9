package child

import (
	"errors"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/internal/fsmount"
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
	// v2NS is the cgroup namespace the parent opened these files in (a
	// cgroup2 place's last file), for the init to open a cgroup below the
	// container's as the parent would (execLeaf), or -1.
	v2NS int
	// leaf is where Exec'd processes join once the container's cgroup
	// refuses them (see execLeaf), nil before.
	leaf *execLeaf
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

// homeFiles are the caller's own cgroup files CgroupFiles opened, by
// path, kept open for the program's life (a program's cgroup cannot go
// while the program is in it).
var homeFiles sync.Map // string -> *os.File

// homeFile returns a copy of the descriptor of p, opened with flag the
// first time.
func homeFile(p string, flag int) (*os.File, error) {
	v, ok := homeFiles.Load(p)
	if !ok {
		f, err := os.OpenFile(p, flag|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		if v, ok = homeFiles.LoadOrStore(p, f); ok {
			f.Close()
		}
	}
	fd, err := unix.FcntlInt(v.(*os.File).Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "dup", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}

// CgroupFiles opens what the init of a container with these places
// needs, in the order it takes them (takeCgroups). Per v1 place: its
// tasks, then, with a Home, the home's tasks. Per v2 place: its
// directory and its cgroup.procs, then, with a Home, the home's
// cgroup.procs, then the calling thread's cgroup namespace. Last, a
// cgroup.procs to read. The caller closes them once sent.
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
	// The caller's own v1 cgroups are the same for every container it
	// starts: their tasks files are opened once (a path walk and a kernfs
	// open each, some 14 us), and sent as copies.
	openHome := func(p string, flag int) error {
		f, err := homeFile(p, flag)
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
			if err := open("/proc/thread-self/ns/cgroup", os.O_RDONLY); err != nil {
				return fail(err)
			}
			continue
		}
		if err := open(p.Dir+"/tasks", os.O_WRONLY); err != nil {
			return fail(err)
		}
		if p.Home != "" {
			if err := openHome(p.Home+"/tasks", os.O_WRONLY); err != nil {
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
	cg := &cgroupSet{v2Dir: -1, v2Procs: -1, v2Home: -1, v2NS: -1, list: -1}
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
			if cg.v2NS, err = take(); err != nil {
				return nil, err
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
	if cg == nil {
		return nil
	}
	if cg.v2Dir >= 0 {
		// The whole cgroup2 subtree: a booted system's init moves every
		// process into child cgroups of the container's.
		pids := []int{}
		cg.walk(func(_ string, list []string) bool {
			for _, f := range list {
				if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
					pids = append(pids, pid)
				}
			}
			return false
		})
		return pids
	}
	if cg.list < 0 {
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

// A procStep is one step of a process's mounting of its own /proc
// (forkChild): a proc instance at path, a prepared mask attached over
// path, or path bound read-only.
type procStep struct {
	op   uint8
	path *byte
	// fd is procMask's detached mount, made by the init.
	fd int
	// name is path, for errors.
	name string
}

const (
	procMount = iota + 1
	procMask
	procReadonly
)

// procSteps turns sw into the steps the first process of a new pid
// namespace (its PID 1, forkChild) runs to mount that namespace's /proc
// in place of the one Setup mounted for the init's: PID 1 mounts it as
// its own, which needs no pidns= option, so no kernel version. The masks
// are made here, detached, from what Setup's proc shows (the same
// entries: only pid directories differ); close closes them once the
// process has started.
func procSteps(sw *rootfs.ProcSwap) (steps []procStep, close func(), err error) {
	close = func() {
		for _, s := range steps {
			if s.op == procMask {
				unix.Close(s.fd)
			}
		}
	}
	add := func(op uint8, p string, fd int) error {
		b, err := syscall.BytePtrFromString(p)
		if err != nil {
			return err
		}
		steps = append(steps, procStep{op: op, path: b, fd: fd, name: p})
		return nil
	}
	for _, d := range sw.Dests {
		if err := add(procMount, d, -1); err != nil {
			return nil, close, err
		}
	}
	for _, m := range sw.Masked {
		var st unix.Stat_t
		if unix.Stat(m, &st) != nil {
			continue // nothing to hide
		}
		var fd int
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			fd, err = fsmount.New("tmpfs", "masked", []string{"size=0", "mode=0555"}, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
		} else {
			fd, err = unix.OpenTree(unix.AT_FDCWD, "/dev/null", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		}
		if err != nil {
			close()
			return nil, func() {}, &os.PathError{Op: "mask", Path: m, Err: err}
		}
		if err := add(procMask, m, fd); err != nil {
			unix.Close(fd)
			close()
			return nil, func() {}, err
		}
	}
	for _, r := range sw.Readonly {
		if err := add(procReadonly, r, -1); err != nil {
			close()
			return nil, func() {}, err
		}
	}
	return steps, close, nil
}

// selfExeFD is what the init was executed as (the shim, exeguard.go, or
// this program), opened when the init starts (the exec stage is executed
// from it: /proc/self means nothing to the init in the container's own
// /proc).
var selfExeFD = -1

func openSelfExe() error {
	fd, err := unix.Open("/proc/self/exe", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	selfExeFD = fd
	return takeBinary()
}

// IdleArg0 is the argv[0] of an idle PID 1 (Process.Idle).
const IdleArg0 = "vessel-idle"

// runIdle is an idle PID 1: it only reaps the processes its namespace's
// other processes leave behind (orphans are re-parented to it), so that
// they neither stay zombies nor hold pids of the container's limit. It is
// this program started again by the exec stage, for the profiles that
// need the stage; the init forks its own (forkIdle) otherwise.
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

// workloadStdio are the descriptors of the main process's stdin, stdout
// and stderr once keepStdioApart moved them off 0, 1 and 2.
var workloadStdio = [3]int{0, 1, 2}

// keepStdioApart moves the main process's stdio (the init's 0, 1 and 2)
// to descriptors of their own and puts /dev/null on 0, 1 and 2, so that
// nothing the init or its Go runtime writes reaches the container's
// output.
func keepStdioApart() error {
	null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(null)
	for i := 0; i < 3; i++ {
		fd, err := unix.FcntlInt(uintptr(i), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return err
		}
		workloadStdio[i] = fd
		if err := unix.Dup3(null, i, 0); err != nil {
			return err
		}
	}
	return nil
}
