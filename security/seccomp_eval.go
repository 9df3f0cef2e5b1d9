package security

import (
	"fmt"
	"runtime"
)

// Decide runs the compiled filter the way the kernel would for one system
// call of the native architecture with the given arguments, and returns the
// SECCOMP_RET_* value (action and data). It understands the instructions
// this package's compiler emits; any other instruction makes it answer
// SECCOMP_RET_KILL_PROCESS, so a caller asking "is this allowed" gets a
// safe no.
func (p *Program) Decide(nr uint32, args [6]uint64) uint32 {
	a := archByGOARCH[runtime.GOARCH]
	if p == nil {
		return retAllow
	}
	if a == nil || a.name != p.Arch {
		return retKillProcess
	}
	word := func(off uint32) (uint32, bool) {
		switch {
		case off == offNr:
			return nr, true
		case off == offArch:
			return a.auditArch, true
		case off >= offArgs && off < offArgs+6*8 && off%4 == 0:
			v := args[(off-offArgs)/8]
			if (off-offArgs)%8 == 4 {
				return uint32(v >> 32), true
			}
			return uint32(v), true
		}
		return 0, false
	}
	var acc uint32
	for pc := 0; pc < len(p.Filter); pc++ {
		in := p.Filter[pc]
		switch in.Code {
		case opLdAbsW:
			v, ok := word(in.K)
			if !ok {
				return retKillProcess
			}
			acc = v
		case opAndK:
			acc &= in.K
		case opJa:
			pc += int(in.K)
		case opJeqK, opJgtK, opJgeK:
			var hit bool
			switch in.Code {
			case opJeqK:
				hit = acc == in.K
			case opJgtK:
				hit = acc > in.K
			default:
				hit = acc >= in.K
			}
			if hit {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case opRetK:
			return in.K
		default:
			return retKillProcess
		}
	}
	return retKillProcess
}

// Call is one system call, by name, with the arguments to decide it for.
type Call struct {
	Name string
	Args [6]uint64
}

// AllowsAll reports nil when the filter lets every call through (action
// SECCOMP_RET_ALLOW or SECCOMP_RET_LOG), else an error naming the first
// one it would stop. Calls this architecture does not have are skipped.
func (p *Program) AllowsAll(calls []Call) error {
	if p == nil {
		return nil
	}
	for _, c := range calls {
		nr, ok := SyscallNumber(c.Name)
		if !ok {
			continue
		}
		switch r := p.Decide(nr, c.Args) & 0xffff0000; r {
		case retAllow, retLog:
		default:
			return fmt.Errorf("the seccomp filter stops %s (action %#x)", c.Name, r)
		}
	}
	return nil
}
