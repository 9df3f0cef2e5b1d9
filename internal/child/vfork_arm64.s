#include "textflag.h"

// func vforkSyscall(trap, a1, a2, a3 uintptr) (r1, errno uintptr)
//
// clone or clone3 with CLONE_VM|CLONE_VFORK (see spawn.go). A leaf
// without a frame: the return address stays in the link register, which
// the child, returning onto the same stack, cannot overwrite for the
// parent.
TEXT ·vforkSyscall(SB),NOSPLIT|NOFRAME,$0-48
	MOVD	a1+8(FP), R0
	MOVD	a2+16(FP), R1
	MOVD	a3+24(FP), R2
	MOVD	$0, R3
	MOVD	$0, R4
	MOVD	$0, R5
	MOVD	trap+0(FP), R8
	SVC
	CMN	$4095, R0
	BCC	done
	NEG	R0, R0
	MOVD	R0, errno+40(FP)
	MOVD	$-1, R0
	MOVD	R0, r1+32(FP)
	RET
done:
	MOVD	R0, r1+32(FP)
	MOVD	ZR, errno+40(FP)
	RET
