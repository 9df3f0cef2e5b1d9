//go:build !amd64 && !arm64

package child

import "syscall"

// vforkFlags: elsewhere a plain fork (the child's own copy of memory).
const vforkFlags = 0

// vforkSyscall is a plain system call where no vfork is written.
//
//go:nosplit
func vforkSyscall(trap, a1, a2, a3 uintptr) (r1, errno uintptr) {
	r1, _, e := syscall.RawSyscall6(trap, a1, a2, a3, 0, 0, 0)
	return r1, uintptr(e)
}
