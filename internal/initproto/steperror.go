package initproto

import (
	"errors"
	"syscall"

	"github.com/openvessel/vessel/steperr"
)

// StepError returns the failure i reports as vessel's step error: Step and
// Path as sent, and as the cause the child's message, through which
// errors.Is still sees the child's errno when it sent one.
func (i *ErrorInfo) StepError() *steperr.Error {
	var cause error = errors.New(i.Msg)
	if i.Errno != 0 {
		cause = &errnoError{msg: i.Msg, errno: syscall.Errno(i.Errno)}
	}
	return &steperr.Error{Step: i.Step, Path: i.Path, Err: cause}
}

// errnoError keeps the child's explanation and its errno (for errors.Is).
type errnoError struct {
	msg   string
	errno syscall.Errno
}

func (e *errnoError) Error() string {
	if e.msg == "" {
		return e.errno.Error()
	}
	return e.msg
}

func (e *errnoError) Unwrap() error { return e.errno }
