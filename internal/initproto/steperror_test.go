package initproto

import (
	"errors"
	"io/fs"
	"syscall"
	"testing"

	"github.com/openvessel/vessel/steperr"
)

func TestErrorInfoStepError(t *testing.T) {
	info := &ErrorInfo{Step: "exec", Path: "/bin/nope", Errno: int(syscall.ENOENT), Msg: "no such file: /bin/nope in the container"}
	var err error = info.StepError()
	var se *steperr.Error
	if !errors.As(err, &se) || se.Step != "exec" || se.Path != "/bin/nope" {
		t.Fatalf("StepError = %#v", err)
	}
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, syscall.ENOENT) {
		t.Error("the child's errno is lost")
	}
	if got, want := err.Error(), "exec /bin/nope: no such file: /bin/nope in the container"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	// Without an errno the message is the cause; with an empty message
	// the errno speaks.
	if e := (&ErrorInfo{Step: "start", Msg: "not waiting"}).StepError(); e.Err.Error() != "not waiting" || errors.Is(e, syscall.ENOENT) {
		t.Errorf("no errno: %v", e)
	}
	if e := (&ErrorInfo{Step: "mount", Errno: int(syscall.EPERM)}).StepError(); e.Error() != "mount: operation not permitted" {
		t.Errorf("errno only: %q", e.Error())
	}
}
