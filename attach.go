package vessel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/internal/initproto"
)

// listenControl makes the listening control socket handed to the init.
// Only root (the socket's owner) can connect: it is mode 0600 in a
// directory the caller chose.
func listenControl(path string) (*os.File, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%q is not absolute", path)
	}
	if len(path) >= 108 {
		return nil, fmt.Errorf("%q is longer than a unix socket path may be", path)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	_ = os.Remove(path)
	old := unix.Umask(0o177)
	err = unix.Bind(fd, &unix.SockaddrUnix{Name: path})
	unix.Umask(old)
	if err == nil {
		err = unix.Listen(fd, 16)
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "vessel-control-listener"), nil
}

// Client controls a container from another program through its control
// socket (Container.ControlSocket): the OCI runtime's start, kill and exec
// verbs, run by processes other than the one that created the container.
type Client struct {
	sess *session
}

// Attach connects to a container's control socket.
func Attach(socketPath string) (*Client, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: socketPath}); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("vessel: attach %s: %w (the container is not running)", socketPath, ErrNotRunning)
		}
		return nil, fmt.Errorf("vessel: attach %s: %w", socketPath, err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	conn, err := initproto.NewPolled(fd)
	if err != nil {
		return nil, fmt.Errorf("vessel: attach %s: %w", socketPath, err)
	}
	s := newSession(conn)
	go s.readLoop()
	return &Client{sess: s}, nil
}

// Close ends the connection; the container is not affected.
func (cl *Client) Close() error { return cl.sess.conn.Close() }

// Start lets a created container's main process execve, running the
// startContainer hooks first with hookState on their stdin. It returns the
// host pid of the process.
func (cl *Client) Start(ctx context.Context, hookState []byte) (int, error) {
	if err := sendStart(cl.sess.conn, hookState); err != nil {
		return 0, ErrNotRunning
	}
	for {
		select {
		case r, ok := <-cl.sess.main:
			if !ok {
				return 0, ErrNotRunning
			}
			initproto.CloseFiles(r.Files)
			switch r.Type {
			case initproto.TypeStarted:
				return r.PidOf(), nil
			case initproto.TypeError:
				return 0, remoteSetupError(r.Error)
			}
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Signal sends sig to the container's main process.
func (cl *Client) Signal(sig syscall.Signal) error {
	return sendSignal(cl.sess.conn, 0, sig)
}

// SignalAll sends sig to every process of the container.
func (cl *Client) SignalAll(sig syscall.Signal) error {
	return sendSignal(cl.sess.conn, -1, sig)
}

// Exec starts cmd in the container, like Container.Exec.
func (cl *Client) Exec(ctx context.Context, cmd *Cmd) (*Process, error) {
	return cl.sess.exec(ctx, cmd)
}

// Wait waits for the container's main process to end and returns how.
func (cl *Client) Wait(ctx context.Context) (*ExitStatus, error) {
	for {
		select {
		case r, ok := <-cl.sess.main:
			if !ok {
				return nil, errors.New("vessel: the container ended without reporting its process's exit")
			}
			initproto.CloseFiles(r.Files)
			if r.Type == initproto.TypeExit && r.Exit != nil {
				st := exitStatus(r.Exit)
				return &st, nil
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
