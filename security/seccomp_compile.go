package security

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// SockFilter is one classic BPF instruction (struct sock_filter).
type SockFilter struct {
	Code uint16 `json:"c"`
	Jt   uint8  `json:"t,omitempty"`
	Jf   uint8  `json:"f,omitempty"`
	K    uint32 `json:"k,omitempty"`
}

// Program is a compiled seccomp filter: plain data, safe to send to the
// container child as JSON and load there with [Apply].
type Program struct {
	// Arch is the architecture the filter was compiled for ("x86_64" or
	// "aarch64"); the filter kills the process on any other.
	Arch string `json:"arch"`
	// Filter is the BPF program.
	Filter []SockFilter `json:"filter"`
	// Flags are the SECCOMP_FILTER_FLAG_* bits asked for by the profile.
	Flags uint `json:"flags,omitempty"`
	// Listener is true when a rule uses SCMP_ACT_NOTIFY: the filter must be
	// loaded with SECCOMP_FILTER_FLAG_NEW_LISTENER and the returned file
	// descriptor handed to a supervisor.
	Listener bool `json:"listener,omitempty"`
	// ListenerPath and ListenerMetadata are copied from the profile for the
	// caller that forwards the listener (OCI semantics).
	ListenerPath     string `json:"listenerPath,omitempty"`
	ListenerMetadata string `json:"listenerMetadata,omitempty"`
	// Unknown lists the profile's system call names that the architecture
	// does not have; they were skipped, as libseccomp-based runtimes do.
	Unknown []string `json:"-"`
}

// CompileOptions tunes [Seccomp.CompileWith].
type CompileOptions struct {
	// GOARCH selects the target ("amd64" or "arm64"); runtime.GOARCH if empty.
	GOARCH string
	// Caps is the container's bounding set, used by includes/excludes caps
	// of Docker profiles. Nil means no capabilities.
	Caps []string
	// KernelVersion ("6.1") is used by includes.minKernel; the running
	// kernel's if empty.
	KernelVersion string
}

// Seccomp return values (SECCOMP_RET_*).
const (
	retKillProcess uint32 = 0x80000000
	retKillThread  uint32 = 0x00000000
	retTrap        uint32 = 0x00030000
	retErrno       uint32 = 0x00050000
	retUserNotif   uint32 = 0x7fc00000
	retTrace       uint32 = 0x7ff00000
	retLog         uint32 = 0x7ffc0000
	retAllow       uint32 = 0x7fff0000
)

// Classic BPF opcodes used by the compiler.
const (
	opLdAbsW uint16 = 0x20 // BPF_LD|BPF_W|BPF_ABS
	opJeqK   uint16 = 0x15 // BPF_JMP|BPF_JEQ|BPF_K
	opJgtK   uint16 = 0x25 // BPF_JMP|BPF_JGT|BPF_K
	opJgeK   uint16 = 0x35 // BPF_JMP|BPF_JGE|BPF_K
	opJa     uint16 = 0x05 // BPF_JMP|BPF_JA
	opAndK   uint16 = 0x54 // BPF_ALU|BPF_AND|BPF_K
	opRetK   uint16 = 0x06 // BPF_RET|BPF_K
)

// Offsets in struct seccomp_data.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// maxInsns is BPF_MAXINSNS, the kernel's limit on a classic filter.
const maxInsns = 4096

// x32SyscallBit marks x32 ABI system calls on x86_64.
const x32SyscallBit = 0x40000000

type archInfo struct {
	name      string
	auditArch uint32
	table     func() map[string]uint32
	aliases   []string // architecture names of Docker's includes/excludes.arches
	checkX32  bool
}

var archByGOARCH = map[string]*archInfo{
	"amd64": {name: "x86_64", auditArch: 0xC000003E, table: syscallsX8664, aliases: []string{"amd64", "x86_64"}, checkX32: true},
	"arm64": {name: "aarch64", auditArch: 0xC00000B7, table: syscallsAArch64, aliases: []string{"arm64", "aarch64"}},
}

// SyscallNumber returns the number of a system call on the native
// architecture, and whether this package knows it.
func SyscallNumber(name string) (uint32, bool) {
	a := archByGOARCH[runtime.GOARCH]
	if a == nil {
		return 0, false
	}
	n, ok := a.table()[name]
	return n, ok
}

var (
	kernelOnce    sync.Once
	kernelRelease string
)

func runningKernel() string {
	kernelOnce.Do(func() {
		var u unix.Utsname
		if unix.Uname(&u) == nil {
			kernelRelease = unix.ByteSliceToString(u.Release[:])
		}
	})
	return kernelRelease
}

// Compile validates the profile and compiles it for the native architecture,
// as for a container without capabilities (rules with includes.caps are
// left out). [Profile.Prepare] compiles with the container's bounding set
// instead. A nil profile compiles to a nil program.
func (s *Seccomp) Compile() (*Program, error) {
	return s.CompileWith(CompileOptions{})
}

// ret of an action, with the errno or trace message folded in.
func actionRet(a Action, errnoRet *uint) uint32 {
	switch a {
	case ActKill, ActKillThread:
		return retKillThread
	case ActKillProcess:
		return retKillProcess
	case ActTrap:
		return retTrap
	case ActErrno:
		e := uint32(unix.EPERM)
		if errnoRet != nil {
			e = uint32(*errnoRet)
		}
		return retErrno | e
	case ActTrace:
		var msg uint32
		if errnoRet != nil {
			msg = uint32(*errnoRet)
		}
		return retTrace | msg
	case ActLog:
		return retLog
	case ActNotify:
		return retUserNotif
	default:
		return retAllow
	}
}

// cond is one 64-bit argument comparison.
type cond struct {
	index int
	op    Operator
	value uint64
	two   uint64
}

// alt is one way for a system call to match: all conds hold.
type alt struct {
	conds []cond
	ret   uint32
}

// CompileWith is [Seccomp.Compile] with explicit options.
func (s *Seccomp) CompileWith(o CompileOptions) (*Program, error) {
	if s == nil {
		return nil, nil
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	goarch := o.GOARCH
	if goarch == "" {
		goarch = runtime.GOARCH
	}
	arch := archByGOARCH[goarch]
	if arch == nil {
		return nil, fmt.Errorf("seccomp: architecture %q is not supported (amd64 and arm64 are)", goarch)
	}
	table := arch.table()
	kver := o.KernelVersion
	if kver == "" {
		kver = runningKernel()
	}
	caps := make(map[string]bool, len(o.Caps))
	for _, c := range o.Caps {
		caps[canonicalCapName(c)] = true
	}

	prog := &Program{Arch: arch.name, ListenerPath: s.ListenerPath, ListenerMetadata: s.ListenerMetadata}
	for _, f := range s.Flags {
		prog.Flags |= seccompFlagValues[f]
	}
	defRet := actionRet(s.DefaultAction, s.DefaultErrnoRet)
	if s.DefaultAction == ActNotify {
		prog.Listener = true
	}

	// Per system call number: argument alternatives, then the first
	// unconditional action (if any).
	type entry struct {
		alts        []alt
		uncond      uint32
		hasUncond   bool
		orderedName string
	}
	entries := make(map[uint32]*entry, 512)
	var maxKnown int64 = -1
	seenUnknown := map[string]bool{}
	for _, r := range s.Syscalls {
		names := r.allNames()
		for _, n := range names {
			if nr, ok := table[n]; ok {
				maxKnown = max(maxKnown, int64(nr))
			} else if !seenUnknown[n] {
				seenUnknown[n] = true
				prog.Unknown = append(prog.Unknown, n)
			}
		}
		if !ruleApplies(&r, arch, caps, kver) {
			continue
		}
		ret := actionRet(r.Action, r.ErrnoRet)
		if r.Action == ActNotify {
			prog.Listener = true
		}
		alts := ruleAlternatives(r.Args, ret)
		for _, n := range names {
			nr, ok := table[n]
			if !ok {
				continue
			}
			e := entries[nr]
			if e == nil {
				e = &entry{orderedName: n}
				entries[nr] = e
			}
			if len(r.Args) == 0 {
				if !e.hasUncond {
					e.hasUncond, e.uncond = true, ret
				}
				continue
			}
			e.alts = append(e.alts, alts...)
		}
	}

	// Lay the number line out as intervals of equal treatment.
	type interval struct {
		lo    uint32 // first number; the interval ends where the next begins
		ret   uint32 // constant action when block is nil
		block *entry
	}
	nrs := make([]uint32, 0, len(entries))
	for nr := range entries {
		nrs = append(nrs, nr)
	}
	slices.Sort(nrs)
	var ivs []interval
	push := func(iv interval) {
		if n := len(ivs); n > 0 && iv.block == nil && ivs[n-1].block == nil && ivs[n-1].ret == iv.ret {
			return
		}
		ivs = append(ivs, iv)
	}
	next := uint32(0)
	for _, nr := range nrs {
		if nr > next {
			push(interval{lo: next, ret: defRet})
		}
		e := entries[nr]
		fallback := defRet
		if e.hasUncond {
			fallback = e.uncond
		}
		if len(e.alts) == 0 {
			push(interval{lo: nr, ret: fallback})
		} else {
			e.uncond = fallback
			push(interval{lo: nr, block: e})
		}
		next = nr + 1
	}
	// Numbers above every system call the profile names are newer than the
	// profile: answer ENOSYS, as the kernel would for a missing call, so
	// that programs fall back to older calls instead of failing with EPERM.
	tailRet := defRet
	switch s.DefaultAction {
	case ActErrno, ActKill, ActKillThread, ActKillProcess, ActTrap:
		tailRet = retErrno | uint32(unix.ENOSYS)
	}
	if maxKnown >= 0 {
		if uint32(maxKnown+1) > next {
			push(interval{lo: next, ret: defRet})
		}
		push(interval{lo: uint32(maxKnown + 1), ret: tailRet})
	} else {
		push(interval{lo: next, ret: defRet})
	}

	var a assembler
	// Architecture check: any other audit arch (i386 via int 0x80 on
	// x86_64, arm32 on arm64) is killed; the filter only knows the native
	// numbering.
	ok := a.newLabel()
	a.load(offArch)
	a.jump(opJeqK, arch.auditArch, ok, 0)
	a.ret(retKillProcess)
	a.bind(ok)
	a.load(offNr)
	if arch.checkX32 {
		// x32 system calls share the x86_64 audit arch but carry bit 30.
		// nr == -1 (a tracer skipping a call) is not x32; let it through.
		native := a.newLabel()
		a.jump(opJgeK, x32SyscallBit, 0, native)
		a.jump(opJeqK, 0xffffffff, native, 0)
		a.ret(retKillProcess)
		a.bind(native)
	}
	// Binary search over the intervals on the system call number in A.
	var emit func(ivs []interval)
	emit = func(ivs []interval) {
		if len(ivs) == 1 {
			iv := ivs[0]
			if iv.block == nil {
				a.ret(iv.ret)
				return
			}
			for _, al := range iv.block.alts {
				fail := a.newLabel()
				for _, c := range al.conds {
					a.cond(c, fail)
				}
				a.ret(al.ret)
				a.bind(fail)
			}
			a.ret(iv.block.uncond)
			return
		}
		mid := len(ivs) / 2
		right := a.newLabel()
		a.jump(opJgeK, ivs[mid].lo, right, 0)
		emit(ivs[:mid])
		a.bind(right)
		emit(ivs[mid:])
	}
	emit(ivs)

	filter, err := a.assemble()
	if err != nil {
		return nil, err
	}
	prog.Filter = filter
	return prog, nil
}

// ruleApplies evaluates Docker's includes/excludes.
func ruleApplies(r *Syscall, arch *archInfo, caps map[string]bool, kver string) bool {
	archIn := func(list []string) bool {
		for _, x := range list {
			if slices.Contains(arch.aliases, strings.ToLower(x)) {
				return true
			}
		}
		return false
	}
	if in := r.Includes; in != nil {
		for _, c := range in.Caps {
			if !caps[canonicalCapName(c)] {
				return false
			}
		}
		if len(in.Arches) > 0 && !archIn(in.Arches) {
			return false
		}
		if in.MinKernel != "" {
			want, _ := parseKernelVersion(in.MinKernel)
			have, err := parseKernelVersion(kver)
			if err != nil || have[0] < want[0] || (have[0] == want[0] && have[1] < want[1]) {
				return false
			}
		}
	}
	if ex := r.Excludes; ex != nil {
		for _, c := range ex.Caps {
			if caps[canonicalCapName(c)] {
				return false
			}
		}
		if len(ex.Arches) > 0 && archIn(ex.Arches) {
			return false
		}
	}
	return true
}

// ruleAlternatives turns a rule's Args into OR-ed alternatives: comparisons
// on distinct indexes are ANDed; if an index repeats, every comparison
// becomes an alternative of its own (runc's behaviour).
func ruleAlternatives(args []Arg, ret uint32) []alt {
	if len(args) == 0 {
		return nil
	}
	seen := map[uint]bool{}
	repeated := false
	conds := make([]cond, 0, len(args))
	for _, a := range args {
		if seen[a.Index] {
			repeated = true
		}
		seen[a.Index] = true
		conds = append(conds, cond{index: int(a.Index), op: a.Op, value: a.Value, two: a.ValueTwo})
	}
	if !repeated {
		return []alt{{conds: conds, ret: ret}}
	}
	out := make([]alt, 0, len(conds))
	for _, c := range conds {
		out = append(out, alt{conds: []cond{c}, ret: ret})
	}
	return out
}

// assembler builds a classic BPF program with symbolic forward jumps and
// fixes jumps longer than 255 instructions with JA trampolines.
type assembler struct {
	insns   []insn
	labelAt []int // label id -> instruction index; id 0 means "next"
}

type insn struct {
	code   uint16
	k      uint32
	jt, jf int // label ids for conditional jumps (0 = next instruction)
	ja     int // label id for BPF_JA
}

func (a *assembler) newLabel() int {
	if len(a.labelAt) == 0 {
		a.labelAt = append(a.labelAt, -1) // id 0 is reserved
	}
	a.labelAt = append(a.labelAt, -1)
	return len(a.labelAt) - 1
}

func (a *assembler) bind(l int)      { a.labelAt[l] = len(a.insns) }
func (a *assembler) load(off uint32) { a.insns = append(a.insns, insn{code: opLdAbsW, k: off}) }
func (a *assembler) and(k uint32)    { a.insns = append(a.insns, insn{code: opAndK, k: k}) }
func (a *assembler) ret(k uint32)    { a.insns = append(a.insns, insn{code: opRetK, k: k}) }
func (a *assembler) jump(op uint16, k uint32, jt, jf int) {
	a.insns = append(a.insns, insn{code: op, k: k, jt: jt, jf: jf})
}

// cond emits a 64-bit comparison of argument c.index that falls through
// when it holds and jumps to fail when it does not. The argument is read as
// two 32-bit words (little-endian: low word first).
func (a *assembler) cond(c cond, fail int) {
	lo := uint32(offArgs + 8*c.index)
	hi := lo + 4
	vlo, vhi := uint32(c.value), uint32(c.value>>32)
	pass := a.newLabel()
	switch c.op {
	case OpEqualTo:
		a.load(hi)
		a.jump(opJeqK, vhi, 0, fail)
		a.load(lo)
		a.jump(opJeqK, vlo, 0, fail)
	case OpNotEqual:
		a.load(hi)
		a.jump(opJeqK, vhi, 0, pass)
		a.load(lo)
		a.jump(opJeqK, vlo, fail, 0)
	case OpGreaterThan, OpGreaterEqual:
		a.load(hi)
		a.jump(opJgtK, vhi, pass, 0)
		a.jump(opJeqK, vhi, 0, fail)
		a.load(lo)
		op := opJgtK
		if c.op == OpGreaterEqual {
			op = opJgeK
		}
		a.jump(op, vlo, 0, fail)
	case OpLessThan, OpLessEqual:
		a.load(hi)
		a.jump(opJgtK, vhi, fail, 0)
		a.jump(opJeqK, vhi, 0, pass)
		a.load(lo)
		op := opJgeK // lo >= v fails LT
		if c.op == OpLessEqual {
			op = opJgtK // lo > v fails LE
		}
		a.jump(op, vlo, fail, 0)
	case OpMaskedEqual:
		mlo, mhi := vlo, vhi
		dlo, dhi := uint32(c.two), uint32(c.two>>32)
		a.load(hi)
		a.and(mhi)
		a.jump(opJeqK, dhi, 0, fail)
		a.load(lo)
		a.and(mlo)
		a.jump(opJeqK, dlo, 0, fail)
	}
	a.bind(pass)
}

// assemble resolves labels, inserting trampolines for far jumps.
func (a *assembler) assemble() ([]SockFilter, error) {
	for {
		var farAfter []int // indexes of jumps needing trampolines
		var need [][2]bool
		for i, in := range a.insns {
			if in.code&0x07 != 0x05 || in.code == opJa {
				continue
			}
			ft, ff := a.dist(i, in.jt) > 255, a.dist(i, in.jf) > 255
			if ft || ff {
				farAfter = append(farAfter, i)
				need = append(need, [2]bool{ft, ff})
			}
		}
		if len(farAfter) == 0 {
			break
		}
		a.insertTrampolines(farAfter, need)
	}
	if len(a.insns) > maxInsns {
		return nil, fmt.Errorf("seccomp: the compiled filter has %d instructions, more than the kernel's limit of %d", len(a.insns), maxInsns)
	}
	out := make([]SockFilter, len(a.insns))
	for i, in := range a.insns {
		f := SockFilter{Code: in.code, K: in.k}
		switch {
		case in.code == opJa:
			d := a.dist(i, in.ja)
			if d < 0 {
				return nil, fmt.Errorf("seccomp: internal error: backward jump at %d", i)
			}
			f.K = uint32(d)
		case in.code&0x07 == 0x05:
			dt, df := a.dist(i, in.jt), a.dist(i, in.jf)
			if dt < 0 || df < 0 || dt > 255 || df > 255 {
				return nil, fmt.Errorf("seccomp: internal error: bad jump at %d", i)
			}
			f.Jt, f.Jf = uint8(dt), uint8(df)
		}
		out[i] = f
	}
	return out, nil
}

// dist is the jump offset from instruction i to label l (0 for "next").
func (a *assembler) dist(i, l int) int {
	if l == 0 {
		return 0
	}
	return a.labelAt[l] - i - 1
}

func (a *assembler) insertTrampolines(jumps []int, need [][2]bool) {
	// New position of an old index: old + trampolines inserted before it.
	inserted := make([]int, len(a.insns)+1) // prefix counts by old index
	extra := make(map[int]int, len(jumps))
	for k, j := range jumps {
		n := 0
		if need[k][0] {
			n++
		}
		if need[k][1] {
			n++
		}
		extra[j] = n
	}
	// A "next" target of a jump that gets trampolines must keep meaning the
	// old next instruction, so name it with a label before shifting.
	for _, j := range jumps {
		for _, t := range []*int{&a.insns[j].jt, &a.insns[j].jf} {
			if *t == 0 {
				a.labelAt = append(a.labelAt, j+1)
				*t = len(a.labelAt) - 1
			}
		}
	}
	acc := 0
	for i := 0; i <= len(a.insns); i++ {
		inserted[i] = acc
		acc += extra[i]
	}
	for l := 1; l < len(a.labelAt); l++ {
		if p := a.labelAt[l]; p >= 0 {
			a.labelAt[l] = p + inserted[p]
		}
	}
	out := make([]insn, 0, len(a.insns)+acc)
	for i, in := range a.insns {
		n := extra[i]
		if n == 0 {
			out = append(out, in)
			continue
		}
		k := slices.Index(jumps, i)
		var tramps []insn
		if need[k][0] {
			l := len(a.labelAt)
			a.labelAt = append(a.labelAt, len(out)+1+len(tramps))
			tramps = append(tramps, insn{code: opJa, ja: in.jt})
			in.jt = l
		}
		if need[k][1] {
			l := len(a.labelAt)
			a.labelAt = append(a.labelAt, len(out)+1+len(tramps))
			tramps = append(tramps, insn{code: opJa, ja: in.jf})
			in.jf = l
		}
		out = append(out, in)
		out = append(out, tramps...)
	}
	a.insns = out
}
