package namespaces_test

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/namespaces"
)

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestDoEntersAndLeaves runs a function in another network namespace and
// checks that no thread of this process is left in it afterwards.
func TestDoEntersAndLeaves(t *testing.T) {
	cmd := exec.Command("unshare", "--net", "sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	target := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/net"
	var want uint64
	for deadline := time.Now().Add(5 * time.Second); ; {
		want = inode(t, target)
		if want != inode(t, "/proc/self/ns/net") || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	own := inode(t, "/proc/self/ns/net")
	if want == own {
		t.Fatal("the helper process never got its own network namespace")
	}
	for i := 0; i < 50; i++ {
		var got uint64
		if err := namespaces.Do(namespaces.Net, target, func() error {
			got = inode(t, "/proc/thread-self/ns/net")
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("inside Do: net ns %d, want %d", got, want)
		}
	}
	// Every thread of this process is back in its own namespace.
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, tk := range tasks {
		if n := inode(t, "/proc/self/task/"+tk.Name()+"/ns/net"); n != own {
			t.Fatalf("thread %s left in net ns %d", tk.Name(), n)
		}
	}
	if err := namespaces.Do(namespaces.Mount, target, func() error { return nil }); err == nil {
		t.Fatal("Do accepted a mount namespace")
	}
}
