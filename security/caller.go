package security

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
)

// CallerPermitted returns this program's permitted capability set, as
// /proc/self/status shows it (CapPrm).
func CallerPermitted() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapPrm:"); ok {
			var x uint64
			_, err := fmt.Sscanf(strings.TrimSpace(v), "%x", &x)
			return x, err
		}
	}
	return 0, errors.New("no CapPrm in /proc/self/status")
}

// LimitCapabilities returns p with every capability set reduced to the
// capabilities in own (typically CallerPermitted): a container without a
// user namespace of its own cannot hold a capability its creator lacks,
// so "all" means all of the creator's. p itself is not changed; a p
// without capability sets is returned as it is.
func (p *Prepared) LimitCapabilities(own uint64) *Prepared {
	if p == nil || p.Capabilities == nil {
		return p
	}
	cs := *p.Capabilities
	cs.Bounding &= own
	cs.Effective &= own
	cs.Permitted &= own
	cs.Inheritable &= own
	cs.Ambient &= own
	cp := *p
	cp.Capabilities = &cs
	return &cp
}

var (
	defaultPrepOnce sync.Once
	defaultPrep     *Prepared
	defaultPrepErr  error
)

// PrepareDefault returns DefaultProfile().Prepare(), compiled once per
// program (the seccomp compilation is the expensive part of a start).
// Callers must not change the result.
func PrepareDefault() (*Prepared, error) {
	defaultPrepOnce.Do(func() { defaultPrep, defaultPrepErr = DefaultProfile().Prepare() })
	return defaultPrep, defaultPrepErr
}
