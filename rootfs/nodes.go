package rootfs

import (
	"errors"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// cloneDeviceNodes takes, in a user namespace (where mknod is refused), a
// detached bind of the host's node for every Plan.Devices entry, by path.
func (b *builder) cloneDeviceNodes() (map[string]int, error) {
	if !b.p.UserNS || len(b.p.Devices) == 0 {
		return nil, nil
	}
	out := map[string]int{}
	for _, d := range b.p.Devices {
		p := path.Clean(d.Path)
		if _, ok := out[p]; ok {
			continue
		}
		fd, err := cloneTree(p, false)
		if err != nil {
			return nil, stepErr("clone host device", p, err)
		}
		out[p] = b.track(fd)
	}
	return out, nil
}

// deviceNodes creates Plan.Devices inside the new root. A node that already
// exists is kept, as runc keeps it (engines list /dev/null and friends,
// which the container's /dev already has).
func (b *builder) deviceNodes(clones map[string]int) error {
	if len(b.p.Devices) == 0 {
		return nil
	}
	old := unix.Umask(0)
	defer unix.Umask(old)
	for _, d := range b.p.Devices {
		p := path.Clean(d.Path)
		if fd, ok := clones[p]; ok {
			if err := b.attach(fd, p, false); err != nil {
				return err
			}
			continue
		}
		pfd, err := b.target(path.Dir(p), true)
		if err != nil {
			return stepErr("create device directory", path.Dir(p), err)
		}
		dir, err := unix.Openat(pfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(pfd)
		if err != nil {
			return stepErr("open device directory", path.Dir(p), err)
		}
		err = mknodIn(dir, path.Base(p), d)
		unix.Close(dir)
		if err != nil {
			return stepErr("mknod", p, err)
		}
	}
	return nil
}

func mknodIn(dir int, name string, d Device) error {
	mode := d.Mode & 0o7777
	if mode == 0 {
		mode = 0o666
	}
	switch d.Type {
	case "b":
		mode |= unix.S_IFBLK
	case "p":
		mode |= unix.S_IFIFO
	default:
		mode |= unix.S_IFCHR
	}
	dev := 0
	if d.Type != "p" {
		dev = int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))
	}
	if err := unix.Mknodat(dir, name, mode, dev); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil
		}
		return err
	}
	if err := unix.Fchownat(dir, name, int(d.UID), int(d.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	// mknod applies no setuid/setgid/sticky bits: chmod does.
	return unix.Fchmodat(dir, name, mode&0o7777, 0)
}

// rootPropagation applies an OCI rootfsPropagation to the new root, once it
// is the process's root (the old root, and with it the host, is gone).
func rootPropagation(mode string) error {
	var flags uintptr
	switch strings.TrimPrefix(mode, "r") {
	case "", "private":
		return nil // Setup's default
	case "shared":
		flags = unix.MS_SHARED
	case "slave":
		flags = unix.MS_SLAVE
	case "unbindable":
		flags = unix.MS_UNBINDABLE
	}
	if strings.HasPrefix(mode, "r") {
		flags |= unix.MS_REC
	}
	return unix.Mount("", "/", "", flags, "")
}
