// Package rootfs builds a container's view of files: the root filesystem
// (a directory, or the host's own files read-only), bind mounts, tmpfs,
// /proc, /sys, a minimal /dev with its own devpts, masked and read-only
// paths, generated files such as /etc/hosts, and the final pivot_root.
//
// The parent side validates a Plan (Validate); the container child runs
// Setup inside its new mount namespace, before it drops privileges. Setup
// works on file descriptors with the new mount API (open_tree, move_mount,
// fsmount, mount_setattr) and resolves every mount target with
// openat2(RESOLVE_IN_ROOT), so a symlink inside a root filesystem can never
// send a mount outside it, nor into /proc or /sys. A root of the host's
// own files shows only its program directories (HostVisible), with its
// secrets masked (HostSecrets).
//
// Overlay, image and image-file roots and named volumes are described
// here (Overlay, Image, ImageFile, NamedVolume) but prepared on the host by
// package storage, which fills in Root.Storage; Setup then only mounts
// what storage made.
//
// This package is linked into the container's init: it must not import
// storage or anything that unpacks, compresses or hashes (archive/,
// compress/, crypto/). It must never change the host: every mount it makes
// is in the container's private mount namespace (none in the parent), it
// never writes into the host's root (Host roots are assembled on a tmpfs),
// and Setup must not be called outside a new mount namespace, except with
// Plan.InheritMountNS, where it makes a scratch mount namespace of its own
// and leaves the caller's with the finished root as a detached tree (never
// attached to any mount table).
package rootfs
