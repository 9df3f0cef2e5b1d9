package filesnap

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func write(t *testing.T, p, s string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
}

func openRoot(t *testing.T, dir string) int {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRestoreUndoesAJob: a "job" changes, adds and chmods files under a
// recorded mount; Restore brings back exactly what was recorded and leaves
// other mounts (here /data/inner) alone.
func TestRestoreUndoesAJob(t *testing.T) {
	dir := t.TempDir()
	write(t, dir+"/data/keep.txt", "original\n", 0o644)
	write(t, dir+"/data/sub/deep.txt", "deep\n", 0o600)
	write(t, dir+"/data/inner/other.txt", "another mount\n", 0o644)
	if err := os.Symlink("keep.txt", dir+"/data/link"); err != nil {
		t.Fatal(err)
	}
	write(t, dir+"/etc/hostname", "box\n", 0o644)
	root := openRoot(t, dir)

	s := New([]string{"/", "/data", "/data/inner", "/etc/hostname"})
	if err := s.Record(root, "/data"); err != nil {
		t.Fatal(err)
	}
	if err := s.Record(root, "/etc/hostname"); err != nil {
		t.Fatal(err)
	}

	// The job.
	write(t, dir+"/data/keep.txt", "changed by the job, and longer\n", 0o644)
	write(t, dir+"/data/new/a/b.txt", "new\n", 0o644)
	os.Chmod(dir+"/data/new", 0o000) // unreadable: Restore must still remove it
	os.Chmod(dir+"/data/sub/deep.txt", 0o777)
	write(t, dir+"/data/inner/job.txt", "in another mount\n", 0o644)
	write(t, dir+"/etc/hostname", "evil\n", 0o644)

	if err := s.Restore(root); err != nil {
		t.Fatal(err)
	}
	if got := read(t, dir+"/data/keep.txt"); got != "original\n" {
		t.Errorf("keep.txt = %q", got)
	}
	if _, err := os.Lstat(dir + "/data/new"); !os.IsNotExist(err) {
		t.Errorf("the job's directory is still there: %v", err)
	}
	if fi, err := os.Stat(dir + "/data/sub/deep.txt"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("deep.txt mode: %v %v", fi, err)
	}
	if l, err := os.Readlink(dir + "/data/link"); err != nil || l != "keep.txt" {
		t.Errorf("link: %q %v", l, err)
	}
	if got := read(t, dir+"/etc/hostname"); got != "box\n" {
		t.Errorf("file mount = %q", got)
	}
	if _, err := os.Stat(dir + "/data/inner/job.txt"); err != nil {
		t.Errorf("Restore walked into another mount: %v", err)
	}
}

// TestRestoreRefusesReplacedEntries: a recorded directory replaced by a
// symlink to a directory outside the tree is an error, and nothing outside
// is touched.
func TestRestoreRefusesReplacedEntries(t *testing.T) {
	base := t.TempDir()
	dir, outside := base+"/root", base+"/outside"
	write(t, dir+"/data/sub/f", "x", 0o644)
	write(t, outside+"/victim", "do not touch", 0o644)
	root := openRoot(t, dir)
	s := New([]string{"/", "/data"})
	if err := s.Record(root, "/data"); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir + "/data/sub"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, dir+"/data/sub"); err != nil {
		t.Fatal(err)
	}
	err := s.Restore(root)
	if err == nil || !strings.Contains(err.Error(), "replaced") {
		t.Errorf("Restore over a planted symlink: %v, want an error saying it was replaced", err)
	}
	if got := read(t, outside+"/victim"); got != "do not touch" {
		t.Errorf("outside file changed: %q", got)
	}
}

func TestRecordLimits(t *testing.T) {
	dir := t.TempDir()
	write(t, dir+"/data/big", strings.Repeat("x", MaxFile+1), 0o644)
	s := New([]string{"/", "/data"})
	if err := s.Record(openRoot(t, dir), "/data"); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("a file above MaxFile: %v", err)
	}
	dir = t.TempDir()
	for i := 0; i <= MaxEntries+1; i++ {
		write(t, filepath.Join(dir, "data", "f"+strconv.Itoa(i)), "", 0o644)
	}
	s = New([]string{"/", "/data"})
	if err := s.Record(openRoot(t, dir), "/data"); err == nil || !strings.Contains(err.Error(), "entries") {
		t.Errorf("more than MaxEntries: %v", err)
	}
}
