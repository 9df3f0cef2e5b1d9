package probe

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Terminal ioctl requests (asm-generic numbers, x86_64 and aarch64).
const (
	ioctlTIOCSTI   = 0x5412
	ioctlTIOCLINUX = 0x541c
)

// openPTY opens a new pseudo-terminal pair of the devpts at /dev/pts.
func openPTY() (ptm, pts *os.File, err error) {
	ptm, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		ptm.Close()
		return nil, nil, err
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		ptm.Close()
		return nil, nil, err
	}
	pts, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		ptm.Close()
		return nil, nil, err
	}
	return ptm, pts, nil
}

// ioctlByte calls ioctl(fd, req, &b).
func ioctlByte(fd int, req uint64, b byte) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(&b)))
	if e != 0 {
		return e
	}
	return nil
}

// tiocstiRequest is TIOCSTI, with bits above the 32 the kernel reads set
// when high is "high" (a filter comparing all 64 bits would miss it).
func tiocstiRequest(high string) uint64 {
	if high == "high" {
		return 1<<32 | ioctlTIOCSTI
	}
	return ioctlTIOCSTI
}

// tryTIOCSTI pushes a byte into the input of a terminal that is the
// controlling terminal of the process doing it, where the kernel itself
// allows TIOCSTI without CAP_SYS_ADMIN: a new pty, made the controlling
// terminal of a child (in a session of its own) that runs "tiocsti-ctty".
// So a refusal is the container's policy (seccomp), not the kernel's
// controlling-terminal rule.
func tryTIOCSTI(r *TryResult, args []string) error {
	ptm, pts, err := openPTY()
	if err != nil {
		r.fail("open pty", err)
		return nil
	}
	defer ptm.Close()
	defer pts.Close()
	exe, err := os.Executable()
	if err != nil {
		r.fail("executable", err)
		return nil
	}
	cmd := exec.Command(exe, "try", "tiocsti-ctty", arg(args, 0, "low"))
	cmd.Stdin = pts
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	out, err := cmd.Output()
	if err != nil {
		r.fail("run tiocsti-ctty", fmt.Errorf("%w: %s", err, out))
		return nil
	}
	var inner TryResult
	if err := json.Unmarshal(lastJSON(out), &inner); err != nil {
		r.fail("read tiocsti-ctty", fmt.Errorf("%w: %q", err, out))
		return nil
	}
	r.OK, r.Errno, r.ErrnoName, r.Step = inner.OK, inner.Errno, inner.ErrnoName, inner.Step
	r.addDetail(inner.Detail)
	return nil
}

// tryTIOCSTICtty runs in the child of tryTIOCSTI, whose standard input is
// its controlling terminal.
func tryTIOCSTICtty(r *TryResult, args []string) error {
	if err := ioctlByte(0, tiocstiRequest(arg(args, 0, "low")), '#'); err != nil {
		r.fail("ioctl TIOCSTI", err)
		return nil
	}
	r.succeed("pushed '#' into the controlling terminal's input")
	return nil
}

// tryTIOCLINUX asks a new pty for TIOCLINUX (get shift state): a pty is no
// virtual console, so the kernel answers ENOTTY or EINVAL; EPERM is a
// policy's refusal.
func tryTIOCLINUX(r *TryResult, _ []string) error {
	ptm, pts, err := openPTY()
	if err != nil {
		r.fail("open pty", err)
		return nil
	}
	defer ptm.Close()
	defer pts.Close()
	if err := ioctlByte(int(pts.Fd()), ioctlTIOCLINUX, 6); err != nil {
		r.fail("ioctl TIOCLINUX", err)
		return nil
	}
	r.succeed("TIOCLINUX answered")
	return nil
}

// tryConnectUnix connects to the unix stream socket at PATH.
func tryConnectUnix(r *TryResult, args []string) error {
	p := arg(args, 0, "")
	if p == "" {
		return usagef("try connect-unix", "PATH is required")
	}
	c, err := net.Dial("unix", p)
	if err != nil {
		r.fail("connect", err)
		return nil
	}
	defer c.Close()
	r.succeed("connected to " + p)
	return nil
}

// lastJSON returns the last line of out that looks like a JSON object.
func lastJSON(out []byte) []byte {
	end := len(out)
	for end > 0 {
		start := end - 1
		for start > 0 && out[start-1] != '\n' {
			start--
		}
		line := out[start:end]
		if len(line) > 0 && line[0] == '{' {
			return line
		}
		end = start - 1
		if end < 0 {
			break
		}
	}
	return out
}
