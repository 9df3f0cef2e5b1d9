package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/checkpoint"
	"github.com/openvessel/vessel/network"
	"github.com/openvessel/vessel/rootfs"
)

// The checkpoint verbs work on a container they run in the foreground:
//
//	vessel checkpoint --dir D [--after 10s] [--leave-running] [--env K=V] -- CMD...
//	vessel checkpoint --dir D [--leave-running] NAME   (a running container of the store)
//	vessel restore --dir D [--rootfs R] [--name ID]
//	vessel migrate --to HOST:PORT [--after 10s] [--pre-dumps N] [--no-page-server] [--env K=V] -- CMD...
//	vessel receive --listen ADDR --dir D [--rootfs R]
//
// checkpoint and migrate start CMD like `vessel run` (a subset of its
// flags) and act after --after, or when sent SIGUSR1. restore and receive
// bring the container back and wait for it; their exit code is its own.
// Results (freeze time, downtime, bytes) are printed as JSON on stderr.
// A checkpoint or migration that fails leaves the container running in the
// foreground (the verb then exits 1 when it ends). SIGINT, SIGTERM and
// SIGHUP: see ckptSignals.

// ckptFlags are the container flags shared by the four verbs.
type ckptFlags struct {
	rootfs  string
	name    string
	netns   string
	criu    string
	volumes listFlag
	env     listFlag
}

func (f *ckptFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.rootfs, "rootfs", "", "root filesystem directory")
	fs.StringVar(&f.name, "name", "", "container name (restore: default the checkpointed one)")
	fs.StringVar(&f.netns, "netns", "", "join this network namespace file (restore: the namespace to restore into)")
	fs.StringVar(&f.criu, "criu", "", "criu binary (default $VESSEL_CRIU, "+checkpoint.DefaultCriuPath+", then PATH)")
	fs.Var(&f.volumes, "volume", "SRC:DST[:ro] bind mount (repeatable; restore: new sources by destination)")
}

// registerEnv adds --env, for the verbs that start the container.
func (f *ckptFlags) registerEnv(fs *flag.FlagSet) {
	fs.Var(&f.env, "env", "KEY=VALUE environment variable of the command (repeatable; e.g. GODEBUG=multipathtcp=0 for a Go server CRIU must dump)")
}

// apply sets the flags that were given on cfg.
func (f *ckptFlags) apply(cfg *vessel.Config) error {
	if f.rootfs != "" {
		abs, err := filepath.Abs(f.rootfs)
		if err != nil {
			return err
		}
		cfg.WithRootfs(rootfs.Dir(abs))
	}
	for _, v := range f.volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
			return fmt.Errorf("--volume %q: want SRC:DST[:ro]", v)
		}
		src, err := filepath.Abs(parts[0])
		if err != nil {
			return err
		}
		ro := len(parts) == 3 && parts[2] == "ro"
		replaced := false
		for i, m := range cfg.Mounts {
			if m.Type == rootfs.TypeBind && filepath.Clean(m.Destination) == filepath.Clean(parts[1]) {
				cfg.Mounts[i].Source, cfg.Mounts[i].ReadOnly, replaced = src, ro, true
			}
		}
		if !replaced {
			cfg.WithBind(src, parts[1], ro)
		}
	}
	if f.netns != "" {
		cfg.WithNetwork(network.Netns(f.netns))
	}
	for _, kv := range f.env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("--env %q: want KEY=VALUE", kv)
		}
	}
	if len(f.env) > 0 {
		cfg.WithEnv(f.env...)
	}
	return nil
}

// ckptAction is when checkpoint and migrate act: after a delay or on
// SIGUSR1, whichever comes first.
type ckptAction struct{ after time.Duration }

func (a *ckptAction) wait(ctx context.Context, c *vessel.Container) bool {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	defer signal.Stop(sig)
	var timer <-chan time.Time
	if a.after > 0 {
		timer = time.After(a.after)
	}
	select {
	case <-sig:
	case <-timer:
	case <-c.Done():
		return false
	case <-ctx.Done():
		return false
	}
	return true
}

// startForCheckpoint starts args in a container as `vessel run` would.
func startForCheckpoint(f *ckptFlags, args []string) (*vessel.Container, error) {
	if len(args) == 0 {
		return nil, errors.New("no command given (put it after --)")
	}
	if f.rootfs == "" {
		return nil, errors.New("--rootfs: checkpointing needs a root filesystem directory")
	}
	cfg := vessel.NewConfig()
	if err := f.apply(cfg); err != nil {
		return nil, err
	}
	name := f.name
	if name == "" {
		name = fmt.Sprintf("vessel-%d", os.Getpid())
	}
	if err := reclaimStaleCgroup(name, cfg.Cgroup); err != nil {
		return nil, err
	}
	c, err := vessel.New(name, cfg)
	if err != nil {
		return nil, err
	}
	c.Stdin, c.Stdout, c.Stderr = checkpointableStdio()
	if err := c.Start(context.Background(), args...); err != nil {
		return nil, err
	}
	return c, nil
}

// checkpointableStdio returns this program's standard streams for a
// container to checkpoint: a terminal is given through a pipe (and a
// copier here) as stdout and stderr, and not at all as stdin, since a
// host terminal open in the container cannot be restored; files and
// pipes go as they are.
func checkpointableStdio() (io.Reader, io.Writer, io.Writer) {
	isTTY := func(f *os.File) bool {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		return err == nil
	}
	var in io.Reader = os.Stdin
	var out, errOut io.Writer = os.Stdout, os.Stderr
	if isTTY(os.Stdin) {
		// Nothing: a copier would hold the terminal after the container
		// is gone (and a restore could not give it back anyway).
		in = nil
	}
	if isTTY(os.Stdout) {
		out = struct{ io.Writer }{os.Stdout}
	}
	if isTTY(os.Stderr) {
		errOut = struct{ io.Writer }{os.Stderr}
	}
	return in, out, errOut
}

func printCkptJSON(label string, v any) {
	data, _ := json.Marshal(v)
	fmt.Fprintf(os.Stderr, "vessel: %s: %s\n", label, data)
}

func cmdCheckpoint(args []string) int {
	fs := ckptFlagSet("checkpoint")
	var (
		f    ckptFlags
		act  ckptAction
		opts vessel.CheckpointOptions
		dir  = fs.String("dir", "", "directory for the checkpoint (required)")
	)
	f.register(fs)
	f.registerEnv(fs)
	fs.DurationVar(&act.after, "after", 0, "checkpoint after this long (default: on SIGUSR1 only)")
	fs.BoolVar(&opts.LeaveRunning, "leave-running", false, "keep the container running after the checkpoint")
	fs.BoolVar(&opts.TCPEstablished, "tcp-established", false, "save established TCP connections")
	fs.IntVar(&opts.PreDumps, "pre-dumps", 0, "pre-dump rounds before the final dump")
	if err := fs.Parse(args); err != nil {
		return ckptFlagErr(fs, err)
	}
	if *dir == "" {
		return fail("checkpoint: --dir is required")
	}
	opts.CriuPath = f.criu
	sig := catchCkptSignals()
	defer sig.stop()
	if len(fs.Args()) == 1 && !slices.Contains(args, "--") {
		// `vessel checkpoint NAME`: a container of the store.
		return checkpointByName(sig, fs.Args()[0], *dir, &opts)
	}
	c, err := startForCheckpoint(&f, fs.Args())
	if err != nil {
		return fail("checkpoint: %v", err)
	}
	defer c.Destroy()
	if !act.wait(sig.ctx, c) {
		if s, ok := sig.caught(); ok {
			c.Destroy()
			return signalExit(s)
		}
		return fail("checkpoint: the container ended before the checkpoint")
	}
	res, err := c.Checkpoint(sig.ctx, *dir, &opts)
	if s, ok := sig.caught(); ok {
		if err != nil {
			fail("checkpoint: %v", err)
		}
		c.Destroy()
		return signalExit(s)
	}
	if err != nil {
		// A failed checkpoint leaves the container running: it goes on in
		// the foreground, and this verb fails once it ends.
		fail("checkpoint: %v; the container keeps running", err)
		sig.waitContainer(c)
		return exitVessel
	}
	printCkptJSON("checkpoint", res)
	if opts.LeaveRunning {
		return sig.waitContainer(c)
	}
	return 0
}

// checkpointByName checkpoints the running container name of the store
// (`vessel run -d`, or runc's create and start through vessel).
func checkpointByName(sig *ckptSignals, name, dir string, opts *vessel.CheckpointOptions) int {
	st, err := openStore()
	if err != nil {
		return fail("checkpoint: %v", err)
	}
	e, err := loadEntry(st, name)
	if err != nil {
		return fail("checkpoint: %v", err)
	}
	if e.status != statusRunning && e.status != statusPaused {
		return fail("checkpoint: container %s is %s, not running", name, e.status)
	}
	if e.rec.Config == nil || e.rec.Main.Pid <= 0 {
		return fail("checkpoint: container %s: its record has no configuration or main process", name)
	}
	res, err := vessel.CheckpointRunning(sig.ctx, e.rec.ID, e.rec.Config, e.rec.Main.Pid, e.rec.Init.Pid, dir, opts)
	if err != nil {
		return fail("checkpoint: %v", err)
	}
	printCkptJSON("checkpoint", res)
	return 0
}

func cmdRestore(args []string) int {
	fs := ckptFlagSet("restore")
	var f ckptFlags
	dir := fs.String("dir", "", "checkpoint directory (required)")
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return ckptFlagErr(fs, err)
	}
	if *dir == "" {
		return fail("restore: --dir is required")
	}
	sig := catchCkptSignals()
	defer sig.stop()
	c, err := restoreFrom(sig.ctx, *dir, &f)
	if err != nil {
		if s, ok := sig.caught(); ok {
			fail("restore: %v", err)
			return signalExit(s)
		}
		return fail("restore: %v", err)
	}
	defer c.Destroy()
	return sig.waitContainer(c)
}

// restoreFrom restores the checkpoint in dir with the flags' changes.
func restoreFrom(ctx context.Context, dir string, f *ckptFlags) (*vessel.Container, error) {
	id, cfg, err := vessel.LoadCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	if err := f.apply(cfg); err != nil {
		return nil, err
	}
	if f.name != "" {
		id = f.name
	}
	return vessel.Restore(ctx, dir, cfg, id, &vessel.RestoreOptions{CriuPath: f.criu, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
}

func cmdMigrate(args []string) int {
	fs := ckptFlagSet("migrate")
	var (
		f    ckptFlags
		act  ckptAction
		opts vessel.CheckpointOptions
		to   = fs.String("to", "", "HOST:PORT of a `vessel receive` (required)")
		pre  = fs.Int("pre-dumps", 0, "pre-dump rounds streamed before the final dump")
		noPS = fs.Bool("no-page-server", false, "send memory pages in the tar stream, not through the receiver's CRIU page server")
	)
	f.register(fs)
	f.registerEnv(fs)
	fs.DurationVar(&act.after, "after", 0, "migrate after this long (default: on SIGUSR1 only)")
	fs.BoolVar(&opts.TCPEstablished, "tcp-established", true, "move established TCP connections")
	if err := fs.Parse(args); err != nil {
		return ckptFlagErr(fs, err)
	}
	if *to == "" {
		return fail("migrate: --to is required")
	}
	if _, _, err := net.SplitHostPort(*to); err != nil {
		return fail("migrate: --to %q: %v", *to, err)
	}
	opts.CriuPath = f.criu
	sig := catchCkptSignals()
	defer sig.stop()
	c, err := startForCheckpoint(&f, fs.Args())
	if err != nil {
		return fail("migrate: %v", err)
	}
	defer c.Destroy()
	if !act.wait(sig.ctx, c) {
		if s, ok := sig.caught(); ok {
			c.Destroy()
			return signalExit(s)
		}
		return fail("migrate: the container ended before the migration")
	}
	st, err := checkpoint.MigrateTo(sig.ctx, *to, c.MigrationSource(&opts), &checkpoint.MigrateOptions{PreDumps: *pre, NoPageServer: *noPS})
	if s, ok := sig.caught(); ok {
		if err != nil {
			fail("migrate: %v", err)
		}
		c.Destroy()
		return signalExit(s)
	}
	if err != nil {
		var he *checkpoint.HandoffError
		if errors.As(err, &he) {
			// The receiver failed: the container was resumed here.
			fail("migrate: %v", err)
			sig.waitContainer(c)
			return exitVessel
		}
		return fail("migrate: %v", err)
	}
	printCkptJSON("migrate", st)
	return 0
}

func cmdReceive(args []string) int {
	fs := ckptFlagSet("receive")
	var f ckptFlags
	listen := fs.String("listen", "", "ADDR to accept one migration on (required)")
	dir := fs.String("dir", "", "directory for the received images (required)")
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return ckptFlagErr(fs, err)
	}
	if *listen == "" || *dir == "" {
		return fail("receive: --listen and --dir are required")
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return fail("receive: %v", err)
	}
	defer l.Close()
	fmt.Fprintf(os.Stderr, "vessel: receive: listening on %s\n", l.Addr())
	sig := catchCkptSignals()
	defer sig.stop()
	var c *vessel.Container
	st, err := checkpoint.ReceiveOn(sig.ctx, l, *dir, func(ctx context.Context, images string) error {
		var err error
		c, err = restoreFrom(ctx, images, &f)
		return err
	})
	if c != nil {
		defer c.Destroy()
	}
	if s, ok := sig.caught(); ok {
		if err != nil {
			fail("receive: %v", err)
		}
		return signalExit(s)
	}
	if err != nil {
		// A container restored but not confirmed to the sender (whose
		// copy then resumed) must not run twice: Destroy above.
		return fail("receive: %v", err)
	}
	printCkptJSON("receive", st)
	return sig.waitContainer(c)
}

// ckptExitCode maps a container's Wait error to this program's exit code.
func ckptExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *vessel.ExitError
	if errors.As(err, &ee) {
		return ee.Status.Code
	}
	return fail("%v", err)
}
