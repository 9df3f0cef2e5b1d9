package initproto

import (
	"errors"
	"syscall"

	"github.com/openvessel/vessel/steperr"
)

// A failed step crosses the protocol as an ErrorInfo and is a
// *steperr.Error on both sides: the exec stage or the init makes one
// (steperr.Wrap, or a literal), InfoOf flattens it for the wire, and the
// receiver's StepError gives the caller the same step, path, message and
// errno, so errors.As(err, new(*steperr.Error)) and errors.Is(err,
// syscall.ENOENT) hold on the parent's side as they did in the child.

// StepError returns the failure i reports as vessel's step error: Step and
// Path as sent, and as the cause the child's message, through which
// errors.Is still sees the child's errno when it sent one.
func (i *ErrorInfo) StepError() *steperr.Error {
	var cause error = &remoteCause{msg: i.Msg}
	if i.Errno != 0 {
		cause = &remoteCause{msg: i.Msg, errno: syscall.Errno(i.Errno)}
	}
	return &steperr.Error{Step: i.Step, Path: i.Path, Err: cause}
}

// InfoOf is the wire form of err: the step, path and cause of the
// outermost *steperr.Error it holds, or, when it holds none, step and
// path as given with err as the cause. The errno is the first
// syscall.Errno in the cause's chain.
func InfoOf(step, path string, err error) *ErrorInfo {
	var se *steperr.Error
	if errors.As(err, &se) {
		step, path, err = se.Step, se.Path, se.Err
	}
	info := &ErrorInfo{Step: step, Path: path}
	if err == nil {
		return info
	}
	var rc *remoteCause
	if errors.As(err, &rc) && rc == err {
		// Passed on as received (an exec stage's report).
		info.Msg, info.Errno = rc.msg, int(rc.errno)
		return info
	}
	info.Msg = err.Error()
	var errno syscall.Errno
	if errors.As(err, &errno) {
		info.Errno = int(errno)
	}
	return info
}

// remoteCause is the cause of a step that failed across the protocol:
// the peer's explanation, and its errno for errors.Is.
type remoteCause struct {
	msg   string
	errno syscall.Errno
}

func (e *remoteCause) Error() string {
	if e.msg == "" && e.errno != 0 {
		return e.errno.Error()
	}
	return e.msg
}

func (e *remoteCause) Unwrap() error {
	if e.errno == 0 {
		return nil
	}
	return e.errno
}
