package child

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/internal/selfexe"
)

// A container process can name the binary of the process that execve()s
// it through /proc/self/exe: a script whose interpreter is
// #!/proc/self/exe, run by the exec stage or forked from the init, runs
// whatever that process was executed as. The kernel resolves that name
// before the execve replaces the caller's executable, so the start cannot
// be told apart from outside.
//
// So the init is executed as the shim (internal/selfexe): its
// /proc/self/exe, and that of every process it forks until their execve,
// is a tiny ELF file whose interpreter is "/proc/self/fd/N", and the
// kernel loads this program from descriptor N of the caller. No process
// of the container holds this program there (spawn.go closes N before
// every execve but the one of an exec stage), so in the container the
// shim fails as an ELF with a missing interpreter does: ENOENT, before
// anything of this program is loaded.
//
// An exec stage is executed as a second shim, whose interpreter path is
// relative, "self/fd/N", from a working directory no container process
// can reach: a procfs instance the forked child makes for itself
// (chdirPrivateProc), with the program at its N only until the stage's
// execve. An absolute path would be resolved in the container's mount
// namespace, where a process that may mount could plant its own
// interpreter and have it run with the stage's privileges. The stage
// returns to the init's working directory first thing (envCwd). Its own
// /proc/self/exe is that second shim, which, run from the container,
// fails as the first does.
//
// Where there is no shim (a dynamically linked program, for one), this
// program refuses such a start itself, first thing in its package
// initialisation, non-dumpable: any start from the binary a container
// runs from (a detached bind mount, whose path reads "/", or a sealed
// memfd copy or the shim) other than as a container stage.

// envBinary names, in the environment of an init executed as the shim,
// its copy of this program and the descriptor the shim's interpreter
// path names ("fd,N").
const envBinary = "_VESSEL_BINARY"

// BinaryEnv is the environment entry telling an init executed as the shim
// that its descriptor fd is this program, and that the shim's interpreter
// path names descriptor at.
func BinaryEnv(fd, at int) string {
	return envBinary + "=" + strconv.Itoa(fd) + "," + strconv.Itoa(at)
}

var (
	// binaryFD is this program, close-on-exec, when the init was
	// executed as the shim; otherwise -1.
	binaryFD = -1
	// shimInterpFD is the descriptor the shim's interpreter path names,
	// or -1 without a shim.
	shimInterpFD = -1
	// stageShimFD is the exec stages' shim (relative interpreter path),
	// or -1 (stageShim).
	stageShimFD   = -1
	stageShimOnce sync.Once
)

// envCwd names, in an exec stage's environment, a descriptor of the
// init's working directory, to return to from the private procfs it was
// executed in.
const envCwd = "_VESSEL_CWD"

// takeBinary takes the copy of this program an init executed as the shim
// was given (BinaryEnv), close-on-exec.
func takeBinary() error {
	v := os.Getenv(envBinary)
	if v == "" {
		return nil
	}
	a, b, _ := strings.Cut(v, ",")
	fd, err1 := strconv.Atoi(a)
	at, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || fd < 3 || at < 3 {
		return fmt.Errorf("%s=%q: want two descriptors", envBinary, v)
	}
	// It stays where it is, a low number: a descriptor table grown to
	// the shim's number would be copied at every fork.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		return err
	}
	binaryFD, shimInterpFD = fd, at
	return nil
}

// stageShim returns the exec stages' shim, made on first use (most
// containers never start a stage), or -1: without it the stages are
// executed as this program.
func stageShim() int {
	stageShimOnce.Do(func() {
		if binaryFD < 0 {
			return
		}
		if fd, err := selfexe.ShimFile("self/fd/"+strconv.Itoa(shimInterpFD), 3); err == nil {
			stageShimFD = fd
		}
	})
	return stageShimFD
}

// chdirPrivateProc makes the calling process's working directory the root
// of a new procfs instance of its pid namespace, mounted nowhere: the
// stages' shim names its interpreter from there. Raw system calls only
// (a forked child).
//
//go:norace
//go:nosplit
func chdirPrivateProc() syscall.Errno {
	r1, _, e := syscall.RawSyscall(unix.SYS_FSOPEN, uintptr(unsafe.Pointer(&procName[0])), unix.FSOPEN_CLOEXEC, 0)
	if e != 0 {
		return e
	}
	fsfd := r1
	if _, _, e = syscall.RawSyscall6(unix.SYS_FSCONFIG, fsfd, unix.FSCONFIG_CMD_CREATE, 0, 0, 0, 0); e == 0 {
		r1, _, e = syscall.RawSyscall(unix.SYS_FSMOUNT, fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	}
	syscall.RawSyscall(unix.SYS_CLOSE, fsfd, 0, 0)
	if e != 0 {
		return e
	}
	_, _, e = syscall.RawSyscall(unix.SYS_FCHDIR, r1, 0, 0)
	syscall.RawSyscall(unix.SYS_CLOSE, r1, 0, 0)
	return e
}

// returnToCwd takes an exec stage back to the init's working directory
// (envCwd), out of the private procfs it was executed in.
func returnToCwd() error {
	v := os.Getenv(envCwd)
	if v == "" {
		return nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("%s=%q: %w", envCwd, v, err)
	}
	err = unix.Fchdir(fd)
	unix.Close(fd)
	return err
}

// runFromContainerBinary reports whether this process was started from
// the binary a container's init runs from: a detached bind mount of it
// (readlink gives "/", a path no executable file has), the sealed memfd
// copy named "vessel" or the shim ("vessel-shim").
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

// shimmed reports whether this process was executed as the shim.
func shimmed() bool {
	l, err := os.Readlink("/proc/self/exe")
	return err == nil && strings.HasPrefix(l, "/memfd:vessel-shim")
}
