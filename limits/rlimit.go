package limits

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// RlimInfinity is the value of an unlimited soft or hard rlimit.
const RlimInfinity = ^uint64(0)

// Rlimit is one per-process resource limit, as set by setrlimit(2).
type Rlimit struct {
	// Type is the limit's name in OCI form: "RLIMIT_NOFILE", "RLIMIT_NPROC"...
	Type string `json:"type"`
	// Soft is the value the kernel enforces; Hard is the ceiling up to which
	// the process may raise Soft. RlimInfinity means unlimited.
	Soft uint64 `json:"soft"`
	Hard uint64 `json:"hard"`
}

var rlimitNumbers = map[string]int{
	"RLIMIT_AS":         unix.RLIMIT_AS,
	"RLIMIT_CORE":       unix.RLIMIT_CORE,
	"RLIMIT_CPU":        unix.RLIMIT_CPU,
	"RLIMIT_DATA":       unix.RLIMIT_DATA,
	"RLIMIT_FSIZE":      unix.RLIMIT_FSIZE,
	"RLIMIT_LOCKS":      unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK":    unix.RLIMIT_MEMLOCK,
	"RLIMIT_MSGQUEUE":   unix.RLIMIT_MSGQUEUE,
	"RLIMIT_NICE":       unix.RLIMIT_NICE,
	"RLIMIT_NOFILE":     unix.RLIMIT_NOFILE,
	"RLIMIT_NPROC":      unix.RLIMIT_NPROC,
	"RLIMIT_RSS":        unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO":     unix.RLIMIT_RTPRIO,
	"RLIMIT_RTTIME":     unix.RLIMIT_RTTIME,
	"RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK":      unix.RLIMIT_STACK,
}

// RlimitNames returns every rlimit name this package knows, sorted.
func RlimitNames() []string {
	names := make([]string, 0, len(rlimitNumbers))
	for n := range rlimitNumbers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// CanonicalRlimitName returns the OCI name of an rlimit given with or
// without the RLIMIT_ prefix, in any case: "nofile" is "RLIMIT_NOFILE".
func CanonicalRlimitName(name string) (string, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "RLIMIT_") {
		n = "RLIMIT_" + n
	}
	if _, ok := rlimitNumbers[n]; !ok {
		return "", fmt.Errorf("rlimit %q: unknown (known: %s)", name, strings.ToLower(strings.Join(trimPrefixes(RlimitNames()), ", ")))
	}
	return n, nil
}

func trimPrefixes(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.TrimPrefix(n, "RLIMIT_")
	}
	return out
}

// ParseRlimit parses "NAME=SOFT:HARD" or "NAME=VALUE" (soft and hard
// equal), like "nofile=1024:2048" or "RLIMIT_CORE=0". NAME may carry the
// RLIMIT_ prefix or not; a value may be "unlimited" (or "infinity", "-1").
func ParseRlimit(s string) (Rlimit, error) {
	name, value, ok := strings.Cut(s, "=")
	if !ok {
		return Rlimit{}, fmt.Errorf("rlimit %q: want NAME=SOFT[:HARD], like nofile=1024:2048", s)
	}
	typ, err := CanonicalRlimitName(name)
	if err != nil {
		return Rlimit{}, err
	}
	softS, hardS, both := strings.Cut(value, ":")
	soft, err := parseRlimitValue(softS)
	if err != nil {
		return Rlimit{}, fmt.Errorf("rlimit %q: soft value: %w", s, err)
	}
	hard := soft
	if both {
		if hard, err = parseRlimitValue(hardS); err != nil {
			return Rlimit{}, fmt.Errorf("rlimit %q: hard value: %w", s, err)
		}
	}
	r := Rlimit{Type: typ, Soft: soft, Hard: hard}
	if err := r.Validate(); err != nil {
		return Rlimit{}, err
	}
	return r, nil
}

func parseRlimitValue(s string) (uint64, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "unlimited", "infinity", "-1":
		return RlimInfinity, nil
	}
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number or \"unlimited\"", s)
	}
	return v, nil
}

// Validate checks the name and that Soft does not exceed Hard.
func (r Rlimit) Validate() error {
	if _, ok := rlimitNumbers[r.Type]; !ok {
		return fmt.Errorf("rlimit type %q: unknown (want a name like RLIMIT_NOFILE)", r.Type)
	}
	if r.Soft > r.Hard {
		return fmt.Errorf("rlimit %s: soft limit %s is above hard limit %s", r.Type, rlimitString(r.Soft), rlimitString(r.Hard))
	}
	return nil
}

func rlimitString(v uint64) string {
	if v == RlimInfinity {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

// String returns the limit in the form ParseRlimit reads: "nofile=1024:2048".
func (r Rlimit) String() string {
	return fmt.Sprintf("%s=%s:%s", strings.ToLower(strings.TrimPrefix(r.Type, "RLIMIT_")), rlimitString(r.Soft), rlimitString(r.Hard))
}

// Apply sets the limit on the calling process. It goes through
// syscall.Setrlimit so that the Go runtime learns a new RLIMIT_NOFILE and
// does not restore its saved value in processes it starts later. Raising a
// hard limit needs CAP_SYS_RESOURCE.
func (r Rlimit) Apply() error {
	if err := r.Validate(); err != nil {
		return err
	}
	lim := syscall.Rlimit{Cur: r.Soft, Max: r.Hard}
	if err := syscall.Setrlimit(rlimitNumbers[r.Type], &lim); err != nil {
		return fmt.Errorf("setrlimit %s to %s:%s: %w", r.Type, rlimitString(r.Soft), rlimitString(r.Hard), err)
	}
	return nil
}

// Current returns the calling process's limit of the given type
// ("RLIMIT_NOFILE" or "nofile").
func Current(typ string) (Rlimit, error) {
	name, err := CanonicalRlimitName(typ)
	if err != nil {
		return Rlimit{}, err
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(rlimitNumbers[name], &lim); err != nil {
		return Rlimit{}, fmt.Errorf("getrlimit %s: %w", name, err)
	}
	return Rlimit{Type: name, Soft: lim.Cur, Hard: lim.Max}, nil
}

// DefaultRlimits returns the limits a container gets when its
// configuration names none: 1024 open files, soft and hard, as in the
// default OCI runtime configuration. A host-level default of a million or
// more open files makes some programs loop over every possible descriptor.
func DefaultRlimits() []Rlimit {
	return []Rlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 1024}}
}
