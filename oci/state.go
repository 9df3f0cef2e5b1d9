package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/cgroups"

	"github.com/openvessel/vessel/rootfs"
)

// DefaultRoot is where the command line keeps container state unless
// told otherwise (--root).
const DefaultRoot = "/run/vessel"

// Names of the files in a container's state directory.
const (
	stateFile = "state.json"
	lockFile  = "lock"
	// ControlSocketName is the container's control socket in its state
	// directory (see vessel.Container.ControlSocket).
	ControlSocketName = "init.sock"
)

// reservedIDs are directories the library itself keeps under DefaultRoot
// (storage, network and port-forwarding state): containers may not take
// their names there.
var reservedIDs = map[string]bool{"storage": true, "network": true, "forwarding": true}

// ErrNotExist is wrapped by the errors of Store methods when the
// container has no state directory.
var ErrNotExist = errors.New("container does not exist")

// ErrExist is wrapped by Store.Create's error when the id is taken.
var ErrExist = errors.New("container already exists")

// Process identifies a process across pid reuse: its pid and its start
// time in clock ticks since boot (field 22 of /proc/PID/stat).
type Process struct {
	Pid   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// ProcessOf returns the Process for a live pid.
func ProcessOf(pid int) (Process, error) {
	st, err := ProcessStartTime(pid)
	if err != nil {
		return Process{}, err
	}
	return Process{Pid: pid, Start: st}, nil
}

// Alive reports whether the process still runs: a process with its pid
// exists, is not a zombie, and started when p did (so a reused pid is not
// taken for it).
func (p Process) Alive() bool {
	if p.Pid <= 0 {
		return false
	}
	start, state, err := procStat(p.Pid)
	if err != nil {
		return false
	}
	return start == p.Start && state != "Z" && state != "X"
}

// ProcessStartTime returns when pid started, in clock ticks since boot.
func ProcessStartTime(pid int) (uint64, error) {
	start, _, err := procStat(pid)
	return start, err
}

// procStat reads a process's start time and state letter.
func procStat(pid int) (uint64, string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", err
	}
	s := string(b)
	// The command name (field 2) may hold spaces and parentheses: the
	// fields that follow start after its last ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, "", fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, "", fmt.Errorf("/proc/%d/stat: %d fields after the command name", pid, len(f))
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, "", fmt.Errorf("/proc/%d/stat: start time: %w", pid, err)
	}
	return start, f[0], nil
}

// Record is what the command line keeps about a container between its
// invocations: enough to report its state, control it through its control
// socket and remove everything it holds on the host, whichever process
// created it and even if that process crashed.
type Record struct {
	ID          string            `json:"id"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Created     time.Time         `json:"created"`
	// Owner is the uid that created the container.
	Owner int `json:"owner"`
	// Init is the container's init; Main its main process (held before
	// execve until start).
	Init Process `json:"init"`
	Main Process `json:"main"`
	// Started is set once start released the main process.
	Started bool `json:"started,omitempty"`
	// ControlSocket is the init's control socket.
	ControlSocket string `json:"controlSocket,omitempty"`
	// Cgroup is the container's cgroup placement; CgroupState finds its
	// cgroups again (nil when it has none).
	Cgroup      vessel.CgroupConfig `json:"cgroup"`
	CgroupState *cgroups.State      `json:"cgroupState,omitempty"`
	// Network says a network attachment (bridge, macvlan...) was set up,
	// to be torn down at delete.
	Network bool `json:"network,omitempty"`
	// Storage says the library prepared storage (overlay, image) for the
	// root filesystem.
	Storage bool `json:"storage,omitempty"`
	// Config is the container's configuration.
	Config *vessel.Config `json:"config"`
}

// Store is a directory of container state: one directory per container,
// DIR/ID, holding state.json (written atomically), a lock file that
// serialises the commands acting on the container, and the control
// socket.
type Store struct {
	Root string
}

// NewStore returns the store at root (DefaultRoot when empty), creating
// the directory (mode 0700) if needed.
func NewStore(root string) (*Store, error) {
	if root == "" {
		root = DefaultRoot
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("oci: state root %q: %w", root, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("oci: state root: %w", err)
	}
	return &Store{Root: abs}, nil
}

// CheckID validates a container id for this store.
func (s *Store) CheckID(id string) error {
	if !rootfs.ValidName(id) {
		return &FieldError{Field: "id", Reason: fmt.Sprintf("%q must be 1-128 letters, digits, '_', '.', '-', starting with a letter or digit", id)}
	}
	if reservedIDs[id] && s.Root == DefaultRoot {
		return &FieldError{Field: "id", Reason: fmt.Sprintf("%q is reserved in %s (the library keeps its own state there)", id, DefaultRoot)}
	}
	return nil
}

// maxSocketPath is the longest path a unix socket address holds
// (sun_path is 108 bytes with its terminating NUL).
const maxSocketPath = 107

// ControlSocket returns where the control socket of container id goes: in
// its state directory when that path fits a unix socket address, else (a
// long --root, such as the containerd shim's with its 64-character ids) a
// short path in SocketDir named after a hash of the long one. Remove
// removes either.
func (s *Store) ControlSocket(id string) string {
	p := filepath.Join(s.Dir(id), ControlSocketName)
	if len(p) <= maxSocketPath {
		return p
	}
	sum := sha256.Sum256([]byte(p))
	return filepath.Join(SocketDir(), hex.EncodeToString(sum[:12])+".sock")
}

// SocketDir is where control sockets go whose state directory path is too
// long for a unix socket: /run/vessel-sock for root, else under
// $XDG_RUNTIME_DIR (or the temporary directory).
func SocketDir() string {
	if honorXDG() {
		return filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "vessel-sock")
	}
	if os.Geteuid() == 0 {
		return "/run/vessel-sock"
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("vessel-sock-%d", os.Geteuid()))
}

// UserRoot is the state root the command line uses when not told (--root):
// DefaultRoot for root; $XDG_RUNTIME_DIR/vessel for other users and for
// root of a user namespace of its own (rootless podman runs its runtime
// so), as runc uses $XDG_RUNTIME_DIR/runc; the temporary directory when
// that is unset.
func UserRoot() string {
	if honorXDG() {
		return filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "vessel")
	}
	if os.Geteuid() == 0 {
		return DefaultRoot
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("vessel-%d", os.Geteuid()))
}

// honorXDG reports whether state goes below $XDG_RUNTIME_DIR, decided as
// runc decides: when it is set, for any user but root, and for root of a
// user namespace other than the host's unless $USER says root (the
// host's root keeps /run, whatever its $XDG_RUNTIME_DIR).
func honorXDG() bool {
	if os.Getenv("XDG_RUNTIME_DIR") == "" {
		return false
	}
	if os.Geteuid() != 0 {
		return true
	}
	if !inUserNamespace() {
		return false
	}
	u, ok := os.LookupEnv("USER")
	return !ok || u != "root"
}

// inUserNamespace reports whether this process's user namespace is not
// the host's (whose uid_map maps every id to itself).
func inUserNamespace() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
}

// Dir returns the state directory of container id.
func (s *Store) Dir(id string) string { return filepath.Join(s.Root, id) }

// Lock is a held container lock.
type Lock struct {
	f  *os.File
	id string
}

// Unlock releases the lock. It may be called twice.
func (l *Lock) Unlock() {
	if l == nil || l.f == nil {
		return
	}
	l.f.Close() // closing the descriptor drops the flock
	l.f = nil
}

// Create makes the state directory of a new container and returns it
// locked. It fails with an error wrapping ErrExist if id is taken.
func (s *Store) Create(id string) (*Lock, error) {
	if err := s.CheckID(id); err != nil {
		return nil, err
	}
	dir := s.Dir(id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("container %q: %w", id, ErrExist)
		}
		return nil, fmt.Errorf("oci: %w", err)
	}
	l, err := s.Lock(id)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return l, nil
}

// Lock takes the exclusive lock of container id, waiting for other
// commands to release it. It fails with an error wrapping ErrNotExist when
// the container does not exist, also when it was deleted while waiting.
func (s *Store) Lock(id string) (*Lock, error) {
	if err := s.CheckID(id); err != nil {
		return nil, err
	}
	p := filepath.Join(s.Dir(id), lockFile)
	for {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("container %q: %w", id, ErrNotExist)
			}
			return nil, fmt.Errorf("oci: lock %s: %w", p, err)
		}
		for {
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
			if err != unix.EINTR {
				break
			}
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("oci: lock %s: %w", p, err)
		}
		// A delete may have removed the directory while we waited: the
		// lock is only good if the file is still the one at the path.
		var held, now unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &held); err == nil {
			if err := unix.Stat(p, &now); err == nil && now.Ino == held.Ino && now.Dev == held.Dev {
				return &Lock{f: f, id: id}, nil
			}
		}
		f.Close()
		if _, err := os.Stat(s.Dir(id)); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("container %q: %w", id, ErrNotExist)
		}
	}
}

// Save writes r as the container's state, atomically (a reader sees the
// old or the new state, never a mix). Hold the container's lock.
func (s *Store) Save(r *Record) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("oci: encoding state of %s: %w", r.ID, err)
	}
	dir := s.Dir(r.ID)
	tmp, err := os.CreateTemp(dir, ".state-*.tmp")
	if err != nil {
		return fmt.Errorf("oci: saving state: %w", err)
	}
	// Written to a new file and renamed over the old one: a reader, or a
	// controller killed halfway, finds the old record or the new one,
	// whole. No fsync: this is runtime state (a tmpfs /run on most
	// systems), gone with the machine, as runc's is.
	_, werr := tmp.Write(append(data, '\n'))
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), filepath.Join(dir, stateFile))
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("oci: saving state of %s: %w", r.ID, werr)
	}
	return nil
}

// WarmEncoding encodes an empty Record once, so that encoding/json has
// built its encoders for the Record type graph (the container's whole
// configuration, some 0.7 ms of reflection in a fresh process) before the
// first Save needs them. A command that will save a record runs it in a
// goroutine as it starts.
func WarmEncoding() { _, _ = json.Marshal(&Record{}) }

// Load reads the state of container id. A container whose directory
// exists without a state file (its create has not finished, or crashed
// before writing it) gives a Record with only the ID set and Config nil.
func (s *Store) Load(id string) (*Record, error) {
	if err := s.CheckID(id); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(s.Dir(id), stateFile))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(s.Dir(id)); serr == nil {
				return &Record{ID: id}, nil
			}
			return nil, fmt.Errorf("container %q: %w", id, ErrNotExist)
		}
		return nil, fmt.Errorf("oci: reading state of %s: %w", id, err)
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("oci: state of %s (%s): %w", id, filepath.Join(s.Dir(id), stateFile), err)
	}
	if r.ID != id {
		return nil, fmt.Errorf("oci: state file of %s names container %q", id, r.ID)
	}
	return &r, nil
}

// Remove deletes the state directory of container id (its lock included:
// commands waiting for the lock then find the container gone).
func (s *Store) Remove(id string) error {
	if err := s.CheckID(id); err != nil {
		return err
	}
	// Renaming first makes the removal atomic for other commands: from
	// then on they find no container, and none can create a lock file in
	// a half-removed directory.
	gone, err := os.MkdirTemp(s.Root, ".removed-")
	if err != nil {
		return fmt.Errorf("oci: removing state of %s: %w", id, err)
	}
	if err := os.Rename(s.Dir(id), filepath.Join(gone, id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		os.Remove(gone)
		return fmt.Errorf("oci: removing state of %s: %w", id, err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("oci: removing state of %s: %w", id, err)
	}
	if sock := s.ControlSocket(id); !strings.HasPrefix(sock, s.Dir(id)+"/") {
		if err := os.Remove(sock); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("oci: removing the control socket of %s: %w", id, err)
		}
	}
	return nil
}

// List returns the ids of the containers in the store, sorted.
func (s *Store) List() ([]string, error) {
	entries, err := os.ReadDir(s.Root)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("oci: listing %s: %w", s.Root, err)
	}
	var ids []string
	for _, e := range entries {
		if !e.IsDir() || s.CheckID(e.Name()) != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(s.Root, e.Name(), lockFile)); err != nil {
			continue // not a container's directory
		}
		ids = append(ids, e.Name())
	}
	sort.Strings(ids)
	return ids, nil
}
