package main

// Reading and acting on containers other invocations created: status,
// hooks, destruction, and runc's state, list, kill, delete, pause, resume.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/network"
	"github.com/openvessel/vessel/oci"
	"github.com/openvessel/vessel/storage"
)

// statePaused is runc's paused status (not in the runtime spec).
const statePaused specs.ContainerState = "paused"

// flagSetAlias is a flag set whose flags may have several names (runc's
// "--bundle, -b"): one-letter names become the shorthand, further long
// names hidden aliases.
type flagSetAlias struct{ *pflag.FlagSet }

func newAliasFlags(verb string) *flagSetAlias { return &flagSetAlias{newFlags(verb)} }

// Parse parses flags up to the first positional argument (exec's and ps's
// command and its own flags follow the id).
func (f *flagSetAlias) Parse(args []string) error {
	f.SetInterspersed(false)
	addGlobals(f.FlagSet)
	return f.FlagSet.Parse(singleDashLong(f.FlagSet, args))
}

// names splits names into the flag's name, its shorthand and aliases.
func aliasNames(names []string) (long, short string, aliases []string) {
	for _, n := range names {
		switch {
		case len(n) == 1 && short == "":
			short = n
		case long == "":
			long = n
		default:
			aliases = append(aliases, n)
		}
	}
	return long, short, aliases
}

func (f *flagSetAlias) hide(aliases []string) {
	for _, a := range aliases {
		_ = f.MarkHidden(a)
	}
}

func (f *flagSetAlias) str(p *string, usage string, names ...string) {
	long, short, aliases := aliasNames(names)
	f.StringVarP(p, long, short, *p, usage)
	for _, n := range aliases {
		f.StringVar(p, n, *p, usage)
	}
	f.hide(aliases)
}

func (f *flagSetAlias) boolean(p *bool, usage string, names ...string) {
	long, short, aliases := aliasNames(names)
	f.BoolVarP(p, long, short, *p, usage)
	for _, n := range aliases {
		f.BoolVar(p, n, *p, usage)
	}
	f.hide(aliases)
}

func (f *flagSetAlias) list(p *listFlag, usage string, names ...string) {
	long, short, aliases := aliasNames(names)
	f.VarP(p, long, short, usage)
	for _, n := range aliases {
		f.Var(p, n, usage)
	}
	f.hide(aliases)
}

// slogLogger is the library's logger type.
type slogLogger = slog.Logger

type logLines struct{ l *cliLog }

func (w logLines) Write(p []byte) (int, error) {
	w.l.write("debug", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newSlogLogger(l *cliLog) *slog.Logger {
	return slog.New(slog.NewTextHandler(logLines{l}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// lockedRecord locks container id and loads its record. On failure it
// reports the error and ok is false.
func (g *globalOpts) lockedRecord(id string) (st *oci.Store, lock *oci.Lock, rec *oci.Record, code int, ok bool) {
	st, err := g.store()
	if err != nil {
		return nil, nil, nil, g.errorf("%v", err), false
	}
	lock, err = st.Lock(id)
	if err != nil {
		if errors.Is(err, oci.ErrNotExist) {
			return nil, nil, nil, g.errorf("container %s does not exist", id), false
		}
		return nil, nil, nil, g.errorf("%v", err), false
	}
	rec, err = st.Load(id)
	if err != nil {
		lock.Unlock()
		if errors.Is(err, oci.ErrNotExist) {
			return nil, nil, nil, g.errorf("container %s does not exist", id), false
		}
		return nil, nil, nil, g.errorf("%v", err), false
	}
	return st, lock, rec, 0, true
}

// cgroupOf opens the container's cgroups (nil, nil when it has none left).
func cgroupOf(rec *oci.Record) (*cgroups.Manager, error) {
	if rec.CgroupState == nil {
		return nil, nil
	}
	m, err := cgroups.Open(*rec.CgroupState)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	return m, nil
}

// statusOf works the container's status out from the processes alive (by
// pid and start time, so that a reused pid is not mistaken for them) and
// its cgroup's freezer.
func (g *globalOpts) statusOf(rec *oci.Record) specs.ContainerState {
	if rec.Config == nil || !rec.Init.Alive() || !rec.Main.Alive() {
		return specs.StateStopped
	}
	if m, err := cgroupOf(rec); err == nil && m != nil {
		if frozen, err := m.Frozen(); err == nil && frozen {
			return statePaused
		}
	}
	if !rec.Started {
		return specs.StateCreated
	}
	return specs.StateRunning
}

// lockBusy reports whether another command holds the container's lock
// (a create in progress). Callers that hold the lock themselves never ask.
func lockBusy(rec *oci.Record, g *globalOpts) bool {
	st, err := g.store()
	if err != nil {
		return false
	}
	f, err := os.Open(filepath.Join(st.Dir(rec.ID), "lock"))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return true
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}

// pidOf is the pid the state reports: the container's main process, PID
// 1 of its pid namespace, as runc reports it. It is forked as the child of
// the command that created the container (CLONE_PARENT), so a supervisor
// that is its subreaper (podman's conmon, containerd's shim) waits for it
// and sees the container's exit status.
func (g *globalOpts) pidOf(rec *oci.Record, status specs.ContainerState) int {
	if status == specs.StateStopped || status == specs.StateCreating {
		return 0
	}
	return rec.Main.Pid
}

// destroyRecord removes everything container rec holds on the host: its
// processes (killed by pid, after checking their start time), its cgroups,
// its network attachment and prepared storage. The state directory stays.
func (g *globalOpts) destroyRecord(rec *oci.Record) error {
	var errs []error
	cg, err := cgroupOf(rec)
	if err != nil {
		errs = append(errs, err)
	}
	if cg != nil {
		// Frozen processes cannot act on SIGKILL.
		if frozen, _ := cg.Frozen(); frozen {
			_ = cg.Thaw()
		}
	}
	procs := []oci.Process{rec.Init, rec.Main}
	for _, p := range procs {
		if p.Alive() {
			_ = unix.Kill(p.Pid, unix.SIGKILL)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range procs {
		for p.Alive() && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if p.Alive() {
			errs = append(errs, fmt.Errorf("process %d survived SIGKILL for 10s", p.Pid))
		}
	}
	switch {
	case cg != nil:
		if err := cg.Destroy(); err != nil {
			errs = append(errs, err)
		}
	case rec.CgroupState == nil && rec.Config != nil && !rec.Cgroup.Disabled:
		if err := vessel.DestroyStale(rec.ID, rec.Cgroup); err != nil {
			errs = append(errs, err)
		}
	}
	if rec.Network {
		if a, err := network.DefaultManager.Attachment(rec.ID); err == nil {
			if err := vessel.ReleaseNetwork(a); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if rec.Storage {
		if _, err := storage.ReleaseStale(""); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// runtimeState is what runc's state and list print: the runtime-spec
// state and runc's additions.
type runtimeState struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      string            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Owner       string            `json:"owner"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

func (g *globalOpts) runtimeStateOf(rec *oci.Record, locked bool) runtimeState {
	status := g.statusOf(rec)
	if !locked && status == specs.StateStopped && rec.Init.Pid == 0 && lockBusy(rec, g) {
		status = specs.StateCreating
	}
	owner := strconv.Itoa(rec.Owner)
	if u, err := lookupUser(rec.Owner); err == nil {
		owner = u
	}
	return runtimeState{
		OCIVersion: specs.Version, ID: rec.ID, Pid: g.pidOf(rec, status), Status: string(status),
		Bundle: rec.Bundle, Rootfs: rec.Rootfs, Created: rec.Created, Owner: owner, Annotations: rec.Annotations,
	}
}

// lookupUser names a uid from /etc/passwd (no cgo).
func lookupUser(uid int) (string, error) {
	data, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 2 && f[2] == strconv.Itoa(uid) {
			return f[0], nil
		}
	}
	return "", fs.ErrNotExist
}

func printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Printf("%s\n", b)
	return err
}

func ociState(g *globalOpts, args []string) int {
	const usage = "ID"
	fs := newAliasFlags("state")
	id, code, ok := g.parseOneID(fs.FlagSet, "state", usage, args)
	if !ok {
		return code
	}
	_, lock, rec, code, ok := g.lockedRecord(id)
	if !ok {
		return code
	}
	defer lock.Unlock()
	if err := printJSON(g.runtimeStateOf(rec, true)); err != nil {
		return g.errorf("%v", err)
	}
	return 0
}

func ociList(g *globalOpts, args []string) int {
	const usage = "[--format table|json] [--quiet]"
	fs := newAliasFlags("list")
	format := "table"
	var quiet bool
	fs.str(&format, "table or json", "format", "f")
	fs.boolean(&quiet, "print only the container ids", "quiet", "q")
	pos, err := parseFlags(fs.FlagSet, args)
	if err != nil {
		return g.helpOrErr(fs.FlagSet, usage, err)
	}
	if len(pos) > 0 {
		return g.usageErr("list", usage, "unexpected argument %q", pos[0])
	}
	if format != "table" && format != "json" {
		return g.usageErr("list", usage, "--format: %q is neither table nor json", format)
	}
	st, err := g.store()
	if err != nil {
		return g.errorf("%v", err)
	}
	ids, err := st.List()
	if err != nil {
		return g.errorf("%v", err)
	}
	states := []runtimeState{}
	for _, id := range ids {
		rec, err := st.Load(id)
		if err != nil {
			continue // deleted meanwhile, or being created
		}
		states = append(states, g.runtimeStateOf(rec, false))
	}
	switch {
	case quiet:
		for _, s := range states {
			fmt.Println(s.ID)
		}
	case format == "json":
		b, _ := json.Marshal(states)
		fmt.Printf("%s\n", b)
	default:
		w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
		fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
		for _, s := range states {
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.Pid, s.Status, s.Bundle, s.Created.Format(time.RFC3339Nano), s.Owner)
		}
		w.Flush()
	}
	return 0
}

// parseSignal reads a signal as a number or a name, with or without SIG.
func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		// 0 checks that the process exists, as kill(2) does.
		if n < 0 || n > sigRTMax {
			return 0, fmt.Errorf("signal %d is out of range (0..%d)", n, sigRTMax)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	// Real-time signals by name: RTMIN, RTMIN+N, RTMAX, RTMAX-N.
	for _, rt := range []struct {
		prefix string
		base   int
		sign   int
	}{{"SIGRTMIN", sigRTMin, 1}, {"SIGRTMAX", sigRTMax, -1}} {
		rest, ok := strings.CutPrefix(name, rt.prefix)
		if !ok {
			continue
		}
		off := 0
		if rest != "" {
			op := "+"
			if rt.sign < 0 {
				op = "-"
			}
			num, ok := strings.CutPrefix(rest, op)
			n, err := strconv.Atoi(num)
			if !ok || err != nil || n < 0 {
				break
			}
			off = rt.sign * n
		}
		if n := rt.base + off; n >= sigRTMin && n <= sigRTMax {
			return syscall.Signal(n), nil
		}
		return 0, fmt.Errorf("signal %q is out of the real-time range", s)
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

// The real-time signals a process can be sent (glibc keeps 32 and 33
// for itself; SIGRTMIN is 34 as C programs see it).
const (
	sigRTMin = 34
	sigRTMax = 64
)

func ociKill(g *globalOpts, args []string) int {
	const usage = "[--all] ID [SIGNAL]"
	fs := newAliasFlags("kill")
	var all bool
	fs.boolean(&all, "send the signal to every process of the container", "all", "a")
	pos, err := parseFlags(fs.FlagSet, args)
	if err != nil {
		return g.helpOrErr(fs.FlagSet, usage, err)
	}
	if len(pos) < 1 || len(pos) > 2 {
		return g.usageErr("kill", usage, "want a container id and an optional signal, got %d arguments", len(pos))
	}
	sig := syscall.SIGTERM
	if len(pos) == 2 {
		if sig, err = parseSignal(pos[1]); err != nil {
			return g.usageErr("kill", usage, "%v", err)
		}
	}
	_, lock, rec, code, ok := g.lockedRecord(pos[0])
	if !ok {
		return code
	}
	defer lock.Unlock()
	status := g.statusOf(rec)
	stopped := status == specs.StateStopped || status == specs.StateCreating
	if stopped && !all {
		return g.errorf("container not running")
	}
	if all {
		// runc signals whatever is left in the cgroup, also once the main
		// process has ended (a supervisor's stop ends with kill --all).
		cg, err := cgroupOf(rec)
		if err != nil && !stopped {
			return g.errorf("%v", err)
		}
		if err == nil && cg != nil {
			if sig == syscall.SIGKILL {
				if err := cg.Kill(); err != nil && !stopped {
					return g.errorf("%v", err)
				}
				return 0
			}
			pids, err := cg.Pids()
			if err != nil && !stopped {
				return g.errorf("%v", err)
			}
			for _, pid := range pids {
				_ = unix.Kill(pid, sig)
			}
			return 0
		}
		if stopped {
			return 0
		}
		cl, err := vessel.Attach(rec.ControlSocket)
		if err != nil {
			return g.errorf("%v", err)
		}
		defer cl.Close()
		if err := cl.SignalAll(sig); err != nil {
			return g.errorf("%v", err)
		}
		return 0
	}
	if err := unix.Kill(rec.Main.Pid, sig); err != nil {
		return g.errorf("sending %v to process %d: %v", sig, rec.Main.Pid, err)
	}
	return 0
}

func ociDelete(g *globalOpts, args []string) int {
	const usage = "[--force] ID"
	fs := newAliasFlags("delete")
	var force bool
	fs.boolean(&force, "kill the container first if it still runs (SIGKILL)", "force", "f")
	id, code, ok := g.parseOneID(fs.FlagSet, "delete", usage, args)
	if !ok {
		return code
	}
	if force {
		// As runc: forcing the delete of a missing container succeeds.
		if st, err := g.store(); err == nil {
			if l, err := st.Lock(id); errors.Is(err, oci.ErrNotExist) {
				return 0
			} else if err == nil {
				l.Unlock()
			}
		}
	}
	st, lock, rec, code, ok := g.lockedRecord(id)
	if !ok {
		return code
	}
	defer lock.Unlock()
	status := g.statusOf(rec)
	switch status {
	case specs.StateStopped, specs.StateCreated:
	default:
		if !force {
			return g.errorf("cannot delete container %s that is not stopped: %s", id, status)
		}
	}
	err := g.destroyRecord(rec)
	if rec.Config != nil && rec.Config.Hooks != nil && rec.Init.Pid != 0 {
		for _, h := range rec.Config.Hooks.Poststop {
			if herr := vessel.RunHook(h, hookState(rec, specs.StateStopped, 0)); herr != nil {
				g.logger().warnf("poststop hook: %v", herr)
			}
		}
	}
	if err != nil {
		return g.errorf("deleting %s: %v", id, err)
	}
	if err := st.Remove(id); err != nil {
		return g.errorf("%v", err)
	}
	return 0
}

// frozenVerb is pause and resume.
func frozenVerb(g *globalOpts, verb string, args []string, freeze bool) int {
	const usage = "ID"
	fs := newAliasFlags(verb)
	id, code, ok := g.parseOneID(fs.FlagSet, verb, usage, args)
	if !ok {
		return code
	}
	_, lock, rec, code, ok := g.lockedRecord(id)
	if !ok {
		return code
	}
	defer lock.Unlock()
	status := g.statusOf(rec)
	if freeze && status != specs.StateRunning && status != specs.StateCreated {
		return g.errorf("container not running")
	}
	if !freeze && status != statePaused {
		return g.errorf("container not paused")
	}
	cg, err := cgroupOf(rec)
	if err != nil {
		return g.errorf("%v", err)
	}
	if cg == nil {
		return g.errorf("container %s has no cgroup to freeze", id)
	}
	if freeze {
		err = cg.Freeze()
	} else {
		err = cg.Thaw()
	}
	if err != nil {
		return g.errorf("%v", err)
	}
	return 0
}

func ociPause(g *globalOpts, args []string) int  { return frozenVerb(g, "pause", args, true) }
func ociResume(g *globalOpts, args []string) int { return frozenVerb(g, "resume", args, false) }
