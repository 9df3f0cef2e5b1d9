package vessel

import (
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/internal/selfexe"
	"github.com/openvessel/vessel/rootfs"
)

// selfExe is the binary a container child is started from: this program,
// through a handle that cannot be written (internal/selfexe).
func selfExe() (string, error) { return selfexe.Path() }

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
