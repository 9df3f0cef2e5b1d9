package initproto

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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

// A step error made in the child reaches the parent as the same typed
// error: step, path, message and errno survive InfoOf and StepError, and
// an error passed on as received (the init forwarding an exec stage's
// report) is not changed on the way.
func TestInfoOfRoundTrip(t *testing.T) {
	child := &steperr.Error{Step: "exec", Path: "/bin/nope", Err: fmt.Errorf("look up: %w", syscall.ENOENT)}
	info := InfoOf("start process", "/bin/nope", fmt.Errorf("spawn: %w", child))
	require.Equal(t, ErrorInfo{Step: "exec", Path: "/bin/nope", Errno: int(syscall.ENOENT), Msg: "look up: no such file or directory"}, *info)

	got := info.StepError()
	var se *steperr.Error
	require.ErrorAs(t, got, &se)
	assert.Equal(t, "exec", se.Step)
	assert.Equal(t, "/bin/nope", se.Path)
	assert.ErrorIs(t, got, fs.ErrNotExist)
	assert.Equal(t, "exec /bin/nope: look up: no such file or directory", got.Error())

	// Forwarded as received.
	assert.Equal(t, *info, *InfoOf("ignored", "", got))
	// Without a step error the given step and path name the failure.
	assert.Equal(t, ErrorInfo{Step: "setsid", Errno: int(syscall.EPERM), Msg: "operation not permitted"}, *InfoOf("setsid", "", syscall.EPERM))
	assert.Equal(t, ErrorInfo{Step: "start", Msg: "not waiting"}, *InfoOf("start", "", errors.New("not waiting")))
	// A received report whose message was empty keeps it empty.
	assert.Equal(t, ErrorInfo{Step: "mount", Errno: int(syscall.EPERM)}, *InfoOf("x", "", (&ErrorInfo{Step: "mount", Errno: int(syscall.EPERM)}).StepError()))
}
