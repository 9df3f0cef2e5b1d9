package vessel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/openvessel/vessel/internal/child"
	"github.com/openvessel/vessel/internal/initproto"
)

// The parent's side of the init protocol (initproto's documentation has
// all of it): what the parent sends (sendStart, sendSignal, session.exec)
// and how it reads a starting init's messages (awaitInit) and a running
// one's (session.readLoop, which hands them to the main process's reader
// or the Process they are about).

// sendStart lets a created container's main process go on to execve;
// hookState is what its startContainer hooks read.
func sendStart(conn *initproto.Conn, hookState []byte) error {
	return conn.Send(&initproto.Message{Type: initproto.TypeStart, Payload: hookState})
}

// sendSignal asks the init to send sig to process id: 0 the main process,
// n one that conn's session started, -1 every process of the container.
func sendSignal(conn *initproto.Conn, id int, sig syscall.Signal) error {
	return conn.Send(&initproto.Message{Type: initproto.TypeSignal, ID: id, Signal: int(sig)})
}

// awaitInit reads a starting init's messages until one of the kinds in
// want comes (ready, created, started) or a failure report (returned as
// its *SetupError, with the message). On the way it switches to the
// control socket a control message hands over (switched is told the new
// connection) and keeps a terminal's master and a seccomp notify
// listener, which it returns in any case.
func awaitInit(conn *initproto.Conn, switched func(*initproto.Conn), want ...initproto.Kind) (r *initproto.Received, pty, listener *os.File, err error) {
	for {
		r, err := conn.Recv()
		if err != nil {
			return nil, pty, listener, err
		}
		switch {
		case r.Type == initproto.TypeControl:
			n, ok := conn.Rebound(r)
			if !ok {
				return r, pty, listener, errors.New("bad control socket message")
			}
			conn = n
			switched(n)
		case r.Type == initproto.TypePTY:
			if len(r.Files) == 1 {
				pty = r.Files[0]
			}
		case r.Type == initproto.TypeSeccomp:
			if len(r.Files) == 1 {
				listener = r.Files[0]
			}
		case r.Type == initproto.TypeError:
			return r, pty, listener, remoteSetupError(r.Error)
		case slices.Contains(want, r.Type):
			return r, pty, listener, nil
		default:
			return r, pty, listener, fmt.Errorf("unexpected message %q", r.Type)
		}
	}
}

// session is one control connection to a container's init: the parent's
// own socket pair, or a connection to the init's control socket from
// another program (Attach). Processes started by Exec belong to the
// session that asked for them.
type session struct {
	conn   *initproto.Conn
	mu     sync.Mutex
	procs  map[int]*Process
	nextID int
	// main receives the messages about the main process (ID 0).
	main chan *initproto.Received
	// closed is closed when the connection has ended.
	closed chan struct{}
}

func newSession(conn *initproto.Conn) *session {
	return &session{conn: conn, procs: map[int]*Process{}, nextID: 1,
		main: make(chan *initproto.Received, 16), closed: make(chan struct{})}
}

// readLoop dispatches messages until the connection ends.
func (s *session) readLoop() {
	defer close(s.closed)
	defer close(s.main)
	for {
		r, err := s.conn.Recv()
		if err != nil {
			s.mu.Lock()
			procs := s.procs
			s.procs = map[int]*Process{}
			s.mu.Unlock()
			for _, p := range procs {
				p.finish(nil, errors.New("container ended"))
			}
			return
		}
		if r.ID == 0 {
			s.main <- r
			continue
		}
		s.mu.Lock()
		p := s.procs[r.ID]
		s.mu.Unlock()
		if p == nil {
			initproto.CloseFiles(r.Files)
			continue
		}
		p.handle(r)
		if r.Type == initproto.TypeExit || r.Type == initproto.TypeError {
			s.forget(r.ID)
		}
	}
}

func (s *session) forget(id int) {
	s.mu.Lock()
	delete(s.procs, id)
	s.mu.Unlock()
}

// exec asks the init to start cmd and waits until it has been execve()d.
func (s *session) exec(ctx context.Context, cmd *Cmd) (*Process, error) {
	if cmd == nil || len(cmd.Args) == 0 {
		return nil, &ConfigError{Field: "command.args", Reason: "no command to run"}
	}
	select {
	case <-s.closed:
		return nil, ErrNotRunning
	default:
	}
	s.mu.Lock()
	id := s.nextID
	s.nextID++
	p := &Process{s: s, id: id, started: make(chan error, 1), done: make(chan struct{})}
	s.procs[id] = p
	s.mu.Unlock()

	req := child.ExecRequest{Args: cmd.Args, Env: cmd.Env, SetEnv: cmd.Env != nil, Dir: cmd.Dir, User: childUser(cmd.User),
		TTY: cmd.TTY, Rows: cmd.Rows, Cols: cmd.Cols, NumExtras: len(cmd.ExtraFiles)}
	files, childEnds, err := p.stdio(cmd)
	if err != nil {
		s.forget(id)
		return nil, err
	}
	files = append(files, cmd.ExtraFiles...)
	err = s.conn.Send(&initproto.Message{Type: initproto.TypeExec, ID: id, Payload: initproto.Encode(&req)}, files...)
	initproto.CloseFiles(childEnds)
	if err != nil {
		s.forget(id)
		p.closeAll()
		if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
			return nil, ErrNotRunning
		}
		return nil, &SetupError{Step: "send exec request", Err: err}
	}
	var startErr error
	var ctxDone <-chan struct{}
	if ctx != nil {
		ctxDone = ctx.Done()
	}
	select {
	case startErr = <-p.started:
	case <-s.closed:
		startErr = ErrNotRunning
	case <-ctxDone:
		// Given up (a paused container cannot start anything): if the
		// process starts after all, it is killed at once.
		go func() {
			select {
			case err := <-p.started:
				if err == nil {
					_ = sendSignal(s.conn, id, syscall.SIGKILL)
				}
			case <-s.closed:
			}
		}()
		p.closeAll()
		return nil, ctx.Err()
	}
	if startErr != nil {
		s.forget(id)
		p.closeAll()
		return nil, startErr
	}
	if p.pty != nil {
		startPTYCopy(p.pty, cmd.Stdin, cmd.Stdout, &p.copies, nil)
	}
	if ctx != nil && ctx.Done() != nil {
		go func() {
			select {
			case <-ctx.Done():
				p.mu.Lock()
				p.ctxErr = ctx.Err()
				p.mu.Unlock()
				_ = p.Signal(syscall.SIGKILL)
			case <-p.done:
			}
		}()
	}
	return p, nil
}

// startPTYCopy copies between a pty master and the caller's stdio. The
// output copy ends at the first EIO when ended is nil, else once ended
// is closed (see copyPTY).
func startPTYCopy(master *os.File, in io.Reader, out io.Writer, wg *sync.WaitGroup, ended <-chan struct{}) {
	if in != nil {
		go func() { _, _ = io.Copy(master, in) }()
	}
	if out != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			copyPTY(out, master, ended)
		}()
	}
}

// copyPTY copies a pty's output to out. Reading the master fails with EIO
// while no process has the terminal open: at the end, but also for a
// moment when the process closes and reopens its terminal, as systemd
// does with /dev/console as it boots. With ended set, an EIO is retried
// until ended is closed (the container's processes are gone).
func copyPTY(out io.Writer, master *os.File, ended <-chan struct{}) {
	buf := make([]byte, 32<<10)
	for {
		n, err := master.Read(buf)
		if n > 0 {
			if _, werr := out.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err == nil {
			continue
		}
		if ended == nil || !errors.Is(err, syscall.EIO) {
			return
		}
		select {
		case <-ended:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// exitStatus is the status an exit message reports.
func exitStatus(x *initproto.ExitInfo) ExitStatus {
	return ExitStatus{Code: x.Code, Signal: syscall.Signal(x.Signal), CoreDumped: x.Core}
}
