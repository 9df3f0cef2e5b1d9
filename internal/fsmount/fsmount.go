package fsmount

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// FDOption is a filesystem option whose value is a descriptor (set with
// FSCONFIG_SET_FD), such as proc's pidns.
type FDOption struct {
	Key string
	FD  int
}

// New creates a detached mount of a new fstype filesystem from source
// ("" for none), with options given as "key=value" strings or bare flags,
// descriptor options (set first), and the MOUNT_ATTR_* bits in attrs. It
// returns the mount's descriptor (close-on-exec); closing it undoes the
// mount.
func New(fstype, source string, options []string, attrs uint64, fdOptions ...FDOption) (int, error) {
	fs, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen %s: %w", fstype, err)
	}
	defer unix.Close(fs)
	for _, o := range fdOptions {
		if err := unix.FsconfigSetFd(fs, o.Key, o.FD); err != nil {
			return -1, fmt.Errorf("%s option: %w", o.Key, err)
		}
	}
	if source != "" {
		if err := unix.FsconfigSetString(fs, "source", source); err != nil {
			return -1, fmt.Errorf("source=%s: %w", source, err)
		}
	}
	for _, o := range options {
		k, v, ok := strings.Cut(o, "=")
		if ok {
			err = unix.FsconfigSetString(fs, k, v)
		} else {
			err = unix.FsconfigSetFlag(fs, k)
		}
		if err != nil {
			return -1, fmt.Errorf("option %s: %w", o, err)
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, fmt.Errorf("create %s: %w", fstype, err)
	}
	return unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, int(attrs))
}
