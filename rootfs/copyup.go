package rootfs

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// copyUp fills the detached tmpfs behind mfd with what dst holds in the new
// root before the tmpfs covers it (podman's tmpcopyup): regular files,
// directories, symlinks, fifos and device nodes, with modes and owners. The
// tmpfs root takes the covered directory's mode and owner. A destination
// that does not exist yet has nothing to copy.
func (b *builder) copyUp(mfd int, dst string) error {
	t, err := b.target(dst, true)
	if err != nil {
		return err
	}
	src, err := unix.Openat(t, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	unix.Close(t)
	if err != nil {
		return err
	}
	defer unix.Close(src)
	to, err := unix.Openat(mfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(to)
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return err
	}
	if err := unix.Fchown(to, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := unix.Fchmod(to, st.Mode&0o7777); err != nil {
		return err
	}
	return copyDir(src, to)
}

// copyDir copies the entries of directory from into directory to.
func copyDir(from, to int) error {
	// Read through a duplicate so that closing d leaves from open.
	dup, err := unix.Dup(from)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(dup), "copyup-source")
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := copyEntry(from, to, name); err != nil {
			return &os.PathError{Op: "copy", Path: name, Err: err}
		}
	}
	return nil
}

func copyEntry(from, to int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(from, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	perm := st.Mode & 0o7777
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := unix.Mkdirat(to, name, 0o700); err != nil {
			return err
		}
		sub, err := unix.Openat(from, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(sub)
		dst, err := unix.Openat(to, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(dst)
		if err := copyDir(sub, dst); err != nil {
			return err
		}
	case unix.S_IFREG:
		in, err := unix.Openat(from, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		r := os.NewFile(uintptr(in), name)
		defer r.Close()
		out, err := unix.Openat(to, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		w := os.NewFile(uintptr(out), name)
		_, err = io.Copy(w, r)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case unix.S_IFLNK:
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(from, name, buf)
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(string(buf[:n]), to, name); err != nil {
			return err
		}
		return unix.Fchownat(to, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW)
	case unix.S_IFIFO, unix.S_IFCHR, unix.S_IFBLK:
		if err := unix.Mknodat(to, name, st.Mode&unix.S_IFMT|0o600, int(st.Rdev)); err != nil {
			return err
		}
	default:
		return nil // sockets are not copied: nothing listens on a copy
	}
	if err := unix.Fchownat(to, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) {
		return err
	}
	return unix.Fchmodat(to, name, perm, 0)
}
