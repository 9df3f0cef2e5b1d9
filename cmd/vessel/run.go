package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/rootfs"
)

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func cmdRun(args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var (
		rootDir  = fs.String("rootfs", "", "root filesystem directory (default: the host's files, read-only)")
		image    = fs.String("image", "", "root filesystem from an image: an OCI layout directory, a docker-save tarball, or a squashfs/erofs file")
		overlay  = fs.Bool("overlay", false, "write to a private copy-on-write layer over --rootfs (gone on exit)")
		layer    = fs.String("layer", "", "persistent copy-on-write layer directory over --rootfs or --image")
		quota    = fs.String("disk-quota", "", "limit what the container can write (e.g. 1G; with --overlay, --layer or --image)")
		idmap    = fs.Bool("idmap", false, "with --userns and --rootfs: idmap the root and the volumes, so host root's files appear as container root's")
		hostname = fs.String("hostname", "", "container hostname (default: the container name)")
		name     = fs.String("name", "", "container name (default: vessel-PID)")
		workdir  = fs.String("workdir", "", "working directory inside the container")
		user     = fs.String("user", "", "UID[:GID] to run as")
		readonly = fs.Bool("readonly", false, "make the root filesystem read-only")
		tty      = fs.Bool("tty", false, "give the command a pseudo-terminal")
		timeout  = fs.Duration("timeout", 0, "kill the container after this long (e.g. 30s)")
		userns   = fs.Bool("userns", false, "run in a new user namespace (container root = the calling user unless --uidmap/--gidmap)")
		res      resourceFlags
		acct     accountFlags
		sec      securityFlags
		netf     networkFlags
		uidmaps  listFlag
		gidmaps  listFlag
		env      listFlag
		volumes  listFlag
		tmpfs    listFlag
		shares   listFlag
		sysctls  listFlag
	)
	fs.Var(&env, "env", "KEY=VALUE for the environment (repeatable)")
	fs.Var(&volumes, "volume", "SRC:DST[:ro] bind mount (repeatable)")
	fs.Var(&tmpfs, "tmpfs", "DST[:SIZE] tmpfs mount (repeatable)")
	fs.Var(&shares, "share", "namespace to share with the host: mount, pid, uts, ipc, net, cgroup (repeatable)")
	fs.Var(&sysctls, "sysctl", "KEY=VALUE namespaced sysctl (repeatable)")
	fs.Var(&uidmaps, "uidmap", "CONTAINER:HOST:SIZE uid mapping for --userns (repeatable)")
	fs.Var(&gidmaps, "gidmap", "CONTAINER:HOST:SIZE gid mapping for --userns (repeatable)")
	res.register(fs)
	acct.register(fs)
	sec.register(fs)
	netf.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: vessel run [flags] -- CMD ARGS...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	argv := fs.Args()
	if len(argv) == 0 && !acct.boot {
		return fail("run: no command given (usage: vessel run [flags] -- CMD ARGS...)")
	}

	cfg := vessel.NewConfig()
	if *rootDir != "" {
		abs, err := filepath.Abs(*rootDir)
		if err != nil {
			return fail("--rootfs: %v", err)
		}
		cfg.WithRootfs(rootfs.Dir(abs))
	}
	if *image != "" || *overlay || *layer != "" {
		if *image != "" && *rootDir != "" {
			return fail("--image and --rootfs are exclusive")
		}
		var r rootfs.Root
		switch {
		case *image != "":
			abs, err := filepath.Abs(*image)
			if err != nil {
				return fail("--image: %v", err)
			}
			if fi, err := os.Stat(abs); err == nil && !fi.IsDir() && !strings.HasSuffix(abs, ".tar") {
				r = rootfs.ImageFile(abs)
			} else {
				r = rootfs.Image(abs)
			}
			if *layer != "" {
				r = r.WithLayer(*layer)
			}
		case *rootDir == "":
			return fail("--overlay and --layer need --rootfs DIR or --image")
		case *layer != "":
			abs, _ := filepath.Abs(*rootDir)
			r = rootfs.Overlay(*layer, abs)
		default:
			abs, _ := filepath.Abs(*rootDir)
			r = rootfs.EphemeralOverlay(abs)
		}
		if *quota != "" {
			n, err := rootfs.ParseSize(*quota)
			if err != nil {
				return fail("--disk-quota: %v", err)
			}
			r = r.WithQuota(n)
		}
		cfg.WithRootfs(r)
	} else if *quota != "" {
		return fail("--disk-quota needs a writable layer: --overlay, --layer or --image")
	}
	id := *name
	if id == "" {
		id = fmt.Sprintf("vessel-%d", os.Getpid())
	}
	cfg.WithHostname(*hostname).WithReadonlyRootfs(*readonly).WithTTY(*tty).WithTimeout(*timeout)
	if *workdir != "" {
		cfg.WithWorkDir(*workdir)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *userns || len(uidmaps) > 0 || len(gidmaps) > 0 {
		u, err := parseIDMaps("uidmap", uidmaps)
		if err != nil {
			return fail("%v", err)
		}
		g, err := parseIDMaps("gidmap", gidmaps)
		if err != nil {
			return fail("%v", err)
		}
		cfg.WithUserNamespace(u, g)
	}
	if err := netf.apply(cfg); err != nil {
		return fail("%v", err)
	}
	if err := res.apply(cfg, set); err != nil {
		return fail("%v", err)
	}
	if err := acct.apply(cfg, *quota != "", argv); err != nil {
		return fail("%v", err)
	}
	if acct.boot {
		argv = nil // the init is the configured process
	}
	if err := sec.apply(cfg, set); err != nil {
		return fail("%v", err)
	}
	if *user != "" {
		u, g, err := parseUser(*user)
		if err != nil {
			return fail("--user: %v", err)
		}
		cfg.WithUser(u, g)
	}
	cfg.WithEnv(env...)
	if t := os.Getenv("TERM"); t != "" && *tty {
		cfg.WithEnv("TERM=" + t)
	}
	for _, v := range volumes {
		m, err := rootfs.ParseVolume(v)
		if err != nil {
			return fail("--volume: %v", err)
		}
		cfg.WithMount(m)
	}
	for _, t := range tmpfs {
		m, err := rootfs.ParseTmpfs(t)
		if err != nil {
			return fail("--tmpfs: %v", err)
		}
		cfg.WithMount(m)
	}
	if *idmap {
		if cfg.Rootfs.Kind == rootfs.KindDir {
			cfg.Rootfs.IDMap = true
		}
		for i := range cfg.Mounts {
			if cfg.Mounts[i].Type == rootfs.TypeBind {
				cfg.Mounts[i].IDMap = true
			}
		}
	}
	for _, s := range shares {
		k, err := namespaces.ParseKind(s)
		if err != nil {
			return fail("--share: %v", err)
		}
		cfg.WithSharedNamespace(k)
	}
	for _, s := range sysctls {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return fail("--sysctl: %q is not KEY=VALUE", s)
		}
		cfg.WithSysctl(k, v)
	}
	if *tty {
		if ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ); err == nil {
			cfg.Process.Rows, cfg.Process.Cols = ws.Row, ws.Col
		}
	}

	c, err := vessel.New(id, cfg)
	if err != nil {
		return fail("%s", oneLine(err))
	}
	defer c.Destroy()
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr

	var restore func()
	if *tty {
		restore = rawTerminal(0)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH)
	defer signal.Stop(sigs)

	if err := c.Start(ctx, argv...); err != nil {
		if restore != nil {
			restore()
		}
		return fail("%s", oneLine(err))
	}
	for _, w := range c.Warnings() {
		fmt.Fprintf(os.Stderr, "vessel: warning: %s\n", w)
	}
	go func() {
		for s := range sigs {
			if s == syscall.SIGWINCH {
				if ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ); err == nil {
					_ = c.Resize(ws.Row, ws.Col)
				}
				continue
			}
			if acct.boot && (s == syscall.SIGTERM || s == syscall.SIGINT) {
				s = cfg.StopSignal // halt the booted init
			}
			_ = c.Signal(s.(syscall.Signal))
		}
	}()
	err = c.Wait()
	if restore != nil {
		restore()
	}
	st := c.State().Exit
	if st == nil {
		return fail("%s", oneLine(err))
	}
	switch {
	case st.TimedOut:
		fmt.Fprintf(os.Stderr, "vessel: container timed out after %v and was killed\n", *timeout)
	case st.OOMKilled:
		fmt.Fprintln(os.Stderr, "vessel: container was killed by the OOM killer (out of memory)")
	case st.CPUTimeExceeded:
		fmt.Fprintf(os.Stderr, "vessel: container used up its CPU time (%v) and was killed\n", res.cpuTime)
	}
	return st.Code
}

func parseUser(s string) (uint32, uint32, error) {
	us, gs, hasG := strings.Cut(s, ":")
	u, err := strconv.ParseUint(us, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("%q: UID must be a number", s)
	}
	g := u
	if hasG {
		if g, err = strconv.ParseUint(gs, 10, 32); err != nil {
			return 0, 0, fmt.Errorf("%q: GID must be a number", s)
		}
	}
	return uint32(u), uint32(g), nil
}

// oneLine flattens joined errors for a one-line report.
func oneLine(err error) string {
	s := strings.ReplaceAll(err.Error(), "\n", "; ")
	return strings.ReplaceAll(s, "vessel: ", "")
}

// rawTerminal puts fd in raw mode and returns a function restoring it.
func rawTerminal(fd int) func() {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return func() {}
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return func() {}
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }
}
