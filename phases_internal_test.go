package vessel

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
