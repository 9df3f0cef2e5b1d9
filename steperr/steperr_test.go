package steperr

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"
)

func TestErrorMessageAndCause(t *testing.T) {
	e := &Error{Step: "mount", Path: "/proc", Err: syscall.EPERM}
	if got, want := e.Error(), "mount /proc: operation not permitted"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := (&Error{Step: "pivot_root", Err: syscall.EINVAL}).Error(), "pivot_root: invalid argument"; got != want {
		t.Errorf("without a path: %q, want %q", got, want)
	}
	if !errors.Is(&Error{Step: "open", Path: "/x", Err: syscall.ENOENT}, fs.ErrNotExist) {
		t.Error("errors.Is does not see the errno through the step")
	}
}

func TestWrapKeepsTheInnermostStep(t *testing.T) {
	if Wrap("x", "", nil) != nil {
		t.Error("Wrap(nil) is not nil")
	}
	inner := &Error{Step: "mount", Path: "/dev/pts", Err: syscall.ENODEV}
	outer := fmt.Errorf("building the root: %w", inner)
	if got := Wrap("setup", "/", outer); got != outer {
		t.Errorf("Wrap replaced an error that names its step: %v", got)
	}
	got := Wrap("create mount point", "/data", syscall.EACCES)
	var se *Error
	if !errors.As(got, &se) || se.Step != "create mount point" || se.Path != "/data" || !errors.Is(got, syscall.EACCES) {
		t.Errorf("Wrap of a plain error: %#v", got)
	}
}
