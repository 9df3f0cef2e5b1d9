package rootfs

import (
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// ProcSwap says which /proc mounts a container gets for its own pid
// namespace once that namespace exists, and what to hide and protect in
// them. Setup mounts proc for the process it runs in; when the
// container's processes live in a pid namespace that process is not in
// (a new one whose PID 1 is the main process, or a joined one), SwapProc
// replaces those mounts after the first process of that namespace exists.
type ProcSwap struct {
	// Dests are the proc mounts' destinations ("/proc" unless the caller
	// mounts proc elsewhere).
	Dests []string `json:"dests"`
	// Masked and Readonly are the paths below them that Setup hid or made
	// read-only.
	Masked   []string `json:"masked,omitempty"`
	Readonly []string `json:"readonly,omitempty"`
}

// ProcSwap returns what SwapProc needs for this plan.
func (p *Plan) ProcSwap() *ProcSwap {
	sw := &ProcSwap{}
	if !p.has("/proc") {
		sw.Dests = append(sw.Dests, "/proc")
	}
	for _, m := range p.Mounts {
		if m.Type == "proc" {
			sw.Dests = append(sw.Dests, path.Clean(m.Destination))
		}
	}
	masked, ro := p.MaskedPaths, p.ReadonlyPaths
	if masked == nil {
		masked = DefaultMaskedPaths
	}
	if ro == nil {
		ro = DefaultReadonlyPaths
	}
	below := func(q string) bool {
		for _, d := range sw.Dests {
			if strings.HasPrefix(path.Clean(q), d+"/") {
				return true
			}
		}
		return false
	}
	for _, m := range masked {
		if below(m) {
			sw.Masked = append(sw.Masked, m)
		}
	}
	for _, r := range ro {
		if below(r) {
			sw.Readonly = append(sw.Readonly, r)
		}
	}
	return sw
}

// SwapProc runs in the container's root, after Setup: it replaces each
// proc mount of sw with one for the pid namespace nsfd refers to (the
// pidns= option, Linux 6.18), or, with nsfd < 0, for the calling
// process's own pid namespace, and hides and protects the same paths
// below it again. The new instance is created while the old one is still
// mounted (a kernel refuses a proc mount in a user namespace unless an
// unhidden one is already visible there), then the old one goes.
func SwapProc(sw *ProcSwap, nsfd int) error {
	for _, dst := range sw.Dests {
		fs, err := unix.Fsopen("proc", unix.FSOPEN_CLOEXEC)
		if err != nil {
			return stepErr("fsopen proc", dst, err)
		}
		// The source runc and Setup give it (mountinfo shows it; the OCI
		// runtime-tools check it).
		if err := unix.FsconfigSetString(fs, "source", "proc"); err != nil {
			unix.Close(fs)
			return stepErr("proc source", dst, err)
		}
		if nsfd >= 0 {
			if err := unix.FsconfigSetFd(fs, "pidns", nsfd); err != nil {
				unix.Close(fs)
				return stepErr("proc pidns option", dst, err)
			}
		}
		if err := unix.FsconfigCreate(fs); err != nil {
			unix.Close(fs)
			return stepErr("create proc", dst, err)
		}
		mnt, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
		unix.Close(fs)
		if err != nil {
			return stepErr("mount proc", dst, err)
		}
		err = unix.Unmount(dst, unix.MNT_DETACH)
		if err == nil {
			err = unix.MoveMount(mnt, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH)
		}
		unix.Close(mnt)
		if err != nil {
			return stepErr("replace proc", dst, err)
		}
	}
	for _, m := range sw.Masked {
		if err := maskPath(m); err != nil {
			return err
		}
	}
	for _, r := range sw.Readonly {
		if err := readonlyPath(r); err != nil {
			return err
		}
	}
	return nil
}

// ProcPidnsSupported reports whether this kernel's proc takes the pidns=
// option (so a process outside a pid namespace can mount its /proc) and
// pidfds give their process's pid namespace.
func ProcPidnsSupported() bool {
	fs, err := unix.Fsopen("proc", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return false
	}
	defer unix.Close(fs)
	pidfd, err := unix.PidfdOpen(unix.Getpid(), 0)
	if err != nil {
		return false
	}
	defer unix.Close(pidfd)
	ns, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(pidfd), 0xFF<<8|5, 0)
	if e != 0 {
		return false
	}
	defer unix.Close(int(ns))
	return unix.FsconfigSetFd(fs, "pidns", int(ns)) == nil
}
