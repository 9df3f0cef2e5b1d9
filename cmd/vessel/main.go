package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/oci"
)

// exitVessel is the exit code for vessel's own errors, usage errors
// included (as docker and podman).
const exitVessel = 125

func main() {
	vessel.Init()
	for _, a := range os.Args[1:] {
		if a == "run" || a == "create" {
			// The container's record is saved early in these: build its
			// JSON encoders on another CPU meanwhile.
			go oci.WarmEncoding()
			break
		}
	}
	os.Exit(execute(os.Args[1:]))
}

// Version is the vessel version, set at build time with -ldflags.
var Version = "0.1.0-dev"

// gopts are the global flags (runc's --root, --log, ...), shared by every
// verb: the docker-like verbs get them from cobra, the runc verbs, which
// parse their own flags, from their flag sets (newAliasFlags adds them).
var gopts = &globalOpts{root: defaultRoot(), logFormat: "text"}

// defaultRoot is the store of containers: /run/vessel for root, else
// $XDG_RUNTIME_DIR/vessel (as podman keeps a rootless user's state, and
// runc /run/user/UID/runc); see oci.UserRoot.
func defaultRoot() string { return oci.UserRoot() }

// exitCode is an error that carries a verb's exit code (already reported).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// codeErr turns a verb's exit code into RunE's error.
func codeErr(code int) error {
	if code == 0 {
		return nil
	}
	return exitCode(code)
}

// usageError is a command-line mistake: reported as one line, exit 125.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// execute runs the command line and returns the exit code.
func execute(args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	var ec exitCode
	if errors.As(err, &ec) {
		return int(ec)
	}
	fmt.Fprintf(os.Stderr, "vessel: %s\n", usageLine(root, cmd, err))
	return exitVessel
}

// usageLine puts an error of the command line on one line, with a
// suggestion for an unknown verb or flag.
func usageLine(root, cmd *cobra.Command, err error) string {
	msg := err.Error()
	var ue *usageError
	if errors.As(err, &ue) {
		return ue.msg
	}
	if name, ok := strings.CutPrefix(msg, "unknown command "); ok {
		name, _, _ = strings.Cut(name, " for ")
		name = strings.Trim(name, `"`)
		line := fmt.Sprintf("%q is not a vessel command", name)
		if s := root.SuggestionsFor(name); len(s) > 0 {
			line += fmt.Sprintf(" (did you mean %q?)", s[0])
		}
		return line + "; see 'vessel --help'"
	}
	return strings.ReplaceAll(strings.TrimSpace(msg), "\n", "; ")
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "vessel",
		Short: "Run Linux containers: docker's command line, runc's OCI verbs, one store of containers",
		Long: `vessel runs commands in Linux containers.

Docker-like verbs (run, ps, exec, logs, stop, kill, rm, inspect, stats, top,
wait, volume, image, system) work on every container of the store, whoever
started it; runc's verbs (spec, create, start, state, kill, delete, exec, ps
ID, list, pause, resume, update, events, features) make vessel an OCI runtime
for podman, containerd and Kubernetes.`,
		Version:            Version,
		SilenceErrors:      true,
		SilenceUsage:       true,
		DisableSuggestions: true,
		CompletionOptions:  cobra.CompletionOptions{HiddenDefaultCmd: false},
	}
	root.SuggestionsMinimumDistance = 2
	root.SetVersionTemplate(versionText())
	root.SetFlagErrorFunc(flagError)
	root.PersistentFlags().AddFlagSet(globalFlags())
	root.AddCommand(runCommand())
	root.AddCommand(dockerCommands()...)
	root.AddCommand(ociCommands()...)
	root.AddCommand(otherCommands()...)
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  noArgs,
		Run:   func(*cobra.Command, []string) { fmt.Print(versionText()) },
	})
	return root
}

// noArgs refuses positional arguments with a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s: unexpected argument %q", cmd.Name(), args[0])
	}
	return nil
}

// minArgs wants at least n positional arguments, named what.
func minArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usagef("%s: %s (usage: %s)", cmd.Name(), what, cmd.UseLine())
		}
		return nil
	}
}

// rawCommand is a verb that parses its own flags (the runc verbs and the
// checkpoint verbs): cobra hands it the arguments as they were typed.
func rawCommand(use, short string, run func(args []string) int) *cobra.Command {
	return &cobra.Command{
		Use:                use,
		Short:              short,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			return codeErr(run(args))
		},
		ValidArgsFunction: func(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
			// Flags are the verb's own here: only --root matters.
			fs := pflag.NewFlagSet(use, pflag.ContinueOnError)
			fs.SetOutput(io.Discard)
			fs.ParseErrorsAllowlist.UnknownFlags = true
			addGlobals(fs)
			_ = fs.Parse(args)
			return completeContainers(cmd, args, prefix)
		},
	}
}

// otherCommands are the checkpoint and benchmark verbs.
func otherCommands() []*cobra.Command {
	return []*cobra.Command{
		rawCommand("checkpoint --dir D [--after 10s] [--leave-running] -- CMD... | checkpoint --image-path DIR ID", "Run CMD and checkpoint it with CRIU; without --dir, runc's checkpoint of container ID", checkpointVerb),
		rawCommand("restore --dir D [--rootfs R] [--name ID] | restore --image-path DIR --bundle B [--detach] ID", "Restore a checkpointed container and wait for it; without --dir, runc's restore", restoreVerb),
		rawCommand("migrate --to HOST:PORT [--after 10s] [--pre-dumps N] -- CMD...", "Run CMD and live-migrate it to a receiver", withoutGlobals(cmdMigrate)),
		rawCommand("receive --listen ADDR --dir D [--rootfs R]", "Receive a migrating container and run it", withoutGlobals(cmdReceive)),
		benchCommand(),
	}
}

// withoutGlobals hands a verb that knows no global flags its arguments
// without the global flags typed before it (cobra passes those on to
// verbs that parse their own flags).
func withoutGlobals(run func([]string) int) func([]string) int {
	return func(args []string) int {
		for len(args) > 0 && strings.HasPrefix(args[0], "--") {
			name, val, hasVal := strings.Cut(args[0][2:], "=")
			f := globalFlags().Lookup(name)
			if f == nil {
				break
			}
			n := 1
			switch {
			case hasVal:
			case f.NoOptDefVal != "":
				val = f.NoOptDefVal
			case len(args) > 1:
				val, n = args[1], 2
			default:
				return fail("--%s: needs a value", name)
			}
			if err := f.Value.Set(val); err != nil {
				return fail("--%s: %v", name, err)
			}
			args = args[n:]
		}
		return run(args)
	}
}

func fail(format string, a ...any) int {
	fmt.Fprintf(os.Stderr, "vessel: "+format+"\n", a...)
	return exitVessel
}
