package vessel

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/openvessel/vessel/fielderr"
	"github.com/openvessel/vessel/steperr"
)

// SetupError is a failure while setting a container up, inside the child or
// in the parent. Step names what was being done ("mount /proc",
// "pivot_root", "exec"), Path the file involved, Err the cause (often a
// syscall.Errno, so errors.Is(err, fs.ErrNotExist) works).
//
// It is the one step-error type of every vessel package (steperr.Error,
// as rootfs.Error and security.StepError are), so
// errors.As(err, new(*vessel.SetupError)) finds the failed step whichever
// package reported it.
type SetupError = steperr.Error

// ConfigError is an invalid configuration: Field names the field at
// fault, Reason says why. It is the one field-error type of every vessel
// package (fielderr.Error, as os.PathError is fs.PathError), so
// errors.As(err, new(*vessel.ConfigError)) also finds the errors of the
// limits, network, rootfs, namespaces, security and oci packages.
//
// Field is the field's path in the Config's JSON form: JSON names,
// dotted, [i] for an element of a list and [key] for an entry of a map:
// "resources.cpu.cpus", "process.env[2]", "mounts[1].destination",
// "network.publish[0]", "sysctl[net.ipv4.ip_forward]". An argument of a
// call that is no Config field is named in the same lowerCamel style
// ("id", "extraFiles", "preDumps").
type ConfigError = fielderr.Error

// Errors a caller can test for with errors.Is.
var (
	// ErrOOMKilled: the container's process was killed by the OOM killer.
	ErrOOMKilled = errors.New("vessel: killed by the OOM killer")
	// ErrTimeout: the container ran past its timeout (Config.Timeout, or
	// the deadline of the context given to Start or Run, when
	// errors.Is(err, context.DeadlineExceeded) holds too) and was killed.
	ErrTimeout = errors.New("vessel: timed out")
	// ErrKilled: the container was killed by Kill or a cancelled context
	// (then errors.Is(err, context.Canceled) holds too).
	ErrKilled = errors.New("vessel: killed")
	// ErrCPUTime: the container used up its CPU-time limit.
	ErrCPUTime = errors.New("vessel: CPU time limit exceeded")
	// ErrNotRunning: the operation needs a running container.
	ErrNotRunning = errors.New("vessel: container is not running")
	// ErrNotStarted: the operation needs a started container.
	ErrNotStarted = errors.New("vessel: container has not been started")
	// ErrAlreadyStarted: Start was called twice.
	ErrAlreadyStarted = errors.New("vessel: container already started")
	// ErrIDInUse: another container with the same id is running (or
	// ended without Destroy: see DestroyStale), so its cgroup exists.
	ErrIDInUse = errors.New("vessel: container id in use")
	// ErrDestroyed: the container was destroyed.
	ErrDestroyed = errors.New("vessel: container destroyed")
)

// ExitStatus is how a process ended.
type ExitStatus struct {
	// Code is the exit code, or 128+signal when killed by a signal.
	Code int `json:"code"`
	// Signal is the signal that killed the process, or 0 if it exited.
	Signal syscall.Signal `json:"signal,omitempty"`
	// CoreDumped is set when the signal produced a core dump.
	CoreDumped bool `json:"coreDumped,omitempty"`
	// OOMKilled is set when the kernel's OOM killer ended the container.
	OOMKilled bool `json:"oomKilled,omitempty"`
	// TimedOut is set when the container's timeout ended it.
	TimedOut bool `json:"timedOut,omitempty"`
	// Killed is set when Kill or a cancelled context ended it.
	Killed bool `json:"killed,omitempty"`
	// CPUTimeExceeded is set when the container used up its CPU time.
	CPUTimeExceeded bool `json:"cpuTimeExceeded,omitempty"`
}

// Exited reports whether the process exited normally (not by a signal).
func (s ExitStatus) Exited() bool { return s.Signal == 0 }

// Success reports whether the process exited with code 0.
func (s ExitStatus) Success() bool { return s.Signal == 0 && s.Code == 0 }

// String reads like os/exec's "exit status 3" or "signal: killed".
func (s ExitStatus) String() string {
	var why string
	switch {
	case s.OOMKilled:
		why = " (OOM killed)"
	case s.TimedOut:
		why = " (timed out)"
	case s.CPUTimeExceeded:
		why = " (CPU time limit)"
	case s.Killed:
		why = " (killed)"
	}
	if s.Signal != 0 {
		return fmt.Sprintf("signal: %v%s", s.Signal, why)
	}
	return fmt.Sprintf("exit status %d%s", s.Code, why)
}

// ExitError is returned by Wait and Run when a process did not exit with
// code 0. errors.Is(err, ErrOOMKilled / ErrTimeout / ErrKilled) tells why;
// when the end of the context given to Start, Run or Exec killed it,
// errors.Is(err, context.Canceled) or errors.Is(err,
// context.DeadlineExceeded) holds as well.
type ExitError struct {
	Status ExitStatus
	// Err is the error of the context whose end killed the process
	// (context.Canceled or context.DeadlineExceeded), else nil.
	Err error
}

// Error describes how the process ended.
func (e *ExitError) Error() string {
	if e.Err != nil {
		return "vessel: " + e.Status.String() + ": " + e.Err.Error()
	}
	return "vessel: " + e.Status.String()
}

// Unwrap returns Err, the context's error when its end killed the process.
func (e *ExitError) Unwrap() error { return e.Err }

// Is matches the reason sentinels.
func (e *ExitError) Is(target error) bool {
	switch target {
	case ErrOOMKilled:
		return e.Status.OOMKilled
	case ErrTimeout:
		return e.Status.TimedOut
	case ErrKilled:
		return e.Status.Killed
	case ErrCPUTime:
		return e.Status.CPUTimeExceeded
	}
	return false
}

// endReason is why vessel ended a container, if it did.
type endReason struct {
	killed, timedOut, cpuTime bool
	ctxErr                    error // the context whose end killed it
}

// killForContext kills the container because ctx ended with err: a
// deadline counts as a timeout, a cancellation as a kill, and Wait's
// ExitError wraps err.
func (c *Container) killForContext(err error) {
	c.mu.Lock()
	running := (c.status == Running || c.status == Waiting) && c.cmd != nil
	select {
	case <-c.done:
		running = false
	default:
	}
	if running {
		c.reason.ctxErr = err
	}
	c.mu.Unlock()
	if running {
		_ = c.kill(errors.Is(err, context.DeadlineExceeded))
	}
}

// contextErr is the error of the context whose end killed the container,
// if that is how it ended (c.mu held).
func (c *Container) contextErr() error {
	if c.exit == nil || !(c.exit.Killed || c.exit.TimedOut) {
		return nil
	}
	return c.reason.ctxErr
}
