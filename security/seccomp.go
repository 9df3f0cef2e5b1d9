package security

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/openvessel/vessel/fielderr"
)

// Action is a seccomp action name as written in OCI runtime-spec and Docker
// profiles, for example "SCMP_ACT_ERRNO".
type Action string

// The seccomp actions. ActKill kills the offending thread only (as in
// libseccomp); use ActKillProcess to kill the whole process.
const (
	ActKill        Action = "SCMP_ACT_KILL"
	ActKillProcess Action = "SCMP_ACT_KILL_PROCESS"
	ActKillThread  Action = "SCMP_ACT_KILL_THREAD"
	ActTrap        Action = "SCMP_ACT_TRAP"
	ActErrno       Action = "SCMP_ACT_ERRNO"
	ActTrace       Action = "SCMP_ACT_TRACE"
	ActAllow       Action = "SCMP_ACT_ALLOW"
	ActLog         Action = "SCMP_ACT_LOG"
	ActNotify      Action = "SCMP_ACT_NOTIFY"
)

// Operator is a comparison operator for a system call argument.
type Operator string

// The comparison operators. All comparisons are unsigned and 64 bits wide.
// For OpMaskedEqual the argument matches when (arg & Value) == ValueTwo.
const (
	OpNotEqual     Operator = "SCMP_CMP_NE"
	OpLessThan     Operator = "SCMP_CMP_LT"
	OpLessEqual    Operator = "SCMP_CMP_LE"
	OpEqualTo      Operator = "SCMP_CMP_EQ"
	OpGreaterEqual Operator = "SCMP_CMP_GE"
	OpGreaterThan  Operator = "SCMP_CMP_GT"
	OpMaskedEqual  Operator = "SCMP_CMP_MASKED_EQ"
)

// Seccomp is a seccomp profile. Its JSON form is that of the OCI
// runtime-spec (linux.seccomp) and of Docker's profile files, so such files
// can be read with [LoadSeccompJSON]. A nil *Seccomp means "unconfined".
type Seccomp struct {
	// DefaultAction applies to every system call no rule matches.
	DefaultAction Action `json:"defaultAction"`
	// DefaultErrnoRet is the errno of DefaultAction when it is
	// SCMP_ACT_ERRNO (EPERM when unset) or the message of SCMP_ACT_TRACE.
	DefaultErrnoRet *uint `json:"defaultErrnoRet,omitempty"`
	// Architectures (OCI) and ArchMap (Docker) list the architectures the
	// profile is written for. Only the native architecture is compiled:
	// system calls of any other ABI (i386, x32) kill the process.
	Architectures []string  `json:"architectures,omitempty"`
	ArchMap       []ArchMap `json:"archMap,omitempty"`
	// Flags are SECCOMP_FILTER_FLAG_* names: TSYNC, LOG, SPEC_ALLOW,
	// WAIT_KILLABLE_RECV.
	Flags []string `json:"flags,omitempty"`
	// ListenerPath and ListenerMetadata are carried to the [Program] for
	// the caller that forwards the SCMP_ACT_NOTIFY listener (OCI).
	ListenerPath     string `json:"listenerPath,omitempty"`
	ListenerMetadata string `json:"listenerMetadata,omitempty"`
	// Syscalls are the rules.
	Syscalls []Syscall `json:"syscalls,omitempty"`
}

// ArchMap is one entry of a Docker profile's archMap.
type ArchMap struct {
	Architecture     string   `json:"architecture"`
	SubArchitectures []string `json:"subArchitectures"`
}

// Syscall is one rule: for every named system call, when all Args match,
// take Action.
//
// Rules for the same system call are tried with argument rules first (in
// profile order) and rules without arguments last, so a specific rule is not
// hidden by a general one. As in runc, when one rule compares the same
// argument index more than once, those comparisons are ORed (each becomes a
// rule of its own); comparisons on different indexes are ANDed.
type Syscall struct {
	Names []string `json:"names,omitempty"`
	// Name is the single-name form of old Docker profiles.
	Name     string  `json:"name,omitempty"`
	Action   Action  `json:"action"`
	ErrnoRet *uint   `json:"errnoRet,omitempty"`
	Args     []Arg   `json:"args,omitempty"`
	Comment  string  `json:"comment,omitempty"`
	Includes *Filter `json:"includes,omitempty"`
	Excludes *Filter `json:"excludes,omitempty"`
}

// Filter selects when a Docker profile rule applies: Includes needs all its
// Caps in the container's bounding set, the native architecture among
// Arches, and a kernel at least MinKernel; Excludes drops the rule when any
// of its Caps is held or the architecture is among its Arches.
type Filter struct {
	Caps      []string `json:"caps,omitempty"`
	Arches    []string `json:"arches,omitempty"`
	MinKernel string   `json:"minKernel,omitempty"`
}

// Arg is a comparison of one system call argument (0 to 5).
type Arg struct {
	Index    uint     `json:"index"`
	Value    uint64   `json:"value"`
	ValueTwo uint64   `json:"valueTwo,omitempty"`
	Op       Operator `json:"op"`
}

// Seccomp filter flags accepted in [Seccomp.Flags].
var seccompFlagValues = map[string]uint{
	"SECCOMP_FILTER_FLAG_TSYNC":              1,
	"SECCOMP_FILTER_FLAG_LOG":                2,
	"SECCOMP_FILTER_FLAG_SPEC_ALLOW":         4,
	"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32,
}

var archNames = map[string]bool{
	"SCMP_ARCH_NATIVE": true, "SCMP_ARCH_X86": true, "SCMP_ARCH_X86_64": true,
	"SCMP_ARCH_X32": true, "SCMP_ARCH_ARM": true, "SCMP_ARCH_AARCH64": true,
	"SCMP_ARCH_MIPS": true, "SCMP_ARCH_MIPS64": true, "SCMP_ARCH_MIPS64N32": true,
	"SCMP_ARCH_MIPSEL": true, "SCMP_ARCH_MIPSEL64": true, "SCMP_ARCH_MIPSEL64N32": true,
	"SCMP_ARCH_PPC": true, "SCMP_ARCH_PPC64": true, "SCMP_ARCH_PPC64LE": true,
	"SCMP_ARCH_S390": true, "SCMP_ARCH_S390X": true, "SCMP_ARCH_PARISC": true,
	"SCMP_ARCH_PARISC64": true, "SCMP_ARCH_RISCV64": true, "SCMP_ARCH_LOONGARCH64": true,
	"SCMP_ARCH_M68K": true, "SCMP_ARCH_SH": true, "SCMP_ARCH_SHEB": true,
}

// isSyscallName reports whether s looks like a system call name:
// lower-case letters, digits and underscores, not starting with a digit.
func isSyscallName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// maxErrno is the largest errno the kernel passes back (MAX_ERRNO).
const maxErrno = 4095

// LoadSeccompJSON parses an OCI or Docker seccomp profile. The JSON
// string "unconfined" (or the bare word unconfined) gives a nil profile and
// no error. The profile is validated; unknown fields are rejected so a
// misspelt key does not silently weaken the filter.
func LoadSeccompJSON(data []byte) (*Seccomp, error) {
	trimmed := bytes.TrimSpace(data)
	if string(trimmed) == "unconfined" || string(trimmed) == `"unconfined"` {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	var s Seccomp
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Validate checks actions, errno values, operators, argument indexes,
// architecture names and flags. Unknown system call names are not errors
// (profiles list names of every architecture); they are skipped at Compile.
func (s *Seccomp) Validate() error {
	if s == nil {
		return nil
	}
	if err := checkAction("seccomp.defaultAction", s.DefaultAction, s.DefaultErrnoRet); err != nil {
		return err
	}
	for _, a := range s.Architectures {
		if !archNames[a] {
			return fielderr.New("seccomp.architectures", "unknown architecture %q", a)
		}
	}
	for i, m := range s.ArchMap {
		if !archNames[m.Architecture] {
			return fielderr.New(fmt.Sprintf("seccomp.archMap[%d].architecture", i), "unknown architecture %q", m.Architecture)
		}
		for _, a := range m.SubArchitectures {
			if !archNames[a] {
				return fielderr.New(fmt.Sprintf("seccomp.archMap[%d].subArchitectures", i), "unknown architecture %q", a)
			}
		}
	}
	for _, f := range s.Flags {
		if _, ok := seccompFlagValues[f]; !ok {
			return fielderr.New("seccomp.flags", "unknown flag %q", f)
		}
	}
	for i, r := range s.Syscalls {
		where := fmt.Sprintf("seccomp.syscalls[%d]", i)
		if len(r.Names) == 0 && r.Name == "" {
			return fielderr.New(where, "no system call names")
		}
		for _, n := range r.allNames() {
			if !isSyscallName(n) {
				return fielderr.New(where+".names", "%q is not a system call name", n)
			}
		}
		if err := checkAction(where+".action", r.Action, r.ErrnoRet); err != nil {
			return err
		}
		for j, a := range r.Args {
			if a.Index > 5 {
				return fielderr.New(fmt.Sprintf("%s.args[%d].index", where, j), "%d is out of range (0 to 5)", a.Index)
			}
			switch a.Op {
			case OpNotEqual, OpLessThan, OpLessEqual, OpEqualTo, OpGreaterEqual, OpGreaterThan, OpMaskedEqual:
			default:
				return fielderr.New(fmt.Sprintf("%s.args[%d].op", where, j), "unknown operator %q", a.Op)
			}
		}
		for _, f := range []*Filter{r.Includes, r.Excludes} {
			if f == nil {
				continue
			}
			for _, c := range f.Caps {
				if _, err := ParseCapability(c); err != nil {
					return &fielderr.Error{Field: where, Reason: fmt.Sprintf("includes/excludes: %v", err), Err: err}
				}
			}
			if f.MinKernel != "" {
				if _, err := parseKernelVersion(f.MinKernel); err != nil {
					return fielderr.Wrap(where+".includes.minKernel", err)
				}
			}
		}
	}
	return nil
}

func (r *Syscall) allNames() []string {
	if r.Name == "" {
		return r.Names
	}
	return append([]string{r.Name}, r.Names...)
}

func checkAction(where string, a Action, errnoRet *uint) error {
	switch a {
	case ActKill, ActKillProcess, ActKillThread, ActTrap, ActAllow, ActLog, ActNotify:
		if errnoRet != nil {
			return fielderr.New(where, "errnoRet is only meaningful with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not %s", a)
		}
	case ActErrno:
		if errnoRet != nil && *errnoRet > maxErrno {
			return fielderr.New(where, "errnoRet %d is above the largest errno %d", *errnoRet, maxErrno)
		}
	case ActTrace:
		if errnoRet != nil && *errnoRet > 0xffff {
			return fielderr.New(where, "trace message %d does not fit in 16 bits", *errnoRet)
		}
	case "":
		return fielderr.New(where, "missing action")
	default:
		return fielderr.New(where, "unknown action %q", a)
	}
	return nil
}

// parseKernelVersion reads "5.10" or "4.8.1-whatever" as [major, minor].
func parseKernelVersion(v string) ([2]int, error) {
	var out [2]int
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return out, fmt.Errorf("kernel version %q is not of the form MAJOR.MINOR", v)
	}
	for i := 0; i < 2; i++ {
		p := parts[i]
		end := 0
		for end < len(p) && p[end] >= '0' && p[end] <= '9' {
			end++
		}
		if end == 0 {
			return out, fmt.Errorf("kernel version %q is not of the form MAJOR.MINOR", v)
		}
		n := 0
		for _, ch := range p[:end] {
			n = n*10 + int(ch-'0')
		}
		out[i] = n
	}
	return out, nil
}
