package limits

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCountLocksAndStatus(t *testing.T) {
	dir := t.TempDir()
	locks := filepath.Join(dir, "locks")
	os.WriteFile(locks, []byte("1: FLOCK  ADVISORY  WRITE 100 00:2a:17 0 EOF\n"+
		"1: -> FLOCK  ADVISORY  WRITE 200 00:2a:17 0 EOF\n"+
		"2: POSIX  ADVISORY  READ 100 00:2a:18 0 EOF\n"+
		"3: OFDLCK ADVISORY  READ -1 00:2a:19 0 EOF\n"+
		"4: POSIX  ADVISORY  WRITE 300 00:2a:20 0 EOF\n"), 0o644)
	n, err := countLocks(locks, map[int]bool{100: true, 200: true})
	if err != nil || n != 2 {
		t.Errorf("countLocks = %d, %v; want 2 (pid 100's two; 200 only waits)", n, err)
	}
	status := filepath.Join(dir, "status")
	os.WriteFile(status, []byte("Name:\tx\nVmLck:\t     256 kB\nVmData:\t    1024 kB\nVmStk:\t     132 kB\nShdPnd:\t0000000c00000000\nSigPnd:\t0000000000000100\n"), 0o644)
	st, err := readStatus(status)
	if err != nil {
		t.Fatal(err)
	}
	if st["VmLck"] != 256 || st["VmData"] != 1024 || st["VmStk"] != 132 || st["ShdPnd"] != 2 || st["SigPnd"] != 1 {
		t.Errorf("readStatus: %v", st)
	}
}

// TestReadProcessUsageSelf: this process's descriptors are counted.
func TestReadProcessUsageSelf(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u, err := ReadProcessUsage([]int{os.Getpid(), 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if u.Processes != 1 || u.OpenFiles < 4 || u.MaxOpenFiles != u.OpenFiles {
		t.Errorf("usage of self (and a pid that does not exist): %+v", u)
	}
}
