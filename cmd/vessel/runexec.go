package main

// `vessel run`: the process that holds a container (its controller), in
// the foreground or, with -d, started in the background by the command the
// user typed, which returns once the container runs.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/oci"
)

// detachedEnv tells the background controller of `run -d` which
// descriptor reports that the container started.
const detachedEnv = "_VESSEL_RUN_DETACHED_FD"

// cmdRun is docker's run.
func cmdRun(fs *pflag.FlagSet, o *runOpts, args []string) int {
	cfg, argv, err := o.buildConfig(fs, args)
	if err != nil {
		return reportErr(err)
	}
	id := o.name
	if id == "" {
		id = newName()
	}
	if o.workdir != "" {
		cfg.WithWorkDir(o.workdir)
	}
	if !hasEnv(cfg.Process.Env, "HOSTNAME") {
		h := o.hostname
		if h == "" {
			h = id
		}
		cfg.WithEnv("HOSTNAME=" + h)
	}
	if err := cfg.Validate(); err != nil {
		return reportErr(err)
	}
	if o.detach && os.Getenv(detachedEnv) == "" {
		args := os.Args[1:]
		if o.name == "" {
			// The background controller must use the same name.
			args = withName(args, id)
		}
		return startDetached(args, id)
	}
	return controlRun(cfg, o, id, argv)
}

// startDetached starts this command again in the background, as the
// container's controller, and returns once it reports the container
// started (printing its name) or failed (printing why).
func startDetached(args []string, id string) int {
	ready, readyW, err := os.Pipe()
	if err != nil {
		return fail("run -d: %v", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return fail("run -d: %v", err)
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fail("run -d: %v", err)
	}
	cmd := exec.Command("/proc/self/exe", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, errW
	cmd.ExtraFiles = []*os.File{readyW}
	cmd.Env = append(os.Environ(), detachedEnv+"=3")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fail("run -d: %v", err)
	}
	null.Close()
	readyW.Close()
	errW.Close()
	line, _ := bufio.NewReader(ready).ReadString('\n')
	if strings.TrimSpace(line) == "started" {
		fmt.Println(id)
		_ = cmd.Process.Release()
		return 0
	}
	msg, _ := io.ReadAll(io.LimitReader(errR, 64<<10))
	err = cmd.Wait()
	os.Stderr.Write(msg)
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() > 0 {
		return ee.ExitCode()
	}
	if len(msg) == 0 {
		return fail("run -d: the background controller ended without starting the container (%v)", err)
	}
	return exitVessel
}

// withName adds --name id after the verb run.
func withName(args []string, id string) []string {
	for i, a := range args {
		if a == "run" {
			return append(append(append([]string{}, args[:i+1]...), "--name", id), args[i+1:]...)
		}
	}
	return args
}

// controlRun creates the container in the store, runs it and holds it
// until it ends; then records how it ended (or removes it, --rm).
func controlRun(cfg *vessel.Config, o *runOpts, id string, argv []string) int {
	var ready *os.File
	if fd := os.Getenv(detachedEnv); fd != "" {
		ready = os.NewFile(3, "ready")
		os.Unsetenv(detachedEnv)
		unix.CloseOnExec(3)
	}
	st, err := openStore()
	if err != nil {
		return reportErr(err)
	}
	lock, err := claimName(st, id)
	if err != nil {
		if errors.Is(err, errNameInUse) {
			return fail("run: --name %s: name in use by another container (vessel rm -f %s removes it)", id, id)
		}
		return reportErr(err)
	}
	defer lock.Unlock()
	discard := func(err error) int {
		if rerr := st.Remove(id); rerr != nil {
			fmt.Fprintf(os.Stderr, "vessel: warning: %v\n", rerr)
		}
		return reportErr(err)
	}
	if err := makeWorkdir(cfg); err != nil {
		return discard(err)
	}
	rec := &oci.Record{
		ID: id, Created: time.Now().UTC(), Owner: os.Geteuid(),
		ControlSocket: filepath.Join(st.Dir(id), oci.ControlSocketName),
		Cgroup:        cfg.Cgroup, Config: cfg,
	}
	if cfg.Rootfs.Path != "" {
		rec.Rootfs = cfg.Rootfs.Path
	}
	if !cfg.Cgroup.Disabled {
		m, err := cgroups.New(vessel.CgroupOptions(id, cfg.Cgroup))
		if err != nil {
			return discard(fmt.Errorf("cgroup: %v", err))
		}
		cs := m.State()
		rec.CgroupState = &cs
	}
	self, err := oci.ProcessOf(os.Getpid())
	if err != nil {
		return discard(err)
	}
	info := &runInfo{Controller: self, Command: argv, Detached: ready != nil, AutoRemove: o.autoRm}
	// Until Start says what it set up, assume a network attachment and
	// prepared storage, for a clean-up after a crash midway to look for.
	rec.Network, rec.Storage = true, true
	// Saved before anything exists on the host: if this process dies from
	// here on, the record tells rm -f and system prune what to clean.
	if err := st.Save(rec); err != nil {
		return discard(err)
	}
	if err := saveRunInfo(st, id, info); err != nil {
		return discard(err)
	}
	c, err := vessel.New(id, cfg)
	if err != nil {
		return discard(err)
	}
	c.ControlSocket = rec.ControlSocket
	var restore func()
	if ready != nil {
		so, err := os.OpenFile(filepath.Join(st.Dir(id), stdoutLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return discard(err)
		}
		defer so.Close()
		se, err := os.OpenFile(filepath.Join(st.Dir(id), stderrLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return discard(err)
		}
		defer se.Close()
		c.Stdout, c.Stderr = so, se
	} else {
		c.Stdin, c.Stdout, c.Stderr = containerStdio(o.tty, o.interactive)
		if o.tty && isTerminal(0) {
			restore = rawTerminal(0)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH)
	defer signal.Stop(sigs)
	stopProgress := importProgress(cfg)
	err = c.Start(ctx, argv...)
	stopProgress()
	if err != nil {
		if restore != nil {
			restore()
		}
		code := discard(err)
		return startExitCode(err, code)
	}
	state := c.State()
	rec.Init, _ = oci.ProcessOf(state.InitPid)
	rec.Main, _ = oci.ProcessOf(state.Pid)
	rec.Started = true
	rec.Network = c.Network() != nil
	rec.Storage = c.Storage() != nil
	info.Started = time.Now().UTC()
	if err := st.Save(rec); err != nil {
		_ = c.Destroy()
		return discard(err)
	}
	_ = saveRunInfo(st, id, info)
	lock.Unlock()
	for _, w := range c.Warnings() {
		fmt.Fprintf(os.Stderr, "vessel: warning: %s\n", w)
	}
	if ready != nil {
		fmt.Fprintln(ready, "started")
		ready.Close()
		if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
			_ = unix.Dup2(int(null.Fd()), 2)
			null.Close()
		}
	}
	go func() {
		for s := range sigs {
			if s == syscall.SIGWINCH {
				if ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ); err == nil {
					_ = c.Resize(ws.Row, ws.Col)
				}
				continue
			}
			sig := s.(syscall.Signal)
			if o.acct.boot && (sig == syscall.SIGTERM || sig == syscall.SIGINT) {
				sig = cfg.StopSignal // halt the booted init
			}
			_ = c.Signal(sig)
		}
	}()
	waitErr := c.Wait()
	if restore != nil {
		restore()
	}
	ex := c.State().Exit
	// Everything the container held on the host goes now; the record
	// stays for ps -a, logs and inspect unless --rm.
	if l, err := st.Lock(id); err == nil {
		if err := c.Destroy(); err != nil {
			fmt.Fprintf(os.Stderr, "vessel: warning: destroying %s: %v\n", id, oneLine(err))
		}
		if o.autoRm {
			_ = st.Remove(id)
		} else {
			rec.Network, rec.Storage = false, false
			_ = st.Save(rec)
			info.Exit = &runExit{Code: -1, At: time.Now().UTC()}
			if ex != nil {
				info.Exit.Code, info.Exit.Signal = ex.Code, int(ex.Signal)
				info.Exit.OOMKilled, info.Exit.TimedOut = ex.OOMKilled, ex.TimedOut
			}
			_ = saveRunInfo(st, id, info)
		}
		l.Unlock()
	} else {
		_ = c.Destroy()
	}
	if ex == nil {
		return fail("%s", oneLine(waitErr))
	}
	switch {
	case ex.TimedOut:
		fmt.Fprintf(os.Stderr, "vessel: container timed out after %v and was killed\n", o.timeout)
	case ex.OOMKilled:
		fmt.Fprintln(os.Stderr, "vessel: container was killed by the OOM killer (out of memory)")
	case ex.CPUTimeExceeded:
		fmt.Fprintf(os.Stderr, "vessel: container used up its CPU time (%v) and was killed\n", o.res.cpuTime)
	}
	return ex.Code
}

// startExitCode is docker's exit code for a command that could not be
// started: 127 when it does not exist, 126 when it cannot be executed,
// else code (125).
func startExitCode(err error, code int) int {
	var se *vessel.SetupError
	if !errors.As(err, &se) || !strings.HasPrefix(se.Step, "exec") {
		return code
	}
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return 127
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.ENOEXEC), errors.Is(err, unix.EISDIR):
		return 126
	}
	return code
}

// reportErr prints err on one line and returns 125.
func reportErr(err error) int {
	return fail("%s", oneLine(err))
}
