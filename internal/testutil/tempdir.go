package testutil

import (
	"os"
	"testing"
)

// DiskTempDir is a scratch directory on disk for test t: under /var/tmp,
// not the temporary directory, which may be a tmpfs (too small for images
// and layers, and without some file system features). It is removed when
// the test ends; RemoveAll copes with read-only directories and files
// owned by others, which layers hold.
func DiskTempDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("/var/tmp", "vessel-test-")
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
