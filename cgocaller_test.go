package vessel_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/openvessel/vessel/internal/selfexe"
	"github.com/openvessel/vessel/internal/testutil"
)

// A program built with cgo is dynamically linked: after pivot_root the
// host's loader and C library are out of reach, so nothing vessel starts
// there may be that program again. testdata/cgocaller, which calls a C
// function of its own, runs a container, an Exec, containers from spare
// inits and a pool's job (whose PID 1 is vessel's idle process) on a
// busybox root, and is refused, with the reason, a profile that needs
// vessel's exec stage. Where no C compiler
// is at hand (the qemu guest), VESSEL_CGO_CALLER names a build of it made
// elsewhere (test.sh builds it on the host).
func TestCgoCaller(t *testing.T) {
	bin := os.Getenv("VESSEL_CGO_CALLER")
	if bin == "" {
		_, err := exec.LookPath("gcc")
		require.NoError(t, err, "building a cgo program needs gcc (apt-get install gcc; test.sh installs it)")
		bin = filepath.Join(t.TempDir(), "cgocaller")
		build := exec.Command("go", "build", "-o", bin, "./testdata/cgocaller")
		build.Env = append(os.Environ(), "CGO_ENABLED=1")
		out, err := build.CombinedOutput()
		require.NoError(t, err, "go build ./testdata/cgocaller:\n%s", out)
	}
	f, err := os.Open(bin)
	require.NoError(t, err)
	interp := selfexe.ELFInterpreter(f)
	f.Close()
	require.NotEmpty(t, interp, "%s is not dynamically linked", bin)

	root := testutil.BusyboxRootfs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, root).CombinedOutput()
	require.NoError(t, err, "cgocaller (interpreter %s):\n%s", interp, out)
	want := "c says 42\n" +
		"run: cgo-box pid 1 sh\n" +
		"exec: cgo-box sees sleep as PID 1\n" +
		"spare: cgo-box pid 1\n" +
		"spare: cgo-box pid 1\n" +
		"spares used: 1\n" +
		"stage: refused\n" +
		"pool: cgo-box PID 1 is vessel-idle (vessel-idle)\n" +
		"job exit 0\n" +
		"done\n"
	assert.Equal(t, want, string(out))
}
