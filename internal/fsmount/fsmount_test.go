package fsmount

import (
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestNewDetachedTmpfs: the mount is the filesystem asked for, with its
// options and attributes, and attached nowhere.
func TestNewDetachedTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (fsmount)")
	}
	before, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	fd, err := New("tmpfs", "vessel-fsmount-test", []string{"size=1m", "mode=0710"}, unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)

	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Type != unix.TMPFS_MAGIC || sfs.Blocks*uint64(sfs.Bsize) != 1<<20 || sfs.Flags&unix.ST_NOEXEC == 0 {
		t.Errorf("statfs: type %#x, %d bytes, flags %#x; want a 1 MiB noexec tmpfs", sfs.Type, sfs.Blocks*uint64(sfs.Bsize), sfs.Flags)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&0o7777 != 0o710 {
		t.Errorf("root mode %o (%v), want 710", st.Mode&0o7777, err)
	}
	after, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(after), "vessel-fsmount-test") || len(after) != len(before) {
		t.Error("the detached mount shows in the mount table")
	}

	// Read-only: creating a file fails.
	ro, err := New("tmpfs", "", nil, unix.MOUNT_ATTR_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ro)
	if f, err := unix.Openat(ro, "f", unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o600); !errors.Is(err, unix.EROFS) {
		if err == nil {
			unix.Close(f)
		}
		t.Errorf("create on a read-only mount: %v, want EROFS", err)
	}
}

func TestNewNamesTheBadPart(t *testing.T) {
	if _, err := New("no-such-fs", "", nil, 0); err == nil || !strings.Contains(err.Error(), "fsopen no-such-fs") {
		t.Errorf("unknown filesystem: %v", err)
	}
	if _, err := New("tmpfs", "", []string{"size=banana"}, 0); err == nil || !strings.Contains(err.Error(), "size=banana") {
		t.Errorf("bad option: %v", err)
	}
}
