package filesnap

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/internal/pathrs"
)

// Snapshot is what a set of mounts inside a root held when it was
// recorded. Its zero value is not usable: start with New.
type Snapshot struct {
	mounts []mount
	// mountPoints are every mount point, so a walk does not enter them.
	mountPoints map[string]bool
}

// mount is one recorded mount.
type mount struct {
	point string
	// entries maps paths below point ("" is point itself) to what was there.
	entries map[string]entry
	// children lists the names recorded in each directory of entries.
	children map[string][]string
}

// entry is one file, directory, link or node as it was recorded.
type entry struct {
	mode     uint32 // st_mode
	uid, gid uint32
	rdev     uint64
	link     string
	data     []byte // regular files up to MaxFile
	size     int64
}

// Limits of what a Snapshot keeps: Record fails past them.
const (
	// MaxFile is the largest regular file whose contents are kept.
	MaxFile = 1 << 20
	// MaxEntries is the most entries kept per mount.
	MaxEntries = 4096
)

// New returns an empty Snapshot of a tree whose mount points are
// mountPoints (absolute inside the root; every mount, recorded or not):
// a walk never descends into another mount.
func New(mountPoints []string) *Snapshot {
	s := &Snapshot{mountPoints: make(map[string]bool, len(mountPoints))}
	for _, p := range mountPoints {
		s.mountPoints[p] = true
	}
	return s
}

// Record adds the mount at point (absolute inside root, the directory
// descriptor of the tree's root) to the snapshot: for a directory, every
// entry below it down to other mount points; for a file mount, its
// contents.
func (s *Snapshot) Record(root int, point string) error {
	m := mount{point: point, entries: map[string]entry{}, children: map[string][]string{}}
	if err := s.record(root, &m); err != nil {
		return err
	}
	s.mounts = append(s.mounts, m)
	return nil
}

// openIn opens p (absolute, inside the tree) below root without following
// any symlink.
func openIn(root int, p string, flags uint64) (int, error) {
	return pathrs.OpenInRoot(root, p, flags|unix.O_NOFOLLOW, unix.RESOLVE_NO_SYMLINKS)
}

func statEntry(dirfd int, name string) (entry, error) {
	var st unix.Stat_t
	flags := unix.AT_SYMLINK_NOFOLLOW
	if name == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	if err := unix.Fstatat(dirfd, name, &st, flags); err != nil {
		return entry{}, err
	}
	return entry{mode: st.Mode, uid: st.Uid, gid: st.Gid, rdev: st.Rdev, size: st.Size}, nil
}

func isDir(mode uint32) bool { return mode&unix.S_IFMT == unix.S_IFDIR }
func isReg(mode uint32) bool { return mode&unix.S_IFMT == unix.S_IFREG }

func (s *Snapshot) record(root int, sm *mount) error {
	var st unix.Stat_t
	fd, err := openIn(root, sm.point, unix.O_PATH)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if !isDir(st.Mode) {
		// A file mount (the generated /etc files): keep its contents.
		e, err := fileEntry(fd, "")
		if err != nil {
			return err
		}
		sm.entries[""] = e
		return nil
	}
	sm.entries[""] = entry{mode: st.Mode, uid: st.Uid, gid: st.Gid}
	return s.recordDir(fd, sm.point, "", sm)
}

func fileEntry(dirfd int, name string) (entry, error) {
	e, err := statEntry(dirfd, name)
	if err != nil {
		return e, err
	}
	switch {
	case isReg(e.mode):
		if e.size > MaxFile {
			return e, fmt.Errorf("%s: %d bytes, too large to keep for resets", name, e.size)
		}
		fd, err := openAt(dirfd, name, unix.O_RDONLY)
		if err != nil {
			return e, err
		}
		defer unix.Close(fd)
		buf := make([]byte, e.size)
		n, err := unix.Pread(fd, buf, 0)
		if err != nil {
			return e, err
		}
		e.data = buf[:n]
	case e.mode&unix.S_IFMT == unix.S_IFLNK:
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return e, err
		}
		e.link = string(buf[:n])
	}
	return e, nil
}

// openAt opens name in dirfd without following symlinks; "" reopens dirfd.
func openAt(dirfd int, name string, flags int) (int, error) {
	if name == "" {
		// Reopen through the descriptor's /proc link (a magic link,
		// which O_NOFOLLOW would refuse).
		return unix.Open(procFD(dirfd), flags|unix.O_CLOEXEC, 0)
	}
	return unix.Openat(dirfd, name, flags|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
}

func readDirNames(fd int) ([]string, error) {
	d, err := openAt(fd, "", unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(d), "dir")
	defer f.Close()
	return f.Readdirnames(-1)
}

func (s *Snapshot) recordDir(fd int, abs, rel string, sm *mount) error {
	names, err := readDirNames(fd)
	if err != nil {
		return err
	}
	for _, n := range names {
		if len(sm.entries) > MaxEntries {
			return fmt.Errorf("more than %d entries", MaxEntries)
		}
		r := path.Join(rel, n)
		e, err := fileEntry(fd, n)
		if err != nil {
			return err
		}
		sm.entries[r] = e
		sm.children[rel] = append(sm.children[rel], n)
		if !isDir(e.mode) || s.mountPoints[path.Join(abs, n)] {
			continue
		}
		sub, err := openAt(fd, n, unix.O_PATH|unix.O_DIRECTORY)
		if err != nil {
			return err
		}
		err = s.recordDir(sub, path.Join(abs, n), r, sm)
		unix.Close(sub)
		if err != nil {
			return err
		}
	}
	return nil
}

// Restore puts every recorded mount below root back as it was: owners,
// modes, file contents, and what was added removed. A recorded entry that
// was removed or replaced by another kind of file is an error (the tree
// cannot be trusted any more).
func (s *Snapshot) Restore(root int) error {
	for i := range s.mounts {
		sm := &s.mounts[i]
		fd, err := openIn(root, sm.point, unix.O_PATH)
		if err != nil {
			return fmt.Errorf("%s: %w", sm.point, err)
		}
		err = s.restoreEntry(fd, "", sm.point, "", sm)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("%s: %w", sm.point, err)
		}
	}
	return nil
}

// restoreEntry fixes one recorded entry (name in dirfd; "" is dirfd
// itself) and, for a directory, removes what was added below it.
func (s *Snapshot) restoreEntry(dirfd int, name, abs, rel string, sm *mount) error {
	want := sm.entries[rel]
	got, err := statEntry(dirfd, name)
	if err != nil {
		return err
	}
	if got.mode&unix.S_IFMT != want.mode&unix.S_IFMT || got.rdev != want.rdev {
		return fmt.Errorf("%s was replaced", abs)
	}
	if got.uid != want.uid || got.gid != want.gid {
		if err := chownAt(dirfd, name, want.uid, want.gid); err != nil {
			return err
		}
	}
	if got.mode&0o7777 != want.mode&0o7777 && want.mode&unix.S_IFMT != unix.S_IFLNK {
		if err := chmodAt(dirfd, name, want.mode&0o7777); err != nil {
			return err
		}
	}
	switch {
	case isReg(want.mode):
		return restoreFile(dirfd, name, want.data)
	case want.mode&unix.S_IFMT == unix.S_IFLNK:
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return err
		}
		if string(buf[:n]) != want.link {
			return fmt.Errorf("%s: symlink changed", abs)
		}
		return nil
	case !isDir(want.mode):
		return nil
	}
	if rel != "" && s.mountPoints[abs] {
		return nil
	}
	dir := dirfd
	if name != "" {
		if dir, err = openAt(dirfd, name, unix.O_PATH|unix.O_DIRECTORY); err != nil {
			return err
		}
		defer unix.Close(dir)
	}
	names, err := readDirNames(dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		r := path.Join(rel, n)
		if _, ok := sm.entries[r]; !ok {
			if err := removeAt(dir, n); err != nil {
				return fmt.Errorf("%s: %w", path.Join(abs, n), err)
			}
			continue
		}
		if err := s.restoreEntry(dir, n, path.Join(abs, n), r, sm); err != nil {
			return err
		}
	}
	if len(sm.children[rel]) > 0 {
		have := make(map[string]bool, len(names))
		for _, n := range names {
			have[n] = true
		}
		for _, n := range sm.children[rel] {
			if !have[n] {
				return fmt.Errorf("%s was removed", path.Join(abs, n))
			}
		}
	}
	return nil
}

func procFD(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

func chownAt(dirfd int, name string, uid, gid uint32) error {
	if name == "" {
		return unix.Fchownat(dirfd, "", int(uid), int(gid), unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW)
	}
	return unix.Fchownat(dirfd, name, int(uid), int(gid), unix.AT_SYMLINK_NOFOLLOW)
}

func chmodAt(dirfd int, name string, mode uint32) error {
	if name == "" {
		// An O_PATH descriptor: chmod through its /proc link.
		return unix.Chmod(procFD(dirfd), mode)
	}
	return unix.Fchmodat(dirfd, name, mode, 0)
}

// restoreFile rewrites a regular file whose contents changed.
func restoreFile(dirfd int, name string, want []byte) error {
	fd, err := openAt(dirfd, name, unix.O_RDWR)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Size == int64(len(want)) {
		buf := make([]byte, len(want))
		if n, err := unix.Pread(fd, buf, 0); err == nil && n == len(want) && bytes.Equal(buf, want) {
			return nil
		}
	}
	if err := unix.Ftruncate(fd, 0); err != nil {
		return err
	}
	if len(want) > 0 {
		if _, err := unix.Pwrite(fd, want, 0); err != nil {
			return err
		}
	}
	return nil
}

// removeAt removes name in dirfd and everything below it, never following
// a symlink.
func removeAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return err
	}
	sub, oerr := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if oerr != nil {
		return err
	}
	// A job may have left the directory unreadable or unwritable.
	_ = unix.Fchmod(sub, 0o700)
	f := os.NewFile(uintptr(sub), name)
	names, rerr := f.Readdirnames(-1)
	if rerr != nil {
		f.Close()
		return rerr
	}
	for _, n := range names {
		if err := removeAt(sub, n); err != nil {
			f.Close()
			return err
		}
	}
	f.Close()
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}
