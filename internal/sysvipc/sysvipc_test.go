package sysvipc

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/namespaces"
)

// ipcNamespace starts a process in a new IPC namespace and returns its pid.
func ipcNamespace(t *testing.T) int {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root (a new IPC namespace)")
	}
	cmd := exec.Command("/bin/sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWIPC, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

func nsPath(pid int) string { return "/proc/" + strconv.Itoa(pid) + "/ns/ipc" }

// populate creates one object of each kind in pid's IPC namespace.
func populate(t *testing.T, pid int) {
	t.Helper()
	err := namespaces.Do(namespaces.IPC, nsPath(pid), func() error {
		if _, err := unix.SysvShmGet(unix.IPC_PRIVATE, 4096, unix.IPC_CREAT|0o600); err != nil {
			return err
		}
		if _, _, e := unix.Syscall(unix.SYS_MSGGET, unix.IPC_PRIVATE, unix.IPC_CREAT|0o600, 0); e != 0 {
			return e
		}
		if _, _, e := unix.Syscall(unix.SYS_SEMGET, unix.IPC_PRIVATE, 1, unix.IPC_CREAT|0o600); e != 0 {
			return e
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// counts returns the number of shm, msg and sem objects in pid's IPC
// namespace, read from /proc/sysvipc, and what Empty says there.
func counts(t *testing.T, pid int) (n [3]int, empty bool) {
	t.Helper()
	err := namespaces.Do(namespaces.IPC, nsPath(pid), func() error {
		for i, f := range []string{"shm", "msg", "sem"} {
			ids, err := sysvIDs("/proc/sysvipc/" + f)
			if err != nil {
				return err
			}
			n[i] = len(ids)
		}
		empty = Empty()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, empty
}

func TestClearEmptiesOnlyThatNamespace(t *testing.T) {
	a, b := ipcNamespace(t), ipcNamespace(t)
	populate(t, a)
	populate(t, b)
	if n, empty := counts(t, a); n != [3]int{1, 1, 1} || empty {
		t.Fatalf("before: %v objects, Empty %v; want one of each", n, empty)
	}
	if err := Clear(a); err != nil {
		t.Fatal(err)
	}
	if n, empty := counts(t, a); n != [3]int{} || !empty {
		t.Errorf("after Clear: %v objects left, Empty %v", n, empty)
	}
	if n, _ := counts(t, b); n != [3]int{1, 1, 1} {
		t.Errorf("Clear reached another namespace: it has %v objects, want one of each", n)
	}
	// Clearing an empty namespace is not an error.
	if err := Clear(a); err != nil {
		t.Errorf("second Clear: %v", err)
	}
}
