package security

import (
	"fmt"
	"strings"

	"github.com/moby/sys/capability"
	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/fielderr"
)

// Profile is the whole security setting of a container process. The zero
// value changes nothing (root keeps every capability, no filter); start from
// [DefaultProfile] for a safe one.
type Profile struct {
	// Capabilities of the process; nil leaves them as they are.
	Capabilities *Capabilities `json:"capabilities,omitempty"`
	// NoNewPrivileges sets PR_SET_NO_NEW_PRIVS: setuid binaries and file
	// capabilities no longer raise privileges at execve.
	NoNewPrivileges bool `json:"noNewPrivileges"`
	// Securebits are names of securebits to set, such as "SECBIT_NOROOT",
	// "SECBIT_NOROOT_LOCKED", "SECBIT_NO_SETUID_FIXUP" or
	// "SECBIT_NO_CAP_AMBIENT_RAISE" (see capabilities(7)). Empty leaves them.
	Securebits []string `json:"securebits,omitempty"`
	// Seccomp is the system call filter; nil means unconfined.
	Seccomp *Seccomp `json:"seccomp,omitempty"`
	// Landlock is the filesystem and TCP port ruleset; nil means none.
	Landlock *Landlock `json:"landlock,omitempty"`
}

// DefaultProfile returns vessel's default: Docker's 14 capabilities,
// no_new_privs, [DefaultSeccomp], and no Landlock ruleset (which paths to
// allow depends on the container's mounts; the caller fills one in).
func DefaultProfile() *Profile {
	return &Profile{
		Capabilities:    DefaultCapabilities(),
		NoNewPrivileges: true,
		Seccomp:         DefaultSeccomp(),
	}
}

// Privileged returns the profile of a privileged container: every
// capability, no seccomp filter, no_new_privs off.
func Privileged() *Profile {
	return &Profile{Capabilities: AllCapabilities()}
}

// Prepared is a [Profile] after validation and compilation: capability masks
// and a BPF program. It is plain data, meant to travel to the container
// child (in the init's binary config codec) and be applied there with
// [Apply].
type Prepared struct {
	// Capabilities are the capability masks; nil leaves them as they are.
	Capabilities *CapSets `json:"capabilities,omitempty"`
	// Securebits, when not nil, is the securebits value to set.
	Securebits *uint32 `json:"securebits,omitempty"`
	// NoNewPrivileges sets PR_SET_NO_NEW_PRIVS.
	NoNewPrivileges bool `json:"noNewPrivileges"`
	// Seccomp is the compiled filter; nil means unconfined.
	Seccomp *Program `json:"seccomp,omitempty"`
	// Landlock is the ruleset to apply; nil (or disabled) means none.
	Landlock *Landlock `json:"landlock,omitempty"`
}

// Securebit values (capabilities(7), linux/securebits.h).
var securebitValues = map[string]uint32{
	"SECBIT_NOROOT":                       1 << 0,
	"SECBIT_NOROOT_LOCKED":                1 << 1,
	"SECBIT_NO_SETUID_FIXUP":              1 << 2,
	"SECBIT_NO_SETUID_FIXUP_LOCKED":       1 << 3,
	"SECBIT_KEEP_CAPS":                    1 << 4,
	"SECBIT_KEEP_CAPS_LOCKED":             1 << 5,
	"SECBIT_NO_CAP_AMBIENT_RAISE":         1 << 6,
	"SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED":  1 << 7,
	"SECBIT_EXEC_RESTRICT_FILE":           1 << 8,
	"SECBIT_EXEC_RESTRICT_FILE_LOCKED":    1 << 9,
	"SECBIT_EXEC_DENY_INTERACTIVE":        1 << 10,
	"SECBIT_EXEC_DENY_INTERACTIVE_LOCKED": 1 << 11,
}

const (
	secbitKeepCaps          = 1 << 4
	secbitKeepCapsLocked    = 1 << 5
	secbitNoAmbientRaise    = 1 << 6
	capSysAdmin             = 21
	capSetpcap              = 8
	defaultCapsSysAdminMask = uint64(1) << capSysAdmin
)

// Validate checks the profile without compiling it.
func (p *Profile) Validate() error {
	_, err := p.prepare(false)
	return err
}

// Prepare validates the profile and does the expensive work once, in the
// parent: capability names become masks (capabilities newer than the
// running kernel are dropped), securebit names become a value, and the
// seccomp profile is compiled for the native architecture, with Docker's
// includes/excludes caps resolved against the bounding set.
func (p *Profile) Prepare() (*Prepared, error) {
	return p.prepare(true)
}

func (p *Profile) prepare(compile bool) (*Prepared, error) {
	if p == nil {
		return &Prepared{}, nil
	}
	out := &Prepared{NoNewPrivileges: p.NoNewPrivileges}
	last := 63
	if compile {
		lc, err := capability.LastCap()
		if err != nil {
			return nil, fmt.Errorf("capabilities: reading the kernel's last capability: %w", err)
		}
		last = int(lc)
	}
	boundingNames := allCapNames()
	if p.Capabilities != nil {
		sets, err := p.Capabilities.resolve(last)
		if err != nil {
			return nil, err
		}
		out.Capabilities = sets
		boundingNames = maskToNames(sets.Bounding)
	}
	if len(p.Securebits) > 0 {
		var bits uint32
		for _, name := range p.Securebits {
			v, ok := securebitValues[strings.ToUpper(strings.TrimSpace(name))]
			if !ok {
				return nil, fielderr.New("securebits", "unknown securebit %q", name)
			}
			bits |= v
		}
		if bits&secbitNoAmbientRaise != 0 && out.Capabilities != nil && out.Capabilities.Ambient != 0 {
			return nil, fielderr.New("securebits", "SECBIT_NO_CAP_AMBIENT_RAISE forbids the ambient capabilities asked for (%s)", maskNames(out.Capabilities.Ambient))
		}
		out.Securebits = &bits
	}
	if p.Landlock != nil && p.Landlock.Enabled {
		if err := p.Landlock.Validate(); err != nil {
			return nil, err
		}
		l := *p.Landlock
		out.Landlock = &l
	}
	if p.Seccomp != nil {
		if !compile {
			return out, p.Seccomp.Validate()
		}
		sc := p.Seccomp
		if l := out.Landlock; l != nil && (l.BindTCP != nil || l.ConnectTCP != nil) {
			// Landlock's port rules apply to IPPROTO_TCP sockets only: an
			// MPTCP socket would bypass them. Refuse those (Go and libc
			// fall back to plain TCP on EPROTONOSUPPORT).
			cp := *sc
			noSupport := uint(unix.EPROTONOSUPPORT)
			cp.Syscalls = append([]Syscall{{Names: []string{"socket"}, Action: ActErrno, ErrnoRet: &noSupport,
				Args:    []Arg{{Index: 2, Value: unix.IPPROTO_MPTCP, Op: OpEqualTo}},
				Comment: "MPTCP sockets would bypass Landlock's TCP port rules"}}, cp.Syscalls...)
			sc = &cp
		}
		prog, err := sc.CompileWith(CompileOptions{Caps: boundingNames})
		if err != nil {
			return nil, err
		}
		out.Seccomp = prog
	}
	return out, nil
}
