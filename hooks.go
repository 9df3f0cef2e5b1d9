package vessel

import (
	"encoding/json"
	"time"

	"github.com/openvessel/vessel/internal/child"
)

// Hook is a program run at a point of a container's life (the OCI runtime
// spec's hooks). It reads the container's state as JSON on stdin.
type Hook struct {
	// Path is the absolute path of the program.
	Path string `json:"path"`
	// Args are its arguments, Args[0] included (the program's name).
	Args []string `json:"args,omitempty"`
	// Env is its whole environment.
	Env []string `json:"env,omitempty"`
	// Timeout kills the hook and fails the step after this long.
	Timeout time.Duration `json:"timeout,omitempty"`
}

// childHooks converts hooks for the container init.
func childHooks(hooks []Hook) []child.Hook {
	if hooks == nil {
		return nil
	}
	out := make([]child.Hook, len(hooks))
	for i, h := range hooks {
		out[i] = child.Hook{Path: h.Path, Args: h.Args, Env: h.Env, Timeout: h.Timeout}
	}
	return out
}

// runHooks runs hooks in order with state on stdin; the first failure
// stops them.
func runHooks(hooks []Hook, state []byte) error { return child.RunHooks(childHooks(hooks), state) }

// Hooks are the points of a container's life where hooks run, as the OCI
// runtime spec orders them.
type Hooks struct {
	// CreateRuntime (and the deprecated Prestart) run in the caller's
	// namespaces once the container's namespaces exist, before its root
	// filesystem is pivoted into.
	Prestart      []Hook `json:"prestart,omitempty"`
	CreateRuntime []Hook `json:"createRuntime,omitempty"`
	// CreateContainer run inside the container's namespaces, before
	// pivot_root (the path is resolved in the caller's filesystem).
	CreateContainer []Hook `json:"createContainer,omitempty"`
	// StartContainer run inside the container, right before the main
	// process's execve.
	StartContainer []Hook `json:"startContainer,omitempty"`
	// Poststart run in the caller's namespaces once the process runs;
	// their failure is logged, not fatal.
	Poststart []Hook `json:"poststart,omitempty"`
	// Poststop run in the caller's namespaces when the container is
	// destroyed; their failure is logged, not fatal.
	Poststop []Hook `json:"poststop,omitempty"`
}

// HookState is the OCI state document hooks read on stdin.
type HookState struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Pid         int               `json:"pid,omitempty"`
	Bundle      string            `json:"bundle"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// OCIVersion is the runtime-spec version vessel implements.
const OCIVersion = "1.3.0"

func (c *Container) hookState(status string, pid int) []byte {
	b, _ := json.Marshal(HookState{OCIVersion: OCIVersion, ID: c.id, Status: status, Pid: pid, Bundle: c.cfg.Bundle, Annotations: c.cfg.Annotations})
	return b
}

// RunHook runs one hook with state on its stdin, as the runtime spec says:
// its own environment only, killed after its timeout. The library runs
// hooks itself; RunHook serves programs that drive a container's life in
// several steps (an OCI runtime's start and delete).
func RunHook(h Hook, state []byte) error { return child.RunHook(childHooks([]Hook{h})[0], state) }
