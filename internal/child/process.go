package child

import (
	"strings"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/internal/initproto"
)

// DefaultPath is the PATH a container process gets when its environment
// has none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// User is the identity a container process runs as, in the container's
// user namespace (or the host's when the user namespace is shared).
type User struct {
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`
}

// ExecRequest is what an Exec asks of the init: the process's own
// settings; everything else (security profile, rlimits, defaults) comes
// from the container's main process.
type ExecRequest struct {
	Args      []string `json:"args"`
	Env       []string `json:"env,omitempty"`
	SetEnv    bool     `json:"setEnv,omitempty"`
	Dir       string   `json:"cwd,omitempty"`
	User      *User    `json:"user,omitempty"`
	TTY       bool     `json:"tty,omitempty"`
	Rows      uint16   `json:"rows,omitempty"`
	Cols      uint16   `json:"cols,omitempty"`
	NumExtras int      `json:"numExtras,omitempty"`
}

// setEnvIfMissing appends kv to env unless env sets its key already.
func setEnvIfMissing(env []string, kv string) []string {
	k, _, _ := strings.Cut(kv, "=")
	for _, e := range env {
		if ek, _, _ := strings.Cut(e, "="); ek == k {
			return env
		}
	}
	return append(env, kv)
}

// rebindControl runs in the container's init once it is in its final
// network namespace. CRIU finds unix sockets through sock_diag of the
// dumped network namespaces, so a control socket created by the parent in
// the host's namespace could not be checkpointed. The init makes a new
// socket pair in its own namespace, sends one end to the parent (which
// switches to it, initproto.Conn.Rebound) and moves the other onto its sync
// descriptor, so conn keeps working unchanged.
func rebindControl(conn *initproto.Conn) error {
	mine, theirs, err := initproto.Pair()
	if err != nil {
		return err
	}
	defer mine.Close()
	err = conn.Send(&initproto.Message{Type: initproto.TypeControl}, theirs)
	theirs.Close()
	if err != nil {
		return err
	}
	return unix.Dup3(int(mine.File().Fd()), syncFD(), unix.O_CLOEXEC)
}
