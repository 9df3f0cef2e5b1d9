#include "textflag.h"

// func vforkSyscall(trap, a1, a2, a3 uintptr) (r1, errno uintptr)
//
// clone or clone3 with CLONE_VM|CLONE_VFORK (see spawn.go). The child
// returns from here onto the same stack, and calls functions of its own
// there while the parent waits in the kernel: the return address leaves
// the stack for R12 (each thread has its own registers) before the
// system call, and goes back after it, so that the parent returns
// through its own and not through whatever the child left there.
TEXT ·vforkSyscall(SB),NOSPLIT|NOFRAME,$0-48
	MOVQ	a1+8(FP), DI
	MOVQ	a2+16(FP), SI
	MOVQ	a3+24(FP), DX
	XORQ	R10, R10
	XORQ	R8, R8
	XORQ	R9, R9
	MOVQ	trap+0(FP), AX
	POPQ	R12
	SYSCALL
	PUSHQ	R12
	CMPQ	AX, $0xfffffffffffff001
	JLS	done
	NEGQ	AX
	MOVQ	AX, errno+40(FP)
	MOVQ	$-1, r1+32(FP)
	RET
done:
	MOVQ	AX, r1+32(FP)
	MOVQ	$0, errno+40(FP)
	RET
