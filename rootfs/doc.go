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
// Storage that outlives a mount namespace is prepared on the parent side
// by Prepare: image layers unpacked once into a content-addressed store,
// writable layers, named volumes, loop devices for image files and disk
// quotas; Release undoes what Prepare made for one container.
//
// This package must never change the host beyond that: every mount it
// makes is in the container's private mount namespace (none in the
// parent), it never writes into the host's root (Host roots are assembled
// on a tmpfs), and Setup must not be called outside a new mount namespace.
package rootfs
