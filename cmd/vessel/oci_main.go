package main

// The runc-compatible command line: global flags, logging, error
// reporting and flag parsing shared by the OCI verbs.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/spf13/pflag"

	"github.com/openvessel/vessel/oci"
)

// globalOpts are the flags given before the verb, as runc takes them.
type globalOpts struct {
	root          string
	logFile       string
	logFormat     string
	systemdCgroup bool
	debug         bool
	log           *cliLog
}

// cliLog writes the command's log: to --log (text or JSON lines), and
// errors also to stderr, as runc does.
type cliLog struct {
	w     io.Writer
	json  bool
	debug bool
}

func (g *globalOpts) logger() *cliLog {
	if g.log != nil {
		return g.log
	}
	l := &cliLog{json: g.logFormat == "json", debug: g.debug}
	if g.logFile != "" && g.logFile != "/dev/stderr" {
		f, err := os.OpenFile(g.logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err == nil {
			l.w = f
		} else {
			fmt.Fprintf(os.Stderr, "vessel: --log %s: %v\n", g.logFile, err)
		}
	}
	g.log = l
	return l
}

func (l *cliLog) write(level, msg string) {
	if l.w == nil {
		if level != "error" {
			fmt.Fprintf(os.Stderr, "vessel: %s: %s\n", level, msg)
		}
		return
	}
	now := time.Now().Format(time.RFC3339Nano)
	if l.json {
		b, _ := json.Marshal(struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Time  string `json:"time"`
		}{level, msg, now})
		fmt.Fprintf(l.w, "%s\n", b)
		return
	}
	fmt.Fprintf(l.w, "time=%q level=%s msg=%q\n", now, level, msg)
}

func (l *cliLog) debugf(format string, a ...any) {
	if l.debug {
		l.write("debug", fmt.Sprintf(format, a...))
	}
}

func (l *cliLog) warnf(format string, a ...any) { l.write("warning", fmt.Sprintf(format, a...)) }

// errorf reports a failure and returns runc's exit code for it, 1.
func (g *globalOpts) errorf(format string, a ...any) int {
	msg := fmt.Sprintf(format, a...)
	g.logger().write("error", msg)
	fmt.Fprintln(os.Stderr, msg)
	return 1
}

// usageErr is a command-line mistake: one line, exit 125 (as every
// usage error of vessel's).
func (g *globalOpts) usageErr(verb, usage, format string, a ...any) int {
	g.errorf("%s: %s (usage: vessel %s %s)", verb, fmt.Sprintf(format, a...), verb, usage)
	return exitVessel
}

// ociOnlyRunFlags are flags of runc's run that docker's run has not.
var ociOnlyRunFlags = []string{"bundle", "pid-file", "console-socket", "preserve-fds", "no-pivot", "no-new-keyring", "keep", "no-subreaper"}

// isOCIRun tells runc's "run [--bundle DIR] ID" from vessel's own "run
// [flags] CMD ARGS...", once fs has parsed the flags: a runc-only flag was
// given, or the one argument names no program and the current directory
// is a bundle (runc's "run ID" there) while no flag of docker's was given.
func isOCIRun(fs *pflag.FlagSet, args []string) bool {
	for _, n := range ociOnlyRunFlags {
		if fs.Changed(n) {
			return true
		}
	}
	if len(args) != 1 {
		return false
	}
	if _, err := os.Stat(oci.ConfigFile); err != nil {
		return false
	}
	if _, err := exec.LookPath(args[0]); err == nil {
		return false
	}
	docker := false
	fs.Visit(func(f *pflag.Flag) {
		if f.Name != "detach" && globalFlags().Lookup(f.Name) == nil {
			docker = true
		}
	})
	return !docker
}

// parseFlags parses flags that may come before and after the positional
// arguments (runc's "delete ID --force" and "delete --force ID" both
// work); "--" ends the flags. It returns the positional arguments.
func parseFlags(fs *pflag.FlagSet, args []string) ([]string, error) {
	fs.SetInterspersed(true)
	addGlobals(fs)
	if err := fs.Parse(singleDashLong(fs, args)); err != nil {
		return nil, err
	}
	return fs.Args(), nil
}

// newFlags makes a quiet flag set for verb (errors are reported once, by
// the caller). Parsing adds runc's global flags (addGlobals).
func newFlags(verb string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(verb, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// helpOrErr turns a parse error into the verb's exit code.
func (g *globalOpts) helpOrErr(fs *pflag.FlagSet, usage string, err error) int {
	if errors.Is(err, pflag.ErrHelp) {
		fmt.Fprintf(os.Stdout, "usage: vessel %s %s\n\nflags:\n%s", fs.Name(), usage, fs.FlagUsages())
		return 0
	}
	return g.usageErr(fs.Name(), usage, "%v%s", err, suggestFlag(fs, err))
}

// oneID checks that exactly one container id was given.
func (g *globalOpts) oneID(verb, usage string, pos []string) (string, int, bool) {
	if len(pos) != 1 {
		return "", g.usageErr(verb, usage, "want exactly one container id, got %d arguments", len(pos)), false
	}
	return pos[0], 0, true
}

func (g *globalOpts) store() (*oci.Store, error) { return oci.NewStore(g.root) }

// parseOneID parses a verb's flags and its single container ID; on
// failure it has reported why and code is the exit code.
func (g *globalOpts) parseOneID(fs *pflag.FlagSet, verb, usage string, args []string) (id string, code int, ok bool) {
	pos, err := parseFlags(fs, args)
	if err != nil {
		return "", g.helpOrErr(fs, usage, err), false
	}
	return g.oneID(verb, usage, pos)
}
