package vessel_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/openvessel/vessel"
)

// Cancelling Run's context gives an error that is both context.Canceled
// and ErrKilled; a deadline gives context.DeadlineExceeded and
// ErrTimeout, not ErrKilled; the config's own timeout is not a context
// error.
func TestRunContextErrors(t *testing.T) {
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		c, err := vessel.New(newID(t), newConfig())
		require.NoError(t, err)
		defer c.Destroy()
		require.NoError(t, c.Start(ctx, "sleep", "30"))
		cancel()
		err = c.Wait()
		assert.ErrorIs(t, err, context.Canceled)
		assert.ErrorIs(t, err, vessel.ErrKilled)
		assert.NotErrorIs(t, err, vessel.ErrTimeout)
		assert.NotErrorIs(t, err, context.DeadlineExceeded)
		var ee *vessel.ExitError
		require.ErrorAs(t, err, &ee)
		assert.True(t, ee.Status.Killed)
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		c, err := vessel.New(newID(t), newConfig())
		require.NoError(t, err)
		defer c.Destroy()
		err = c.Run(ctx, "sleep", "30")
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ErrorIs(t, err, vessel.ErrTimeout)
		assert.NotErrorIs(t, err, vessel.ErrKilled)
		assert.NotErrorIs(t, err, context.Canceled)
	})
	t.Run("config timeout is no context error", func(t *testing.T) {
		_, err := run(t, newConfig().WithTimeout(200*time.Millisecond), "sleep", "30")
		assert.ErrorIs(t, err, vessel.ErrTimeout)
		assert.NotErrorIs(t, err, context.DeadlineExceeded)
	})
	t.Run("Kill is no context error", func(t *testing.T) {
		c, err := vessel.New(newID(t), newConfig())
		require.NoError(t, err)
		defer c.Destroy()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		require.NoError(t, c.Start(ctx, "sleep", "30"))
		require.NoError(t, c.Kill())
		err = c.Wait()
		assert.ErrorIs(t, err, vessel.ErrKilled)
		assert.NotErrorIs(t, err, context.Canceled)
	})
	t.Run("a context ended after the exit changes nothing", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		c, err := vessel.New(newID(t), newConfig())
		require.NoError(t, err)
		defer c.Destroy()
		err = c.Run(ctx, "sh", "-c", "exit 3")
		cancel()
		var ee *vessel.ExitError
		require.ErrorAs(t, err, &ee)
		assert.Equal(t, 3, ee.Status.Code)
		assert.NoError(t, ee.Err)
		assert.NotErrorIs(t, err, vessel.ErrKilled)
	})
}

// The same for a process started by Exec.
func TestExecContextErrors(t *testing.T) {
	c, _ := start(t, newConfig(), "sleep", "30")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	p, err := c.Exec(ctx, vessel.Command("sleep", "30"))
	require.NoError(t, err)
	err = p.Wait()
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorIs(t, err, vessel.ErrTimeout)
	require.NotNil(t, p.ExitStatus())
	assert.True(t, p.ExitStatus().TimedOut)

	ctx2, cancel2 := context.WithCancel(context.Background())
	p2, err := c.Exec(ctx2, vessel.Command("sleep", "30"))
	require.NoError(t, err)
	cancel2()
	err = p2.Wait()
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, err, vessel.ErrKilled)
}

// A second container with the id of a running one fails with ErrIDInUse,
// and leaves the first one running.
func TestIDInUse(t *testing.T) {
	id := newID(t)
	first, err := vessel.New(id, newConfig())
	require.NoError(t, err)
	defer first.Destroy()
	require.NoError(t, first.Start(context.Background(), "sleep", "30"))

	second, err := vessel.New(id, newConfig())
	require.NoError(t, err)
	defer second.Destroy()
	err = second.Start(context.Background(), "true")
	require.Error(t, err)
	assert.ErrorIs(t, err, vessel.ErrIDInUse)
	assert.Contains(t, err.Error(), id)
	assert.Equal(t, vessel.Running, first.State().Status)
	assert.Equal(t, vessel.Created, second.State().Status)

	// The failed start removed nothing of the first one's: its cgroup
	// still counts its processes.
	require.NoError(t, second.Destroy())
	st, err := first.Stats()
	require.NoError(t, err)
	assert.Positive(t, st.Pids.Current)
	require.NoError(t, first.Kill())
	assert.True(t, errors.Is(first.Wait(), vessel.ErrKilled))
	require.NoError(t, first.Destroy())
	// Once it is gone, the id is free again.
	third, err := vessel.New(id, newConfig())
	require.NoError(t, err)
	defer third.Destroy()
	require.NoError(t, third.Run(context.Background(), "true"))
}
