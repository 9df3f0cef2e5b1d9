package security

import (
	"fmt"
	"path/filepath"

	"github.com/openvessel/vessel/fielderr"
)

// Landlock describes a Landlock ruleset for the container process. It is
// applied best effort: rights the running kernel's Landlock ABI does not know
// are neither restricted nor granted, and a kernel without Landlock applies
// nothing (see [LandlockABI]).
//
// The filesystem is restricted when at least one of ReadOnly, ReadWrite or
// ReadExec is non-empty; the process may then touch only what lies beneath
// the listed paths, which are resolved inside the container (after
// pivot_root). Paths that do not exist are skipped. TCP bind(2) is restricted
// when BindTCP is non-nil (an empty, non-nil list denies every port), and
// likewise connect(2) with ConnectTCP; both need ABI 4.
//
// Landlock needs no_new_privs, so an enabled ruleset sets it whatever
// [Profile.NoNewPrivileges] says.
type Landlock struct {
	// Enabled switches the ruleset on; a disabled ruleset is ignored.
	Enabled bool `json:"enabled"`
	// ReadOnly paths may be read and listed, not executed or written.
	ReadOnly []string `json:"readOnly,omitempty"`
	// ReadExec paths may be read, listed and executed.
	ReadExec []string `json:"readExec,omitempty"`
	// ReadWrite paths allow everything Landlock controls, including
	// execution, creating devices nodes and renaming across them.
	ReadWrite []string `json:"readWrite,omitempty"`
	// BindTCP lists the TCP ports bind(2) may use.
	BindTCP []uint16 `json:"bindTCP"`
	// ConnectTCP lists the TCP ports connect(2) may reach.
	ConnectTCP []uint16 `json:"connectTCP"`
}

// Validate checks that every path is absolute and clean of "..", and that an
// enabled ruleset restricts something.
func (l *Landlock) Validate() error {
	if l == nil || !l.Enabled {
		return nil
	}
	lists := []struct {
		name  string
		paths []string
	}{{"readOnly", l.ReadOnly}, {"readExec", l.ReadExec}, {"readWrite", l.ReadWrite}}
	for _, list := range lists {
		for _, p := range list.paths {
			if !filepath.IsAbs(p) {
				return fielderr.New(fmt.Sprintf("landlock.%s", list.name), "path %q is not absolute", p)
			}
			if filepath.Clean(p) != p && filepath.Clean(p)+"/" != p {
				return fielderr.New(fmt.Sprintf("landlock.%s", list.name), "path %q is not clean (use %q)", p, filepath.Clean(p))
			}
		}
	}
	if !l.restrictsFS() && l.BindTCP == nil && l.ConnectTCP == nil {
		return fielderr.New("landlock", "enabled but restricts nothing (give paths, bindTCP or connectTCP)")
	}
	return nil
}

func (l *Landlock) restrictsFS() bool {
	return len(l.ReadOnly)+len(l.ReadExec)+len(l.ReadWrite) > 0
}
