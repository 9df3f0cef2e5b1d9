package main

// The store of containers seen from docker's verbs. `vessel run` keeps the
// same OCI record as runc's create (so runc's verbs work on its
// containers), plus run.json: who controls the container, its command, and
// how it ended.

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/openvessel/vessel/oci"
)

const runInfoFile = "run.json"

// Files of a detached container's output in its state directory.
const (
	stdoutLog = "stdout.log"
	stderrLog = "stderr.log"
)

// runInfo is what `vessel run` adds to a container's record.
type runInfo struct {
	// Controller is the `vessel run` process that holds the container
	// (the container dies with it).
	Controller oci.Process `json:"controller"`
	Command    []string    `json:"command"`
	Detached   bool        `json:"detached,omitempty"`
	AutoRemove bool        `json:"autoRemove,omitempty"`
	Started    time.Time   `json:"started"`
	// Exit is set once the container has ended and been cleaned up.
	Exit *runExit `json:"exit,omitempty"`
}

// runExit is how a container ended.
type runExit struct {
	Code      int       `json:"code"`
	Signal    int       `json:"signal,omitempty"`
	OOMKilled bool      `json:"oomKilled,omitempty"`
	TimedOut  bool      `json:"timedOut,omitempty"`
	At        time.Time `json:"at"`
}

func loadRunInfo(st *oci.Store, id string) *runInfo {
	data, err := os.ReadFile(filepath.Join(st.Dir(id), runInfoFile))
	if err != nil {
		return nil
	}
	var ri runInfo
	if json.Unmarshal(data, &ri) != nil {
		return nil
	}
	return &ri
}

// saveRunInfo writes run.json atomically. Hold the container's lock.
func saveRunInfo(st *oci.Store, id string, ri *runInfo) error {
	data, err := json.MarshalIndent(ri, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(st.Dir(id), runInfoFile)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// Docker's words for a container's state.
const (
	statusCreated = "created"
	statusRunning = "running"
	statusPaused  = "paused"
	statusExited  = "exited"
	statusDead    = "dead"
	statusStopped = "stopped"
)

// entry is one container of the store as docker's verbs see it.
type entry struct {
	rec    *oci.Record
	info   *runInfo // nil for containers runc's create made
	status string
}

// live reports whether the container still runs (or is created or
// paused) or its controller still holds it.
func (e *entry) live() bool {
	switch e.status {
	case statusCreated, statusRunning, statusPaused:
		return true
	}
	return e.info != nil && e.info.Exit == nil && e.info.Controller.Alive()
}

// statusOf works out a container's docker status: an exit recorded by its
// controller; else the OCI status; "dead" when its controller died
// without recording one.
func statusOfEntry(rec *oci.Record, info *runInfo) string {
	if info != nil && info.Exit != nil {
		return statusExited
	}
	switch gopts.statusOf(rec) {
	case specs.StateRunning:
		return statusRunning
	case statePaused:
		return statusPaused
	case specs.StateCreated:
		return statusCreated
	}
	if info != nil {
		if info.Controller.Alive() {
			return statusRunning // starting, or ending: its controller is at work
		}
		return statusDead
	}
	return statusStopped
}

// loadEntry reads container id (without its lock).
func loadEntry(st *oci.Store, id string) (*entry, error) {
	rec, err := st.Load(id)
	if err != nil {
		if errors.Is(err, oci.ErrNotExist) {
			return nil, fmt.Errorf("no such container: %s", id)
		}
		return nil, err
	}
	info := loadRunInfo(st, id)
	return &entry{rec: rec, info: info, status: statusOfEntry(rec, info)}, nil
}

// listEntries reads every container of the store.
func listEntries(st *oci.Store) ([]*entry, error) {
	ids, err := st.List()
	if err != nil {
		return nil, err
	}
	var out []*entry
	for _, id := range ids {
		if e, err := loadEntry(st, id); err == nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// errNameInUse is returned when a run's name belongs to a live container.
var errNameInUse = errors.New("name in use")

// claimName creates container id's state directory, locked. A container
// of that name that is no longer live and was started by `vessel run` (its
// controller exited or died) is removed first; a live one, or one that
// runc's create made, keeps its name: errNameInUse.
func claimName(st *oci.Store, id string) (*oci.Lock, error) {
	for {
		lock, err := st.Create(id)
		if err == nil {
			return lock, nil
		}
		if !errors.Is(err, oci.ErrExist) {
			return nil, err
		}
		l, err := st.Lock(id)
		if errors.Is(err, oci.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		rec, lerr := st.Load(id)
		info := loadRunInfo(st, id)
		if lerr == nil {
			e := &entry{rec: rec, info: info, status: statusOfEntry(rec, info)}
			if e.info == nil || e.live() {
				l.Unlock()
				return nil, fmt.Errorf("%s: %w", id, errNameInUse)
			}
			if err := gopts.destroyRecord(rec); err != nil {
				l.Unlock()
				return nil, fmt.Errorf("%s: cleaning up after its dead controller: %v", id, err)
			}
		}
		// A record never written: its creator died before saving it.
		err = st.Remove(id)
		l.Unlock()
		if err != nil {
			return nil, err
		}
	}
}

// newName makes a container name: vessel- and 12 random hex digits.
func newName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "vessel-" + hex.EncodeToString(b[:])
}

// openStore opens the store of containers (--root).
func openStore() (*oci.Store, error) { return oci.NewStore(gopts.root) }
