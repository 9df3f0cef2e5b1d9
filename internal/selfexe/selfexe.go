package selfexe

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The binary a container child is started from: a handle on
// /proc/self/exe through which it cannot be written, made once per
// program, so that a container process that somehow gets hold of it
// through /proc cannot overwrite the host binary (the CVE-2019-5736 class
// of attack). The first choice is a detached read-only bind mount of the
// binary (open_tree + mount_setattr: no copy, needs CAP_SYS_ADMIN); the
// second a sealed memfd copy. Starting a container never copies it again.
var (
	exeOnce sync.Once
	exePath string
	exeErr  error
)

// highFD is where the binary's descriptor (bind or memfd) lives: above
// anything os/exec moves descriptors
// to while arranging a child's ExtraFiles, so the child can exec it by its
// own /proc/self/fd path even inside a new user namespace.
const highFD = 1000

// Path returns a /proc/self/fd path through which this program's binary
// can be executed but not written: a detached read-only bind mount of
// /proc/self/exe, else a sealed memfd copy, else (when both fail, e.g.
// without CAP_SYS_ADMIN and memfd sealing) /proc/self/exe itself, still
// protected by the program's non-dumpability and the kernel's refusal to
// write a running executable. It is made on the first call and kept for
// the program's life.
func Path() (string, error) {
	exeOnce.Do(func() {
		exePath, exeErr = readonlyBind()
		if exeErr != nil {
			exePath, exeErr = sealedCopy()
		}
		if exeErr != nil {
			// Still safe from writes by non-dumpability and the kernel's
			// refusal to write a running executable, but say so.
			exePath, exeErr = "/proc/self/exe", nil
		}
	})
	return exePath, exeErr
}

// readonlyBind returns a /proc/self/fd path of a detached, read-only bind
// mount of this program's binary.
func readonlyBind() (string, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, "/proc/self/exe", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err != nil {
		return "", err
	}
	high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, highFD)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("/proc/self/fd/%d", high), nil
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

var (
	interpOnce sync.Once
	interp     string
)

// Interpreter returns the ELF interpreter (PT_INTERP) of this program, or
// "" for a static binary. The container's init re-executes the program
// after pivot_root, where the host's dynamic loader is not visible.
func Interpreter() string {
	interpOnce.Do(func() {
		f, err := os.Open("/proc/self/exe")
		if err != nil {
			return
		}
		defer f.Close()
		interp = ELFInterpreter(f)
	})
	return interp
}

// ELFInterpreter returns the PT_INTERP path of the ELF file r, or "". A
// few header reads instead of debug/elf, whose package initialisation
// every vessel program would otherwise pay for at start.
func ELFInterpreter(r io.ReaderAt) string {
	var id [64]byte
	if _, err := r.ReadAt(id[:], 0); err != nil || string(id[:4]) != "\x7fELF" {
		return ""
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if id[5] == 2 {
		bo = binary.BigEndian
	}
	// Where the program headers are and how big each is: ELF64 and ELF32
	// place these fields differently.
	var phoff, phentsize, phnum uint64
	is64 := id[4] == 2
	if is64 {
		phoff, phentsize, phnum = bo.Uint64(id[32:]), uint64(bo.Uint16(id[54:])), uint64(bo.Uint16(id[56:]))
	} else {
		phoff, phentsize, phnum = uint64(bo.Uint32(id[28:])), uint64(bo.Uint16(id[42:])), uint64(bo.Uint16(id[44:]))
	}
	if phentsize < 32 || phnum > 256 {
		return ""
	}
	ph := make([]byte, phentsize)
	for i := uint64(0); i < phnum; i++ {
		if _, err := r.ReadAt(ph, int64(phoff+i*phentsize)); err != nil {
			return ""
		}
		if bo.Uint32(ph) != 3 { // PT_INTERP
			continue
		}
		var off, size uint64
		if is64 {
			off, size = bo.Uint64(ph[8:]), bo.Uint64(ph[32:])
		} else {
			off, size = uint64(bo.Uint32(ph[4:])), uint64(bo.Uint32(ph[16:]))
		}
		if size == 0 || size > 4096 {
			return ""
		}
		b := make([]byte, size)
		if _, err := r.ReadAt(b, int64(off)); err != nil {
			return ""
		}
		return strings.TrimRight(string(b), "\x00")
	}
	return ""
}
