package network

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// nsGetNstype is NS_GET_NSTYPE from linux/nsfs.h: _IO(0xb7, 0x3).
const nsGetNstype = 0xb703

// CheckNetnsPath reports whether path is a network namespace file (an nsfs
// file such as /proc/PID/ns/net or a bind mount under /run/netns).
func CheckNetnsPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("statfs %s: %w", path, err)
	}
	if st.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("%s is not a namespace file (filesystem magic %#x, want nsfs)", path, st.Type)
	}
	kind, err := unix.IoctlRetInt(int(f.Fd()), nsGetNstype)
	if err != nil {
		return fmt.Errorf("NS_GET_NSTYPE %s: %w", path, err)
	}
	if kind != unix.CLONE_NEWNET {
		return fmt.Errorf("%s is a namespace file but not of a network namespace", path)
	}
	return nil
}
