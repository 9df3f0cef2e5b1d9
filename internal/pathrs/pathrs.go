package pathrs

import (
	"errors"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// rel turns p, absolute or relative to root, into the relative path
// openat2 resolves below root ("." for root itself).
func rel(p string) string {
	r := strings.TrimLeft(path.Clean("/"+p), "/")
	if r == "" {
		return "."
	}
	return r
}

// OpenInRoot opens p below the directory root as if root were "/", with
// open flags (O_CLOEXEC is always added) and extra RESOLVE_* bits (for
// example RESOLVE_NO_SYMLINKS) on top of RESOLVE_IN_ROOT and
// RESOLVE_NO_MAGICLINKS. An empty p or "/" opens root itself.
func OpenInRoot(root int, p string, flags, resolve uint64) (int, error) {
	return unix.Openat2(root, rel(p), &unix.OpenHow{
		Flags:   flags | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | resolve,
	})
}

// MkdirAllInRoot opens the directory p below root as OpenInRoot does,
// first creating each missing directory on the way with mode (before the
// umask), like os.MkdirAll. Symlinks met on the way resolve inside root.
func MkdirAllInRoot(root int, p string, mode uint32, flags, resolve uint64) (int, error) {
	r := rel(p)
	fd, err := OpenInRoot(root, r, flags, resolve)
	if err == nil || r == "." || !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	parent, err := MkdirAllInRoot(root, path.Dir(r), mode, unix.O_PATH|unix.O_DIRECTORY, resolve)
	if err != nil {
		return -1, err
	}
	err = unix.Mkdirat(parent, path.Base(r), mode)
	unix.Close(parent)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, err
	}
	return OpenInRoot(root, r, flags, resolve)
}
