// Package filesnap records what a few small mounted trees hold (a
// container's tmpfs mounts and generated files) and puts them back later:
// owners, modes, file contents and symlink targets are restored in place,
// and whatever was added is removed. vessel's Pool uses it to hand the next
// job a container as it was when it started.
//
// Every path is opened below a root descriptor with openat2
// (RESOLVE_IN_ROOT, no symlinks followed: internal/pathrs), and every
// change goes through descriptors, so a job that plants symlinks cannot
// make a restore touch anything outside its container.
//
// It must not decide which mounts may be recorded (that is the pool's
// policy), must not walk into other mounts, and keeps everything in
// memory: Record refuses files above MaxFile and trees above MaxEntries
// rather than grow.
package filesnap
