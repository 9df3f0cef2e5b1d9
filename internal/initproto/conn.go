package initproto

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Received is one message with what came beside it.
type Received struct {
	Message
	// Raw is the body of a message sent with SendRaw (only Type is set
	// then).
	Raw []byte
	// Files are descriptors passed with the message; the receiver owns them.
	Files []*os.File
	// Cred holds the sender's credentials as translated by the kernel, when
	// the sender attached them and the socket has SO_PASSCRED.
	Cred *unix.Ucred
}

// Conn is one end of a SOCK_SEQPACKET socket pair.
type Conn struct {
	f  *os.File
	fd int
	// rc is set for a polled connection (NewPolled): its descriptor is
	// non-blocking, and a goroutine that waits for it is parked in the
	// runtime's network poller instead of blocking a thread in the
	// kernel.
	rc  syscall.RawConn
	wmu sync.Mutex
	rmu sync.Mutex
	// credRefused: the kernel refused credentials naming another process
	// once; SendAs goes straight to a pidfd from then on.
	credRefused atomic.Bool
}

// Pair returns two connected ends. Both are close-on-exec; the caller clears
// that on the end it hands to a child (os/exec ExtraFiles does).
func Pair() (*Conn, *os.File, error) {
	fds, err := socketPair()
	if err != nil {
		return nil, nil, err
	}
	return New(os.NewFile(uintptr(fds[0]), "vessel-sync")), os.NewFile(uintptr(fds[1]), "vessel-sync-child"), nil
}

// ParentPair is Pair with a polled end (NewPolled) for the caller's side
// of a container.
func ParentPair() (*Conn, *os.File, error) {
	fds, err := socketPair()
	if err != nil {
		return nil, nil, err
	}
	child := os.NewFile(uintptr(fds[1]), "vessel-sync-child")
	c, err := NewPolled(fds[0])
	if err != nil {
		child.Close()
		return nil, nil, err
	}
	return c, child, nil
}

func socketPair() ([2]int, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fds, fmt.Errorf("socketpair: %w", err)
	}
	for _, fd := range fds {
		// Large buffers: the config datagram must fit in one send.
		// FORCE needs CAP_NET_ADMIN; an ordinary user gets what
		// net.core.wmem_max allows.
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, maxMessage) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, maxMessage)
		}
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, maxMessage) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, maxMessage)
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}
	return fds, nil
}

// New wraps an existing socket.
func New(f *os.File) *Conn {
	return &Conn{f: f, fd: int(f.Fd())}
}

// NewPolled wraps socket fd, which it takes over, as a polled connection.
// A caller's goroutine waiting for a message then costs no blocked thread:
// when one arrives, the thread that polls runs the reader and whoever the
// reader hands the message to, where a thread blocked in recvmsg would
// first have to win back a P and then wake another thread for the
// receiver. The container's side keeps blocking sockets (its main thread
// waits in epoll itself).
func NewPolled(fd int) (*Conn, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("initproto: %w", err)
	}
	f := os.NewFile(uintptr(fd), "vessel-control")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("initproto: %w", err)
	}
	return &Conn{f: f, fd: fd, rc: rc}, nil
}

// Polled turns a received socket into a polled connection (NewPolled).
func Polled(f *os.File) (*Conn, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("initproto: %w", err)
	}
	return NewPolled(fd)
}

// io runs op on the socket until it is not interrupted; on a polled
// connection (whose descriptor is non-blocking) a would-block result waits
// in the poller and tries again.
func (c *Conn) io(write bool, op func(fd int) error) error {
	if c.rc == nil {
		for {
			if err := op(c.fd); err != unix.EINTR {
				return err
			}
		}
	}
	var err error
	f := func(fd uintptr) bool {
		for {
			if err = op(int(fd)); err != unix.EINTR {
				return err != unix.EAGAIN
			}
		}
	}
	var perr error
	if write {
		perr = c.rc.Write(f)
	} else {
		perr = c.rc.Read(f)
	}
	if perr != nil {
		return perr
	}
	return err
}

// FromFD wraps an inherited descriptor number.
func FromFD(fd int) *Conn {
	unix.CloseOnExec(fd)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	return New(os.NewFile(uintptr(fd), "vessel-sync"))
}

// File returns the underlying file.
func (c *Conn) File() *os.File { return c.f }

// Close closes the socket.
func (c *Conn) Close() error { return c.f.Close() }

// Send writes one message with optional descriptors.
func (c *Conn) Send(m *Message, files ...*os.File) error {
	defer runtime.KeepAlive(files)
	return c.send(m, nil, fdsOf(files))
}

// SendRaw sends a message of type typ whose body is data as is, outside
// the JSON envelope: for bodies with a codec of their own (the init's
// config), which a fresh process decodes without warming encoding/json.
// The receiver finds data in Received.Raw.
func (c *Conn) SendRaw(typ Kind, data []byte, files ...*os.File) error {
	defer runtime.KeepAlive(files)
	if !typ.Known() {
		return fmt.Errorf("initproto: unknown message kind %q", typ)
	}
	// A raw datagram starts with a NUL byte, which no JSON document does,
	// then the type's length and the type.
	msg := make([]byte, 0, 2+len(typ)+len(data))
	msg = append(append(append(msg, 0, byte(len(typ))), typ...), data...)
	return c.sendData(typ, msg, nil, fdsOf(files))
}

func fdsOf(files []*os.File) []int {
	fds := make([]int, 0, len(files)+1)
	for _, f := range files {
		fds = append(fds, int(f.Fd()))
	}
	return fds
}

// SendAs writes one message that tells the receiver pid, translated into
// the receiver's pid namespace by the kernel. The first way is credentials
// naming pid (a process the sender may speak for: itself, or, with
// CAP_SYS_ADMIN over its pid namespace, any process there). Where the
// kernel refuses (an init that gave up CAP_SYS_ADMIN, a rootless init in
// the host's pid namespace), a pidfd of the process goes along instead;
// the receiver reads the pid its own /proc shows for it. Without pidfds
// (before Linux 5.3) the message carries m.Pid only, which is right when
// both ends share the pid namespace.
func (c *Conn) SendAs(m *Message, pid int, files ...*os.File) error {
	return c.SendAsWith(m, pid, -1, files...)
}

// SendAsWith is SendAs for a caller that already holds a pidfd of pid
// (pidfd >= 0), which then goes along instead of a new one.
func (c *Conn) SendAsWith(m *Message, pid, pidfd int, files ...*os.File) error {
	fds := fdsOf(files)
	defer runtime.KeepAlive(files)
	if !c.credRefused.Load() {
		cred := &unix.Ucred{Pid: int32(pid), Uid: uint32(unix.Geteuid()), Gid: uint32(unix.Getegid())}
		err := c.send(m, cred, fds)
		if !errors.Is(err, unix.EPERM) {
			return err
		}
		c.credRefused.Store(true)
	}
	m.Pid = pid
	if pidfd < 0 {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			return c.send(m, nil, fds)
		}
		defer unix.Close(fd)
		pidfd = fd
	}
	m.PidFD = true
	err := c.send(m, nil, append(fds, pidfd))
	m.PidFD = false
	return err
}

// PidOf returns the pid a message names, translated into the receiver's
// pid namespace when credentials came with it.
func (r *Received) PidOf() int {
	if r.Cred != nil && r.Cred.Pid != 0 {
		return int(r.Cred.Pid)
	}
	return r.Pid
}

func (c *Conn) send(m *Message, cred *unix.Ucred, fds []int) error {
	if err := m.check(); err != nil {
		return err
	}
	return c.sendData(m.Type, m.appendJSON(nil), cred, fds)
}

func (c *Conn) sendData(typ Kind, data []byte, cred *unix.Ucred, fds []int) (err error) {
	if len(data) > maxMessage {
		return fmt.Errorf("initproto: message of %d bytes is over the %d byte limit", len(data), maxMessage)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = append(oob, unix.UnixRights(fds...)...)
	}
	if cred != nil {
		oob = append(oob, unix.UnixCredentials(cred)...)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	err = c.io(true, func(fd int) error { return unix.Sendmsg(fd, data, oob, nil, 0) })
	if err != nil {
		return fmt.Errorf("initproto: send %s: %w", typ, err)
	}
	return nil
}

// ErrClosed is returned by Recv when the peer has closed its end.
var ErrClosed = io.EOF

// Recv blocks for the next message. It returns ErrClosed at end of stream.
func (c *Conn) Recv() (*Received, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	var buf []byte
	var peek [1]byte
	oob := make([]byte, unix.CmsgSpace(4*64)+unix.CmsgSpace(unix.SizeofUcred))
	// Peek the size first: the buffer is exactly one datagram.
	var n, oobn int
	err := c.io(false, func(fd int) (err error) {
		n, _, err = unix.Recvfrom(fd, peek[:], unix.MSG_PEEK|unix.MSG_TRUNC)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("initproto: recv: %w", err)
	}
	if n == 0 {
		return nil, ErrClosed
	}
	buf = make([]byte, n)
	err = c.io(false, func(fd int) (err error) {
		n, oobn, _, _, err = unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("initproto: recv: %w", err)
	}
	if n == 0 {
		return nil, ErrClosed
	}
	r := &Received{}
	if oobn > 0 {
		msgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
		if perr != nil {
			return nil, fmt.Errorf("initproto: control message: %w", perr)
		}
		for i := range msgs {
			m := &msgs[i]
			if m.Header.Level != unix.SOL_SOCKET {
				continue
			}
			switch m.Header.Type {
			case unix.SCM_RIGHTS:
				fds, ferr := unix.ParseUnixRights(m)
				if ferr != nil {
					return nil, ferr
				}
				for _, fd := range fds {
					r.Files = append(r.Files, os.NewFile(uintptr(fd), "passed"))
				}
			case unix.SCM_CREDENTIALS:
				if cr, cerr := unix.ParseUnixCredentials(m); cerr == nil {
					r.Cred = cr
				}
			}
		}
	}
	if buf[0] == 0 {
		// SendRaw's form.
		if n < 2 || n < 2+int(buf[1]) {
			for _, f := range r.Files {
				f.Close()
			}
			return nil, errors.New("initproto: bad message: truncated raw header")
		}
		r.Type, r.Raw = Kind(buf[2:2+int(buf[1])]), buf[2+int(buf[1]):n]
		if !r.Type.Known() {
			CloseFiles(r.Files)
			return nil, fmt.Errorf("initproto: unknown message kind %q", r.Type)
		}
		return r, nil
	}
	if err := json.Unmarshal(buf[:n], &r.Message); err != nil {
		CloseFiles(r.Files)
		return nil, fmt.Errorf("initproto: bad message: %w", err)
	}
	if err := r.Message.check(); err != nil {
		CloseFiles(r.Files)
		return nil, err
	}
	if r.PidFD && len(r.Files) > 0 {
		pf := r.Files[len(r.Files)-1]
		r.Files = r.Files[:len(r.Files)-1]
		if pid := pidfdPid(pf); pid > 0 {
			r.Cred = &unix.Ucred{Pid: int32(pid)}
		}
		pf.Close()
	}
	return r, nil
}

// Expect receives one message and fails unless it has the wanted kind.
// A failure the peer reports instead (TypeError) comes back as the
// *steperr.Error it describes (ErrorInfo.StepError).
func (c *Conn) Expect(want Kind) (*Received, error) {
	r, err := c.Recv()
	if err != nil {
		return nil, err
	}
	if r.Type == TypeError && want != TypeError {
		return r, r.Error.StepError()
	}
	if r.Type != want {
		return r, fmt.Errorf("initproto: got %q, want %q", r.Type, want)
	}
	return r, nil
}

// pidfdPid reads the pid a pidfd refers to, as this process's /proc shows
// it (the "Pid:" line of its fdinfo; -1 once the process was reaped).
func pidfdPid(f *os.File) int {
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Pid:"); ok {
			pid, _ := strconv.Atoi(strings.TrimSpace(v))
			return pid
		}
	}
	return 0
}

// Rebound returns the polled connection a TypeControl message r hands
// over, and closes c: the init moved its end of the control socket into
// its final network namespace. Without exactly one descriptor in r, c is
// returned, with false.
func (c *Conn) Rebound(r *Received) (*Conn, bool) {
	if len(r.Files) != 1 {
		CloseFiles(r.Files)
		return c, false
	}
	n, err := Polled(r.Files[0])
	if err != nil {
		return c, false
	}
	c.Close()
	return n, true
}

// CloseFiles closes every file of fs (received descriptors nobody took).
func CloseFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}
