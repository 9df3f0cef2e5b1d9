package vessel

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/internal/initproto"
)

// Cmd describes a process to start inside a running container with
// Exec, as os/exec's Cmd describes one to start on the host. Fields left
// empty take the container's own settings (environment, working
// directory, user).
type Cmd struct {
	// Args is the command line, Args[0] included (the program, found in
	// the process's PATH when it has no slash).
	Args []string
	// Env replaces the main process's environment when not nil; PATH,
	// HOME, HOSTNAME and (with TTY) TERM are added unless it sets them.
	// A nil Env is the main process's environment.
	Env []string
	// Dir is the working directory ("" : the container's).
	Dir string
	// User overrides the container's user when not nil.
	User *User
	// TTY gives the process its own pseudo-terminal, of Rows by Cols
	// characters, as its stdin, stdout and stderr.
	TTY        bool
	Rows, Cols uint16
	// Stdin, Stdout and Stderr are the process's standard streams, as in
	// os/exec: an *os.File is passed as it is, other readers and writers
	// through pipes, and nil is /dev/null.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// ExtraFiles become descriptors 3, 4, ... of the process.
	ExtraFiles []*os.File
}

// Command returns a Cmd running name with args, as os/exec's Command
// does.
func Command(name string, args ...string) *Cmd {
	return &Cmd{Args: append([]string{name}, args...)}
}

// Process is a process started by Exec.
type Process struct {
	s   *session
	id  int
	pid int

	started chan error
	done    chan struct{}
	once    sync.Once
	status  *ExitStatus

	pty      *os.File
	listener *os.File // seccomp notify listener, until taken
	copies   sync.WaitGroup
	copyErr  firstError // of the output copies, for Wait
	closers  []io.Closer
	mu       sync.Mutex
	ctxErr   error // the context whose end killed the process
}

// Exec starts cmd inside the running container, in all of its namespaces
// (a user namespace included), with the container's security settings. It
// returns once the process has been execve()d, or with a *SetupError.
// Cancelling ctx kills the process.
func (c *Container) Exec(ctx context.Context, cmd *Cmd) (*Process, error) {
	c.mu.Lock()
	s := c.sess
	running := c.status == Running && s != nil
	refused := c.execRefused
	c.mu.Unlock()
	if !running {
		return nil, ErrNotRunning
	}
	if refused != nil {
		return nil, refused
	}
	select {
	case <-c.done:
		return nil, ErrNotRunning
	default:
	}
	if cmd != nil && cmd.Env != nil {
		// A replaced environment gets the same defaults as the main
		// process's; a nil one is the main process's, as it is.
		cp := *cmd
		uid := c.cfg.Process.User.UID
		if cmd.User != nil {
			uid = cmd.User.UID
		}
		cp.Env = defaultEnv(cmd.Env, uid, c.hostname(), cmd.TTY)
		cmd = &cp
	}
	return s.exec(ctx, cmd)
}

// stdio prepares descriptors 0-2 for the process: files are used as they
// are, other readers and writers through pipes copied by goroutines.
func (p *Process) stdio(cmd *Cmd) (files, childEnds []*os.File, err error) {
	if cmd.TTY {
		// The terminal's slave becomes stdio inside; pass /dev/null here.
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			return nil, nil, err
		}
		return []*os.File{null, null, null}, []*os.File{null}, nil
	}
	return pipeStdio(cmd.Stdin, cmd.Stdout, cmd.Stderr, &p.copies, &p.closers, &p.copyErr)
}

// pipeStdio prepares descriptors 0-2 for a process the init starts, as
// os/exec would: files are used as they are, other readers and writers
// through pipes copied by goroutines (the output copiers count in copies,
// the write ends of stdin pipes go to closers), and unset streams get
// /dev/null. files are what to send; childEnds this side's copies of them,
// to close once sent.
func pipeStdio(in io.Reader, stdout, stderr io.Writer, copies *sync.WaitGroup, closers *[]io.Closer, copyErr *firstError) (files, childEnds []*os.File, err error) {
	out := []io.Writer{stdout, stderr}
	// One /dev/null serves every stream left unset.
	var null *os.File
	devNull := func() (*os.File, error) {
		if null == nil {
			f, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
			if err != nil {
				return nil, err
			}
			null, childEnds = f, append(childEnds, f)
		}
		return null, nil
	}
	switch r := in.(type) {
	case nil:
		f, err := devNull()
		if err != nil {
			return nil, nil, err
		}
		files = append(files, f)
	case *os.File:
		files = append(files, r)
	default:
		pr, pw, err := os.Pipe()
		if err != nil {
			return nil, nil, err
		}
		files, childEnds = append(files, pr), append(childEnds, pr)
		*closers = append(*closers, pw)
		go func() {
			_, _ = io.Copy(pw, r)
			pw.Close()
		}()
	}
	for i, w := range out {
		if i == 1 && w != nil && interfaceEqual(w, out[0]) {
			// Stdout and Stderr are one writer: one pipe, one copier, as
			// os/exec does (two copiers would race on the writer).
			files = append(files, files[1])
			continue
		}
		switch w := w.(type) {
		case nil:
			f, err := devNull()
			if err != nil {
				return nil, nil, err
			}
			files = append(files, f)
		case *os.File:
			files = append(files, w)
		default:
			pr, pw, err := os.Pipe()
			if err != nil {
				return nil, nil, err
			}
			files, childEnds = append(files, pw), append(childEnds, pw)
			copies.Add(1)
			go func() {
				defer copies.Done()
				_, err := io.Copy(w, pr)
				copyErr.set(err)
				pr.Close()
			}()
		}
	}
	return files, childEnds, nil
}

func (p *Process) closeAll() {
	for _, c := range p.closers {
		c.Close()
	}
}

// handle takes one message about this process from the init.
func (p *Process) handle(r *initproto.Received) {
	switch r.Type {
	case initproto.TypePTY:
		if len(r.Files) == 1 {
			p.pty = r.Files[0]
		}
	case initproto.TypeSeccomp:
		if len(r.Files) == 1 {
			p.mu.Lock()
			p.listener = r.Files[0]
			p.mu.Unlock()
		}
	case initproto.TypeStarted:
		p.pid = r.PidOf()
		p.started <- nil
	case initproto.TypeError:
		p.started <- remoteSetupError(r.Error)
		p.finish(nil, errors.New("not started"))
	case initproto.TypeExit:
		st := exitStatus(r.Exit)
		p.finish(&st, nil)
	}
}

func (p *Process) finish(st *ExitStatus, err error) {
	p.once.Do(func() {
		if l := p.TakeSeccompListener(); l != nil {
			l.Close()
		}
		if st == nil && err != nil {
			s := ExitStatus{Code: 137, Signal: syscall.SIGKILL, Killed: true}
			st = &s
		}
		p.status = st
		close(p.done)
	})
}

// Pid returns the host pid of the process. Exec returns once the process's
// execve is past its point of no return; for a moment after that, still
// inside execve, /proc may show the name and credentials it had before.
func (p *Process) Pid() int { return p.pid }

// Wait waits for the process to end and its output to be copied. It
// returns nil for exit code 0, else an *ExitError; as os/exec's Wait, the
// error of a failed copy of the output when the process succeeded.
func (p *Process) Wait() error {
	<-p.done
	p.copies.Wait()
	if p.pty != nil {
		p.pty.Close()
	}
	p.closeAll()
	st, ctxErr := p.final()
	if st.Success() && !st.Killed && !st.TimedOut {
		// As os/exec's Wait: a failed copy of the output is the error
		// of a process that succeeded.
		return p.copyErr.get()
	}
	return &ExitError{Status: st, Err: ctxErr}
}

// firstError keeps the first error of the output copies of a container's
// main process or an Exec'd one: their Wait reports it, as os/exec's does.
type firstError struct {
	mu  sync.Mutex
	err error
}

func (e *firstError) set(err error) {
	if err == nil {
		return
	}
	e.mu.Lock()
	if e.err == nil {
		e.err = err
	}
	e.mu.Unlock()
}

func (e *firstError) get() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// final is how the process ended (p.done closed), and the error of the
// context whose end killed it, if that is how: a deadline counts as a
// timeout, a cancellation as a kill.
func (p *Process) final() (ExitStatus, error) {
	st := *p.status
	p.mu.Lock()
	ctxErr := p.ctxErr
	p.mu.Unlock()
	if ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			st.TimedOut = true
		} else {
			st.Killed = true
		}
	}
	return st, ctxErr
}

// ExitStatus returns how the process ended, once Wait has returned.
func (p *Process) ExitStatus() *ExitStatus {
	select {
	case <-p.done:
		s, _ := p.final()
		return &s
	default:
		return nil
	}
}

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return ErrNotRunning
	default:
	}
	return sendSignal(p.s.conn, p.id, sig)
}

// Resize sets the size of the process's terminal.
func (p *Process) Resize(rows, cols uint16) error {
	if p.pty == nil {
		return errors.New("vessel: the process has no terminal")
	}
	return unix.IoctlSetWinsize(int(p.pty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
}

// interfaceEqual compares two writers without panicking on uncomparable
// dynamic types.
func interfaceEqual(a, b io.Writer) (eq bool) {
	defer func() {
		if recover() != nil {
			eq = false
		}
	}()
	return a == b
}

// Console returns the process's pseudo-terminal master (Command.TTY), for
// callers that copy it themselves; nil without a terminal.
func (p *Process) Console() *os.File { return p.pty }

// TakeSeccompListener is Container.TakeSeccompListener for this process:
// its seccomp notify listener, handed to the caller (who must close it),
// when the container's profile has SCMP_ACT_NOTIFY rules and a
// ListenerPath; nil otherwise or once taken. Not taken, it is closed
// when the process ends.
func (p *Process) TakeSeccompListener() *os.File {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.listener
	p.listener = nil
	return l
}
