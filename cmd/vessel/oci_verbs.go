package main

// runc's spec, exec, ps, update, events and features.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/capability"
	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/limits"
	"github.com/openvessel/vessel/oci"
)

func ociSpec(g *globalOpts, args []string) int {
	const usage = "[--bundle DIR] [--rootless]"
	fs := newAliasFlags("spec")
	var bundle string
	var rootless bool
	fs.str(&bundle, "directory to write config.json in (default: the current directory)", "bundle", "b")
	fs.boolean(&rootless, "a spec for a container run by an unprivileged user", "rootless")
	pos, err := parseFlags(fs.FlagSet, args)
	if err != nil {
		return g.helpOrErr(fs.FlagSet, usage, err)
	}
	if len(pos) > 0 {
		return g.usageErr("spec", usage, "unexpected argument %q", pos[0])
	}
	if bundle == "" {
		bundle = "."
	}
	spec := oci.DefaultSpec()
	if rootless {
		makeRootless(spec)
	}
	if err := oci.WriteSpec(bundle, spec); err != nil {
		return g.errorf("%v", err)
	}
	return 0
}

// makeRootless adapts the default spec as runc's --rootless does: a user
// namespace mapping root to the caller, no cgroup limits, /sys bound from
// the host, no devpts gid option.
func makeRootless(spec *specs.Spec) {
	l := spec.Linux
	l.Namespaces = append(l.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	l.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(os.Geteuid()), Size: 1}}
	l.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(os.Getegid()), Size: 1}}
	l.Resources = nil
	var mounts []specs.Mount
	for _, m := range spec.Mounts {
		switch m.Destination {
		case "/sys":
			m = specs.Mount{Destination: "/sys", Type: "none", Source: "/sys", Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}}
		case "/sys/fs/cgroup":
			continue
		}
		m.Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return strings.HasPrefix(o, "gid=") })
		mounts = append(mounts, m)
	}
	spec.Mounts = mounts
}

const execUsage = "[--process FILE | [--env K=V] [--cwd DIR] [--user UID[:GID]] [--tty]] [--detach] [--pid-file FILE] [--console-socket SOCK] ID [CMD ARGS...]"

func ociExec(g *globalOpts, args []string) int {
	fs := newAliasFlags("exec")
	var (
		process, cwd, user, pidFile, consoleSocket, processLabel, apparmor, cgroup string
		tty, detach, noNewPrivs, ignorePaused                                      bool
		preserveFDs                                                                int
		env, gids, caps                                                            listFlag
	)
	fs.str(&process, "path to a runtime-spec process.json", "process", "p")
	fs.str(&cwd, "working directory in the container", "cwd", "w", "workdir")
	fs.str(&user, "UID[:GID] to run as", "user", "u")
	fs.str(&pidFile, "file to write the process's pid to", "pid-file")
	fs.str(&consoleSocket, "AF_UNIX socket that receives the terminal's master", "console-socket")
	fs.str(&processLabel, "SELinux label (not supported)", "process-label")
	fs.str(&apparmor, "AppArmor profile (not supported)", "apparmor")
	fs.str(&cgroup, "sub-cgroup (not supported)", "cgroup")
	fs.boolean(&tty, "allocate a pseudo-terminal", "tty", "t")
	fs.boolean(&detach, "detach from the process", "detach", "d")
	fs.boolean(&noNewPrivs, "accepted (vessel's processes always have no_new_privs unless privileged)", "no-new-privs")
	fs.boolean(&ignorePaused, "allow exec in a paused container", "ignore-paused")
	var interactive bool
	fs.boolean(&interactive, "docker's -i: accepted (standard input is always connected)", "interactive", "i")
	fs.FlagSet.IntVar(&preserveFDs, "preserve-fds", 0, "pass N additional file descriptors (3...)")
	fs.list(&env, "KEY=VALUE to set (repeatable)", "env", "e")
	fs.list(&gids, "additional group id (repeatable)", "additional-gids", "g")
	fs.list(&caps, "capability to add (not supported)", "cap", "c")
	if err := fs.Parse(args); err != nil {
		return g.helpOrErr(fs.FlagSet, execUsage, err)
	}
	pos := fs.Args()
	if len(pos) > 0 && pos[0] == "--" {
		pos = pos[1:]
	}
	if len(pos) == 0 {
		return g.usageErr("exec", execUsage, "no container id")
	}
	id, argv := pos[0], pos[1:]
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	switch {
	case processLabel != "":
		return g.errorf("exec: --process-label: SELinux labels are not supported by vessel")
	case apparmor != "":
		return g.errorf("exec: --apparmor: AppArmor profiles are not supported by vessel")
	case cgroup != "":
		return g.errorf("exec: --cgroup: sub-cgroups are not supported by vessel")
	case len(caps) > 0:
		return g.errorf("exec: --cap: per-process capabilities are not supported by vessel (the container's apply)")
	case preserveFDs < 0:
		return g.usageErr("exec", execUsage, "--preserve-fds: %d is negative", preserveFDs)
	}
	_, lock, rec, code, ok := g.lockedRecord(id)
	if !ok {
		return code
	}
	status := g.statusOf(rec)
	lock.Unlock()
	switch {
	case status == statePaused && !ignorePaused:
		return g.errorf("cannot exec in a paused container (use --ignore-paused to override)")
	case status != specs.StateRunning && status != specs.StateCreated && status != statePaused:
		return g.errorf("cannot exec in a stopped container")
	}
	cmd := &vessel.Cmd{}
	if process != "" {
		data, err := os.ReadFile(process)
		if err != nil {
			return g.errorf("exec: --process: %v", err)
		}
		var p specs.Process
		if err := json.Unmarshal(data, &p); err != nil {
			return g.errorf("exec: --process %s: %v", process, err)
		}
		if len(p.Args) == 0 {
			return g.errorf("exec: --process %s: args: empty", process)
		}
		cmd.Args, cmd.Env, cmd.Dir = p.Args, p.Env, p.Cwd
		if cmd.Env == nil {
			cmd.Env = []string{}
		}
		cmd.User = &vessel.User{UID: p.User.UID, GID: p.User.GID, Groups: p.User.AdditionalGids}
		tty = p.Terminal
		if cs := p.ConsoleSize; cs != nil {
			cmd.Rows, cmd.Cols = uint16(cs.Height), uint16(cs.Width)
		}
	} else {
		if len(argv) == 0 {
			return g.usageErr("exec", execUsage, "no command to run")
		}
		cmd.Args = argv
		if len(env) > 0 {
			base := rec.Config.Process.Env
			if len(base) == 0 {
				base = []string{"PATH=" + vessel.DefaultPath}
			}
			merged := slices.Clone(base)
			for _, kv := range env {
				k, _, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return g.usageErr("exec", execUsage, "--env: %q is not KEY=VALUE", kv)
				}
				merged = slices.DeleteFunc(merged, func(e string) bool { return strings.HasPrefix(e, k+"=") })
				merged = append(merged, kv)
			}
			cmd.Env = merged
		}
		cmd.Dir = cwd
		if user != "" {
			uid, gid, err := execUser(rec, user)
			if err != nil {
				return g.errorf("exec: --user: %v", err)
			}
			cmd.User = &vessel.User{UID: uid, GID: gid}
		}
		for _, s := range gids {
			n, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return g.usageErr("exec", execUsage, "--additional-gids: %q is not a group id", s)
			}
			if cmd.User == nil {
				u := rec.Config.Process.User
				cmd.User = &vessel.User{UID: u.UID, GID: u.GID}
			}
			cmd.User.Groups = append(cmd.User.Groups, uint32(n))
		}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if !tty && !detach {
		// As with run: the caller's terminal reaches the process as pipes.
		cmd.Stdin, cmd.Stdout, cmd.Stderr = containerStdio(false, true)
	}
	for i := 0; i < preserveFDs; i++ {
		cmd.ExtraFiles = append(cmd.ExtraFiles, os.NewFile(uintptr(3+i), fmt.Sprintf("fd%d", 3+i)))
	}
	var restore func()
	switch {
	case tty && consoleSocket != "":
		// The terminal comes from the container's own devpts (the
		// process's controlling terminal there); its master goes to the
		// console socket.
		cmd.TTY = true
		cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, nil
	case tty && detach:
		return g.errorf("exec: cannot allocate a terminal for a detached process without --console-socket")
	case tty:
		cmd.TTY = true
		if isTerminal(0) {
			if ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ); err == nil {
				cmd.Rows, cmd.Cols = ws.Row, ws.Col
			}
			restore = rawTerminal(0)
		}
	case consoleSocket != "":
		return g.errorf("exec: --console-socket given without a terminal (--tty)")
	}
	// runc exits 255 when the process cannot be started.
	const cannotStart = 255
	// The container's seccomp notify agent gets each exec'd process's
	// listener too, as under runc.
	var agent *seccompAgent
	if rec.Config == nil {
		return g.errorf("exec: container %s: its record has no configuration", id)
	}
	if sec := rec.Config.Security; sec != nil && sec.Seccomp != nil && sec.Seccomp.ListenerPath != "" {
		agent = &seccompAgent{Path: sec.Seccomp.ListenerPath, Metadata: sec.Seccomp.ListenerMetadata,
			State: oci.NewState(rec.ID, specs.StateRunning, rec.Main.Pid, rec.Bundle, rec.Annotations)}
	}
	if detach {
		pid, err := startExecRelay(rec.ControlSocket, cmd, consoleSocket, agent)
		if err != nil {
			g.errorf("exec failed: %v", err)
			return cannotStart
		}
		if pidFile != "" {
			if err := writePidFile(pidFile, pid); err != nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				g.errorf("exec: --pid-file: %v", err)
				return cannotStart
			}
		}
		return 0
	}
	if restore != nil {
		defer restore()
	}
	cl, err := vessel.Attach(rec.ControlSocket)
	if err != nil {
		g.errorf("exec failed: %v", err)
		return cannotStart
	}
	defer cl.Close()
	p, err := cl.Exec(context.Background(), cmd)
	if err != nil {
		g.errorf("exec failed: %v", oneLine(err))
		return cannotStart
	}
	if err := agent.hand(p); err != nil {
		_ = p.Signal(syscall.SIGKILL)
		g.errorf("exec: %v", err)
		return cannotStart
	}
	if consoleSocket != "" {
		err := errors.New("the process got no terminal")
		if m := p.Console(); m != nil {
			err = sendConsole(consoleSocket, m)
			m.Close()
		}
		if err != nil {
			_ = p.Signal(syscall.SIGKILL)
			g.errorf("exec: --console-socket %s: %v", consoleSocket, err)
			return cannotStart
		}
	}
	if pidFile != "" {
		if err := writePidFile(pidFile, p.Pid()); err != nil {
			_ = p.Signal(syscall.SIGKILL)
			g.errorf("exec: --pid-file: %v", err)
			return cannotStart
		}
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGCONT, syscall.SIGALRM)
	defer signal.Stop(sigs)
	go func() {
		for s := range sigs {
			if s == syscall.SIGWINCH {
				if ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ); err == nil {
					_ = p.Resize(ws.Row, ws.Col)
				}
				continue
			}
			_ = p.Signal(s.(syscall.Signal))
		}
	}()
	_ = p.Wait()
	st := p.ExitStatus()
	if st == nil {
		return 1
	}
	if st.Signal != 0 {
		return 128 + int(st.Signal)
	}
	return st.Code
}

func ociPs(g *globalOpts, args []string) int {
	const usage = "[--format table|json] ID [-- PS ARGS]"
	fs := newAliasFlags("ps")
	format := "table"
	fs.str(&format, "table or json", "format", "f")
	if err := fs.Parse(args); err != nil {
		return g.helpOrErr(fs.FlagSet, usage, err)
	}
	pos := fs.Args()
	if len(pos) == 0 {
		return g.usageErr("ps", usage, "no container id")
	}
	id, psArgs := pos[0], pos[1:]
	if len(psArgs) > 0 && psArgs[0] == "--" {
		psArgs = psArgs[1:]
	}
	if format != "table" && format != "json" {
		return g.usageErr("ps", usage, "--format: %q is neither table nor json", format)
	}
	_, lock, rec, code, ok := g.lockedRecord(id)
	if !ok {
		return code
	}
	defer lock.Unlock()
	if g.statusOf(rec) == specs.StateStopped {
		return g.errorf("container %s is not running", id)
	}
	pids, err := containerPids(rec)
	if err != nil {
		return g.errorf("%v", err)
	}
	if format == "json" {
		b, _ := json.Marshal(pids)
		fmt.Printf("%s\n", b)
		return 0
	}
	if len(psArgs) == 0 {
		psArgs = []string{"-ef"}
	}
	out, err := exec.Command("ps", psArgs...).Output()
	if err != nil {
		return g.errorf("ps %s: %v", strings.Join(psArgs, " "), err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	col := slices.Index(strings.Fields(lines[0]), "PID")
	if col < 0 {
		return g.errorf("ps %s: no PID column in its output", strings.Join(psArgs, " "))
	}
	fmt.Println(lines[0])
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) <= col {
			continue
		}
		if pid, err := strconv.Atoi(f[col]); err == nil && slices.Contains(pids, pid) {
			fmt.Println(line)
		}
	}
	return 0
}

// containerPids lists the container's processes: those of its cgroup,
// else its init and main process.
func containerPids(rec *oci.Record) ([]int, error) {
	cg, err := cgroupOf(rec)
	if err != nil {
		return nil, err
	}
	if cg != nil {
		return cg.Pids()
	}
	var pids []int
	for _, p := range []oci.Process{rec.Init, rec.Main} {
		if p.Alive() {
			pids = append(pids, p.Pid)
		}
	}
	return pids, nil
}

const updateUsage = "[--memory N] [--memory-reservation N] [--memory-swap N] [--cpu-quota N] [--cpu-period N] [--cpu-share N] [--cpuset-cpus LIST] [--cpuset-mems LIST] [--pids-limit N] [--blkio-weight N] [-r resources.json] ID"

func ociUpdate(g *globalOpts, args []string) int {
	fs := newAliasFlags("update")
	var resFile string
	fs.str(&resFile, "file with the resources as runtime-spec JSON ('-': stdin); other flags are then ignored", "resources", "r")
	ints := map[string]*string{}
	for _, n := range []string{"memory", "memory-reservation", "memory-swap", "cpu-quota", "cpu-period", "cpu-share", "cpu-rt-period", "cpu-rt-runtime", "pids-limit", "blkio-weight"} {
		v := new(string)
		ints[n] = v
		fs.str(v, n, n)
	}
	var cpus, mems, l3, mba string
	fs.str(&cpus, "CPUs to use", "cpuset-cpus")
	fs.str(&mems, "memory nodes to use", "cpuset-mems")
	fs.str(&l3, "Intel RDT (not supported)", "l3-cache-schema")
	fs.str(&mba, "Intel RDT (not supported)", "mem-bw-schema")
	id, code, ok := g.parseOneID(fs.FlagSet, "update", updateUsage, args)
	if !ok {
		return code
	}
	var r specs.LinuxResources
	var err error
	if resFile != "" {
		var data []byte
		if resFile == "-" {
			data, err = io.ReadAll(os.Stdin)
		} else {
			data, err = os.ReadFile(resFile)
		}
		if err == nil {
			err = json.Unmarshal(data, &r)
		}
		if err != nil {
			return g.errorf("update: --resources %s: %v", resFile, err)
		}
	} else {
		if l3 != "" || mba != "" {
			return g.errorf("update: Intel RDT schemata are not supported by vessel")
		}
		num := func(name string) (*int64, error) {
			s := *ints[name]
			if s == "" {
				return nil, nil
			}
			v, err := parseBytes(s)
			if err != nil {
				return nil, fmt.Errorf("--%s: %v", name, err)
			}
			return &v, nil
		}
		vals := map[string]*int64{}
		for n := range ints {
			v, err := num(n)
			if err != nil {
				return g.usageErr("update", updateUsage, "%v", err)
			}
			vals[n] = v
		}
		if v := vals["memory"]; v != nil || vals["memory-reservation"] != nil || vals["memory-swap"] != nil {
			r.Memory = &specs.LinuxMemory{Limit: v, Reservation: vals["memory-reservation"], Swap: vals["memory-swap"]}
		}
		u64 := func(p *int64) *uint64 {
			if p == nil {
				return nil
			}
			x := uint64(*p)
			return &x
		}
		if vals["cpu-quota"] != nil || vals["cpu-period"] != nil || vals["cpu-share"] != nil || cpus != "" || mems != "" || vals["cpu-rt-period"] != nil || vals["cpu-rt-runtime"] != nil {
			r.CPU = &specs.LinuxCPU{Quota: vals["cpu-quota"], Period: u64(vals["cpu-period"]), Shares: u64(vals["cpu-share"]), Cpus: cpus, Mems: mems,
				RealtimePeriod: u64(vals["cpu-rt-period"]), RealtimeRuntime: vals["cpu-rt-runtime"]}
		}
		if v := vals["pids-limit"]; v != nil {
			r.Pids = &specs.LinuxPids{Limit: v}
		}
		if v := vals["blkio-weight"]; v != nil {
			w := uint16(*v)
			r.BlockIO = &specs.LinuxBlockIO{Weight: &w}
		}
	}
	res, err := resourcesOf(&r)
	if err != nil {
		return g.errorf("update: %v", err)
	}
	st, lock, rec, code, ok := g.lockedRecord(id)
	if !ok {
		return code
	}
	defer lock.Unlock()
	if s := g.statusOf(rec); s == specs.StateStopped {
		return g.errorf("container %s is not running", id)
	}
	cg, err := cgroupOf(rec)
	if err != nil {
		return g.errorf("%v", err)
	}
	if cg == nil {
		return g.errorf("container %s has no cgroup", id)
	}
	// What is checked is the container's resources after the update (as
	// runc takes it: a swap limit for a container whose memory limit was
	// set at create); what is written is the controllers the update
	// touches, with their other values as they were.
	merged := mergeResources(rec.Config.Resources, res)
	if err := merged.Validate(); err != nil {
		return g.errorf("update: %v", err)
	}
	apply := *res
	if res.Memory != nil {
		apply.Memory = merged.Memory
	}
	if res.CPU != nil {
		apply.CPU = merged.CPU
	}
	if err := cg.Update(&apply); err != nil {
		return g.errorf("update: %v", err)
	}
	rec.Config.Resources = merged
	if err := st.Save(rec); err != nil {
		return g.errorf("%v", err)
	}
	return 0
}

// resourcesOf converts runtime-spec resources with the oci package's own
// conversion (through a minimal spec, so that the rules are the same as at
// create).
func resourcesOf(r *specs.LinuxResources) (*limits.Resources, error) {
	spec := oci.DefaultSpec()
	spec.Root.Path = "/"
	spec.Process.Terminal = false
	spec.Linux.Resources = r
	cfg, err := oci.FromSpec(spec, "/")
	if err != nil {
		return nil, err
	}
	if cfg.Resources == nil {
		return &limits.Resources{}, nil
	}
	return cfg.Resources, nil
}

// mergeResources records an update in the stored configuration.
func mergeResources(old, upd *limits.Resources) *limits.Resources {
	if old == nil {
		return upd
	}
	out := *old
	// Memory and CPU fields an update leaves out keep their values.
	if m := upd.Memory; m != nil {
		n := limits.Memory{}
		if old.Memory != nil {
			n = *old.Memory
		}
		for _, f := range []struct{ dst, src **int64 }{{&n.Limit, &m.Limit}, {&n.Swap, &m.Swap}, {&n.Reservation, &m.Reservation}} {
			if *f.src != nil {
				*f.dst = *f.src
			}
		}
		if m.Swappiness != nil {
			n.Swappiness = m.Swappiness
		}
		n.DisableOOMKiller = n.DisableOOMKiller || m.DisableOOMKiller
		out.Memory = &n
	}
	if c := upd.CPU; c != nil {
		n := limits.CPU{}
		if old.CPU != nil {
			n = *old.CPU
		}
		if c.CPUs != nil {
			n.CPUs = c.CPUs
		}
		if c.Period != nil {
			n.Period = c.Period
		}
		if c.Shares != nil {
			n.Shares, n.Weight = c.Shares, nil
		}
		if c.Weight != nil {
			n.Weight, n.Shares = c.Weight, nil
		}
		if c.Cpuset != "" {
			n.Cpuset = c.Cpuset
		}
		if c.Mems != "" {
			n.Mems = c.Mems
		}
		out.CPU = &n
	}
	if upd.Pids != nil {
		out.Pids = upd.Pids
	}
	if upd.IO != nil {
		out.IO = upd.IO
	}
	if upd.HugeTLB != nil {
		out.HugeTLB = upd.HugeTLB
	}
	if upd.Devices != nil {
		out.Devices = upd.Devices
	}
	return &out
}

// parseBytes reads a number with an optional k/m/g suffix (powers of
// 1024), as runc's --memory accepts; -1 means unlimited.
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "b"), "i")
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if v < 0 && v != -1 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	if v == -1 {
		return -1, nil
	}
	return v * mult, nil
}

// statsEvent is runc's "events" line.
type statsEvent struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Data any    `json:"data,omitempty"`
}

// runcStats lays vessel's figures out as runc's events data.
func runcStats(s *cgroups.Stats) map[string]any {
	return map[string]any{
		"cpu": map[string]any{
			"usage": map[string]any{"total": uint64(s.CPU.Total), "user": uint64(s.CPU.User), "kernel": uint64(s.CPU.System)},
			"throttling": map[string]any{"periods": s.CPU.Periods, "throttledPeriods": s.CPU.ThrottledPeriods,
				"throttledTime": uint64(s.CPU.Throttled)},
		},
		"memory": map[string]any{
			"usage":    map[string]any{"usage": s.Memory.Current, "max": s.Memory.Peak, "limit": s.Memory.Limit},
			"oomKills": s.Memory.OOMKills,
		},
		"pids": map[string]any{"current": s.Pids.Current, "limit": s.Pids.Limit},
		"blkio": map[string]any{
			"ioServiceBytesRecursive": []map[string]any{{"op": "Read", "value": s.IO.ReadBytes}, {"op": "Write", "value": s.IO.WriteBytes}},
			"ioServicedRecursive":     []map[string]any{{"op": "Read", "value": s.IO.ReadOps}, {"op": "Write", "value": s.IO.WriteOps}},
		},
	}
}

func ociEvents(g *globalOpts, args []string) int {
	const usage = "[--stats] [--interval DURATION] ID"
	fs := newAliasFlags("events")
	var stats bool
	interval := 5 * time.Second
	fs.boolean(&stats, "print the container's stats once and exit", "stats")
	fs.FlagSet.DurationVar(&interval, "interval", interval, "how often to print stats")
	id, code, ok := g.parseOneID(fs.FlagSet, "events", usage, args)
	if !ok {
		return code
	}
	if interval <= 0 {
		return g.usageErr("events", usage, "--interval must be positive")
	}
	_, lock, rec, code, ok := g.lockedRecord(id)
	if !ok {
		return code
	}
	lock.Unlock()
	if g.statusOf(rec) == specs.StateStopped {
		return g.errorf("container %s is not running", id)
	}
	cg, err := cgroupOf(rec)
	if err != nil {
		return g.errorf("%v", err)
	}
	if cg == nil {
		return g.errorf("container %s has no cgroup to read statistics from", id)
	}
	enc := json.NewEncoder(os.Stdout)
	emit := func() (*cgroups.Stats, error) {
		s, err := cg.Stats()
		if err != nil {
			return nil, err
		}
		return s, enc.Encode(statsEvent{Type: "stats", ID: id, Data: runcStats(s)})
	}
	if stats {
		if _, err := emit(); err != nil {
			return g.errorf("%v", err)
		}
		return 0
	}
	var ooms uint64
	t := time.NewTicker(interval)
	defer t.Stop()
	poll := time.NewTicker(200 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case <-t.C:
			s, err := emit()
			if err != nil {
				if g.statusOf(rec) == specs.StateStopped {
					return 0
				}
				return g.errorf("%v", err)
			}
			ooms = s.Memory.OOMKills
		case <-poll.C:
			if g.statusOf(rec) == specs.StateStopped {
				return 0
			}
			if s, err := cg.Stats(); err == nil && s.Memory.OOMKills > ooms {
				ooms = s.Memory.OOMKills
				_ = enc.Encode(statsEvent{Type: "oom", ID: id})
			}
		}
	}
}

func ociFeatures(g *globalOpts, args []string) int {
	fs := newAliasFlags("features")
	pos, err := parseFlags(fs.FlagSet, args)
	if err != nil {
		return g.helpOrErr(fs.FlagSet, "", err)
	}
	if len(pos) > 0 {
		return g.usageErr("features", "", "unexpected argument %q", pos[0])
	}
	yes, no := true, false
	var capNames []string
	for _, c := range capability.ListKnown() {
		capNames = append(capNames, "CAP_"+strings.ToUpper(c.String()))
	}
	f := features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
		MountOptions:  oci.MountOptions(),
		Linux: &features.Linux{
			Namespaces:   []string{"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"},
			Capabilities: capNames,
			Cgroup:       &features.Cgroup{V1: &yes, V2: &yes, Systemd: &no, SystemdUser: &no, Rdma: &no},
			Seccomp: &features.Seccomp{
				Enabled: &yes,
				Actions: []string{"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
					"SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"},
				Operators: []string{"SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
					"SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"},
				Archs: []string{"SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"},
			},
			Apparmor:        &features.Apparmor{Enabled: &no},
			Selinux:         &features.Selinux{Enabled: &no},
			IntelRdt:        &features.IntelRdt{Enabled: &no},
			MountExtensions: &features.MountExtensions{IDMap: &features.IDMap{Enabled: &no}},
		},
	}
	if err := printJSON(f); err != nil {
		return g.errorf("%v", err)
	}
	return 0
}
