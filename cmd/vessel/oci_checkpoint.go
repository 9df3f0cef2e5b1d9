package main

// runc's checkpoint and restore, as podman and containerd call them:
//
//	checkpoint --image-path DIR --work-path DIR [--leave-running]
//	           [--tcp-established] [--file-locks] [--shell-job] ID
//	restore --bundle B --image-path DIR --work-path DIR [--detach]
//	        [--pid-file F] [--console-socket S] [--tcp-established] ... ID
//
// Both share their verb with vessel's own foreground checkpoint and
// restore (`--dir D`, checkpoint.go): without --dir, the arguments are
// runc's. The images are vessel's (CRIU's, with vessel.json beside them,
// see vessel.Checkpoint): a checkpoint vessel made is restored by vessel.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/oci"
)

// isOCICheckpoint tells runc's checkpoint and restore from vessel's own
// (checkpoint.go), which always take --dir.
func isOCICheckpoint(args []string) bool {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "--dir" || a == "-dir" || strings.HasPrefix(a, "--dir=") || strings.HasPrefix(a, "-dir=") {
			return false
		}
	}
	return true
}

// checkpointVerb and restoreVerb pick runc's form or vessel's.
func checkpointVerb(args []string) int {
	if isOCICheckpoint(args) {
		return ociCheckpoint(gopts, args)
	}
	return withoutGlobals(cmdCheckpoint)(args)
}

func restoreVerb(args []string) int {
	if isOCICheckpoint(args) {
		return ociRestore(gopts, args)
	}
	return withoutGlobals(cmdRestore)(args)
}

// criuOpts are the flags runc's checkpoint and restore share.
type criuOpts struct {
	imagePath    string
	workPath     string
	tcp          bool
	fileLocks    bool
	shellJob     bool
	extUnix      bool
	manageCgroup string
	emptyNS      listFlag
	criu         string
}

func (o *criuOpts) register(fs *flagSetAlias) {
	fs.str(&o.imagePath, "path for saving criu image files (default: ./checkpoint)", "image-path")
	fs.str(&o.workPath, "path for saving work files and logs (default: the image path)", "work-path")
	fs.boolean(&o.tcp, "allow open tcp connections", "tcp-established")
	fs.boolean(&o.fileLocks, "handle file locks (vessel always does)", "file-locks")
	fs.boolean(&o.shellJob, "allow shell jobs (vessel's dumps always are)", "shell-job")
	fs.boolean(&o.extUnix, "not supported: unix sockets whose peer is outside the container", "ext-unix-sk")
	fs.str(&o.manageCgroup, "cgroups mode: soft (vessel's, the default); others are refused", "manage-cgroups-mode")
	fs.list(&o.emptyNS, "not supported: namespaces to leave empty", "empty-ns")
	fs.str(&o.criu, "criu binary (default $VESSEL_CRIU, /opt/vessel-criu/bin/criu, then PATH)", "criu")
}

// check refuses what vessel's checkpoint cannot do, naming the flag.
func (o *criuOpts) check() error {
	switch {
	case o.extUnix:
		return errors.New("--ext-unix-sk: not supported (vessel dumps only unix sockets whose peer is in the container)")
	case o.manageCgroup != "" && o.manageCgroup != "soft":
		return fmt.Errorf("--manage-cgroups-mode %s: not supported (vessel restores into the container's own cgroup: soft)", o.manageCgroup)
	case len(o.emptyNS) > 0:
		return errors.New("--empty-ns: not supported")
	}
	if o.criu == "" {
		o.criu = os.Getenv("VESSEL_CRIU")
	}
	if o.imagePath == "" {
		o.imagePath = "checkpoint" // runc's default, in the current directory
	}
	abs, err := filepath.Abs(o.imagePath)
	if err != nil {
		return fmt.Errorf("--image-path: %w", err)
	}
	o.imagePath = abs
	return nil
}

// keepLogs copies criu's log of op (dump or restore) and its statistics
// from the images to --work-path, where runc's callers look for them
// (podman reads stats-dump, and shows dump.log when a checkpoint fails).
func (o *criuOpts) keepLogs(op string) {
	if o.workPath == "" || o.workPath == o.imagePath {
		return
	}
	for _, name := range []string{op + ".log", "stats-" + op} {
		src, err := os.Open(filepath.Join(o.imagePath, name))
		if err != nil {
			continue
		}
		if dst, err := os.Create(filepath.Join(o.workPath, name)); err == nil {
			_, _ = io.Copy(dst, src)
			dst.Close()
		}
		src.Close()
	}
}

const ociCheckpointUsage = "[--image-path DIR] [--work-path DIR] [--leave-running] [--tcp-established] [--file-locks] ID"

// ociCheckpoint is runc's checkpoint: it dumps a running container into
// --image-path and, unless --leave-running, stops it and removes it, as
// runc does (a supervisor then restores it under the same id).
func ociCheckpoint(g *globalOpts, args []string) int {
	var (
		o            criuOpts
		leaveRunning bool
		preDump      bool
		parentPath   string
		pageServer   string
		lazyPages    bool
		autoDedup    bool
	)
	fs := newAliasFlags("checkpoint")
	o.register(fs)
	fs.boolean(&leaveRunning, "leave the process running after checkpointing", "leave-running")
	fs.boolean(&preDump, "not supported: dump memory only, leave the container running", "pre-dump")
	fs.str(&parentPath, "not supported: the pre-dump images to diff against", "parent-path")
	fs.str(&pageServer, "not supported: a criu page server", "page-server")
	fs.boolean(&lazyPages, "not supported: lazy migration", "lazy-pages")
	fs.boolean(&autoDedup, "not supported: deduplicate against parent images", "auto-dedup")
	id, code, ok := g.parseOneID(fs.FlagSet, "checkpoint", ociCheckpointUsage, args)
	if !ok {
		return code
	}
	for name, set := range map[string]bool{"pre-dump": preDump, "parent-path": parentPath != "", "page-server": pageServer != "", "lazy-pages": lazyPages, "auto-dedup": autoDedup} {
		if set {
			return g.errorf("checkpoint: --%s: not supported by vessel (incremental and lazy checkpoints: vessel's own `checkpoint --pre-dumps N` does pre-dumps)", name)
		}
	}
	if err := o.check(); err != nil {
		return g.errorf("checkpoint: %v", err)
	}
	_, lock, rec, code, ok := g.lockedRecord(id)
	if !ok {
		return code
	}
	defer lock.Unlock()
	switch status := g.statusOf(rec); status {
	case specs.StateRunning, statePaused:
	default:
		return g.errorf("checkpoint: container %s is %s, not running", id, status)
	}
	if o.workPath != "" {
		if err := os.MkdirAll(o.workPath, 0o700); err != nil {
			return g.errorf("checkpoint: --work-path: %v", err)
		}
	}
	opts := &vessel.CheckpointOptions{CriuPath: o.criu, LeaveRunning: leaveRunning, TCPEstablished: o.tcp}
	res, err := vessel.CheckpointRunning(context.Background(), rec.ID, rec.Config, rec.Main.Pid, rec.Init.Pid, o.imagePath, opts)
	o.keepLogs("dump")
	if err != nil {
		return g.errorf("checkpoint: %v", oneLine(err))
	}
	g.logger().debugf("checkpoint of %s: %d bytes, frozen %v", id, res.Bytes, res.FreezeTime)
	if leaveRunning {
		return 0
	}
	// runc destroys a container it checkpointed without --leave-running:
	// its supervisor restores it under the same id.
	if err := g.destroyRecord(rec); err != nil {
		g.logger().warnf("checkpoint: removing %s: %v", id, err)
	}
	st, err := g.store()
	if err == nil {
		err = st.Remove(id)
	}
	if err != nil {
		g.logger().warnf("%v", err)
	}
	return 0
}

const ociRestoreUsage = "[--bundle DIR] [--image-path DIR] [--work-path DIR] [--detach] [--pid-file FILE] [--console-socket SOCK] ID"

// ociRestore is runc's restore: it brings the container checkpointed in
// --image-path back under id, from the bundle's config, and either waits
// for it (exiting with its status) or, with --detach, leaves it running
// for `state`, `kill`, `exec` and `delete`, as create and start do.
func ociRestore(g *globalOpts, args []string) int {
	var (
		o     criuOpts
		co    createOpts
		lsm   string
		lsmMC string
	)
	fs := newAliasFlags("restore")
	o.register(fs)
	co.register(fs, true)
	fs.str(&lsm, "not supported: an LSM profile for the restored process", "lsm-profile")
	fs.str(&lsmMC, "not supported: an LSM mount context", "lsm-mount-context")
	id, code, ok := g.parseOneID(fs.FlagSet, "restore", ociRestoreUsage, args)
	if !ok {
		return code
	}
	if lsm != "" || lsmMC != "" {
		return g.errorf("restore: --lsm-profile and --lsm-mount-context are not supported (vessel applies no LSM labels)")
	}
	if err := o.check(); err != nil {
		return g.errorf("restore: %v", err)
	}
	if co.preserveFDs != 0 {
		return g.errorf("restore: --preserve-fds: not supported (the restored process has the descriptors it was checkpointed with)")
	}
	log := g.logger()
	st, err := g.store()
	if err != nil {
		return g.errorf("%v", err)
	}
	lock, err := st.Create(id)
	if err != nil {
		if errors.Is(err, oci.ErrExist) {
			return g.errorf("container with id %s already exists", id)
		}
		return g.errorf("%v", err)
	}
	defer lock.Unlock()
	discard := func(format string, a ...any) int {
		code := g.errorf(format, a...)
		if err := st.Remove(id); err != nil {
			log.warnf("%v", err)
		}
		return code
	}
	cfg, spec, err := g.loadBundle(id, co.bundle)
	if err != nil {
		return discard("%v", err)
	}
	terminal := spec.Process != nil && spec.Process.Terminal
	if terminal && co.detach && co.consoleSocket == "" {
		return discard("restore: cannot give a detached container its terminal without --console-socket")
	}
	if g.debug {
		cfg.Logger = newDebugLogger(log)
	}
	rec := &oci.Record{
		ID: id, Bundle: cfg.Bundle, Annotations: cfg.Annotations, Created: time.Now().UTC(),
		Owner: os.Geteuid(), ControlSocket: st.ControlSocket(id),
		Cgroup: cfg.Cgroup, Config: cfg, Rootfs: cfg.Rootfs.Path, Started: true,
	}
	if !cfg.Cgroup.Disabled {
		m, err := cgroups.New(vessel.CgroupOptions(id, cfg.Cgroup))
		if err != nil {
			return discard("linux.cgroupsPath: %v", err)
		}
		m.KeepExistingParents()
		cs := m.State()
		rec.CgroupState = &cs
	}
	if err := os.MkdirAll(filepath.Dir(rec.ControlSocket), 0o700); err != nil {
		return discard("control socket directory: %v", err)
	}
	if err := st.Save(rec); err != nil {
		return discard("%v", err)
	}
	if o.workPath != "" {
		if err := os.MkdirAll(o.workPath, 0o700); err != nil {
			return discard("restore: --work-path: %v", err)
		}
	}
	ro := &vessel.RestoreOptions{
		CriuPath: o.criu, Detached: true, ControlSocket: rec.ControlSocket,
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
	}
	if co.consoleSocket != "" {
		ro.Stdin, ro.Stdout, ro.Stderr = nil, nil, nil
	}
	ctx := context.Background()
	c, err := vessel.Restore(ctx, o.imagePath, cfg, id, ro)
	o.keepLogs("restore")
	if err != nil {
		return discard("restore: %v", oneLine(err))
	}
	state := c.State()
	rec.Init, _ = oci.ProcessOf(state.InitPid)
	rec.Main, _ = oci.ProcessOf(state.Pid)
	rec.Network = c.Network() != nil
	if err := st.Save(rec); err != nil {
		_ = c.Destroy()
		return discard("%v", err)
	}
	log.debugf("container %s restored: init pid %d, process pid %d", id, state.InitPid, state.Pid)
	fail := func(format string, a ...any) int {
		_ = c.Destroy()
		return discard(format, a...)
	}
	if co.consoleSocket != "" {
		master := c.Console()
		if master == nil {
			return fail("--console-socket %s: the restored process has no terminal", co.consoleSocket)
		}
		if err := sendConsole(co.consoleSocket, master); err != nil {
			return fail("--console-socket %s: %v", co.consoleSocket, err)
		}
	}
	if co.pidFile != "" {
		if err := writePidFile(co.pidFile, state.Pid); err != nil {
			return fail("--pid-file: %v", err)
		}
	}
	if co.detach {
		return 0
	}
	// In the foreground, as run: the container's status is ours, and it
	// is deleted once it has ended.
	lock.Unlock()
	code = exitCodeOf(c, c.Wait())
	deleteEnded(st, c, id, log)
	return code
}
