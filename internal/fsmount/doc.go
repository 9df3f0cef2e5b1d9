// Package fsmount makes a detached mount of a new filesystem instance with
// the kernel's mount API (fsopen, fsconfig, fsmount): a mount reachable
// only through the descriptor it returns, attached nowhere, gone when the
// last descriptor is closed unless the caller moves it somewhere.
//
// It is shared by rootfs (the container's init mounting /proc, tmpfs and
// the root's layers) and storage (the host side reading a layer kept in an
// ext4 image without the host ever seeing the mount).
//
// It must not attach the mount anywhere (move_mount is the caller's
// choice), change any namespace, or import anything beyond
// golang.org/x/sys: the container's init links it.
package fsmount
