package vessel_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/network"
)

// A restore that fails after one of its phases made something on the
// host takes exactly that back: here the root made for a container on
// the host's files (phase root) when the network phase finds that the
// checkpoint had a network namespace of its own and the restore config
// shares the host's. Nothing runs, and the checkpoint still restores.
func TestRestoreFailureUndoesItsPhases(t *testing.T) {
	needCRIU(t)
	probe := testutil.BuildProbe(t)
	data := t.TempDir()
	config := func() *vessel.Config {
		return newConfig().WithBind(data, "/data", false).WithBind(filepath.Dir(probe), "/probe", true)
	}
	cfg := config()
	c, _ := start(t, cfg, "/probe/"+filepath.Base(probe), "count", "/data/counter")
	waitCounter(t, filepath.Join(data, "counter"), 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := ckptDir(t)
	_, err := c.Checkpoint(ctx, dir, nil)
	require.NoError(t, err)
	<-c.Done()
	c.Destroy()

	roots := func() []string {
		m, _ := filepath.Glob(filepath.Join(os.TempDir(), fmt.Sprintf("vessel-restore-root-%d-*", os.Getpid())))
		return m
	}
	before := roots()
	id := c.ID() + "-hostnet"
	_, err = vessel.Restore(ctx, dir, config().WithNetwork(network.Host()), id, nil)
	var ce *vessel.ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "network", ce.Field)
	assert.ElementsMatch(t, before, roots(), "the host root of the failed restore is left")
	assert.Empty(t, leftoverInits(t, id))

	r, err := vessel.Restore(ctx, dir, cfg, id, nil)
	require.NoError(t, err)
	r.Destroy()
}
