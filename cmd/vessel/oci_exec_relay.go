package main

// exec --detach under a supervisor. conmon and the containerd shim run
// `exec --detach --pid-file P`, then wait for the process named in P (they
// are subreapers: a process whose parent exits is reparented to them) and
// signal it. The exec'd process itself is a child of the container's init,
// never theirs, so vessel leaves a stand-in instead: a small process, this
// binary again, that asks the init to start the process, relays every
// signal it gets to it, and ends when it ends with the same status (the
// same exit code, or death by the same signal). The detached exec command
// starts the stand-in, waits until the process runs, writes the stand-in's
// pid and exits; the stand-in is then the supervisor's.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel"
)

// relayEnv names the stand-in mode; its value is the number of preserved
// descriptors (3...), after which come the request pipe and the report
// pipe.
const relayEnv = "_VESSEL_EXEC_RELAY"

// relayRequest is what the detached exec command hands the stand-in.
type relayRequest struct {
	Socket        string       `json:"socket"`
	Args          []string     `json:"args"`
	Env           []string     `json:"env"`
	SetEnv        bool         `json:"setEnv"`
	Dir           string       `json:"dir,omitempty"`
	User          *vessel.User `json:"user,omitempty"`
	TTY           bool         `json:"tty,omitempty"`
	Rows          uint16       `json:"rows,omitempty"`
	Cols          uint16       `json:"cols,omitempty"`
	ConsoleSocket string       `json:"consoleSocket,omitempty"`
	// Seccomp, when set, is where the process's seccomp notify listener
	// goes (the container's linux.seccomp.listenerPath).
	Seccomp *seccompAgent `json:"seccomp,omitempty"`
}

// seccompAgent is an agent that gets the seccomp notify listeners of a
// container's processes, with what it is told beside each.
type seccompAgent struct {
	Path     string      `json:"path"`
	Metadata string      `json:"metadata,omitempty"`
	State    specs.State `json:"state"`
}

// hand sends process p's listener, if it has one, to the agent.
func (a *seccompAgent) hand(p *vessel.Process) error {
	l := p.TakeSeccompListener()
	if l == nil || a == nil {
		if l != nil {
			l.Close()
		}
		return nil
	}
	defer l.Close()
	if err := sendSeccompListener(a.Path, a.Metadata, a.State, p.Pid(), l); err != nil {
		return fmt.Errorf("linux.seccomp.listenerPath %s: %w", a.Path, err)
	}
	return nil
}

// relayReport is the stand-in's answer: the process's pid, or why it
// could not start.
type relayReport struct {
	Pid int    `json:"pid,omitempty"`
	Err string `json:"err,omitempty"`
}

func init() {
	// The stand-in runs before anything else of the command line.
	if v, ok := os.LookupEnv(relayEnv); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			fmt.Fprintf(os.Stderr, "vessel: %s=%q is not a descriptor count\n", relayEnv, v)
			os.Exit(255)
		}
		os.Unsetenv(relayEnv)
		os.Exit(runExecRelay(n))
	}
}

// startExecRelay starts the stand-in for cmd in the container whose control
// socket is socket, and returns its pid once the process runs. consoleSocket,
// when set, receives the process's terminal (from the container's devpts).
func startExecRelay(socket string, cmd *vessel.Cmd, consoleSocket string, agent *seccompAgent) (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("finding vessel's own executable: %w", err)
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer reqW.Close()
	repR, repW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		return 0, err
	}
	defer repR.Close()
	c := exec.Command(self)
	c.Args = []string{"vessel-exec-relay", cmd.Args[0]}
	c.Env = append(os.Environ(), relayEnv+"="+strconv.Itoa(len(cmd.ExtraFiles)))
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	c.ExtraFiles = append(append([]*os.File(nil), cmd.ExtraFiles...), reqR, repW)
	err = c.Start()
	reqR.Close()
	repW.Close()
	if err != nil {
		return 0, fmt.Errorf("starting the exec stand-in: %w", err)
	}
	req := relayRequest{Socket: socket, Args: cmd.Args, Env: cmd.Env, SetEnv: cmd.Env != nil, Dir: cmd.Dir, User: cmd.User,
		TTY: cmd.TTY, Rows: cmd.Rows, Cols: cmd.Cols, ConsoleSocket: consoleSocket, Seccomp: agent}
	if err := json.NewEncoder(reqW).Encode(&req); err != nil {
		_ = c.Process.Kill()
		_, _ = c.Process.Wait()
		return 0, fmt.Errorf("handing the process to the exec stand-in: %w", err)
	}
	reqW.Close()
	var rep relayReport
	if err := json.NewDecoder(repR).Decode(&rep); err != nil {
		_ = c.Process.Kill()
		_, _ = c.Process.Wait()
		return 0, fmt.Errorf("the exec stand-in ended without a report: %w", err)
	}
	if c.Process.Pid <= 0 {
		return 0, fmt.Errorf("the exec stand-in has no pid (%d)", c.Process.Pid)
	}
	if rep.Err != "" {
		_, _ = c.Process.Wait()
		return 0, errors.New(rep.Err)
	}
	// Not waited for: when this command exits, the stand-in is reparented
	// to the caller (a subreaper), whose child it then is. (Release sets
	// Pid to -1: read it first.)
	pid := c.Process.Pid
	_ = c.Process.Release()
	return pid, nil
}

// runExecRelay is the stand-in: it returns the exit code it must end with
// when it cannot die by the process's signal.
func runExecRelay(nExtra int) int {
	reqF := os.NewFile(uintptr(3+nExtra), "relay-request")
	repF := os.NewFile(uintptr(4+nExtra), "relay-report")
	report := func(rep relayReport) {
		_ = json.NewEncoder(repF).Encode(&rep)
		repF.Close()
	}
	var req relayRequest
	err := json.NewDecoder(reqF).Decode(&req)
	reqF.Close()
	if err != nil {
		report(relayReport{Err: fmt.Sprintf("exec stand-in: reading the request: %v", err)})
		return 255
	}
	cmd := &vessel.Cmd{Args: req.Args, Dir: req.Dir, User: req.User, TTY: req.TTY, Rows: req.Rows, Cols: req.Cols}
	if req.SetEnv {
		cmd.Env = req.Env
		if cmd.Env == nil {
			cmd.Env = []string{}
		}
	}
	if !cmd.TTY {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	}
	for i := 0; i < nExtra; i++ {
		cmd.ExtraFiles = append(cmd.ExtraFiles, os.NewFile(uintptr(3+i), fmt.Sprintf("fd%d", 3+i)))
	}
	// Signals that arrive while the process starts are queued, then
	// relayed.
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs)
	cl, err := vessel.Attach(req.Socket)
	if err != nil {
		report(relayReport{Err: err.Error()})
		return 255
	}
	p, err := cl.Exec(context.Background(), cmd)
	if err != nil {
		report(relayReport{Err: "exec: " + oneLine(err)})
		return 255
	}
	if err := req.Seccomp.hand(p); err != nil {
		_ = p.Signal(syscall.SIGKILL)
		report(relayReport{Err: err.Error()})
		return 255
	}
	if req.ConsoleSocket != "" {
		master := p.Console()
		if master == nil {
			err = errors.New("the process got no terminal")
		} else {
			err = sendConsole(req.ConsoleSocket, master)
			master.Close()
		}
		if err != nil {
			_ = p.Signal(syscall.SIGKILL)
			report(relayReport{Err: fmt.Sprintf("--console-socket %s: %v", req.ConsoleSocket, err)})
			return 255
		}
	}
	report(relayReport{Pid: p.Pid()})
	// The caller's streams and descriptors are the process's now: keep no
	// copy that would hold a pipe open after the process is gone.
	if null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0); err == nil {
		for fd := 0; fd < 3; fd++ {
			_ = unix.Dup3(int(null.Fd()), fd, 0)
		}
		null.Close()
	}
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
	go func() {
		for s := range sigs {
			sig := s.(syscall.Signal)
			if sig == syscall.SIGURG || sig == syscall.SIGCHLD || sig == syscall.SIGPIPE {
				continue // the Go runtime's own, and ours
			}
			_ = p.Signal(sig)
		}
	}()
	_ = p.Wait()
	st := p.ExitStatus()
	if st == nil {
		return 255
	}
	if st.Signal != 0 {
		signal.Reset()
		dieBySignal(st.Signal)
		return 128 + int(st.Signal)
	}
	return st.Code
}

// dieBySignal ends this process by sig with the default action, so that
// the parent's wait sees the same signal as the process got. Go's runtime
// keeps handlers for some signals even after signal.Reset; the raw
// sigaction sets the default one.
func dieBySignal(sig syscall.Signal) {
	type sigaction struct {
		handler  uintptr
		flags    uint64
		restorer uintptr
		mask     uint64
	}
	act := sigaction{} // SIG_DFL
	_, _, _ = unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
	var set unix.Sigset_t
	set.Val[0] = 1 << (uint(sig) - 1)
	_ = unix.PthreadSigmask(unix.SIG_UNBLOCK, &set, nil)
	_ = unix.Tgkill(unix.Getpid(), unix.Gettid(), sig)
	// A signal whose default action is to ignore it (or stop) leaves us
	// here: give the caller the shell's convention.
	time.Sleep(100 * time.Millisecond)
}
