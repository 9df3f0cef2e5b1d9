package main

// The runc-compatible command line: global flags, logging, error
// reporting and flag parsing shared by the OCI verbs.

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/openvessel/vessel/oci"
)

// globalOpts are the flags given before the verb, as runc takes them.
type globalOpts struct {
	root          string
	logFile       string
	logFormat     string
	systemdCgroup bool
	debug         bool
	// set records that any global flag was given (the OCI command line is
	// then meant, also for "run").
	set bool
	log *cliLog
}

// parseGlobal takes the global flags off the front of args. It stops at the
// first argument that is not one of them (the verb, or --version/--help).
func parseGlobal(args []string) (*globalOpts, []string, error) {
	g := &globalOpts{root: oci.DefaultRoot, logFormat: "text"}
	for len(args) > 0 {
		a := args[0]
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			break
		}
		takesValue := map[string]bool{"root": true, "log": true, "log-format": true, "criu": true, "rootless": true}
		boolean := map[string]bool{"systemd-cgroup": true, "debug": true}
		switch {
		case takesValue[name]:
			if !hasVal {
				if len(args) < 2 {
					return nil, nil, fmt.Errorf("flag --%s needs a value", name)
				}
				val, args = args[1], args[1:]
			}
			switch name {
			case "root":
				g.root = val
			case "log":
				g.logFile = val
			case "log-format":
				if val != "text" && val != "json" {
					return nil, nil, fmt.Errorf("--log-format: %q is neither text nor json", val)
				}
				g.logFormat = val
			}
			// --criu and --rootless are accepted for compatibility.
		case boolean[name]:
			on := !hasVal || val == "true" || val == "1"
			if name == "debug" {
				g.debug = on
			} else {
				g.systemdCgroup = on
			}
		default:
			return g, args, nil
		}
		g.set = true
		args = args[1:]
	}
	return g, args, nil
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

// usageErr is a command-line mistake (runc exits 1 for those too).
func (g *globalOpts) usageErr(verb, usage, format string, a ...any) int {
	return g.errorf("%s: %s (usage: vessel %s %s)", verb, fmt.Sprintf(format, a...), verb, usage)
}

// ociVerbs are the runc verbs this file set serves.
var ociVerbs = map[string]func(*globalOpts, []string) int{
	"spec":     ociSpec,
	"create":   ociCreate,
	"start":    ociStart,
	"state":    ociState,
	"kill":     ociKill,
	"delete":   ociDelete,
	"exec":     ociExec,
	"ps":       ociPs,
	"list":     ociList,
	"pause":    ociPause,
	"resume":   ociResume,
	"update":   ociUpdate,
	"events":   ociEvents,
	"features": ociFeatures,

	"beancounters": ociBeancounters,
}

// ociDispatch runs a runc verb.
func ociDispatch(g *globalOpts, verb string, args []string) int {
	f, ok := ociVerbs[verb]
	if !ok {
		return g.errorf("vessel: %q is not a command", verb)
	}
	return f(g, args)
}

// isOCIRun tells runc's "run ID --bundle DIR" from vessel's own
// "run [flags] -- CMD": global flags before the verb, a runc-only flag
// among the leading flags, or a single argument in a bundle directory.
func isOCIRun(g *globalOpts, args []string) bool {
	if g.set {
		return true
	}
	for _, a := range args {
		if a == "--" || !strings.HasPrefix(a, "-") {
			break
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch name {
		case "b", "bundle", "d", "detach", "pid-file", "console-socket", "preserve-fds", "no-pivot", "no-new-keyring", "keep", "no-subreaper":
			return true
		}
	}
	if len(args) == 1 && !strings.HasPrefix(args[0], "-") {
		if _, err := os.Stat(oci.ConfigFile); err == nil {
			return true
		}
	}
	return false
}

// parseFlags parses flags that may come before and after the positional
// arguments (runc's "delete ID --force" and "delete --force ID" both
// work); "--" ends the flags. It returns the positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// newFlags makes a quiet flag set for verb (errors are reported once, by
// the caller).
func newFlags(verb string) *flag.FlagSet {
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// helpOrErr turns a parse error into the verb's exit code.
func (g *globalOpts) helpOrErr(fs *flag.FlagSet, usage string, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stdout, "usage: vessel %s %s\n\nflags:\n", fs.Name(), usage)
		fs.SetOutput(os.Stdout)
		fs.PrintDefaults()
		return 0
	}
	return g.usageErr(fs.Name(), usage, "%v", err)
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
func (g *globalOpts) parseOneID(fs *flag.FlagSet, verb, usage string, args []string) (id string, code int, ok bool) {
	pos, err := parseFlags(fs, args)
	if err != nil {
		return "", g.helpOrErr(fs, usage, err), false
	}
	return g.oneID(verb, usage, pos)
}
