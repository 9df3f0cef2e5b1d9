package pathrs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// tree makes a root directory with escape attempts in it: an absolute
// symlink to /etc, a relative one climbing out to a victim directory beside
// the root (whose name also exists inside the root), and a magic link.
// Nothing may be created in the victim directory.
func tree(t *testing.T) (root int, rootDir, outside string) {
	t.Helper()
	base := t.TempDir()
	rootDir, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(rootDir, "etc"), filepath.Join(rootDir, "outside"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(rootDir, "etc", "hostname"), []byte("inside\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"abs": "/etc", "up": "../../outside", "proc": "/proc/self/root"} {
		if err := os.Symlink(target, filepath.Join(rootDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	fd, err := unix.Open(rootDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd, rootDir, outside
}

func readFD(t *testing.T, fd int) string {
	t.Helper()
	defer unix.Close(fd)
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOpenInRootStaysInside(t *testing.T) {
	root, _, _ := tree(t)
	// An absolute symlink, "..", and an absolute path all resolve inside.
	for _, p := range []string{"/abs/hostname", "abs/hostname", "/../../etc/hostname", "/etc/../../etc/hostname"} {
		fd, err := OpenInRoot(root, p, unix.O_RDONLY, 0)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if got := readFD(t, fd); got != "inside\n" {
			t.Errorf("%s read %q: resolved outside the root", p, got)
		}
	}
	// The root itself.
	for _, p := range []string{"", "/", "."} {
		fd, err := OpenInRoot(root, p, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Errorf("%q: %v", p, err)
			continue
		}
		var st, want unix.Stat_t
		unix.Fstat(fd, &st)
		unix.Fstat(root, &want)
		unix.Close(fd)
		if st.Ino != want.Ino || st.Dev != want.Dev {
			t.Errorf("%q opened inode %d, want the root's %d", p, st.Ino, want.Ino)
		}
	}
	// Magic links are refused; RESOLVE_NO_SYMLINKS refuses every symlink.
	if fd, err := OpenInRoot(root, "/proc", unix.O_PATH, 0); err == nil {
		unix.Close(fd)
		// /proc in the root is a symlink to /proc/self/root, which does not
		// exist inside the root: resolving it inside gives ENOENT.
		t.Errorf("/proc -> /proc/self/root resolved")
	}
	if _, err := OpenInRoot(root, "/abs/hostname", unix.O_RDONLY, unix.RESOLVE_NO_SYMLINKS); !errors.Is(err, unix.ELOOP) {
		t.Errorf("RESOLVE_NO_SYMLINKS: %v, want ELOOP", err)
	}
}

func TestMkdirAllInRootCreatesInside(t *testing.T) {
	root, rootDir, outside := tree(t)
	// Through a symlink climbing out of the root: created inside.
	fd, err := MkdirAllInRoot(root, "/up/a/b", 0o750, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("MkdirAllInRoot created %v outside the root", ents)
	}
	fi, err := os.Stat(filepath.Join(rootDir, "outside", "a", "b"))
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o750&^umask() {
		t.Errorf("inside: %v %v", fi, err)
	}
	// Existing directories are opened, not recreated.
	fd, err = MkdirAllInRoot(root, "/etc", 0o700, unix.O_PATH, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if fi, _ := os.Stat(filepath.Join(rootDir, "etc")); fi.Mode().Perm() != 0o755 {
		t.Errorf("existing /etc changed mode to %v", fi.Mode())
	}
	// A file on the way is an error, not replaced.
	if _, err := MkdirAllInRoot(root, "/etc/hostname/x", 0o755, unix.O_PATH, 0); !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("through a file: %v, want ENOTDIR", err)
	}
}

func umask() os.FileMode {
	m := unix.Umask(0)
	unix.Umask(m)
	return os.FileMode(m)
}
