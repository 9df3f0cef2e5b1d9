package child

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/internal/fsmount"
	"github.com/openvessel/vessel/namespaces"
)

// RestoreSpec makes a fresh init bring back a checkpointed workload
// instead of starting Config.Process: it runs criu (Args, with the main
// process's descriptors: 0-2 and the extra files, the first of which is
// criu's RPC socket) in its own namespaces, and criu, told to restore
// the tree as its sibling, makes the restored PID 1 the init's child.
// The init then enters that tree's mount and pid namespaces (the ones
// criu created from the images), so that the processes it starts later
// (Exec) join the restored workload, and serves it as its main process.
// The restored tree's network namespace is the init's (criu gets it,
// NetnsFD); its UTS, IPC and cgroup namespaces, made by criu from the
// images, the init enters after its mount and pid ones.
type RestoreSpec struct {
	Args []string `json:"args"`
	Env  []string `json:"env,omitempty"`
	// NetnsFD: criu also gets the init's network namespace, as the
	// descriptor after the extra files (the restored tree's network
	// namespace, dumped as external, is that one).
	NetnsFD bool `json:"netnsFD,omitempty"`
	// Root, when set, is an overlay the init mounts (in its own mount
	// namespace, private, so the host never sees it) on Root.Target
	// before criu runs: the restored root (criu's --root) of a container
	// whose root was an overlay with a writable layer on the host.
	Root *RestoreRoot `json:"root,omitempty"`
}

// RestoreRoot is an overlay of host directories: Lower (top-most first)
// under the writable layer Upper (with its scratch Work), mounted on
// Target.
type RestoreRoot struct {
	Target string   `json:"target"`
	Lower  []string `json:"lower"`
	Upper  string   `json:"upper"`
	Work   string   `json:"work"`
}

// mount mounts the overlay on r.Target, with the options the container's
// start used (see rootfs's storage roots), the layers named by
// descriptor (no length or comma trouble with their paths).
func (r *RestoreRoot) mount() error {
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	open := func(p string) (string, error) {
		fd, err := unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return "", fmt.Errorf("open %s: %w", p, err)
		}
		fds = append(fds, fd)
		return "/proc/self/fd/" + strconv.Itoa(fd), nil
	}
	var lowers []string
	for _, l := range r.Lower {
		p, err := open(l)
		if err != nil {
			return err
		}
		lowers = append(lowers, p)
	}
	upper, err := open(r.Upper)
	if err != nil {
		return err
	}
	work, err := open(r.Work)
	if err != nil {
		return err
	}
	fd, err := fsmount.New("overlay", "vessel-overlay", []string{
		"lowerdir=" + strings.Join(lowers, ":"), "upperdir=" + upper, "workdir=" + work,
		"index=off", "metacopy=off", "redirect_dir=off",
	}, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.MoveMount(fd, "", unix.AT_FDCWD, r.Target, unix.MOVE_MOUNT_F_EMPTY_PATH)
}

// restoreTree runs criu as RestoreSpec says and returns the restored
// root's pid and a pidfd for it.
func restoreTree(spec *RestoreSpec, files []uintptr) (int, int, error) {
	if len(spec.Args) == 0 {
		return 0, -1, fmt.Errorf("no criu command")
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f)
	}
	if spec.NetnsFD {
		ns, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, -1, fmt.Errorf("open own network namespace: %w", err)
		}
		defer unix.Close(ns)
		fds = append(fds, ns)
	}
	// Nothing criu mounts here (its cgroup yard, the restored tree's
	// mounts before they move) may reach the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return 0, -1, fmt.Errorf("make the mount namespace private: %w", err)
	}
	if spec.Root != nil {
		if err := spec.Root.mount(); err != nil {
			return 0, -1, fmt.Errorf("mount the overlay root on %s: %w", spec.Root.Target, err)
		}
	}
	// criu runs with the init's privileges, outside the container's
	// cgroup (it places the restored tasks there itself).
	sp, err := spawnRaw(spec.Args[0], spec.Args, spec.Env, &spawnAttr{fds: fds, cgroupDir: -1})
	if err != nil {
		return 0, -1, fmt.Errorf("start %s: %w", spec.Args[0], err)
	}
	if sp.pidfd >= 0 {
		unix.Close(sp.pidfd)
	}
	var ws unix.WaitStatus
	for {
		_, err = unix.Wait4(sp.pid, &ws, 0, nil)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return 0, -1, fmt.Errorf("wait for criu: %w", err)
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		return 0, -1, fmt.Errorf("criu failed (wait status %v)", ws)
	}
	root, err := onlyChild()
	if err != nil {
		return 0, -1, err
	}
	pidfd, err := unix.PidfdOpen(root, 0)
	if err != nil {
		return 0, -1, fmt.Errorf("pidfd of the restored process %d: %w", root, err)
	}
	// This thread forks every later process: it enters the restored
	// mount namespace (root and working directory become its root) and
	// makes its children join the restored pid namespace.
	// (The mount namespace last: its /proc is the workload's, where this
	// init's pids mean nothing.) UTS and IPC are those criu made from the
	// images (the hostname, the System V objects).
	for _, k := range []namespaces.Kind{namespaces.PID, namespaces.UTS, namespaces.IPC, namespaces.Cgroup} {
		if err := joinIfOther(k, root); err != nil {
			unix.Close(pidfd)
			return 0, -1, fmt.Errorf("enter the restored %s namespace: %w", k, err)
		}
	}
	if err := namespaces.Join(namespaces.Mount, "/proc/"+strconv.Itoa(root)+"/ns/mnt"); err != nil {
		unix.Close(pidfd)
		return 0, -1, fmt.Errorf("enter the restored mount namespace: %w", err)
	}
	return root, pidfd, nil
}

// joinIfOther makes this thread join pid's namespace of kind k when it
// is not in it already.
func joinIfOther(k namespaces.Kind, pid int) error {
	var own, their unix.Stat_t
	path := "/proc/" + strconv.Itoa(pid) + "/ns/" + k.ProcName()
	if err := unix.Stat(path, &their); err != nil {
		return err
	}
	if k == namespaces.PID {
		// pid_for_children is what forks follow.
		if unix.Stat("/proc/thread-self/ns/pid_for_children", &own) == nil && own.Ino == their.Ino {
			return nil
		}
	} else if unix.Stat("/proc/thread-self/ns/"+k.ProcName(), &own) == nil && own.Ino == their.Ino {
		return nil
	}
	return namespaces.Join(k, path)
}

// onlyChild returns the one child process of this init (the restored
// root, once criu is gone).
func onlyChild() (int, error) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, err
	}
	var kids []int
	for _, t := range tasks {
		data, err := os.ReadFile("/proc/self/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				kids = append(kids, pid)
			}
		}
	}
	if len(kids) != 1 {
		return 0, fmt.Errorf("criu left %d children (%v), want the restored root alone", len(kids), kids)
	}
	return kids[0], nil
}
