package rootfs

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// storageRoot mounts an overlay, image or image-file root in the child's
// mount namespace: every mount here vanishes with the container.
//
// The layers' host paths are opened first (the scratch tmpfs below may
// cover them) and handed to the kernel as /proc/self/fd/N. The writable
// layer's filesystem (tmpfs or ext4 image) and the root itself hang on a
// scratch tmpfs over the stage point until pivot_root takes the root
// away; overlay needs its layers attached in our namespace.
func (b *builder) storageRoot() error {
	st := b.p.Root.Storage
	if st == nil {
		return stepErr("rootfs", "", fmt.Errorf("%s root was not prepared (call storage.Prepare on the host first)", b.p.Root.Kind))
	}
	var lowers []string
	for _, l := range st.Lower {
		fd, err := unix.Open(l, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return stepErr("open lower layer", l, err)
		}
		lowers = append(lowers, fmt.Sprintf("/proc/self/fd/%d", b.track(fd)))
	}
	upper, work := "", ""
	if st.UpperDir != "" {
		for _, d := range []string{st.UpperDir, st.WorkDir} {
			fd, err := unix.Open(d, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				return stepErr("open writable layer", d, err)
			}
			p := fmt.Sprintf("/proc/self/fd/%d", b.track(fd))
			if upper == "" {
				upper = p
			} else {
				work = p
			}
		}
	}

	stage, err := stagePoint()
	if err != nil {
		return stepErr("stage root", "", err)
	}
	sfd, err := fsMount("tmpfs", "vessel-storage", []string{"mode=0700", "size=64k"}, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return stepErr("mount storage scratch", stage, err)
	}
	b.track(sfd)
	if err := unix.MoveMount(sfd, "", unix.AT_FDCWD, stage, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return stepErr("attach storage scratch", stage, err)
	}
	// hang attaches a detached mount at name on the scratch tmpfs and
	// returns the path the kernel can resolve it by.
	hang := func(fd int, name string) (string, error) {
		if err := unix.Mkdirat(sfd, name, 0o700); err != nil {
			return "", err
		}
		if err := unix.MoveMount(fd, "", sfd, name, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return "", err
		}
		return filepath.Join(stage, name), nil
	}

	if st.Device != "" {
		fd, err := fsMount(st.DeviceFS, st.Device, []string{"ro"}, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NODEV)
		if err != nil {
			return stepErr("mount image", st.Device, err)
		}
		b.track(fd)
		if st.readOnly() {
			if _, err := hang(fd, "root"); err != nil {
				return stepErr("attach image root", st.Device, err)
			}
			b.rootfd = fd
			return nil
		}
		p, err := hang(fd, "image")
		if err != nil {
			return stepErr("attach image", st.Device, err)
		}
		lowers = append(lowers, p)
	}
	if len(lowers) == 0 {
		return stepErr("rootfs", "", errors.New("no read-only layer to mount"))
	}

	if upper == "" {
		var fd int
		var err error
		switch {
		case st.UpperDevice != "":
			fd, err = fsMount("ext4", st.UpperDevice, nil, unix.MOUNT_ATTR_NODEV)
		case st.UpperTmpfs:
			opts := []string{"mode=0755"}
			if st.UpperSize > 0 {
				opts = append(opts, fmt.Sprintf("size=%d", st.UpperSize))
			}
			if st.UpperInodes > 0 {
				opts = append(opts, fmt.Sprintf("nr_inodes=%d", st.UpperInodes))
			}
			fd, err = fsMount("tmpfs", "vessel-layer", opts, 0)
			if err == nil {
				for _, d := range []string{"diff", "work"} {
					if err = unix.Mkdirat(fd, d, 0o755); err != nil {
						break
					}
				}
			}
		default:
			return stepErr("rootfs", "", errors.New("no writable layer prepared"))
		}
		if err != nil {
			return stepErr("mount writable layer", st.UpperDevice, err)
		}
		b.track(fd)
		p, err := hang(fd, "layer")
		if err != nil {
			return stepErr("attach writable layer", st.UpperDevice, err)
		}
		upper, work = filepath.Join(p, "diff"), filepath.Join(p, "work")
	}

	opts := []string{
		"lowerdir=" + strings.Join(lowers, ":"),
		"upperdir=" + upper,
		"workdir=" + work,
		// Keep the writable layer self-contained so Snapshot can turn it
		// into a lower layer: no redirects or metacopy into lowers, no
		// index tying it to these lowers' inodes.
		"index=off", "metacopy=off",
	}
	if b.p.UserNS {
		// In a user namespace overlay keeps its xattrs in user.* and
		// refuses to be told about redirect_dir (it never follows
		// redirects there anyway).
		opts = append(opts, "userxattr")
	} else {
		opts = append(opts, "redirect_dir=off")
	}
	fd, err := fsMount("overlay", "vessel-overlay", opts, 0)
	if err != nil {
		return stepErr("mount overlay", "", err)
	}
	b.track(fd)
	if _, err := hang(fd, "root"); err != nil {
		return stepErr("attach overlay root", "", err)
	}
	b.rootfd = fd
	return nil
}
