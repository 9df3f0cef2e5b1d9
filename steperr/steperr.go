package steperr

import (
	"errors"
	"fmt"
)

// Error is a failed step.
type Error struct {
	// Step is what was being done: "mount /proc", "pivot_root", "exec".
	Step string
	// Path is the file, device or object the step worked on; "" when
	// none.
	Path string
	// Err is the cause, often a syscall.Errno.
	Err error
}

// Error returns "STEP PATH: CAUSE", or "STEP: CAUSE" without a path.
func (e *Error) Error() string {
	if e.Path != "" {
		return fmt.Sprintf("%s %s: %v", e.Step, e.Path, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Step, e.Err)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Wrap returns nil for a nil err, err itself when it already holds an
// *Error (the innermost step is the one that failed, and it says so more
// precisely), and otherwise a new *Error for step and path caused by err.
func Wrap(step, path string, err error) error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return err
	}
	return &Error{Step: step, Path: path, Err: err}
}
