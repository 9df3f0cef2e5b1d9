package child

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"time"
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

// RunHooks runs hooks in order with state on stdin; the first failure
// stops them.
func RunHooks(hooks []Hook, state []byte) error {
	for _, h := range hooks {
		if err := RunHook(h, state); err != nil {
			return err
		}
	}
	return nil
}

// RunHook runs one hook with state on its stdin, as the runtime spec says:
// its own environment only, killed after its timeout. The library runs
// hooks itself; RunHook serves programs that drive a container's life in
// several steps (an OCI runtime's start and delete).
func RunHook(h Hook, state []byte) error {
	ctx := context.Background()
	if h.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, h.Path)
	if len(h.Args) > 0 {
		cmd.Args = h.Args
	}
	cmd.Env = h.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Stdin = bytes.NewReader(state)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("hook %s timed out after %v", h.Path, h.Timeout)
		}
		return fmt.Errorf("hook %s: %v: %s", h.Path, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}
