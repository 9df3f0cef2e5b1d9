package child

import (
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// A container process can name the binary of the process that execve()s
// it through /proc/self/exe: a script whose interpreter is
// #!/proc/self/exe, run by the exec stage or forked from the init, would
// start this program inside the container, dumpable, holding the host's
// binary as its executable. The kernel resolves that name before the
// execve replaces the caller's executable, so the start cannot be told
// apart from outside; this program refuses it itself, first thing in its
// package initialisation, non-dumpable: any start from the binary a
// container runs from (a detached bind mount, whose path reads "/", or
// the sealed memfd copy) other than as a container stage.

// runFromContainerBinary reports whether this process was started from
// the binary a container's init runs from: a detached bind mount of it
// (readlink gives "/", a path no executable file has) or the sealed memfd
// copy named "vessel".
func runFromContainerBinary() bool {
	l, err := os.Readlink("/proc/self/exe")
	return err == nil && (l == "/" || strings.HasPrefix(l, "/memfd:vessel"))
}

// refuseStrayStart ends this process, non-dumpable, if it is this program
// started inside a container other than as one of its stages.
func refuseStrayStart() {
	if !runFromContainerBinary() {
		return
	}
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	os.Stderr.WriteString("vessel: refusing to run the container runtime's own binary inside a container\n")
	os.Exit(126)
}
