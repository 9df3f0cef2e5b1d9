package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// state is what the state directory records, guarded by flock on its lock
// file. Everything a Teardown or Cleanup must undo is named here before it
// is created, so a crash at any point leaves only recorded names behind.
type state struct {
	Bridges   map[string]*bridgeRecord `json:"bridges,omitempty"`
	Endpoints map[string]*endpoint     `json:"endpoints,omitempty"`
	// Forward and Forward6 are set while this state holds a registration
	// in forwardDir.
	Forward  bool `json:"forward,omitempty"`
	Forward6 bool `json:"forward6,omitempty"`
	// Table6 is set while the ip6 nftables table exists (or may exist).
	Table6 bool `json:"table6,omitempty"`
	// Table is set while the nftables table exists (or may exist).
	Table bool `json:"table,omitempty"`
}

type bridgeRecord struct {
	Name    string `json:"name"`
	Subnet  string `json:"subnet"`
	Gateway string `json:"gateway"`
	// Subnet6 and Gateway6 are set when the bridge has IPv6.
	Subnet6  string `json:"subnet6,omitempty"`
	Gateway6 string `json:"gateway6,omitempty"`
}

type movedInterface struct {
	Name  string   `json:"name"`
	Up    bool     `json:"up,omitempty"`
	Addrs []string `json:"addrs,omitempty"`
}

type endpoint struct {
	ID       string `json:"id"`
	Mode     Mode   `json:"mode"`
	Hostname string `json:"hostname,omitempty"`
	// Pid and PidStart identify the container process holding the namespace.
	Pid      int    `json:"pid"`
	PidStart uint64 `json:"pidStart"`
	// Owner and OwnerStart identify the controlling program.
	Owner      int              `json:"owner"`
	OwnerStart uint64           `json:"ownerStart"`
	Bridge     string           `json:"bridge,omitempty"`
	Address    string           `json:"address,omitempty"` // CIDR
	Gateway    string           `json:"gateway,omitempty"`
	Address6   string           `json:"address6,omitempty"` // CIDR
	Gateway6   string           `json:"gateway6,omitempty"`
	HostVeth   string           `json:"hostVeth,omitempty"`
	Ports      []Port           `json:"ports,omitempty"`
	Chain      string           `json:"chain,omitempty"`
	Interfaces []movedInterface `json:"interfaces,omitempty"`
	// Inner is the link created inside the container (macvlan/ipvlan).
	Inner string `json:"inner,omitempty"`
	// DNS and DNSSearch are kept for ResolvConf of a reloaded Attachment.
	DNS       []string `json:"dns,omitempty"`
	DNSSearch []string `json:"dnsSearch,omitempty"`
}

// stateLock is a held flock on the state directory.
type stateLock struct {
	f         *os.File
	dir       string
	exclusive bool
}

// lockState locks dir's lock file, creating both as needed. An exclusive
// holder that leaves nothing else in dir removes the file and the
// directory when it unlocks (see unlock), so a lock taken on a file that
// was unlinked meanwhile is dropped and taken again on the current one.
func lockState(dir string, exclusive bool) (*stateLock, error) {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	path := filepath.Join(dir, "lock")
	for attempt := 0; ; attempt++ {
		// Another holder's unlock may remove an empty parent while we
		// create the path: try again (a bounded number of times).
		retry := attempt < 100
		flags := os.O_RDWR
		if exclusive {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				// A concurrent unlock may remove an empty parent while
				// MkdirAll creates below it (ENOENT), or the directory
				// itself between MkdirAll's mkdir (EEXIST) and its check
				// that what exists is a directory: both mean try again.
				if (errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrExist)) && retry {
					continue
				}
				return nil, fmt.Errorf("network: state directory: %w", err)
			}
			flags |= os.O_CREATE
		}
		f, err := os.OpenFile(path, flags, 0o600)
		if errors.Is(err, os.ErrNotExist) {
			if !exclusive {
				// A reader of state that does not exist reads nothing
				// and creates nothing.
				return &stateLock{dir: dir}, nil
			}
			if retry {
				continue // the directory went between MkdirAll and open
			}
		}
		if err != nil {
			return nil, fmt.Errorf("network: state lock: %w", err)
		}
		for {
			err = unix.Flock(int(f.Fd()), how)
			if err != unix.EINTR {
				break
			}
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("network: flock state: %w", err)
		}
		var held, now unix.Stat_t
		if unix.Fstat(int(f.Fd()), &held) == nil && unix.Stat(path, &now) == nil && held.Ino == now.Ino && held.Dev == now.Dev {
			return &stateLock{f: f, dir: dir, exclusive: exclusive}, nil
		}
		f.Close() // removed by its last holder: take the new one
	}
}

// unlock releases the lock. An exclusive holder whose directory holds
// nothing but the lock file removes both, and the empty directories above
// it below /run/vessel (not /run/vessel itself, which the OCI state and
// the storage code create their own directories in), so no state is left
// behind once nothing uses it.
func (l *stateLock) unlock() {
	if l.f == nil {
		return // nothing was there to lock (a reader of no state)
	}
	if l.exclusive {
		if ents, err := os.ReadDir(l.dir); err == nil && len(ents) == 1 && ents[0].Name() == "lock" {
			if os.Remove(filepath.Join(l.dir, "lock")) == nil && os.Remove(l.dir) == nil {
				for d := filepath.Dir(l.dir); strings.HasPrefix(d, runRoot+"/"); d = filepath.Dir(d) {
					if os.Remove(d) != nil {
						break
					}
				}
			}
		}
	}
	unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
}

// runRoot is the directory below which vessel keeps its run-time state.
const runRoot = "/run/vessel"

// LockDir takes the exclusive lock of dir (the file dir/lock, made as
// needed) and returns its release. Releasing removes dir when nothing but
// the lock is left in it, with its empty parents below /run/vessel; a
// waiter that got the lock of a removed file takes the new one instead.
// For state kept next to the network's, such as shared hosts files.
func LockDir(dir string) (unlock func(), err error) {
	l, err := lockState(dir, true)
	if err != nil {
		return nil, err
	}
	return l.unlock, nil
}

func (l *stateLock) load() (*state, error) {
	st := &state{}
	b, err := os.ReadFile(filepath.Join(l.dir, "state.json"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("network: read state: %w", err)
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, st); err != nil {
			return nil, fmt.Errorf("network: state file %s is corrupt: %w", filepath.Join(l.dir, "state.json"), err)
		}
	}
	if st.Bridges == nil {
		st.Bridges = map[string]*bridgeRecord{}
	}
	if st.Endpoints == nil {
		st.Endpoints = map[string]*endpoint{}
	}
	return st, nil
}

// save writes the state atomically (write + rename); an empty state removes
// the file.
func (l *stateLock) save(st *state) error {
	path := filepath.Join(l.dir, "state.json")
	if len(st.Bridges) == 0 && len(st.Endpoints) == 0 && !st.Forward && !st.Table && !st.Forward6 && !st.Table6 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("network: remove state: %w", err)
		}
		return nil
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("network: write state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("network: write state: %w", err)
	}
	return nil
}

// processStart returns the start time (clock ticks since boot) of pid, or 0
// when the process does not exist.
func processStart(pid int) uint64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(s[i+1:])
	// After the command come state (field 3) ... starttime (field 22).
	if len(fields) < 20 {
		return 0
	}
	if fields[0] == "Z" || fields[0] == "X" {
		return 0 // a zombie no longer holds its namespaces
	}
	n, _ := strconv.ParseUint(fields[19], 10, 64)
	return n
}

func alive(pid int, start uint64) bool {
	return start != 0 && processStart(pid) == start
}

// stale reports whether neither the container process nor its controlling
// program is alive any more: nobody can still use the endpoint.
func (e *endpoint) stale() bool {
	return !alive(e.Pid, e.PidStart) && !alive(e.Owner, e.OwnerStart)
}
