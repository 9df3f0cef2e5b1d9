package procfs

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func start(t *testing.T, attr *syscall.SysProcAttr, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// waitFor polls cond for up to ten seconds (process start-up is not
// instantaneous); it is not a timing assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestDescendants(t *testing.T) {
	sh := start(t, nil, "/bin/sh", "-c", "/bin/sleep 60 & /bin/sh -c '/bin/sleep 60 & wait' & wait")
	pid := sh.Process.Pid
	// sh, sleep, inner sh, its sleep.
	waitFor(t, "four processes", func() bool { return len(Descendants(pid)) == 4 })
	got := Descendants(pid)
	if got[0] != pid {
		t.Errorf("Descendants(%d) starts with %d", pid, got[0])
	}
	seen := map[int]bool{}
	for _, p := range got {
		if seen[p] {
			t.Errorf("pid %d listed twice: %v", p, got)
		}
		seen[p] = true
	}
	if d := Descendants(os.Getpid()); !slices.Contains(d, pid) || !slices.Contains(d, got[3]) {
		t.Errorf("the test's own tree %v lacks %v", d, got)
	}
}

func TestNSPid(t *testing.T) {
	if n, err := NSPid(os.Getpid()); err != nil || n != os.Getpid() {
		t.Errorf("NSPid(self) = %d, %v; want %d", n, err, os.Getpid())
	}
	if os.Geteuid() != 0 {
		t.Fatal("needs root (a new pid namespace)")
	}
	c := start(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}, "/bin/sleep", "60")
	if n, err := NSPid(c.Process.Pid); err != nil || n != 1 {
		t.Errorf("NSPid of a new pid namespace's first process = %d, %v; want 1", n, err)
	}
	if _, err := NSPid(1 << 30); err == nil {
		t.Error("no error for a pid that does not exist")
	}
}

func TestFDInfo(t *testing.T) {
	f, err := os.OpenFile(t.TempDir()+"/f", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stx unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &stx); err != nil {
		t.Fatal(err)
	}
	mnt, flags, err := FDInfo(os.Getpid(), strconv.Itoa(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	if uint64(mnt) != stx.Mnt_id {
		t.Errorf("mnt_id %d, statx says %d", mnt, stx.Mnt_id)
	}
	if flags&unix.O_APPEND == 0 || flags&unix.O_ACCMODE != unix.O_WRONLY {
		t.Errorf("flags %#o lack O_APPEND|O_WRONLY", flags)
	}
	if _, _, err := FDInfo(os.Getpid(), "999999"); err == nil {
		t.Error("no error for a descriptor that is not open")
	}
}

func TestAlive(t *testing.T) {
	c := start(t, nil, "/bin/sleep", "60")
	pid := c.Process.Pid
	if !Alive(pid) {
		t.Fatalf("a sleeping child is not alive")
	}
	// Killed but not reaped: a zombie is not alive.
	if err := c.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the zombie", func() bool { return !Alive(pid) })
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid), &st); err != nil {
		t.Errorf("the child was reaped already (%v): the zombie case was not tested", err)
	}
	if Alive(1 << 30) {
		t.Error("a pid that does not exist is alive")
	}
}
