package security

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The Landlock system calls are made directly: go-landlock's package pulls
// in libcap/psx for its all-threads mode, and vessel has no need for that
// mode. Only the calling thread is restricted, and it is the thread that
// calls execve next; the new program inherits the domain, and the other
// threads of the vessel init die at execve.

const (
	landlockRulePathBeneath = 1
	landlockRuleNetPort     = 2

	llExecute     = unix.LANDLOCK_ACCESS_FS_EXECUTE
	llWriteFile   = unix.LANDLOCK_ACCESS_FS_WRITE_FILE
	llReadFile    = unix.LANDLOCK_ACCESS_FS_READ_FILE
	llReadDir     = unix.LANDLOCK_ACCESS_FS_READ_DIR
	llRefer       = unix.LANDLOCK_ACCESS_FS_REFER
	llTruncate    = unix.LANDLOCK_ACCESS_FS_TRUNCATE
	llIoctlDev    = unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	llResolveUnix = unix.LANDLOCK_ACCESS_FS_RESOLVE_UNIX

	// Rights that apply to a file (not a directory) in a path-beneath rule.
	llFileRights = llExecute | llWriteFile | llReadFile | llTruncate | llIoctlDev
)

// landlockFSRights returns the filesystem rights an ABI version handles.
func landlockFSRights(abi int) uint64 {
	var r uint64
	if abi >= 1 {
		r |= 0x1fff // EXECUTE .. MAKE_SYM
	}
	if abi >= 2 {
		r |= llRefer
	}
	if abi >= 3 {
		r |= llTruncate
	}
	if abi >= 5 {
		r |= llIoctlDev
	}
	if abi >= 9 {
		r |= llResolveUnix
	}
	return r
}

// LandlockABI returns the Landlock ABI version of the running kernel, or 0
// when Landlock is not available (not built in or not enabled at boot).
func LandlockABI() int {
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if errno != 0 {
		return 0
	}
	return int(v)
}

// applyLandlock restricts the calling thread. The caller has set
// no_new_privs on this thread already.
func applyLandlock(l *Landlock) error {
	abi := LandlockABI()
	if abi == 0 {
		return nil // best effort: nothing to enforce with
	}
	var handledFS, handledNet uint64
	if l.restrictsFS() {
		handledFS = landlockFSRights(abi)
	}
	if abi >= 4 {
		if l.BindTCP != nil {
			handledNet |= unix.LANDLOCK_ACCESS_NET_BIND_TCP
		}
		if l.ConnectTCP != nil {
			handledNet |= unix.LANDLOCK_ACCESS_NET_CONNECT_TCP
		}
	}
	if handledFS == 0 && handledNet == 0 {
		return nil
	}
	var attr [24]byte // struct landlock_ruleset_attr
	binary.NativeEndian.PutUint64(attr[0:], handledFS)
	binary.NativeEndian.PutUint64(attr[8:], handledNet)
	size := uintptr(8)
	if abi >= 4 {
		size = 16
	}
	fd, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr[0])), size, 0)
	if errno != 0 {
		return fmt.Errorf("landlock_create_ruleset: %w", errno)
	}
	defer unix.Close(int(fd))

	if handledFS != 0 {
		groups := []struct {
			paths     []string
			dir, file uint64
		}{
			{l.ReadOnly, llReadFile | llReadDir | llResolveUnix, llReadFile},
			{l.ReadExec, llReadFile | llReadDir | llExecute | llResolveUnix, llReadFile | llExecute},
			{l.ReadWrite, handledFS, llFileRights},
		}
		for _, g := range groups {
			for _, p := range g.paths {
				if err := landlockAddPath(int(fd), p, g.dir&handledFS, g.file&handledFS); err != nil {
					return err
				}
			}
		}
	}
	for _, ports := range []struct {
		list   []uint16
		access uint64
	}{{l.BindTCP, unix.LANDLOCK_ACCESS_NET_BIND_TCP}, {l.ConnectTCP, unix.LANDLOCK_ACCESS_NET_CONNECT_TCP}} {
		if handledNet&ports.access == 0 {
			continue
		}
		for _, port := range ports.list {
			var rule [16]byte // struct landlock_net_port_attr
			binary.NativeEndian.PutUint64(rule[0:], ports.access)
			binary.NativeEndian.PutUint64(rule[8:], uint64(port))
			if _, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, fd, landlockRuleNetPort, uintptr(unsafe.Pointer(&rule[0])), 0, 0, 0); errno != 0 {
				return fmt.Errorf("landlock: allow TCP port %d: %w", port, errno)
			}
		}
	}
	if _, _, errno := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, fd, 0, 0); errno != 0 {
		return fmt.Errorf("landlock_restrict_self: %w", errno)
	}
	return nil
}

func landlockAddPath(rulesetFD int, path string, dirRights, fileRights uint64) error {
	pfd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // a path that is not there grants nothing
		}
		return fmt.Errorf("landlock: open %s: %w", path, err)
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return fmt.Errorf("landlock: stat %s: %w", path, err)
	}
	rights := fileRights
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		rights = dirRights
	}
	if rights == 0 {
		return nil
	}
	var rule [12]byte // struct landlock_path_beneath_attr, packed
	binary.NativeEndian.PutUint64(rule[0:], rights)
	binary.NativeEndian.PutUint32(rule[8:], uint32(int32(pfd)))
	if _, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(rulesetFD), landlockRulePathBeneath, uintptr(unsafe.Pointer(&rule[0])), 0, 0, 0); errno != 0 {
		return fmt.Errorf("landlock: allow %s: %w", path, errno)
	}
	return nil
}
