package vessel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/openvessel/vessel/internal/initproto"
)

// A failed phase undoes what the phases before it registered, newest
// first, and nothing of the phases it never reached; an error without a
// step of its own is named by the phase, one with a step, a field, a
// context's end or a package sentinel is passed on as it is.
func TestPhasesUndoExactlyWhatWasDone(t *testing.T) {
	c := &Container{id: "phases", cfg: NewConfig()}
	var log []string
	step := func(name string, err error) func() error {
		return func() error {
			log = append(log, "do "+name)
			return err
		}
	}
	p := c.newPhases("start")
	boom := errors.New("boom")
	err := p.run(
		phaseStep{phaseStorage, func() error {
			log = append(log, "do storage")
			p.undo(func() { log = append(log, "undo storage") })
			return nil
		}},
		phaseStep{phaseInit, func() error {
			log = append(log, "do init")
			p.undo(func() { log = append(log, "undo init") })
			return nil
		}},
		phaseStep{phasePrepare, step("prepare", boom)},
		phaseStep{phaseConfig, step("config", nil)},
	)
	assert.Equal(t, []string{"do storage", "do init", "do prepare", "undo init", "undo storage"}, log)
	assert.Equal(t, []phase{phaseStorage, phaseInit}, p.done)
	var se *SetupError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "prepare", se.Step)
	assert.ErrorIs(t, err, boom)

	r := c.newPhases("restore")
	err = r.run(phaseStep{phaseCgroup, step("cgroup", syscall.EBUSY)})
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "restore: cgroup", se.Step)
	assert.ErrorIs(t, err, syscall.EBUSY)

	for _, keep := range []error{
		&SetupError{Step: "mount /proc", Err: syscall.EPERM},
		fmt.Errorf("wrapped: %w", &ConfigError{Field: "rootfs", Reason: "no"}),
		context.Canceled,
		fmt.Errorf("cgroup: %w", ErrIDInUse),
	} {
		got := c.newPhases("start").run(phaseStep{phaseWait, func() error { return keep }})
		assert.Same(t, keep, got)
	}
}

// awaitInit follows a starting init as the start and a spare read it:
// it switches to a handed-over control socket, keeps a terminal's
// master, and stops at a wanted kind, a failure report or anything else.
func TestAwaitInit(t *testing.T) {
	parent, initFile, err := initproto.ParentPair()
	require.NoError(t, err)
	initEnd := initproto.New(initFile)
	defer initEnd.Close()

	mine, theirs, err := initproto.Pair()
	require.NoError(t, err)
	defer mine.Close()
	require.NoError(t, initEnd.Send(&initproto.Message{Type: initproto.TypeControl}, theirs))
	theirs.Close()
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	defer pr.Close()
	require.NoError(t, mine.Send(&initproto.Message{Type: initproto.TypePTY}, pw))
	pw.Close()
	require.NoError(t, mine.Send(&initproto.Message{Type: initproto.TypeStarted, Pid: 42}))

	var now *initproto.Conn
	r, pty, _, err := awaitInit(parent, func(n *initproto.Conn) { now = n }, initproto.TypeStarted, initproto.TypeCreated)
	require.NoError(t, err)
	require.NotNil(t, now, "not switched to the handed-over socket")
	defer now.Close()
	require.NotNil(t, pty)
	pty.Close()
	assert.Equal(t, initproto.TypeStarted, r.Type)
	assert.Equal(t, 42, r.Pid)

	// A failure report is the step error it describes.
	require.NoError(t, mine.Send(&initproto.Message{Type: initproto.TypeError, Error: &initproto.ErrorInfo{Step: "pivot_root", Errno: int(syscall.EINVAL)}}))
	_, _, _, err = awaitInit(now, func(*initproto.Conn) {}, initproto.TypeStarted)
	var se *SetupError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "pivot_root", se.Step)
	assert.ErrorIs(t, err, syscall.EINVAL)

	// A kind not expected here.
	require.NoError(t, mine.Send(&initproto.Message{Type: initproto.TypeReady}))
	_, _, _, err = awaitInit(now, func(*initproto.Conn) {}, initproto.TypeStarted)
	assert.ErrorContains(t, err, `unexpected message "ready"`)

	// The init gone: the receive error, without a message.
	mine.Close()
	r, _, _, err = awaitInit(now, func(*initproto.Conn) {}, initproto.TypeStarted)
	assert.Nil(t, r)
	assert.ErrorIs(t, err, initproto.ErrClosed)
}
