package security

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/moby/sys/capability"

	"github.com/openvessel/vessel/fielderr"
)

// Capabilities lists the capability names of each of the five Linux
// capability sets of the container process. Names are written like
// "CAP_CHOWN"; "chown", "CHOWN" and "cap_chown" are accepted too.
//
// For a process that runs as root (uid 0) without SECBIT_NOROOT, the kernel
// gives it every capability of its bounding set at execve, so for root the
// Bounding set is what matters. For another uid, only the Ambient set (which
// must be a subset of both Permitted and Inheritable) survives execve of an
// ordinary program.
type Capabilities struct {
	Bounding    []string `json:"bounding,omitempty"`
	Effective   []string `json:"effective,omitempty"`
	Permitted   []string `json:"permitted,omitempty"`
	Inheritable []string `json:"inheritable,omitempty"`
	Ambient     []string `json:"ambient,omitempty"`
}

// dockerDefaultCaps is the set Docker grants to a container by default.
var dockerDefaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// DefaultCapabilities returns Docker's default capability set (14
// capabilities) as the bounding, effective and permitted sets, with empty
// inheritable and ambient sets.
func DefaultCapabilities() *Capabilities {
	return &Capabilities{
		Bounding:  slices.Clone(dockerDefaultCaps),
		Effective: slices.Clone(dockerDefaultCaps),
		Permitted: slices.Clone(dockerDefaultCaps),
	}
}

// AllCapabilities returns every capability this package knows in the
// bounding, effective and permitted sets, as for a privileged container.
// Capabilities newer than the running kernel are left out when the profile
// is prepared.
func AllCapabilities() *Capabilities {
	all := allCapNames()
	return &Capabilities{
		Bounding:  slices.Clone(all),
		Effective: slices.Clone(all),
		Permitted: slices.Clone(all),
	}
}

func allCapNames() []string {
	known := capability.ListKnown()
	names := make([]string, 0, len(known))
	for _, c := range known {
		names = append(names, "CAP_"+strings.ToUpper(c.String()))
	}
	return names
}

// WithAdd returns a copy of c with the named capabilities added to the
// bounding, effective and permitted sets. "ALL" adds every known capability.
// Names are checked by [Capabilities.Validate] (and Prepare), so a misspelt
// name is reported there, not lost here.
func (c *Capabilities) WithAdd(names ...string) *Capabilities {
	out := c.clone()
	for _, n := range names {
		if strings.EqualFold(strings.TrimSpace(n), "ALL") {
			for _, a := range allCapNames() {
				out.add(a)
			}
			continue
		}
		out.add(canonicalCapName(n))
	}
	return out
}

// WithDrop returns a copy of c with the named capabilities removed from all
// five sets. "ALL" empties every set.
func (c *Capabilities) WithDrop(names ...string) *Capabilities {
	out := c.clone()
	for _, n := range names {
		if strings.EqualFold(strings.TrimSpace(n), "ALL") {
			*out = Capabilities{}
			continue
		}
		cn := canonicalCapName(n)
		for _, set := range out.sets() {
			*set.list = slices.DeleteFunc(*set.list, func(s string) bool { return canonicalCapName(s) == cn })
		}
	}
	return out
}

func (c *Capabilities) clone() *Capabilities {
	if c == nil {
		return &Capabilities{}
	}
	return &Capabilities{
		Bounding:    slices.Clone(c.Bounding),
		Effective:   slices.Clone(c.Effective),
		Permitted:   slices.Clone(c.Permitted),
		Inheritable: slices.Clone(c.Inheritable),
		Ambient:     slices.Clone(c.Ambient),
	}
}

func (c *Capabilities) add(name string) {
	for _, l := range []*[]string{&c.Bounding, &c.Effective, &c.Permitted} {
		if !slices.ContainsFunc(*l, func(s string) bool { return canonicalCapName(s) == name }) {
			*l = append(*l, name)
		}
	}
}

type namedSet struct {
	name string
	list *[]string
}

func (c *Capabilities) sets() []namedSet {
	return []namedSet{
		{"bounding", &c.Bounding},
		{"effective", &c.Effective},
		{"permitted", &c.Permitted},
		{"inheritable", &c.Inheritable},
		{"ambient", &c.Ambient},
	}
}

// canonicalCapName turns "chown", "CHOWN" or "cap_chown" into "CAP_CHOWN".
func canonicalCapName(name string) string {
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	return n
}

// ParseCapability returns the capability number of a name such as
// "CAP_NET_ADMIN", "net_admin" or "NET_ADMIN".
func ParseCapability(name string) (capability.Cap, error) {
	if c, ok := capByName()[canonicalCapName(name)]; ok {
		return c, nil
	}
	return 0, fmt.Errorf("unknown capability %q", name)
}

var capByName = sync.OnceValue(func() map[string]capability.Cap {
	m := map[string]capability.Cap{}
	for _, c := range capability.ListKnown() {
		m["CAP_"+strings.ToUpper(c.String())] = c
	}
	return m
})

// CapSets holds the five capability sets as bit masks (bit n is capability
// n), ready to be applied in the container child.
type CapSets struct {
	Bounding    uint64 `json:"bounding"`
	Effective   uint64 `json:"effective"`
	Permitted   uint64 `json:"permitted"`
	Inheritable uint64 `json:"inheritable"`
	Ambient     uint64 `json:"ambient"`
	// LastCap is the highest capability number the kernel supports
	// (/proc/sys/kernel/cap_last_cap), read once by the parent; masks hold
	// no capability above it.
	LastCap int `json:"lastCap"`
}

// Validate checks every name of every set and the relations the kernel
// enforces (effective within permitted; ambient within permitted and
// inheritable). Errors name the set and the capability.
func (c *Capabilities) Validate() error {
	_, err := c.resolve(63)
	return err
}

// resolve turns the name lists into masks, dropping capabilities above
// lastCap (the kernel does not know them, so they cannot be granted).
func (c *Capabilities) resolve(lastCap int) (*CapSets, error) {
	out := &CapSets{LastCap: lastCap}
	masks := []*uint64{&out.Bounding, &out.Effective, &out.Permitted, &out.Inheritable, &out.Ambient}
	for i, set := range c.sets() {
		for _, name := range *set.list {
			if strings.TrimSpace(name) == "" {
				return nil, fielderr.New(fmt.Sprintf("capabilities.%s", set.name), "empty capability name")
			}
			if strings.EqualFold(strings.TrimSpace(name), "ALL") {
				return nil, fielderr.New(fmt.Sprintf("capabilities.%s", set.name), "\"ALL\" is only accepted by WithAdd/WithDrop, not inside a set")
			}
			capNum, err := ParseCapability(name)
			if err != nil {
				return nil, fielderr.Wrap(fmt.Sprintf("capabilities.%s", set.name), err)
			}
			if int(capNum) > lastCap || capNum > 63 {
				continue
			}
			*masks[i] |= 1 << uint(capNum)
		}
	}
	if extra := out.Effective &^ out.Permitted; extra != 0 {
		return nil, fielderr.New("capabilities.effective", "%s not in the permitted set (the kernel refuses an effective capability that is not permitted)", maskNames(extra))
	}
	if extra := out.Ambient &^ (out.Permitted & out.Inheritable); extra != 0 {
		return nil, fielderr.New("capabilities.ambient", "%s must also be in both the permitted and the inheritable set", maskNames(extra))
	}
	return out, nil
}

// maskNames renders a capability mask as "CAP_A, CAP_B".
func maskNames(mask uint64) string {
	var names []string
	for i := 0; i < 64; i++ {
		if mask&(1<<uint(i)) != 0 {
			names = append(names, "CAP_"+strings.ToUpper(capability.Cap(i).String()))
		}
	}
	return strings.Join(names, ", ")
}

// maskToNames returns the capability names of a mask, sorted by number.
func maskToNames(mask uint64) []string {
	var names []string
	for i := 0; i < 64; i++ {
		if mask&(1<<uint(i)) != 0 {
			names = append(names, "CAP_"+strings.ToUpper(capability.Cap(i).String()))
		}
	}
	return names
}
