package vessel

import (
	"debug/elf"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// The binary a container child is started from. It is a sealed memfd copy
// of /proc/self/exe made once per program: a container process that
// somehow gets hold of it through /proc can neither write nor truncate it,
// so the host binary cannot be overwritten from inside (the CVE-2019-5736
// class of attack). Starting a container never copies it again.
var (
	exeOnce sync.Once
	exePath string
	exeErr  error
)

// highFD is where the memfd lives: above anything os/exec moves descriptors
// to while arranging a child's ExtraFiles, so the child can exec it by its
// own /proc/self/fd path even inside a new user namespace.
const highFD = 1000

func selfExe() (string, error) {
	exeOnce.Do(func() {
		exePath, exeErr = sealedCopy()
		if exeErr != nil {
			// Still safe from writes by non-dumpability and the kernel's
			// refusal to write a running executable, but say so.
			exePath, exeErr = "/proc/self/exe", nil
		}
	})
	return exePath, exeErr
}

func sealedCopy() (string, error) {
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return "", err
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("vessel", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	if err == unix.EINVAL {
		fd, err = unix.MemfdCreate("vessel", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return "", err
	}
	fi, err := src.Stat()
	if err != nil {
		unix.Close(fd)
		return "", err
	}
	dst := os.NewFile(uintptr(fd), "vessel-exe")
	var off int64
	for off < fi.Size() {
		n, err := unix.Sendfile(fd, int(src.Fd()), nil, int(fi.Size()-off))
		if n <= 0 || err != nil {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			dst.Close()
			return "", fmt.Errorf("copy executable: %w", err)
		}
		off += int64(n)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		dst.Close()
		return "", err
	}
	high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, highFD)
	dst.Close()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("/proc/self/fd/%d", high), nil
}

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

var (
	interpOnce sync.Once
	interp     string
)

// dynamicInterpreter returns the ELF interpreter of this program, or "" for
// a static binary. The container's init re-executes the program after
// pivot_root, where the host's dynamic loader is not visible.
func dynamicInterpreter() string {
	interpOnce.Do(func() {
		f, err := elf.Open("/proc/self/exe")
		if err != nil {
			return
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				b := make([]byte, p.Filesz)
				if _, err := p.ReadAt(b, 0); err == nil {
					interp = string(b[:len(b)-1])
				}
			}
		}
	})
	return interp
}
