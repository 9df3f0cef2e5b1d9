package child

import (
	"errors"
	"os"
	"strconv"
	"strings"

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

// cgroupSet is the container's cgroup as the init holds it.
type cgroupSet struct {
	// procs are its cgroup.procs files, open for writing.
	procs []int
	// list is one of them open for reading (the container's processes).
	list int
}

// openCgroups opens the container's cgroup.procs files while the host's
// cgroup tree is in view (before the root filesystem and the cgroup
// namespace change it). The init holds them for its life.
func openCgroups(places []CgroupPlace) (*cgroupSet, error) {
	cg := &cgroupSet{list: -1}
	for _, p := range places {
		fd, err := unix.Open(p.Dir+"/cgroup.procs", unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: p.Dir + "/cgroup.procs", Err: err}
		}
		cg.procs = append(cg.procs, fd)
	}
	if len(places) > 0 {
		fd, err := unix.Open(places[0].Dir+"/cgroup.procs", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: places[0].Dir + "/cgroup.procs", Err: err}
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

// unshareCgroupNS makes the init's main thread a cgroup namespace rooted
// at the container's cgroup: the namespace's root is the cgroup the
// thread is in when it unshares, so the thread goes there for that moment
// and back home after (in v1 one thread moves; in v2 the whole init,
// whose own threads are then briefly counted there, before any workload
// process exists).
func unshareCgroupNS(places []CgroupPlace) error {
	tid := strconv.Itoa(unix.Gettid())
	move := func(dir string, v2 bool) error {
		file, who := "/tasks", tid
		if v2 {
			file, who = "/cgroup.procs", "0"
		}
		return os.WriteFile(dir+file, []byte(who), 0)
	}
	for _, p := range places {
		if p.Home == "" {
			continue
		}
		if err := move(p.Dir, p.V2); err != nil {
			return err
		}
	}
	uerr := unix.Unshare(unix.CLONE_NEWCGROUP)
	var errs []error
	for _, p := range places {
		if p.Home == "" {
			continue
		}
		if err := move(p.Home, p.V2); err != nil {
			errs = append(errs, err)
		}
	}
	if uerr != nil {
		return uerr
	}
	return errors.Join(errs...)
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
