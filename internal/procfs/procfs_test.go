package procfs

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

func TestFields(t *testing.T) {
	file := t.TempDir() + "/status"
	require.NoError(t, os.WriteFile(file, []byte("Name:\tsleep\nno colon here\nVmLck:\t     4 kB\nSigPnd:\t0000000000000100\nTCP: inuse 3 orphan 0\n"), 0o600))
	var got [][2]string
	require.NoError(t, Fields(file, func(k, v string) bool {
		got = append(got, [2]string{k, v})
		return true
	}))
	assert.Equal(t, [][2]string{{"Name", "sleep"}, {"VmLck", "4 kB"}, {"SigPnd", "0000000000000100"}, {"TCP", "inuse 3 orphan 0"}}, got)

	// Stops when told to.
	n := 0
	require.NoError(t, Fields(file, func(k, v string) bool { n++; return k != "VmLck" }))
	assert.Equal(t, 2, n)
	assert.Error(t, Fields(file+".missing", func(string, string) bool { return true }))
}

func TestOpenFiles(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	f, err := os.Create(t.TempDir() + "/open")
	require.NoError(t, err)
	defer f.Close()
	files, err := OpenFiles(os.Getpid())
	require.NoError(t, err)
	byFD := map[int]OpenFile{}
	for _, of := range files {
		byFD[of.FD] = of
	}
	assert.Equal(t, f.Name(), byFD[int(f.Fd())].Link)
	assert.True(t, strings.HasPrefix(byFD[int(r.Fd())].Link, "pipe:["), byFD[int(r.Fd())].Link)
	var st, want unix.Stat_t
	require.NoError(t, unix.Stat(byFD[int(f.Fd())].Path, &st))
	require.NoError(t, unix.Fstat(int(f.Fd()), &want))
	assert.Equal(t, want.Ino, st.Ino, "Path reaches the open file")

	_, err = OpenFiles(1 << 30)
	assert.Error(t, err)
}
