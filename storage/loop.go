package storage

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// loopDevice is a loop device this process holds open. It is configured
// with autoclear: the kernel detaches it when the last user (our fd or a
// mount of it) goes away, so a crashed owner leaks nothing.
type loopDevice struct {
	fd   int
	path string
	rdev uint64
}

// Major and minor numbers of the device, for I/O throttling rules.
func (l *loopDevice) majorMinor() (uint32, uint32) { return unix.Major(l.rdev), unix.Minor(l.rdev) }

func (l *loopDevice) close() error {
	if l == nil || l.fd < 0 {
		return nil
	}
	err := unix.Close(l.fd)
	l.fd = -1
	return err
}

// attachLoop returns a loop device backed by file, reusing one already
// attached to the same file with the same read-only flag (two loop devices
// over one ext4 image would corrupt it when both are mounted).
func attachLoop(file string, readOnly bool) (*loopDevice, error) {
	mode := unix.O_RDWR
	if readOnly {
		mode = unix.O_RDONLY
	}
	bf, err := unix.Open(file, mode|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open image %s: %w", file, err)
	}
	defer unix.Close(bf)
	// Serialise find-or-attach among vessel processes using this file.
	if err := unix.Flock(bf, unix.LOCK_EX); err != nil {
		return nil, fmt.Errorf("lock image %s: %w", file, err)
	}
	defer unix.Flock(bf, unix.LOCK_UN)
	var st unix.Stat_t
	if err := unix.Fstat(bf, &st); err != nil {
		return nil, err
	}
	if l := findLoop(&st, readOnly); l != nil {
		return l, nil
	}
	ctl, err := unix.Open("/dev/loop-control", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/loop-control: %w", err)
	}
	defer unix.Close(ctl)
	abs, _ := filepath.Abs(file)
	for attempt := 0; ; attempt++ {
		n, err := unix.IoctlRetInt(ctl, unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("get a free loop device: %w", err)
		}
		path := fmt.Sprintf("/dev/loop%d", n)
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		cfg := unix.LoopConfig{Fd: uint32(bf)}
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
		if readOnly {
			cfg.Info.Flags |= unix.LO_FLAGS_READ_ONLY
		}
		copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], abs)
		err = unix.IoctlLoopConfigure(fd, &cfg)
		if errors.Is(err, unix.EBUSY) && attempt < 20 {
			unix.Close(fd) // another process took it first
			continue
		}
		if err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("configure %s over %s: %w", path, file, err)
		}
		var ls unix.Stat_t
		if err := unix.Fstat(fd, &ls); err != nil {
			unix.Close(fd)
			return nil, err
		}
		return &loopDevice{fd: fd, path: path, rdev: ls.Rdev}, nil
	}
}

// findLoop opens an attached loop device backed by the file st describes.
func findLoop(st *unix.Stat_t, readOnly bool) *loopDevice {
	dirs, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, bfile := range dirs {
		name := strings.Split(bfile, "/")[3]
		path := "/dev/" + name
		// Read-only: a device whose filesystem is mounted may refuse
		// writers; holding it open is all we need.
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		info, err := unix.IoctlLoopGetStatus64(fd)
		if err == nil && info.Inode == st.Ino && info.Device == st.Dev &&
			(info.Flags&unix.LO_FLAGS_READ_ONLY != 0) == readOnly && info.Flags&unix.LO_FLAGS_AUTOCLEAR != 0 {
			var ls unix.Stat_t
			if unix.Fstat(fd, &ls) == nil {
				return &loopDevice{fd: fd, path: path, rdev: ls.Rdev}
			}
		}
		unix.Close(fd)
	}
	return nil
}
