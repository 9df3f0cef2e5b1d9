package vessel

import (
	"os/exec"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/internal/child"
	"github.com/openvessel/vessel/internal/selfexe"
	"github.com/openvessel/vessel/rootfs"
)

// selfExe is what a container child is executed as: this program's shim
// (internal/selfexe: the child runs this program, but its /proc/self/exe,
// and that of every process it forks, is not this program), or, where
// there is none, this program through a handle that cannot be written.
func selfExe() (string, error) {
	p, _, _, err := selfexe.Shim()
	return p, err
}

// withBinary gives a child executed as the shim a copy of this program,
// as its last extra file named in its environment: the init starts its
// exec stages as the shim too, which needs the program at the descriptor
// the shim names.
func withBinary(cmd *exec.Cmd) {
	p, bin, at, err := selfexe.Shim()
	if err != nil || bin == nil || cmd.Path != p {
		return
	}
	n := len(cmd.ExtraFiles)
	cmd.ExtraFiles = append(cmd.ExtraFiles[:n:n], bin)
	cmd.Env = append(cmd.Env, child.BinaryEnv(3+n, at))
}

// dynamicInterpreter is this program's ELF interpreter, "" when static.
func dynamicInterpreter() string { return selfexe.Interpreter() }

// The thread that forks containers. PR_SET_PDEATHSIG fires when the thread
// that created a child exits, and Go may end a thread whose goroutine was
// locked to it; forking from one goroutine locked to one thread forever
// makes "the parent died" mean the program died.
var (
	forkOnce sync.Once
	forkReq  chan func()
)

func onForkThread(f func()) {
	forkOnce.Do(func() {
		forkReq = make(chan func())
		go func() {
			runtime.LockOSThread()
			for f := range forkReq {
				f()
			}
		}()
	})
	done := make(chan struct{})
	forkReq <- func() { f(); close(done) }
	<-done
}

// cgroupV2Host reports whether /sys/fs/cgroup is a cgroup2 mount.
func cgroupV2Host() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// cgroupV1View is the host's v1 or hybrid cgroup layout as a container's
// /sys/fs/cgroup shows it (nil on a unified host), worked out once.
var cgroupV1View = sync.OnceValue(func() []rootfs.CgroupMount {
	hs, err := cgroups.V1Hierarchies()
	if err != nil {
		return nil
	}
	var out []rootfs.CgroupMount
	for _, h := range hs {
		m := rootfs.CgroupMount{Name: h.Name, V2: h.V2, Links: h.Links}
		for _, c := range h.Controllers {
			if strings.HasPrefix(c, "name=") {
				m.Options = append(m.Options, "none")
			}
			m.Options = append(m.Options, c)
		}
		out = append(out, m)
	}
	return out
})
