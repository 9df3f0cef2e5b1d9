package rootfs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/openvessel/vessel/internal/testutil"
)

// TestMountsInsideProcAndSysRefused: a mount inside /proc or /sys is an
// invalid plan naming the mount's destination, except the mounts runc
// accepts there too.
func TestMountsInsideProcAndSysRefused(t *testing.T) {
	dir := testutil.DiskTempDir(t)
	for _, m := range []Mount{
		{Type: TypeBind, Source: dir, Destination: "/proc/sys/kernel"},
		{Type: TypeBind, Source: dir, Destination: "/proc/self/attr"},
		{Type: TypeTmpfs, Destination: "/proc/acpi/../sys"},
		{Type: TypeBind, Source: dir, Destination: "/sys/kernel/security"},
		{Type: TypeTmpfs, Destination: "/sys/fs/fuse"},
		{Type: TypeTmpfs, Destination: "/proc"},
	} {
		p := &Plan{Root: Host(), Mounts: []Mount{m}}
		err := p.Validate()
		if assert.Error(t, err, "mount at %s accepted", m.Destination) {
			assert.Contains(t, err.Error(), "mounts[0].destination")
		}
	}
	file := filepath.Join(dir, "meminfo")
	require.NoError(t, os.WriteFile(file, []byte("MemTotal: 1 kB\n"), 0o644))
	for _, m := range []Mount{
		{Type: TypeProc, Destination: "/proc"},
		{Type: TypeSysfs, Destination: "/sys"},
		{Type: TypeBind, Source: file, Destination: "/proc/meminfo"},
		{Type: "cgroup2", Destination: "/sys/fs/cgroup"},
		{Type: TypeTmpfs, Destination: "/sys/fs/cgroup/x"},
		{Type: TypeBind, Source: dir, Destination: "/procfoo"},
	} {
		p := &Plan{Root: Host(), Mounts: []Mount{m}}
		assert.NoError(t, p.Validate(), "mount at %s refused", m.Destination)
	}
}

// TestLayerParentMustExist: a persistent layer whose parent directory is
// missing is refused before anything is created on the host.
func TestLayerParentMustExist(t *testing.T) {
	dir := testutil.DiskTempDir(t)
	missing := filepath.Join(dir, "nonexistent")
	p := &Plan{Root: Overlay(filepath.Join(missing, "x", "y"), dir)}
	err := p.Validate()
	if assert.Error(t, err) {
		assert.Contains(t, err.Error(), "rootfs.layer")
	}
	assert.NoDirExists(t, missing)
	// A missing layer directory under an existing parent is fine.
	p = &Plan{Root: Overlay(filepath.Join(dir, "layer"), dir)}
	assert.NoError(t, p.Validate())
}
