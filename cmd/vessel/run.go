package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/limits"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/rootfs"
)

// runOpts are the flags of `vessel run`, docker's names first.
type runOpts struct {
	rootDir, image, layer, quota     string
	hostname, name, workdir, user    string
	entrypoint                       string
	overlay, idmap, readonly, userns bool
	tty, interactive, detach, autoRm bool
	timeout                          time.Duration
	res                              resourceFlags
	acct                             accountFlags
	sec                              securityFlags
	netf                             networkFlags
	uidmaps, gidmaps, env, envFiles  listFlag
	volumes, mounts, devices, tmpfs  listFlag
	shares, sysctls                  listFlag
	oci                              createOpts
	keep, noSubreaper                bool
}

// runAliases are vessel's earlier flag names, kept working.
var runAliases = map[string]string{"net": "network", "readonly": "read-only", "pids": "pids-limit"}

func normalizeRunFlag(_ *pflag.FlagSet, name string) pflag.NormalizedName {
	if n, ok := runAliases[name]; ok {
		return pflag.NormalizedName(n)
	}
	return pflag.NormalizedName(name)
}

func (o *runOpts) register(fs *pflag.FlagSet) {
	fs.SetNormalizeFunc(normalizeRunFlag)
	fs.Bool("help", false, "help for run") // -h is docker's --hostname
	fs.StringVar(&o.rootDir, "rootfs", "", "root filesystem directory (default: the host's files, read-only)")
	fs.StringVar(&o.image, "image", "", "root filesystem from an image: an OCI layout directory, a docker-save tarball, or a squashfs/erofs file")
	fs.BoolVar(&o.overlay, "overlay", false, "write to a private copy-on-write layer over --rootfs (gone on exit)")
	fs.StringVar(&o.layer, "layer", "", "persistent copy-on-write layer directory over --rootfs or --image")
	fs.StringVar(&o.quota, "disk-quota", "", "limit what the container can write (e.g. 1G; with --overlay, --layer or --image)")
	fs.BoolVar(&o.idmap, "idmap", false, "with --userns and --rootfs: idmap the root and the volumes, so host root's files appear as container root's")
	fs.StringVarP(&o.hostname, "hostname", "h", "", "container hostname (default: the container name)")
	fs.StringVar(&o.name, "name", "", "container name (default: a generated one)")
	fs.StringVarP(&o.workdir, "workdir", "w", "", "working directory inside the container (created if missing)")
	fs.StringVarP(&o.user, "user", "u", "", "user to run as: NAME|UID[:GROUP|GID], names from the container's /etc/passwd and /etc/group")
	fs.StringVar(&o.entrypoint, "entrypoint", "", "program to run, before the command's arguments (overrides an image's entrypoint)")
	fs.BoolVar(&o.readonly, "read-only", false, "make the root filesystem read-only")
	fs.BoolVarP(&o.tty, "tty", "t", false, "give the command a pseudo-terminal")
	fs.BoolVarP(&o.interactive, "interactive", "i", false, "connect standard input (otherwise it reads /dev/null)")
	fs.BoolVarP(&o.detach, "detach", "d", false, "run in the background and print the container's name")
	fs.BoolVar(&o.autoRm, "rm", false, "remove the container from the store when it exits")
	fs.DurationVar(&o.timeout, "timeout", 0, "kill the container after this long (e.g. 30s)")
	fs.BoolVar(&o.userns, "userns", false, "run in a new user namespace (container root = the calling user unless --uidmap/--gidmap)")
	fs.VarP(&o.env, "env", "e", "KEY=VALUE to set, or KEY to pass the caller's value (repeatable)")
	fs.Var(&o.envFiles, "env-file", "file of KEY=VALUE (or KEY) lines to set (repeatable)")
	fs.VarP(&o.volumes, "volume", "v", "SRC:DST[:OPTS] bind mount (OPTS: ro, rw, z, Z, bind, propagation; SRC a bare name: a named volume; repeatable)")
	fs.Var(&o.mounts, "mount", "type=bind|volume|tmpfs,source=SRC,target=DST[,readonly][,tmpfs-size=N][,tmpfs-mode=OCTAL] (repeatable)")
	fs.Var(&o.devices, "device", "HOSTDEV[:CONTAINERDEV[:rwm]] host device to give the container (repeatable)")
	fs.Var(&o.tmpfs, "tmpfs", "DST[:size=N,mode=OCTAL,noexec,...] tmpfs mount (DST:SIZE also; repeatable)")
	fs.Var(&o.shares, "share", "namespace to share with the host: mount, pid, uts, ipc, net, cgroup (repeatable)")
	fs.Var(&o.sysctls, "sysctl", "KEY=VALUE namespaced sysctl (repeatable)")
	fs.Var(&o.uidmaps, "uidmap", "CONTAINER:HOST:SIZE uid mapping for --userns (repeatable)")
	fs.Var(&o.gidmaps, "gidmap", "CONTAINER:HOST:SIZE gid mapping for --userns (repeatable)")
	o.res.register(fs)
	o.sec.register(fs)
	o.netf.register(fs)
	o.acct.register(fs)
	// runc's run: vessel run --bundle DIR ID (see isOCIRun).
	fs.StringVarP(&o.oci.bundle, "bundle", "b", "", "runc's run: the bundle directory")
	fs.StringVar(&o.oci.pidFile, "pid-file", "", "runc's run: file to write the container's pid to")
	fs.StringVar(&o.oci.consoleSocket, "console-socket", "", "runc's run: socket that receives the terminal's master")
	fs.IntVar(&o.oci.preserveFDs, "preserve-fds", 0, "runc's run: pass N additional file descriptors")
	fs.BoolVar(&o.oci.noPivot, "no-pivot", false, "runc's run: accepted")
	fs.BoolVar(&o.oci.noNewKeyring, "no-new-keyring", false, "runc's run: accepted")
	fs.BoolVar(&o.keep, "keep", false, "runc's run: accepted")
	fs.BoolVar(&o.noSubreaper, "no-subreaper", false, "runc's run: accepted")
	for _, n := range ociOnlyRunFlags {
		_ = fs.MarkHidden(n)
	}
}

func runCommand() *cobra.Command {
	o := &runOpts{}
	cmd := &cobra.Command{
		Use:   "run [flags] CMD [ARGS...]",
		Short: "Run a command in a new container",
		Long: `Run a command in a new container, in the foreground (exit code: the
command's, 128+N when signal N killed it, 125 when vessel failed) or with
-d in the background. The container is in the store under --name until
'vessel rm' (or at once with --rm).

Also runc's "run [--bundle DIR] [--detach] ID".`,
		Example: `  vessel run --rm -it --rootfs /srv/alpine sh
  vessel run -d --name web -p 8080:80 --rootfs /srv/busybox httpd -f -p 80
  vessel run --rm -e HOME=/tmp -v $PWD:/src:ro -w /src --pids-limit 64 make`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if isOCIRun(cmd.Flags(), args) {
				if len(args) != 1 {
					return usagef("run: want exactly one container id, got %d arguments (usage: vessel run [--bundle DIR] [--detach] ID)", len(args))
				}
				o.oci.detach = o.detach
				code, _ := gopts.createContainer(args[0], &o.oci, true)
				return codeErr(code)
			}
			return codeErr(cmdRun(cmd.Flags(), o, args))
		},
	}
	cmd.Flags().SetInterspersed(false)
	o.register(cmd.Flags())
	return cmd
}

// buildConfig turns run's flags into a Config and the command line.
func (o *runOpts) buildConfig(fs *pflag.FlagSet, args []string) (*vessel.Config, []string, error) {
	argv := args
	if o.entrypoint != "" {
		argv = append([]string{o.entrypoint}, args...)
	}
	if len(argv) == 0 && o.image == "" && !o.acct.boot {
		return nil, nil, usagef("run: no command given (usage: vessel run [flags] CMD [ARGS...])")
	}
	cfg := vessel.NewConfig()
	if o.rootDir != "" {
		abs, err := filepath.Abs(o.rootDir)
		if err != nil {
			return nil, nil, fmt.Errorf("--rootfs: %v", err)
		}
		cfg.WithRootfs(rootfs.Dir(abs))
	}
	if o.image != "" || o.overlay || o.layer != "" {
		if o.image != "" && o.rootDir != "" {
			return nil, nil, usagef("run: --image and --rootfs are exclusive")
		}
		var r rootfs.Root
		switch {
		case o.image != "":
			abs, err := filepath.Abs(o.image)
			if err != nil {
				return nil, nil, fmt.Errorf("--image: %v", err)
			}
			if fi, err := os.Stat(abs); err == nil && !fi.IsDir() && !strings.HasSuffix(abs, ".tar") {
				r = rootfs.ImageFile(abs)
			} else {
				r = rootfs.Image(abs)
			}
			if o.layer != "" {
				r = r.WithLayer(o.layer)
			}
		case o.rootDir == "":
			return nil, nil, usagef("run: --overlay and --layer need --rootfs DIR or --image")
		case o.layer != "":
			abs, _ := filepath.Abs(o.rootDir)
			r = rootfs.Overlay(o.layer, abs)
		default:
			abs, _ := filepath.Abs(o.rootDir)
			r = rootfs.EphemeralOverlay(abs)
		}
		if o.quota != "" {
			n, err := rootfs.ParseSize(o.quota)
			if err != nil {
				return nil, nil, usagef("run: --disk-quota: %v", err)
			}
			r = r.WithQuota(n)
		}
		cfg.WithRootfs(r)
	} else if o.quota != "" {
		return nil, nil, usagef("run: --disk-quota needs a writable layer: --overlay, --layer or --image")
	}
	cfg.WithHostname(o.hostname).WithReadOnlyRootfs(o.readonly).WithTTY(o.tty).WithTimeout(o.timeout)
	set := map[string]bool{}
	fs.Visit(func(f *pflag.Flag) { set[f.Name] = true })
	if o.userns || len(o.uidmaps) > 0 || len(o.gidmaps) > 0 {
		u, err := parseIDMaps("uidmap", o.uidmaps)
		if err != nil {
			return nil, nil, usagef("run: %v", err)
		}
		g, err := parseIDMaps("gidmap", o.gidmaps)
		if err != nil {
			return nil, nil, usagef("run: %v", err)
		}
		cfg.WithUserNamespace(u, g)
	}
	if err := o.netf.apply(cfg, set); err != nil {
		return nil, nil, usagef("run: %v", err)
	}
	if err := o.res.apply(cfg, set); err != nil {
		return nil, nil, usagef("run: %v", err)
	}
	if err := o.sec.apply(cfg, set); err != nil {
		return nil, nil, usagef("run: %v", err)
	}
	env, err := o.environment()
	if err != nil {
		return nil, nil, err
	}
	cfg.WithEnv(env...)
	for _, v := range o.volumes {
		m, err := parseDockerVolume(v)
		if err != nil {
			return nil, nil, usagef("run: --volume: %v", err)
		}
		cfg.WithMount(m)
	}
	for _, v := range o.mounts {
		m, err := parseMount(v)
		if err != nil {
			return nil, nil, usagef("run: --mount %s: %v", v, err)
		}
		cfg.WithMount(m)
	}
	for _, t := range o.tmpfs {
		m, err := parseDockerTmpfs(t)
		if err != nil {
			return nil, nil, usagef("run: --tmpfs: %v", err)
		}
		cfg.WithMount(m)
	}
	for _, d := range o.devices {
		if err := addDevice(cfg, d); err != nil {
			return nil, nil, usagef("run: --device %s: %v", d, err)
		}
	}
	if o.idmap {
		if cfg.Rootfs.Kind == rootfs.KindDir {
			cfg.Rootfs.IDMap = true
		}
		for i := range cfg.Mounts {
			if cfg.Mounts[i].Type == rootfs.TypeBind {
				cfg.Mounts[i].IDMap = true
			}
		}
	}
	for _, s := range o.shares {
		k, err := namespaces.ParseKind(s)
		if err != nil {
			return nil, nil, usagef("run: --share: %v", err)
		}
		cfg.WithSharedNamespace(k)
	}
	for _, s := range o.sysctls {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return nil, nil, usagef("run: --sysctl: %q is not KEY=VALUE", s)
		}
		cfg.WithSysctl(k, v)
	}
	if o.tty {
		if ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ); err == nil {
			cfg.Process.Rows, cfg.Process.Cols = ws.Row, ws.Col
		}
	}
	if err := o.applyUser(cfg); err != nil {
		return nil, nil, err
	}
	if err := o.acct.apply(cfg, o.quota != "", argv); err != nil {
		return nil, nil, err
	}
	if o.acct.boot {
		argv = nil // the init is the configured process
	}
	return cfg, argv, nil
}

// environment is the container's environment from --env-file and --env
// (later wins), a bare KEY taking the caller's value (or nothing when the
// caller has none, as docker), and TERM with a terminal.
func (o *runOpts) environment() ([]string, error) {
	var env []string
	add := func(flag, kv string) error {
		k, _, hasVal := strings.Cut(kv, "=")
		if k == "" || strings.ContainsAny(k, " \t\x00") {
			return usagef("run: %s: %q is not KEY=VALUE or KEY", flag, kv)
		}
		if !hasVal {
			v, ok := os.LookupEnv(k)
			if !ok {
				return nil
			}
			kv = k + "=" + v
		}
		env = append(env, kv)
		return nil
	}
	for _, f := range o.envFiles {
		file, err := os.Open(f)
		if err != nil {
			return nil, usagef("run: --env-file: %v", err)
		}
		sc := bufio.NewScanner(file)
		line := 0
		for sc.Scan() {
			line++
			t := strings.TrimSpace(sc.Text())
			if t == "" || strings.HasPrefix(t, "#") {
				continue
			}
			if err := add(fmt.Sprintf("--env-file %s:%d", f, line), t); err != nil {
				file.Close()
				return nil, err
			}
		}
		file.Close()
		if err := sc.Err(); err != nil {
			return nil, usagef("run: --env-file %s: %v", f, err)
		}
	}
	for _, e := range o.env {
		if err := add("--env", e); err != nil {
			return nil, err
		}
	}
	if o.tty {
		term := "xterm"
		for _, e := range env {
			if strings.HasPrefix(e, "TERM=") {
				term = ""
			}
		}
		if term != "" {
			env = append(env, "TERM="+term)
		}
	}
	return env, nil
}

// parseDockerVolume is --volume SRC:DST[:OPTS]: docker's options z and Z
// (SELinux relabelling) mean nothing without SELinux and are accepted.
func parseDockerVolume(v string) (rootfs.Mount, error) {
	parts := strings.Split(v, ":")
	if len(parts) == 3 {
		var keep []string
		for _, o := range strings.Split(parts[2], ",") {
			if o != "z" && o != "Z" && o != "" {
				keep = append(keep, o)
			}
		}
		parts[2] = strings.Join(keep, ",")
		if parts[2] == "" {
			parts = parts[:2]
		}
		v = strings.Join(parts, ":")
	}
	return rootfs.ParseVolume(v)
}

// parseDockerTmpfs is --tmpfs DST[:OPTS], OPTS docker's (size=64m,mode=1777,
// noexec, nosuid, nodev, exec, ro) or a bare size (vessel's DST:64m).
func parseDockerTmpfs(s string) (rootfs.Mount, error) {
	dst, opts, _ := strings.Cut(s, ":")
	if !strings.HasPrefix(dst, "/") {
		return rootfs.Mount{}, fmt.Errorf("%q: the destination must be an absolute path", s)
	}
	if opts != "" && !strings.ContainsAny(opts, "=,") {
		if _, err := rootfs.ParseSize(opts); err == nil {
			return rootfs.ParseTmpfs(s)
		}
	}
	m := rootfs.Tmpfs(dst, 0)
	for _, o := range strings.Split(opts, ",") {
		if err := tmpfsOption(&m, o); err != nil {
			return rootfs.Mount{}, fmt.Errorf("%q: %v", s, err)
		}
	}
	return m, nil
}

func tmpfsOption(m *rootfs.Mount, o string) error {
	k, v, _ := strings.Cut(o, "=")
	switch k {
	case "":
	case "size", "tmpfs-size":
		n, err := rootfs.ParseSize(v)
		if err != nil {
			return fmt.Errorf("size: %v", err)
		}
		m.Size = n
	case "mode", "tmpfs-mode":
		n, err := strconv.ParseUint(v, 8, 32)
		if err != nil || n > 0o7777 {
			return fmt.Errorf("mode: %q is not an octal mode", v)
		}
		m.Mode = uint32(n)
	case "ro", "readonly":
		m.ReadOnly = true
	case "rw":
		m.ReadOnly = false
	case "noexec":
		m.NoExec = true
	case "exec":
		m.NoExec = false
	case "nosuid":
		m.NoSuid = true
	case "suid":
		m.NoSuid = false
	case "nodev":
		m.NoDev = true
	case "dev":
		m.NoDev = false
	default:
		return fmt.Errorf("unknown option %q", o)
	}
	return nil
}

// parseMount is docker's --mount type=...,source=...,target=...
func parseMount(s string) (rootfs.Mount, error) {
	kv := map[string]string{}
	var order []string
	for _, f := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(f, "=")
		if !ok && (k == "readonly" || k == "ro") {
			v = "true"
		}
		kv[k] = v
		order = append(order, k)
	}
	typ := kv["type"]
	if typ == "" {
		typ = "volume"
	}
	src := kv["source"] + kv["src"]
	dst := kv["target"] + kv["destination"] + kv["dst"]
	if dst == "" {
		return rootfs.Mount{}, fmt.Errorf("target: missing")
	}
	ro := kv["readonly"] == "true" || kv["readonly"] == "1" || kv["ro"] == "true" || kv["ro"] == "1"
	var m rootfs.Mount
	switch typ {
	case "bind":
		if src == "" {
			return rootfs.Mount{}, fmt.Errorf("source: missing for a bind mount")
		}
		abs, err := filepath.Abs(src)
		if err != nil {
			return rootfs.Mount{}, err
		}
		m = rootfs.Bind(abs, dst)
	case "volume":
		if src == "" {
			return rootfs.Mount{}, fmt.Errorf("source: a volume needs a name")
		}
		if strings.ContainsAny(src, "/") {
			return rootfs.Mount{}, fmt.Errorf("source: %q is not a volume name", src)
		}
		m = rootfs.NamedVolume(src, dst)
	case "tmpfs":
		m = rootfs.Tmpfs(dst, 0)
	default:
		return rootfs.Mount{}, fmt.Errorf("type: %q is not bind, volume or tmpfs", typ)
	}
	m.ReadOnly = ro
	for _, k := range order {
		switch k {
		case "type", "source", "src", "target", "destination", "dst", "readonly", "ro":
		case "tmpfs-size", "tmpfs-mode":
			if typ != "tmpfs" {
				return rootfs.Mount{}, fmt.Errorf("%s: only for type=tmpfs", k)
			}
			if err := tmpfsOption(&m, k+"="+kv[k]); err != nil {
				return rootfs.Mount{}, err
			}
		case "bind-propagation":
			m.Propagation = kv[k]
		case "consistency", "bind-nonrecursive":
			if k == "bind-nonrecursive" {
				m.NonRecursive = kv[k] == "true"
			}
		default:
			return rootfs.Mount{}, fmt.Errorf("unknown key %q", k)
		}
	}
	return m, nil
}

// addDevice is --device HOST[:CONTAINER[:PERMS]]: the host's node bound
// into the container and allowed by the device cgroup.
func addDevice(cfg *vessel.Config, s string) error {
	parts := strings.Split(s, ":")
	if len(parts) > 3 {
		return fmt.Errorf("want HOSTDEV[:CONTAINERDEV[:rwm]]")
	}
	host, dst, perms := parts[0], parts[0], "rwm"
	if len(parts) > 1 && parts[1] != "" {
		dst = parts[1]
	}
	if len(parts) > 2 {
		perms = parts[2]
	}
	if perms == "" || strings.Trim(perms, "rwm") != "" {
		return fmt.Errorf("permissions %q: want a combination of r, w and m", perms)
	}
	if !filepath.IsAbs(host) || !filepath.IsAbs(dst) {
		return fmt.Errorf("device paths must be absolute")
	}
	var st unix.Stat_t
	if err := unix.Stat(host, &st); err != nil {
		return fmt.Errorf("%s: %v", host, err)
	}
	typ := ""
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return fmt.Errorf("%s is not a device node", host)
	}
	m := rootfs.Bind(host, dst)
	m.NonRecursive = true
	cfg.WithMount(m)
	if cfg.Resources == nil {
		cfg.Resources = &limits.Resources{}
	}
	if len(cfg.Resources.Devices) == 0 {
		cfg.Resources.Devices = cgroups.DefaultDevices()
	}
	cfg.Resources.Devices = append(cfg.Resources.Devices, limits.DeviceRule{
		Allow: true, Type: typ, Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)), Access: perms})
	return nil
}

// parseUser reads UID[:GID] as numbers (the OCI exec's --user).
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
	old, err := term.MakeRaw(fd)
	if err != nil {
		return func() {}
	}
	return func() { _ = term.Restore(fd, old) }
}
