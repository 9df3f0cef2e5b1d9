package main

// runc's create, start and run.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/limits"
	"github.com/openvessel/vessel/oci"
)

// createOpts are the flags of create and run.
type createOpts struct {
	bundle        string
	pidFile       string
	consoleSocket string
	preserveFDs   int
	noPivot       bool
	noNewKeyring  bool
	detach        bool
}

func (o *createOpts) register(fs *flagSetAlias, run bool) {
	fs.str(&o.bundle, "path to the root of the bundle directory (default: the current directory)", "bundle", "b")
	fs.str(&o.pidFile, "file to write the container process's pid to", "pid-file")
	fs.str(&o.consoleSocket, "AF_UNIX socket that receives the master end of the console's pseudo-terminal", "console-socket")
	fs.FlagSet.IntVar(&o.preserveFDs, "preserve-fds", 0, "pass N additional file descriptors (3...) to the container")
	fs.boolean(&o.noPivot, "accepted for compatibility (vessel always uses pivot_root)", "no-pivot")
	fs.boolean(&o.noNewKeyring, "accepted for compatibility (vessel never creates a session keyring)", "no-new-keyring")
	if run {
		fs.boolean(&o.detach, "detach from the container's process", "detach", "d")
		var keep, noSubreaper bool
		fs.boolean(&keep, "accepted for compatibility", "keep")
		fs.boolean(&noSubreaper, "accepted for compatibility", "no-subreaper")
	}
}

const createUsage = "[--bundle DIR] [--pid-file FILE] [--console-socket SOCK] [--preserve-fds N] ID"

func ociCreate(g *globalOpts, args []string) int {
	var o createOpts
	fs := newAliasFlags("create")
	o.register(fs, false)
	id, code, ok := g.parseOneID(fs.FlagSet, "create", createUsage, args)
	if !ok {
		return code
	}
	o.detach = true
	code, _ = g.createContainer(id, &o, false)
	return code
}

// loadBundle reads the bundle's config.json into a Config with the
// spec's hooks, bundle and annotations.
func (g *globalOpts) loadBundle(id, bundle string) (*vessel.Config, *specs.Spec, error) {
	if bundle == "" {
		bundle = "."
	}
	abs, err := filepath.Abs(bundle)
	if err != nil {
		return nil, nil, err
	}
	spec, err := oci.LoadSpec(abs)
	if err != nil {
		return nil, nil, err
	}
	cgPath := ""
	if spec.Linux != nil {
		cgPath = spec.Linux.CgroupsPath
		if g.systemdCgroup && cgPath != "" {
			p, err := systemdCgroupPath(cgPath)
			if err != nil {
				return nil, nil, err
			}
			spec.Linux.CgroupsPath = p
			cgPath = p
		}
	}
	cfg, warns, err := oci.FromSpecWarnings(spec, abs)
	for _, w := range warns {
		g.logger().warnf("%s", w)
	}
	if err != nil {
		return nil, nil, err
	}
	clampRlimits(cfg)
	hooks, err := oci.HooksOf(spec)
	if err != nil {
		return nil, nil, err
	}
	cfg.Hooks = vesselHooks(hooks)
	cfg.Bundle = abs
	cfg.Annotations = spec.Annotations
	cfg.Cgroup = cgroupPlacement(cgPath, cfg.Cgroup)
	return cfg, spec, nil
}

// systemdCgroupPath maps runc's systemd form "slice:prefix:name" to the
// cgroupfs path systemd would use: /a.slice/a-b.slice/prefix-name.scope.
func systemdCgroupPath(p string) (string, error) {
	parts := strings.Split(p, ":")
	if len(parts) != 3 {
		return "", fmt.Errorf("linux.cgroupsPath: %q is not of the systemd form slice:prefix:name (--systemd-cgroup)", p)
	}
	slice, prefix, name := parts[0], parts[1], parts[2]
	if name == "" {
		return "", fmt.Errorf("linux.cgroupsPath: %q has an empty name", p)
	}
	if slice == "" || slice == "-.slice" {
		slice = "system.slice"
	}
	if !strings.HasSuffix(slice, ".slice") || strings.Contains(slice, "/") {
		return "", fmt.Errorf("linux.cgroupsPath: slice %q must end in .slice", slice)
	}
	// Each dash of a slice name is a level: a-b.slice is in a.slice.
	base := strings.TrimSuffix(slice, ".slice")
	var dirs []string
	words := strings.Split(base, "-")
	for i := range words {
		if words[i] == "" {
			return "", fmt.Errorf("linux.cgroupsPath: slice %q has an empty component", slice)
		}
		dirs = append(dirs, strings.Join(words[:i+1], "-")+".slice")
	}
	unit := name
	if !strings.HasSuffix(name, ".slice") {
		if prefix != "" {
			unit = prefix + "-" + name
		}
		unit += ".scope"
	}
	return "/" + strings.Join(append(dirs, unit), "/"), nil
}

// cgroupPlacement puts the cgroup exactly at linux.cgroupsPath, as runc
// does, where the library's CgroupConfig can say so (two components or
// more); a single component keeps the library's default group
// (vessel.DefaultCgroupGroup).
func cgroupPlacement(p string, cc vessel.CgroupConfig) vessel.CgroupConfig {
	clean := path.Clean(p)
	rel := strings.TrimPrefix(clean, "/")
	parts := strings.Split(rel, "/")
	if p != "" && rel != "" && len(parts) == 1 && path.IsAbs(clean) {
		// "/name": exactly there, at the top of every hierarchy.
		return vessel.CgroupConfig{Path: clean, Disabled: cc.Disabled}
	}
	if p == "" || len(parts) < 2 {
		return cc
	}
	out := vessel.CgroupConfig{Group: parts[0], Name: strings.Join(parts[1:], "/"), Disabled: cc.Disabled}
	if path.IsAbs(clean) {
		out.Parent = "/"
	}
	return out
}

func vesselHooks(h *specs.Hooks) *vessel.Hooks {
	if h == nil {
		return nil
	}
	conv := func(list []specs.Hook) []vessel.Hook {
		var out []vessel.Hook
		for _, x := range list {
			vh := vessel.Hook{Path: x.Path, Args: x.Args, Env: x.Env}
			if x.Timeout != nil {
				vh.Timeout = time.Duration(*x.Timeout) * time.Second
			}
			out = append(out, vh)
		}
		return out
	}
	return &vessel.Hooks{
		Prestart: conv(h.Prestart), CreateRuntime: conv(h.CreateRuntime),
		CreateContainer: conv(h.CreateContainer), StartContainer: conv(h.StartContainer),
		Poststart: conv(h.Poststart), Poststop: conv(h.Poststop),
	}
}

// createContainer is create (start false) and run (start true). It
// returns the exit code and whether a container was left behind.
func (g *globalOpts) createContainer(id string, o *createOpts, start bool) (int, bool) {
	log := g.logger()
	st, err := g.store()
	if err != nil {
		return g.errorf("%v", err), false
	}
	lock, err := st.Create(id)
	if err != nil {
		if errors.Is(err, oci.ErrExist) {
			return g.errorf("container with id %s already exists", id), false
		}
		return g.errorf("%v", err), false
	}
	defer lock.Unlock()
	discard := func(format string, a ...any) int {
		code := g.errorf(format, a...)
		if err := st.Remove(id); err != nil {
			log.warnf("%v", err)
		}
		return code
	}
	cfg, spec, err := g.loadBundle(id, o.bundle)
	if err != nil {
		return discard("%v", err), false
	}
	terminal := spec.Process != nil && spec.Process.Terminal
	switch {
	case terminal && o.detach && o.consoleSocket == "":
		return discard("cannot allocate a terminal for a detached container without --console-socket"), false
	case !terminal && o.consoleSocket != "":
		return discard("--console-socket given, but process.terminal is false in the bundle's config.json"), false
	case o.preserveFDs < 0:
		return discard("--preserve-fds: %d is negative", o.preserveFDs), false
	}
	if g.debug {
		cfg.Logger = newDebugLogger(log)
	}
	rec := &oci.Record{
		ID: id, Bundle: cfg.Bundle, Annotations: cfg.Annotations, Created: time.Now().UTC(),
		Owner: os.Geteuid(), ControlSocket: st.ControlSocket(id),
		Cgroup: cfg.Cgroup, Config: cfg,
	}
	if cfg.Rootfs.Path != "" {
		rec.Rootfs = cfg.Rootfs.Path
	}
	if !cfg.Cgroup.Disabled {
		// Where the cgroup goes depends on this process's own cgroups when
		// the path is relative: work it out here, for delete to find it.
		m, err := cgroups.New(vessel.CgroupOptions(id, cfg.Cgroup))
		if err != nil {
			return discard("linux.cgroupsPath: %v", err), false
		}
		// Parents that exist already (a kubelet's pod cgroup) stay when
		// the container goes, as under runc.
		m.KeepExistingParents()
		cs := m.State()
		rec.CgroupState = &cs
	}
	if err := os.MkdirAll(filepath.Dir(rec.ControlSocket), 0o700); err != nil {
		return discard("control socket directory: %v", err), false
	}
	// Saved before anything exists on the host: a crash from here on
	// leaves a record that delete --force cleans up after.
	if err := st.Save(rec); err != nil {
		return discard("%v", err), false
	}
	var master *os.File
	var restore func()
	stdin, stdout, stderr := os.Stdin, os.Stdout, os.Stderr
	if terminal {
		if o.consoleSocket != "" {
			// The terminal is made in the container (its devpts, the
			// process's controlling terminal); its master goes to the
			// console socket once the container exists.
			stdin, stdout, stderr = nil, nil, nil
			if cs := spec.Process.ConsoleSize; cs != nil {
				cfg.Process.Rows, cfg.Process.Cols = uint16(cs.Height), uint16(cs.Width)
			}
		} else if isTerminal(0) {
			if ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ); err == nil {
				cfg.Process.Rows, cfg.Process.Cols = ws.Row, ws.Col
			}
			restore = rawTerminal(0)
		}
	}
	c, err := vessel.New(id, cfg)
	if err != nil {
		return discard("%v", err), false
	}
	c.Detached = true
	c.ControlSocket = rec.ControlSocket
	c.Stdin, c.Stdout, c.Stderr = stdin, stdout, stderr
	for i := 0; i < o.preserveFDs; i++ {
		c.ExtraFiles = append(c.ExtraFiles, os.NewFile(uintptr(3+i), fmt.Sprintf("fd%d", 3+i)))
	}
	if restore != nil {
		defer restore()
	}
	ctx := context.Background()
	if err := c.Create(ctx); err != nil {
		// Create released what it had set up.
		return discard("%v", oneLine(err)), false
	}
	state := c.State()
	rec.Init, _ = oci.ProcessOf(state.InitPid)
	rec.Main, _ = oci.ProcessOf(state.Pid)
	rec.Network = c.Network() != nil
	rec.Storage = c.Storage() != nil
	if err := st.Save(rec); err != nil {
		g.destroyRecord(rec)
		return discard("%v", err), false
	}
	log.debugf("container %s created: init pid %d, process pid %d", id, state.InitPid, state.Pid)
	if o.consoleSocket != "" {
		master = c.Console()
		if master == nil {
			g.destroyRecord(rec)
			return discard("--console-socket %s: the container's process got no terminal", o.consoleSocket), false
		}
		defer master.Close()
		if err := sendConsole(o.consoleSocket, master); err != nil {
			g.destroyRecord(rec)
			return discard("--console-socket %s: %v", o.consoleSocket, err), false
		}
	}
	if l := c.TakeSeccompListener(); l != nil {
		path := spec.Linux.Seccomp.ListenerPath
		err := sendSeccompListener(path, spec.Linux.Seccomp.ListenerMetadata, oci.NewState(rec.ID, specs.StateCreating, state.Pid, rec.Bundle, rec.Annotations), state.Pid, l)
		l.Close()
		if err != nil {
			g.destroyRecord(rec)
			return discard("linux.seccomp.listenerPath %s: %v", path, err), false
		}
	}
	if !start {
		if o.pidFile != "" {
			if err := writePidFile(o.pidFile, state.Pid); err != nil {
				g.destroyRecord(rec)
				return discard("--pid-file: %v", err), false
			}
		}
		return 0, true
	}
	if err := c.Start(ctx); err != nil {
		g.destroyRecord(rec)
		return discard("%v", oneLine(err)), false
	}
	rec.Started = true
	if err := st.Save(rec); err != nil {
		log.warnf("%v", err)
	}
	if o.pidFile != "" {
		if err := writePidFile(o.pidFile, state.Pid); err != nil {
			g.destroyRecord(rec)
			return discard("--pid-file: %v", err), false
		}
	}
	if o.detach {
		return 0, true
	}
	// Foreground run: other commands may act on the container meanwhile.
	lock.Unlock()
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGCONT, syscall.SIGALRM)
	defer signal.Stop(sigs)
	go func() {
		for s := range sigs {
			switch s {
			case syscall.SIGWINCH:
				if ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ); err == nil {
					_ = c.Resize(ws.Row, ws.Col)
				}
				continue
			}
			_ = c.Signal(s.(syscall.Signal))
		}
	}()
	// A detached container's main process is this command's child (the
	// init forks it with CLONE_PARENT, for supervisors to reap): its
	// status is ours to collect; the init only sees it end.
	code, reaped := reapMain(state.Pid)
	waitErr := c.Wait()
	if !reaped {
		code = exitCodeOf(c, waitErr)
	}
	// runc run deletes the container once it has ended.
	deleteEnded(st, c, id, log)
	return code, false
}

// reapMain waits for the container's main process when it is this
// process's child, and returns its exit code in the shell's convention;
// reaped is false when it is not our child.
func reapMain(pid int) (code int, reaped bool) {
	if pid <= 0 {
		return 0, false
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, false
		}
		break
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal()), true
	}
	return ws.ExitStatus(), true
}

// newDebugLogger sends the library's debug logs to the command's log.
func newDebugLogger(l *cliLog) *slogLogger { return newSlogLogger(l) }

// writePidFile writes pid atomically, as runc does (a reader never sees a
// partial file).
func writePidFile(p string, pid int) error {
	if pid <= 0 {
		// A caller that signals the pid it reads must never get 0 or -1
		// (the process group, every process).
		return fmt.Errorf("no process to write (pid %d)", pid)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(abs), "."+filepath.Base(abs)+".tmp")
	if err := os.WriteFile(tmp, []byte(fmt.Sprint(pid)), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, abs)
}

// sendConsole sends the terminal's master over the console socket
// (SCM_RIGHTS), with the terminal's name as the message, as runc does.
func sendConsole(socket string, master *os.File) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: socket}); err != nil {
		return err
	}
	return unix.Sendmsg(fd, []byte(master.Name()), unix.UnixRights(int(master.Fd())), nil, 0)
}

// sendSeccompListener hands the process's seccomp notify listener to the
// agent listening at path, as runtime-spec says and runc does: one message
// on a stream connection, the container process state as JSON
// (specs.ContainerProcessState, the listener named in fds), with the
// descriptor beside it.
//
// state is the container's; pid the process's whose listener it is (the
// main process during create, an exec'd one after).
func sendSeccompListener(path, metadata string, state specs.State, pid int, listener *os.File) error {
	msg, err := json.Marshal(specs.ContainerProcessState{
		Version:  specs.Version,
		Fds:      []string{specs.SeccompFdName},
		Pid:      pid,
		Metadata: metadata,
		State:    state,
	})
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return err
	}
	return unix.Sendmsg(fd, msg, unix.UnixRights(int(listener.Fd())), nil, 0)
}

// hookState is the state document hooks read on stdin.
func hookState(rec *oci.Record, status specs.ContainerState, pid int) []byte {
	b, _ := json.Marshal(oci.NewState(rec.ID, status, pid, rec.Bundle, rec.Annotations))
	return b
}

const startUsage = "ID"

func ociStart(g *globalOpts, args []string) int {
	fs := newAliasFlags("start")
	id, code, ok := g.parseOneID(fs.FlagSet, "start", startUsage, args)
	if !ok {
		return code
	}
	st, lock, rec, code, ok := g.lockedRecord(id)
	if !ok {
		return code
	}
	defer lock.Unlock()
	switch status := g.statusOf(rec); status {
	case specs.StateCreated:
	case specs.StateStopped:
		return g.errorf("cannot start a container that has stopped")
	case specs.StateRunning, "paused":
		return g.errorf("cannot start an already running container")
	default:
		return g.errorf("cannot start a container in the %s state", status)
	}
	cl, err := vessel.Attach(rec.ControlSocket)
	if err != nil {
		return g.errorf("%v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pid, err := cl.Start(ctx, hookState(rec, specs.StateCreated, rec.Main.Pid))
	if err != nil {
		return g.errorf("%v", oneLine(err))
	}
	if pid > 0 && pid != rec.Main.Pid {
		if p, err := oci.ProcessOf(pid); err == nil {
			rec.Main = p
		}
	}
	rec.Started = true
	if err := st.Save(rec); err != nil {
		return g.errorf("%v", err)
	}
	if h := rec.Config.Hooks; h != nil {
		for _, hk := range h.Poststart {
			if err := vessel.RunHook(hk, hookState(rec, specs.StateRunning, rec.Main.Pid)); err != nil {
				g.logger().warnf("poststart hook: %v", err)
			}
		}
	}
	return 0
}

// isTerminal reports whether fd is a terminal.
func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

// clampRlimits lowers hard limits this runtime cannot raise: engines
// (podman) ask for "the most" open files, but raising a hard limit needs
// CAP_SYS_RESOURCE, which the runtime may have lost to its own supervisor.
// The library itself refuses such limits clearly; this is the OCI
// runtime's leniency, as engines expect.
func clampRlimits(cfg *vessel.Config) {
	var hdr unix.CapUserHeader
	hdr.Version = unix.LINUX_CAPABILITY_VERSION_3
	var data [2]unix.CapUserData
	if unix.Capget(&hdr, &data[0]) == nil && data[0].Effective&(1<<unix.CAP_SYS_RESOURCE) != 0 {
		return
	}
	for i, rl := range cfg.Rlimits {
		cur, err := limits.Current(rl.Type)
		if err != nil || rl.Hard <= cur.Hard {
			continue
		}
		cfg.Rlimits[i].Hard = cur.Hard
		cfg.Rlimits[i].Soft = min(rl.Soft, cur.Hard)
	}
}

// exitCodeOf is the exit code runc gives for a container whose main
// process ended (128+N for signal N), after Wait returned waitErr.
func exitCodeOf(c *vessel.Container, waitErr error) int {
	if ex := c.State().Exit; ex != nil {
		if ex.Signal != 0 {
			return 128 + int(ex.Signal)
		}
		return ex.Code
	}
	if waitErr != nil {
		return 1
	}
	return 0
}

// deleteEnded deletes a container run in the foreground once it has
// ended, as runc run does: what it held on the host and its record.
func deleteEnded(st *oci.Store, c *vessel.Container, id string, log *cliLog) {
	l, err := st.Lock(id)
	if err != nil {
		return
	}
	defer l.Unlock()
	if err := c.Destroy(); err != nil {
		log.warnf("destroying %s: %v", id, err)
	}
	if err := st.Remove(id); err != nil {
		log.warnf("%v", err)
	}
}
