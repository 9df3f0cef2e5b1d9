// Package storage is the host side of a container's files: what must exist
// on the host before the container's init builds its root, and what
// outlives one container.
//
// Prepare resolves a rootfs.Plan whose root is an overlay, an OCI image or
// an image file, or that has named volumes: it unpacks image layers once
// into a content-addressed store (tar, gzip and sha256 live here), creates
// writable layers and named volumes, sets disk quotas (XFS or ext4 project
// quotas, a tmpfs size, or an ext4 image on a loop device) and attaches
// loop devices. It records the result in the plan (rootfs.Storage) for the
// init, which only mounts it. Release undoes what Prepare made for one
// container; ReleaseStale cleans after owners that died. Snapshot turns a
// writable layer into a read-only lower layer of the store.
//
// This package runs in the caller's process, never in the container's
// init: internal/child must not import it (the init would link archive/tar,
// compress/gzip and crypto/sha256 for nothing). It must not mount anything
// the host can see (a layer kept in an ext4 image is read through a
// detached mount), and it changes the host only under the directories it
// is given (PrepareOptions, the store, the volume directory) plus the loop
// devices it attaches and detaches.
package storage
