package rootfs

import (
	"os"
	"testing"
)

// tempDir is a scratch directory on disk (/var/tmp, not a tmpfs, as the
// storage tests use), removed when the test ends.
func tempDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("/var/tmp", "vessel-rootfs-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(d); err != nil {
			t.Errorf("remove %s: %v", d, err)
		}
	})
	return d
}
