package rootfs

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Usage is what a running container holds of its filesystems' finite
// resources, read from the host through a process of the container
// (/proc/PID/root).
type Usage struct {
	// Ptys counts the pseudo-terminals of the container's devpts;
	// PtyMax is the devpts max= limit the container runs with (0: the
	// kernel's default).
	Ptys   uint64 `json:"ptys"`
	PtyMax uint64 `json:"ptyMax,omitempty"`
	// Shm is the use and size of the container's /dev/shm, in bytes.
	ShmBytes uint64 `json:"shmBytes"`
	ShmSize  uint64 `json:"shmSize"`
	// Disk is the use and size of the filesystem holding the container's
	// writable root (bytes, and inodes), when it is the container's own
	// (DiskKnown: a quota, or an ephemeral layer on a tmpfs of its own).
	DiskKnown       bool   `json:"diskKnown"`
	DiskBytes       uint64 `json:"diskBytes,omitempty"`
	DiskBytesLimit  uint64 `json:"diskBytesLimit,omitempty"`
	DiskInodes      uint64 `json:"diskInodes,omitempty"`
	DiskInodesLimit uint64 `json:"diskInodesLimit,omitempty"`
}

// ReadUsage reads the usage of the container process pid is in. ownRoot
// says whether its root's writable layer is a filesystem of its own (a
// quota); otherwise the disk figures would be the host's and are left out.
func ReadUsage(pid int, ownRoot bool, ptyMax int64) (*Usage, error) {
	root := fmt.Sprintf("/proc/%d/root", pid)
	u := &Usage{PtyMax: uint64(max(ptyMax, 0))}
	f, err := os.Open(root + "/dev/pts")
	if err != nil {
		return nil, fmt.Errorf("rootfs: usage: %w", err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("rootfs: usage: %w", err)
	}
	for _, n := range names {
		if _, err := strconv.Atoi(n); err == nil {
			u.Ptys++
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(root+"/dev/shm", &st); err == nil {
		u.ShmSize = st.Blocks * uint64(st.Bsize)
		u.ShmBytes = (st.Blocks - st.Bfree) * uint64(st.Bsize)
	}
	if ownRoot {
		// An overlay reports its upper layer's filesystem; an XFS or ext4
		// project quota shows as the size of a directory under it.
		if err := unix.Statfs(root+"/", &st); err != nil {
			return nil, fmt.Errorf("rootfs: usage: statfs %s: %w", root, err)
		}
		u.DiskKnown = true
		u.DiskBytesLimit = st.Blocks * uint64(st.Bsize)
		u.DiskBytes = (st.Blocks - st.Bfree) * uint64(st.Bsize)
		u.DiskInodesLimit = st.Files
		u.DiskInodes = st.Files - st.Ffree
	}
	return u, nil
}
