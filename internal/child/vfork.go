//go:build amd64 || arm64

package child

import "golang.org/x/sys/unix"

// vforkFlags are the clone flags of a vfork: the child borrows the
// parent's memory, and the parent's thread waits until its execve.
const vforkFlags = unix.CLONE_VM | unix.CLONE_VFORK

// vforkSyscall is in vfork_$GOARCH.s.
func vforkSyscall(trap, a1, a2, a3 uintptr) (r1, errno uintptr)
