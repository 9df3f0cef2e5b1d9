package selfexe

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The shim keeps this program's binary out of reach of /proc/self/exe in
// a container. A process's /proc/self/exe names the file it was executed
// as; the processes a container's init forks are that file until their
// execve, and the kernel resolves a script's interpreter (for example
// #!/proc/self/exe) before that execve replaces it. So the init is not
// executed as this program but as the shim: a tiny ELF file whose only
// content is an interpreter path, "/proc/self/fd/N", N being the
// descriptor of Path. The kernel maps the shim, loads this program as its
// interpreter from the caller's descriptor N and starts it: the init is
// this program in all but its /proc/self/exe, which is the shim. Run from
// inside a container, where no process holds this program at N, the shim
// fails as an ELF with a missing interpreter does: execve returns ENOENT
// (which is also why runc's exec of such a script fails where runc is
// dynamically linked and the container lacks its loader).

var (
	shimOnce sync.Once
	shimPath string
	shimBin  *os.File
	shimAt   int
)

// Shim returns the path to execute a container child as (the shim, a
// sealed memfd), the file of this program its interpreter path names
// (the child must keep a copy of it, see ShimInterpreterFD, to start
// stages of its own through the shim) and that descriptor number. Where
// there is no shim, it returns Path and a nil file: a dynamically linked
// or position-independent program (the kernel runs an interpreter as is,
// without its own loader), an architecture without a shim layout, no
// descriptor handle of the program, or no executable memfd.
func Shim() (path string, binary *os.File, interpFD int, err error) {
	exe, err := Path()
	if err != nil {
		return "", nil, -1, err
	}
	shimOnce.Do(func() {
		shimAt = -1
		n, ok := strings.CutPrefix(exe, "/proc/self/fd/")
		if !ok || Interpreter() != "" || !staticExecutable() {
			return
		}
		fd, err := strconv.Atoi(n)
		if err != nil {
			return
		}
		p, err := makeShim(exe)
		if err != nil {
			return
		}
		// The copy a child is given is a low descriptor: os/exec moves
		// its own above the highest one it passes, and must not land on
		// fd or the shim's.
		low, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return
		}
		shimPath, shimBin, shimAt = p, os.NewFile(uintptr(low), "vessel-binary"), fd
	})
	if shimBin == nil {
		return exe, nil, -1, nil
	}
	return shimPath, shimBin, shimAt, nil
}

// staticExecutable reports whether this program is an ELF executable at
// a fixed address (ET_EXEC), which the kernel can start as an
// interpreter.
func staticExecutable() bool {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		return false
	}
	defer f.Close()
	var id [18]byte
	if _, err := f.ReadAt(id[:], 0); err != nil || string(id[:4]) != "\x7fELF" {
		return false
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if id[5] == 2 {
		bo = binary.BigEndian
	}
	return bo.Uint16(id[16:]) == 2 // ET_EXEC
}

// shimMachine is the ELF machine of each architecture the shim is made
// for (64-bit little-endian ones).
var shimMachine = map[string]uint16{"amd64": 62, "arm64": 183, "riscv64": 243, "loong64": 258}

// shimELF is the shim's content for an interpreter path: an ELF header,
// a PT_INTERP naming interp and a read-only PT_LOAD of the file itself
// (the kernel wants the main program to map something), 64-bit
// little-endian, for the machine of this architecture (false when there
// is none).
func shimELF(interp string) ([]byte, bool) {
	machine, ok := shimMachine[runtime.GOARCH]
	if !ok {
		return nil, false
	}
	const ehsize, phsize, phnum = 64, 56, 2
	off := ehsize + phnum*phsize
	size := off + len(interp) + 1
	b := make([]byte, size)
	le := binary.LittleEndian
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = 2, 1, 1 // ELFCLASS64, little-endian, version 1
	le.PutUint16(b[16:], 3)    // ET_DYN: placed by the kernel, clear of the interpreter
	le.PutUint16(b[18:], machine)
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[32:], ehsize) // e_phoff
	le.PutUint16(b[52:], ehsize)
	le.PutUint16(b[54:], phsize)
	le.PutUint16(b[56:], phnum)
	ph := func(i int, typ uint32, o, n, align uint64) {
		p := b[ehsize+i*phsize:]
		le.PutUint32(p, typ)
		le.PutUint32(p[4:], 4) // PF_R
		le.PutUint64(p[8:], o)
		le.PutUint64(p[16:], o)
		le.PutUint64(p[24:], o)
		le.PutUint64(p[32:], n)
		le.PutUint64(p[40:], n)
		le.PutUint64(p[48:], align)
	}
	ph(0, 3, uint64(off), uint64(len(interp)+1), 1) // PT_INTERP
	ph(1, 1, 0, uint64(size), 0x1000)               // PT_LOAD
	copy(b[off:], interp)
	return b, true
}

// makeShim writes the shim for interp into a sealed memfd and returns a
// /proc/self/fd path of it.
func makeShim(interp string) (string, error) {
	fd, err := ShimFile(interp, highFD+1)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("/proc/self/fd/%d", fd), nil
}

// ShimFile writes a shim whose interpreter path is interp into a sealed
// memfd and returns its descriptor (close-on-exec, at least min). A
// relative interp is resolved from the working directory of the process
// that executes the shim.
func ShimFile(interp string, min int) (int, error) {
	data, ok := shimELF(interp)
	if !ok {
		return -1, fmt.Errorf("no shim layout for %s", runtime.GOARCH)
	}
	fd, err := unix.MemfdCreate("vessel-shim", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	if err == unix.EINVAL {
		fd, err = unix.MemfdCreate("vessel-shim", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return -1, err
	}
	defer unix.Close(fd)
	if n, err := unix.Write(fd, data); err != nil || n != len(data) {
		return -1, fmt.Errorf("write shim: %d of %d bytes: %v", n, len(data), err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		return -1, err
	}
	return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, min)
}
