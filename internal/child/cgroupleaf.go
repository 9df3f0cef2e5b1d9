package child

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/steperr"
)

// Exec into a container whose workload made its cgroup a parent.
//
// In cgroup v2 a cgroup that enables controllers for its children holds
// no processes of its own: the kernel refuses to move or fork one there
// (EBUSY). An init booted in a container (systemd) does that to the
// container's cgroup, the root of its cgroup namespace: it enables the
// controllers for its children and moves itself to init.scope, its
// services to slices. A process Exec'd after that joins the cgroup of
// the container's PID 1 instead, as runc's exec does: inside the
// container's cgroup, under its limits, where systemd keeps what is not
// one of its units.
//
// The cgroup.procs it joins through must be opened as the parent opens
// the container's (CgroupFiles): cgroup2 with nsdelegate lets a process
// move only where the opener's cgroup namespace sees both the process's
// cgroup (the init's, outside the container's) and the target, and the
// init's namespace is rooted at the container's cgroup. So a thread of
// the init enters the parent's namespace (cgroupSet.v2NS) to open it,
// and ends with that.

// execLeaf is the cgroup Exec'd processes join while the container's
// refuses them: its cgroup.procs, opened as the parent would, and its
// path below the container's cgroup.
type execLeaf struct {
	procs int
	rel   string
}

// startExec starts an Exec'd process with start, in the container's
// cgroup or the leaf found for an earlier one; when that cgroup refuses
// the process, it finds the cgroup of the container's PID 1 (pid, as
// the init sees it) and starts it there.
func (cg *cgroupSet) startExec(pid int, start func(*cgroupSet) error) error {
	if cg == nil || cg.v2Procs < 0 || pid <= 0 {
		return start(cg)
	}
	err := start(cg.joinVia(cg.leaf))
	if err == nil || !cgroupRefused(err) {
		return err
	}
	if cg.leaf != nil {
		unix.Close(cg.leaf.procs)
		cg.leaf = nil
	}
	leaf, lerr := cg.leafOf(pid) // nil: PID 1 is back in the container's cgroup
	if lerr != nil {
		return &steperr.Error{Step: "join container cgroup",
			Err: fmt.Errorf("the container's cgroup holds no processes, its controllers are enabled for its children (%w), and the cgroup of its PID 1 is not usable: %v", unix.EBUSY, lerr)}
	}
	cg.leaf = leaf
	return start(cg.joinVia(leaf))
}

// joinVia is cg with leaf (when not nil) as the cgroup2 cgroup to join,
// through its cgroup.procs: the process moves itself after its fork
// (clone3 into a cgroup checks the init's own namespace, see above).
func (cg *cgroupSet) joinVia(leaf *execLeaf) *cgroupSet {
	if leaf == nil {
		return cg
	}
	c := *cg
	c.v2Dir, c.v2Procs = -1, leaf.procs
	return &c
}

// cgroupRefused reports whether err is a process's failure to join a
// cgroup2 cgroup that holds no processes (EBUSY) or was removed (ENODEV).
func cgroupRefused(err error) bool {
	return errors.Is(err, unix.EBUSY) || errors.Is(err, unix.ENODEV)
}

// leafOf finds the cgroup below the container's that holds pid and opens
// its cgroup.procs for writing, as the parent would; nil when pid is in
// the container's cgroup itself.
func (cg *cgroupSet) leafOf(pid int) (*execLeaf, error) {
	type found struct {
		leaf *execLeaf
		err  error
	}
	res := make(chan found, 1)
	go func() {
		// The thread enters another cgroup namespace and is never
		// unlocked: it ends with this goroutine.
		runtime.LockOSThread()
		rel, err := cg.cgroupOf(pid)
		if err != nil || rel == "" {
			res <- found{err: err}
			return
		}
		if cg.v2NS >= 0 {
			if err := unix.Setns(cg.v2NS, unix.CLONE_NEWCGROUP); err != nil {
				res <- found{err: fmt.Errorf("enter the parent's cgroup namespace: %w", err)}
				return
			}
		}
		fd, err := unix.Openat(cg.v2Dir, rel+"/cgroup.procs", unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			res <- found{err: fmt.Errorf("open %s/cgroup.procs: %w", rel, err)}
			return
		}
		res <- found{leaf: &execLeaf{procs: fd, rel: rel}}
	}()
	r := <-res
	return r.leaf, r.err
}

// cgroupOf returns the path below the container's cgroup of the cgroup
// that holds pid ("" for the container's own), searching breadth first
// (systemd's init.scope is a child of the root).
func (cg *cgroupSet) cgroupOf(pid int) (string, error) {
	want := strconv.Itoa(pid)
	found, where := false, ""
	cg.walk(func(rel string, pids []string) bool {
		if slices.Contains(pids, want) {
			found, where = true, strings.TrimPrefix(rel, ".")
		}
		return found
	})
	if !found {
		return "", fmt.Errorf("no cgroup below the container's holds its PID 1 (%d)", pid)
	}
	return where, nil
}

// walk visits the container's cgroup2 cgroup and every cgroup below it,
// breadth first, with the processes each lists, until visit says stop.
func (cg *cgroupSet) walk(visit func(rel string, pids []string) (stop bool)) {
	queue := []string{"."}
	for len(queue) > 0 {
		rel := queue[0]
		queue = queue[1:]
		fd, err := unix.Openat(cg.v2Dir, rel, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			continue // removed meanwhile
		}
		pids, children := cgroupProcs(fd)
		if visit(rel, pids) {
			return
		}
		for _, name := range children {
			if rel == "." {
				queue = append(queue, name)
			} else {
				queue = append(queue, rel+"/"+name)
			}
		}
	}
}

// cgroupProcs returns the processes the cgroup open at fd lists and the
// names of its child cgroups. It closes fd.
func cgroupProcs(fd int) (pids, children []string) {
	dir := os.NewFile(uintptr(fd), "cgroup")
	defer dir.Close()
	if procs, err := unix.Openat(fd, "cgroup.procs", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
		f := os.NewFile(uintptr(procs), "cgroup.procs")
		b, _ := io.ReadAll(f)
		f.Close()
		pids = strings.Fields(string(b))
	}
	entries, _ := dir.ReadDir(-1)
	for _, e := range entries {
		if e.IsDir() {
			children = append(children, e.Name())
		}
	}
	return pids, children
}
