// Package pathrs opens and creates paths inside a directory tree as if
// that tree were the whole filesystem: every lookup goes through
// openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), so ".." and absolute
// symlinks stop at the root and /proc magic links are refused. A tree
// controlled by someone else (a container's root filesystem, an image
// layer) can therefore never send an open, a mkdir or a mount outside it.
//
// It is used by rootfs (mount targets in the new root), storage (unpacking
// a layer) and the root package's pool (resetting a container's files).
//
// It must not follow a path by string manipulation and then open it (the
// race openat2 exists to close), must not fall back to plain openat when
// openat2 is missing, and imports nothing beyond golang.org/x/sys: the
// container's init links it.
package pathrs
