package vessel_test

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/security"
)

// initOf returns the host pid of the container's init (the main process's
// parent).
func initOf(t *testing.T, c *vessel.Container) int {
	t.Helper()
	pid, err := strconv.Atoi(statusField(t, c.State().Pid, "PPid"))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestDirectStartCarriesProfile: with a profile the init can live under,
// the init itself runs under it (no_new_privs, the container's bounding
// set; the seccomp filter once the main process, which loads its own
// before execve, has started) and starts processes with its own
// fork+exec.
// The capabilities it keeps for itself (kill, setuid, setgid) must reach
// no process: with every capability dropped, root and other users alike
// come out with none.
func TestDirectStartCarriesProfile(t *testing.T) {
	c, _ := start(t, withProbe(t, newConfig().WithCapDrop("ALL")), "/probe", "sleep", "30")
	ini := initOf(t, c)
	for field, want := range map[string]string{"NoNewPrivs": "1", "CapBnd": "0000000000000000"} {
		if got := statusField(t, ini, field); got != want {
			t.Errorf("init %s = %s, want %s (processes are not started directly)", field, got, want)
		}
	}
	// The filter too, once the main process has started (it loaded its
	// own: it had its /proc to mount first); Exec'd processes inherit it.
	waitFor(t, func() bool { return statusField(t, ini, "Seccomp") == "2" })
	// The main process is reported started once its execve is past the
	// point of no return; the kernel installs the new credentials a
	// moment later, still inside execve. Read them once it is the probe.
	main := c.State().Pid
	waitComm(t, main, "probe")
	for field, want := range map[string]string{"CapEff": "0000000000000000", "CapPrm": "0000000000000000"} {
		got := statusField(t, main, field)
		for deadline := time.Now().Add(2 * time.Second); got != want && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
			got = statusField(t, main, field)
		}
		if got != want {
			t.Errorf("main process %s %s, want none", field, got)
		}
	}
	if got := statusField(t, main, "Seccomp"); got != "2" {
		t.Errorf("main process Seccomp = %s, want 2 (its filter)", got)
	}
	r := execReport(t, c, "/probe")
	caps := r.Capabilities
	if caps.Effective.Mask()|caps.Permitted.Mask()|caps.Bounding.Mask()|caps.Inheritable.Mask()|caps.Ambient.Mask() != 0 {
		t.Errorf("exec'd root process holds capabilities: %+v", caps)
	}
	if r.Seccomp != 2 || !r.NoNewPrivs || r.UID != 0 {
		t.Errorf("exec'd process: seccomp %d nnp %v uid %d", r.Seccomp, r.NoNewPrivs, r.UID)
	}
	cmd := vessel.Command("/probe", "report")
	cmd.User = &vessel.User{UID: 1000, GID: 1000, Groups: []uint32{5}}
	out, errOut, err := execOut(t, c, cmd)
	if err != nil {
		t.Fatalf("exec as 1000: %v %s", err, errOut)
	}
	u := testutil.MustParseReport(t, []byte(out))
	if u.UID != 1000 || u.GID != 1000 || !slices.Equal(u.Groups, []int{5}) || u.Capabilities.Effective.Mask()|u.Capabilities.Permitted.Mask() != 0 {
		t.Errorf("exec'd user process: uid %d gid %d groups %v caps %+v", u.UID, u.GID, u.Groups, u.Capabilities)
	}
}

// TestExecStageForProfilesInitCannotCarry: a profile the init cannot live
// under (ambient capabilities; a filter that stops wait4) is applied to
// each process by the exec stage instead, and the init stays unconfined.
func TestExecStageForProfilesInitCannotCarry(t *testing.T) {
	t.Run("ambient", func(t *testing.T) {
		cfg := withProbe(t, newConfig()).WithUser(1000, 1000)
		cfg.Security = security.DefaultProfile()
		cfg.Security.Capabilities.Inheritable = []string{"CAP_NET_BIND_SERVICE"}
		cfg.Security.Capabilities.Ambient = []string{"CAP_NET_BIND_SERVICE"}
		c, _ := start(t, cfg, "/probe", "sleep", "30")
		if got := statusField(t, initOf(t, c), "Seccomp"); got != "0" {
			t.Errorf("init Seccomp %s, want 0 (exec stage)", got)
		}
		r := execReport(t, c, "/probe")
		if !r.Capabilities.Ambient.Has("CAP_NET_BIND_SERVICE") || !r.Capabilities.Effective.Has("CAP_NET_BIND_SERVICE") || r.UID != 1000 || r.Seccomp != 2 {
			t.Errorf("exec'd process: uid %d seccomp %d caps %+v", r.UID, r.Seccomp, r.Capabilities)
		}
	})
	t.Run("filter-stops-wait4", func(t *testing.T) {
		cfg := withProbe(t, newConfig())
		cfg.Security = security.DefaultProfile()
		// The default action (ENOSYS-like errno) then applies to wait4.
		s := cfg.Security.Seccomp
		for i := range s.Syscalls {
			s.Syscalls[i].Names = slices.DeleteFunc(slices.Clone(s.Syscalls[i].Names), func(n string) bool { return n == "wait4" })
		}
		c, _ := start(t, cfg, "/probe", "sleep", "30")
		if got := statusField(t, initOf(t, c), "Seccomp"); got != "0" {
			t.Errorf("init Seccomp %s, want 0 (exec stage)", got)
		}
		r := execReport(t, c, "/probe")
		if r.Seccomp != 2 || !r.NoNewPrivs {
			t.Errorf("exec'd process: seccomp %d nnp %v", r.Seccomp, r.NoNewPrivs)
		}
	})
}

// TestInitRunsFromReadOnlyBind: the init runs this very binary (same
// inode: no copy was made) through a read-only mount, so even a handle on
// it cannot be opened for writing. It runs it as the interpreter of the
// shim (internal/selfexe), a sealed memfd that is its /proc/PID/exe.
func TestInitRunsFromReadOnlyBind(t *testing.T) {
	c, _ := start(t, newConfig(), "sleep", "30")
	pid := initOf(t, c)
	exe := fmt.Sprintf("/proc/%d/exe", pid)
	if l, err := os.Readlink(exe); err != nil || !strings.HasPrefix(l, "/memfd:vessel-shim") {
		t.Errorf("the init's exe is %q (%v), want the shim", l, err)
	}
	if fd, err := unix.Open(exe, unix.O_WRONLY, 0); err == nil {
		unix.Close(fd)
		t.Error("the shim opened for writing")
	}
	var ours unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &ours); err != nil {
		t.Fatal(err)
	}
	// The program's mappings in the init: through map_files, what the
	// kernel loaded.
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	var mapped string
	for _, l := range strings.Split(string(maps), "\n") {
		f := strings.Fields(l)
		if len(f) >= 5 && f[4] == strconv.FormatUint(ours.Ino, 10) {
			// map_files names a range without maps' leading zeros.
			var lo, hi uint64
			if _, err := fmt.Sscanf(f[0], "%x-%x", &lo, &hi); err != nil {
				t.Fatal(err)
			}
			mapped = fmt.Sprintf("/proc/%d/map_files/%x-%x", pid, lo, hi)
			break
		}
	}
	if mapped == "" {
		t.Fatalf("the init maps no file with this program's inode %d:\n%s", ours.Ino, maps)
	}
	var theirs unix.Stat_t
	if err := unix.Stat(mapped, &theirs); err != nil {
		t.Fatal(err)
	}
	if ours.Ino != theirs.Ino || ours.Dev != theirs.Dev {
		t.Errorf("init runs inode %d on %d, this program is %d on %d (a copy?)", theirs.Ino, theirs.Dev, ours.Ino, ours.Dev)
	}
	fd, err := unix.Open(mapped, unix.O_WRONLY, 0)
	if err == nil {
		unix.Close(fd)
		t.Fatal("the init's program opened for writing")
	}
	// While it runs the kernel says ETXTBSY first; the mount itself must
	// be read-only for when nothing runs it any more.
	if err != unix.ETXTBSY && err != unix.EROFS {
		t.Errorf("open for writing: %v, want ETXTBSY or EROFS", err)
	}
	pfd, err := unix.Open(mapped, unix.O_PATH, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pfd)
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(pfd, &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("the init's program is on a writable mount (statfs flags %#x)", sfs.Flags)
	}
}
