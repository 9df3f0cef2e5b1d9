package main

// docker's verbs on the store of containers: ps, logs, stop, kill, rm,
// inspect, stats, top, wait and system prune. They act on every container
// of the store, whether `vessel run` or runc's create started it.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/oci"
	"github.com/openvessel/vessel/rootfs"
	"github.com/openvessel/vessel/storage"
)

// dockerCommands are docker's verbs on the store of containers.
func dockerCommands() []*cobra.Command {
	return []*cobra.Command{psCommand(), logsCommand(), stopCommand(), killCommand(), rmCommand(),
		inspectCommand(), statsCommand(), topCommand(), waitCommand(), systemCommand(),
		volumeCommand(), imageCommand()}
}

// psCommand is docker's ps, and runc's "ps ID" when given a container.
func psCommand() *cobra.Command {
	return rawCommand("ps [-a] [-q] [--format table|json] | ps [--format table|json] ID [-- PS ARGS]",
		"List containers (docker), or a container's processes (runc's ps ID)", func(args []string) int {
			fs := pflag.NewFlagSet("ps", pflag.ContinueOnError)
			fs.SetOutput(io.Discard)
			fs.Usage = func() {}
			var all, quiet, noTrunc bool
			format := "table"
			fs.BoolVarP(&all, "all", "a", false, "show every container (default: those running)")
			fs.BoolVarP(&quiet, "quiet", "q", false, "print only the names")
			fs.BoolVar(&noTrunc, "no-trunc", false, "do not shorten the command")
			fs.StringVarP(&format, "format", "f", "table", "table or json")
			pos, err := parseFlags(fs, args)
			if err != nil {
				return gopts.helpOrErr(fs, "[-a] [-q] [--format table|json]", err)
			}
			if len(pos) > 0 {
				return ociPs(gopts, args)
			}
			if format != "table" && format != "json" {
				return gopts.usageErr("ps", "[-a] [-q] [--format table|json]", "--format: %q is neither table nor json", format)
			}
			return dockerPs(all, quiet, noTrunc, format)
		})
}

// psRow is one line of ps.
type psRow struct {
	Name    string    `json:"name"`
	Status  string    `json:"status"`
	Exit    *int      `json:"exitCode,omitempty"`
	Pid     int       `json:"pid"`
	Command string    `json:"command"`
	Created time.Time `json:"created"`
	Origin  string    `json:"origin"`
	Root    string    `json:"root"`
	Ports   []string  `json:"ports,omitempty"`
}

func rowOf(e *entry) psRow {
	r := psRow{Name: e.rec.ID, Status: e.status, Created: e.rec.Created, Origin: "oci"}
	if e.live() {
		r.Pid = e.rec.Main.Pid
	}
	if e.info != nil {
		r.Origin = "run"
		r.Command = strings.Join(e.info.Command, " ")
		if e.info.Exit != nil {
			c := e.info.Exit.Code
			r.Exit = &c
		}
	} else if e.rec.Config != nil {
		r.Command = strings.Join(e.rec.Config.Process.Args, " ")
	}
	if cfg := e.rec.Config; cfg != nil {
		r.Root = cfg.Rootfs.Path
		if cfg.Rootfs.Kind == rootfs.KindHost {
			r.Root = "host"
		}
		if cfg.Network != nil {
			for _, p := range cfg.Network.Publish {
				r.Ports = append(r.Ports, p.String())
			}
		}
	}
	return r
}

func dockerPs(all, quiet, noTrunc bool, format string) int {
	st, err := openStore()
	if err != nil {
		return reportErr(err)
	}
	entries, err := listEntries(st)
	if err != nil {
		return reportErr(err)
	}
	rows := []psRow{}
	for _, e := range entries {
		if all || e.live() {
			rows = append(rows, rowOf(e))
		}
	}
	switch {
	case quiet:
		for _, r := range rows {
			fmt.Println(r.Name)
		}
	case format == "json":
		b, _ := json.Marshal(rows)
		fmt.Printf("%s\n", b)
	default:
		w := tabwriter.NewWriter(os.Stdout, 8, 1, 3, ' ', 0)
		fmt.Fprint(w, "NAME\tSTATUS\tPID\tCREATED\tROOT\tPORTS\tCOMMAND\n")
		for _, r := range rows {
			status := r.Status
			if r.Exit != nil {
				status = fmt.Sprintf("%s (%d)", status, *r.Exit)
			}
			cmd := r.Command
			if !noTrunc && len(cmd) > 40 {
				cmd = cmd[:39] + "…"
			}
			root := r.Root
			if !noTrunc && len(root) > 30 {
				root = "…" + root[len(root)-29:]
			}
			fmt.Fprintf(w, "%s\t%s\t%d\t%s ago\t%s\t%s\t%s\n", r.Name, status, r.Pid, since(r.Created), root, strings.Join(r.Ports, ","), cmd)
		}
		w.Flush()
	}
	return 0
}

// since is a short age: 5s, 3m, 2h, 4d.
func since(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// errReported is an error already reported on stderr.
var errReported = errors.New("reported")

// forEach runs f for each named container and returns 0, or 1 when any
// failed (each failure reported on its own line, as docker).
func forEach(names []string, f func(st *oci.Store, id string) error) int {
	st, err := openStore()
	if err != nil {
		return reportErr(err)
	}
	code := 0
	for _, id := range names {
		if err := f(st, id); err != nil {
			if !errors.Is(err, errReported) {
				stderrf("vessel: %s", oneLine(err))
			}
			code = 1
		}
	}
	return code
}

func logsCommand() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:               "logs [-f] NAME",
		Short:             "Print what a detached container wrote to stdout and stderr",
		Args:              exactArgs(1, "want one container name"),
		ValidArgsFunction: completeContainers,
		RunE: func(_ *cobra.Command, args []string) error {
			return codeErr(forEach(args, func(st *oci.Store, id string) error { return showLogs(st, id, follow) }))
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing what the container writes until it ends")
	return cmd
}

func showLogs(st *oci.Store, id string, follow bool) error {
	e, err := loadEntry(st, id)
	if err != nil {
		return err
	}
	if e.info == nil || !e.info.Detached {
		return fmt.Errorf("%s: logs are kept for containers started with run -d", id)
	}
	var files [2]*os.File
	for i, name := range []string{stdoutLog, stderrLog} {
		f, err := os.Open(filepath.Join(st.Dir(id), name))
		if err != nil {
			return err
		}
		defer f.Close()
		files[i] = f
	}
	outs := [2]io.Writer{os.Stdout, os.Stderr}
	drain := func() {
		for i, f := range files {
			_, _ = io.Copy(outs[i], f)
		}
	}
	drain()
	for follow {
		time.Sleep(100 * time.Millisecond)
		e, err := loadEntry(st, id)
		drain()
		if err != nil || !e.live() {
			return nil
		}
	}
	return nil
}

// exactArgs wants n positional arguments.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s: %s, got %d arguments (usage: %s)", cmd.Name(), what, len(args), cmd.UseLine())
		}
		return nil
	}
}

func stopCommand() *cobra.Command {
	var timeout int
	cmd := &cobra.Command{
		Use:               "stop [-t SECONDS] NAME...",
		Short:             "Stop containers: SIGTERM, then SIGKILL after the timeout",
		Args:              minArgs(1, "want at least one container name"),
		ValidArgsFunction: completeContainers,
		RunE: func(_ *cobra.Command, args []string) error {
			if timeout < 0 {
				return usagef("stop: --time: %d is negative", timeout)
			}
			return codeErr(forEach(args, func(st *oci.Store, id string) error {
				if err := stopContainer(st, id, time.Duration(timeout)*time.Second); err != nil {
					return err
				}
				fmt.Println(id)
				return nil
			}))
		},
	}
	cmd.Flags().IntVarP(&timeout, "time", "t", 10, "seconds to wait for the container to exit before killing it")
	return cmd
}

// signalMain sends sig to the container's main process (or, for SIGKILL,
// to every process of its cgroup).
func signalMain(rec *oci.Record, sig syscall.Signal) error {
	if sig == syscall.SIGKILL {
		if cg, err := cgroupOf(rec); err == nil && cg != nil {
			if frozen, _ := cg.Frozen(); frozen {
				_ = cg.Thaw()
			}
			if err := cg.Kill(); err == nil {
				return nil
			}
		}
	}
	if rec.Main.Pid <= 1 || !rec.Main.Alive() {
		return nil // never kill(0), kill(-1) or init
	}
	return unix.Kill(rec.Main.Pid, sig)
}

// waitEnded waits until the container is no longer live (and its
// controller, if any, has recorded the end), up to d.
func waitEnded(st *oci.Store, id string, d time.Duration) (*entry, bool) {
	deadline := time.Now().Add(d)
	for {
		e, err := loadEntry(st, id)
		if err != nil {
			return nil, true // removed (--rm)
		}
		if !e.live() {
			return e, true
		}
		if time.Now().After(deadline) {
			return e, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func stopContainer(st *oci.Store, id string, timeout time.Duration) error {
	e, err := loadEntry(st, id)
	if err != nil {
		return err
	}
	if !e.live() {
		return nil
	}
	if e.status == statusPaused {
		if cg, err := cgroupOf(e.rec); err == nil && cg != nil {
			_ = cg.Thaw()
		}
	}
	if err := signalMain(e.rec, syscall.SIGTERM); err != nil {
		return fmt.Errorf("%s: %v", id, err)
	}
	if _, ok := waitEnded(st, id, timeout); ok {
		return nil
	}
	if err := signalMain(e.rec, syscall.SIGKILL); err != nil {
		return fmt.Errorf("%s: %v", id, err)
	}
	if _, ok := waitEnded(st, id, 10*time.Second); !ok {
		return fmt.Errorf("%s: still running 10s after SIGKILL", id)
	}
	return nil
}

// killCommand is docker's "kill [-s SIG] NAME..." and runc's "kill
// [--all] ID [SIG]".
func killCommand() *cobra.Command {
	return rawCommand("kill [-s SIGNAL] NAME... | kill [--all] ID [SIGNAL]",
		"Send a signal to containers (docker: SIGKILL by default; runc's form: SIGTERM)", func(args []string) int {
			fs := pflag.NewFlagSet("kill", pflag.ContinueOnError)
			fs.SetOutput(io.Discard)
			fs.Usage = func() {}
			var all bool
			var sigName string
			fs.BoolVarP(&all, "all", "a", false, "signal every process of the container (runc)")
			fs.StringVarP(&sigName, "signal", "s", "", "signal to send (docker; default KILL)")
			const usage = "[-s SIGNAL] NAME... | [--all] ID [SIGNAL]"
			pos, err := parseFlags(fs, args)
			if err != nil {
				return gopts.helpOrErr(fs, usage, err)
			}
			if len(pos) == 0 {
				return gopts.usageErr("kill", usage, "no container name")
			}
			st, err := openStore()
			if err != nil {
				return reportErr(err)
			}
			// runc's form: a signal after the id, or a container runc's
			// create made (whose callers expect runc's default, SIGTERM).
			runcForm := sigName == "" && len(pos) <= 2 && (len(pos) == 2 && isSignal(pos[1]) || loadRunInfo(st, pos[0]) == nil)
			if runcForm || all {
				return ociKill(gopts, args)
			}
			sig := syscall.SIGKILL
			if sigName != "" {
				if sig, err = parseSignal(sigName); err != nil {
					return gopts.usageErr("kill", usage, "--signal: %v", err)
				}
			}
			return forEach(pos, func(st *oci.Store, id string) error {
				e, err := loadEntry(st, id)
				if err != nil {
					return err
				}
				if e.status != statusRunning && e.status != statusPaused && e.status != statusCreated {
					return fmt.Errorf("container %s is not running", id)
				}
				if err := signalMain(e.rec, sig); err != nil {
					return fmt.Errorf("%s: %v", id, err)
				}
				fmt.Println(id)
				return nil
			})
		})
}

func isSignal(s string) bool {
	_, err := parseSignal(s)
	return err == nil
}

func rmCommand() *cobra.Command {
	var force, volumes bool
	cmd := &cobra.Command{
		Use:               "rm [-f] NAME...",
		Short:             "Remove containers and everything they hold on the host",
		Args:              minArgs(1, "want at least one container name"),
		ValidArgsFunction: completeContainers,
		RunE: func(_ *cobra.Command, args []string) error {
			return codeErr(forEach(args, func(st *oci.Store, id string) error {
				if err := removeContainer(st, id, force); err != nil {
					return err
				}
				fmt.Println(id)
				return nil
			}))
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill the container first if it runs")
	cmd.Flags().BoolVarP(&volumes, "volumes", "v", false, "accepted for docker compatibility (named volumes stay: see volume rm)")
	return cmd
}

// removeContainer removes container id: its processes (with force), its
// cgroups, network, storage and its record.
func removeContainer(st *oci.Store, id string, force bool) error {
	e, err := loadEntry(st, id)
	if err != nil {
		return err
	}
	if e.info == nil {
		// runc's create made it: runc's delete, poststop hooks included.
		args := []string{id}
		if force {
			args = []string{"--force", id}
		}
		if ociDelete(gopts, args) != 0 {
			return errReported
		}
		return nil
	}
	if e.live() {
		if !force {
			return fmt.Errorf("container %s is %s: stop it first or use rm -f", id, e.status)
		}
		_ = signalMain(e.rec, syscall.SIGKILL)
		if e.info != nil && e.info.Controller.Alive() {
			// Its controller cleans up and records the end: let it.
			waitEnded(st, id, 10*time.Second)
		}
	}
	lock, err := st.Lock(id)
	if errors.Is(err, oci.ErrNotExist) {
		return nil // removed by its controller (--rm)
	}
	if err != nil {
		return err
	}
	defer lock.Unlock()
	rec, err := st.Load(id)
	if err == nil {
		if err := gopts.destroyRecord(rec); err != nil {
			return fmt.Errorf("removing %s: %v", id, oneLine(err))
		}
	}
	return st.Remove(id)
}

// inspectDoc is what inspect prints for a container.
type inspectDoc struct {
	Name          string       `json:"name"`
	Origin        string       `json:"origin"`
	State         inspectSt    `json:"state"`
	Created       time.Time    `json:"created"`
	Command       []string     `json:"command,omitempty"`
	Bundle        string       `json:"bundle,omitempty"`
	Rootfs        string       `json:"rootfs,omitempty"`
	ControlSocket string       `json:"controlSocket,omitempty"`
	Cgroup        any          `json:"cgroup,omitempty"`
	Config        any          `json:"config"`
	Controller    *oci.Process `json:"controller,omitempty"`
}

type inspectSt struct {
	Status    string     `json:"status"`
	Running   bool       `json:"running"`
	Pid       int        `json:"pid"`
	InitPid   int        `json:"initPid"`
	ExitCode  *int       `json:"exitCode,omitempty"`
	Signal    int        `json:"signal,omitempty"`
	OOMKilled bool       `json:"oomKilled,omitempty"`
	StartedAt *time.Time `json:"startedAt,omitempty"`
	EndedAt   *time.Time `json:"endedAt,omitempty"`
}

func inspectCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "inspect NAME...",
		Short:             "Print containers' configuration and state as JSON",
		Args:              minArgs(1, "want at least one container name"),
		ValidArgsFunction: completeContainers,
		RunE: func(_ *cobra.Command, args []string) error {
			var docs []inspectDoc
			code := forEach(args, func(st *oci.Store, id string) error {
				e, err := loadEntry(st, id)
				if err != nil {
					return err
				}
				docs = append(docs, inspectOf(e))
				return nil
			})
			if docs != nil {
				if err := printJSON(docs); err != nil {
					return codeErr(reportErr(err))
				}
			}
			return codeErr(code)
		},
	}
}

func inspectOf(e *entry) inspectDoc {
	d := inspectDoc{Name: e.rec.ID, Origin: "oci", Created: e.rec.Created, Bundle: e.rec.Bundle, Rootfs: e.rec.Rootfs,
		ControlSocket: e.rec.ControlSocket, Cgroup: e.rec.CgroupState, Config: e.rec.Config}
	d.State = inspectSt{Status: e.status, Running: e.status == statusRunning}
	if e.live() {
		d.State.Pid, d.State.InitPid = e.rec.Main.Pid, e.rec.Init.Pid
	}
	if e.info != nil {
		d.Origin = "run"
		d.Command = e.info.Command
		c := e.info.Controller
		d.Controller = &c
		if !e.info.Started.IsZero() {
			d.State.StartedAt = &e.info.Started
		}
		if x := e.info.Exit; x != nil {
			code := x.Code
			d.State.ExitCode, d.State.Signal, d.State.OOMKilled, d.State.EndedAt = &code, x.Signal, x.OOMKilled, &x.At
		}
	} else if e.rec.Config != nil {
		d.Command = e.rec.Config.Process.Args
	}
	return d
}

func waitCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "wait NAME...",
		Short:             "Wait for containers to end and print their exit codes",
		Args:              minArgs(1, "want at least one container name"),
		ValidArgsFunction: completeContainers,
		RunE: func(_ *cobra.Command, args []string) error {
			return codeErr(forEach(args, func(st *oci.Store, id string) error {
				if _, err := loadEntry(st, id); err != nil {
					return err
				}
				e, _ := waitEnded(st, id, 100*365*24*time.Hour)
				switch {
				case e == nil:
					return fmt.Errorf("%s: removed before its exit code could be read (--rm)", id)
				case e.info != nil && e.info.Exit != nil:
					fmt.Println(e.info.Exit.Code)
				case e.status == statusDead:
					return fmt.Errorf("%s: its controller died: no exit code", id)
				default:
					return fmt.Errorf("%s: stopped; its exit code went to the process that created it (runc's create)", id)
				}
				return nil
			}))
		},
	}
}

func topCommand() *cobra.Command {
	return rawCommand("top NAME [PS OPTIONS]", "Show a container's processes (ps -ef, or the ps options given)", func(args []string) int {
		fs := newAliasFlags("top")
		if err := fs.Parse(args); err != nil {
			return gopts.helpOrErr(fs.FlagSet, "NAME [PS OPTIONS]", err)
		}
		pos := fs.Args()
		if len(pos) == 0 {
			return gopts.usageErr("top", "NAME [PS OPTIONS]", "no container name")
		}
		return ociPs(gopts, append([]string{pos[0], "--"}, pos[1:]...))
	})
}

func statsCommand() *cobra.Command {
	var noStream bool
	cmd := &cobra.Command{
		Use:               "stats [--no-stream] [NAME...]",
		Short:             "A live table of containers' CPU, memory and pids use",
		ValidArgsFunction: completeContainers,
		RunE: func(_ *cobra.Command, args []string) error {
			return codeErr(showStats(args, noStream))
		},
	}
	cmd.Flags().BoolVar(&noStream, "no-stream", false, "print one table and exit")
	return cmd
}

type statSample struct {
	at  time.Time
	cpu time.Duration
}

func showStats(names []string, noStream bool) int {
	st, err := openStore()
	if err != nil {
		return reportErr(err)
	}
	prev := map[string]statSample{}
	sample := func() ([]*entry, map[string]*cgroups.Stats) {
		var list []*entry
		if len(names) == 0 {
			all, _ := listEntries(st)
			for _, e := range all {
				if e.live() {
					list = append(list, e)
				}
			}
		} else {
			for _, n := range names {
				if e, err := loadEntry(st, n); err == nil {
					list = append(list, e)
				} else {
					stderrf("vessel: %v", err)
				}
			}
		}
		stats := map[string]*cgroups.Stats{}
		for _, e := range list {
			if cg, err := cgroupOf(e.rec); err == nil && cg != nil {
				if s, err := cg.Stats(); err == nil {
					stats[e.rec.ID] = s
				}
			}
		}
		return list, stats
	}
	_, first := sample()
	now := time.Now()
	for id, s := range first {
		prev[id] = statSample{now, s.CPU.Total}
	}
	time.Sleep(500 * time.Millisecond)
	for {
		list, stats := sample()
		now := time.Now()
		if !noStream {
			fmt.Print("\033[2J\033[H")
		}
		w := tabwriter.NewWriter(os.Stdout, 8, 1, 3, ' ', 0)
		fmt.Fprint(w, "NAME\tCPU %\tMEM USAGE / LIMIT\tMEM %\tBLOCK I/O\tPIDS\n")
		for _, e := range list {
			s, ok := stats[e.rec.ID]
			if !ok {
				fmt.Fprintf(w, "%s\t--\t-- / --\t--\t--\t--\n", e.rec.ID)
				continue
			}
			cpu := 0.0
			if p, ok := prev[e.rec.ID]; ok && now.After(p.at) {
				cpu = 100 * float64(s.CPU.Total-p.cpu) / float64(now.Sub(p.at))
			}
			prev[e.rec.ID] = statSample{now, s.CPU.Total}
			limit, memPct := "unlimited", "--"
			if s.Memory.Limit > 0 && s.Memory.Limit < 1<<62 {
				limit = humanBytes(s.Memory.Limit)
				memPct = fmt.Sprintf("%.2f%%", 100*float64(s.Memory.Current)/float64(s.Memory.Limit))
			}
			fmt.Fprintf(w, "%s\t%.2f%%\t%s / %s\t%s\t%s / %s\t%d\n", e.rec.ID, cpu, humanBytes(s.Memory.Current), limit, memPct,
				humanBytes(s.IO.ReadBytes), humanBytes(s.IO.WriteBytes), s.Pids.Current)
		}
		w.Flush()
		if noStream {
			return 0
		}
		time.Sleep(time.Second)
	}
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func systemCommand() *cobra.Command {
	sys := &cobra.Command{Use: "system", Short: "Manage the store as a whole"}
	var force bool
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Remove every container that no longer runs, and the prepared storage of those gone",
		Args:  noArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			return codeErr(systemPrune())
		},
	}
	prune.Flags().BoolVarP(&force, "force", "f", false, "do not ask (vessel never asks)")
	sys.AddCommand(prune)
	return sys
}

// recordGrace is how old a state directory without a record must be for
// prune to take it for one a crash left (younger, its creator may be
// between making it and locking it).
const recordGrace = 2 * time.Second

// systemPrune removes the containers that no longer run (exited, dead,
// stopped OCI ones, records a crash left half-written), then storage that
// no live container uses.
func systemPrune() int {
	st, err := openStore()
	if err != nil {
		return reportErr(err)
	}
	ids, err := st.List()
	if err != nil {
		return reportErr(err)
	}
	code := 0
	for _, id := range ids {
		e, err := loadEntry(st, id)
		if err == nil && e.live() {
			continue
		}
		lock, err := st.Lock(id)
		if err != nil {
			continue
		}
		rec, lerr := st.Load(id)
		if lerr == nil {
			info := loadRunInfo(st, id)
			if (&entry{rec: rec, info: info, status: statusOfEntry(rec, info)}).live() {
				lock.Unlock()
				continue
			}
			if err := gopts.destroyRecord(rec); err != nil {
				stderrf("vessel: %s: %v", id, oneLine(err))
				code = 1
				lock.Unlock()
				continue
			}
		} else if time.Since(dirTime(st.Dir(id))) < recordGrace {
			lock.Unlock() // being created right now
			continue
		}
		if err := st.Remove(id); err != nil {
			stderrf("vessel: %v", err)
			code = 1
		} else {
			fmt.Println(id)
		}
		lock.Unlock()
	}
	if released, err := storage.ReleaseStale(""); err != nil {
		stderrf("vessel: storage: %v", err)
		code = 1
	} else {
		for _, r := range released {
			fmt.Printf("storage %s\n", r)
		}
	}
	return code
}

func dirTime(p string) time.Time {
	fi, err := os.Stat(p)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}
