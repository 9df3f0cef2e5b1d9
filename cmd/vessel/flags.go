package main

// Flag plumbing shared by every verb: the global flags, repeatable flags,
// runc's single-dash long flags, and one-line flag errors with a
// suggestion.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/agnivade/levenshtein"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/openvessel/vessel/oci"
)

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// Type names the value in help ("strings", as pflag's own lists).
func (l *listFlag) Type() string { return "strings" }

// choiceFlag is a string that must be one of a few words.
type choiceFlag struct {
	p     *string
	words []string
}

func (c choiceFlag) String() string { return *c.p }
func (c choiceFlag) Type() string   { return strings.Join(c.words, "|") }
func (c choiceFlag) Set(s string) error {
	for _, w := range c.words {
		if s == w {
			*c.p = s
			return nil
		}
	}
	return fmt.Errorf("want %s", strings.Join(c.words, " or "))
}

var (
	globalOnce sync.Once
	globalSet  *pflag.FlagSet
)

// globalFlags are runc's global flags, bound to gopts. The one set is
// added to the root command (persistent) and to each runc verb's own set.
func globalFlags() *pflag.FlagSet {
	globalOnce.Do(func() {
		fs := pflag.NewFlagSet("global", pflag.ContinueOnError)
		g := gopts
		fs.StringVar(&g.root, "root", g.root, "directory of the store of containers")
		fs.StringVar(&g.logFile, "log", "", "file to write the log to (errors also go to stderr)")
		fs.Var(choiceFlag{&g.logFormat, []string{"text", "json"}}, "log-format", "log format")
		fs.BoolVar(&g.debug, "debug", false, "log debugging information")
		fs.BoolVar(&g.systemdCgroup, "systemd-cgroup", false, "read linux.cgroupsPath as systemd's slice:prefix:name")
		var criu, rootless string
		fs.StringVar(&criu, "criu", "", "accepted for runc compatibility")
		fs.StringVar(&rootless, "rootless", "", "accepted for runc compatibility")
		_ = fs.MarkHidden("criu")
		_ = fs.MarkHidden("rootless")
		globalSet = fs
	})
	return globalSet
}

// addGlobals adds runc's global flags to a verb's own flag set (cobra
// hands a runc verb the global flags typed before it), but for names the
// verb has flags of its own with (spec's --rootless).
func addGlobals(fs *pflag.FlagSet) {
	globalFlags().VisitAll(func(f *pflag.Flag) {
		if fs.Lookup(f.Name) == nil {
			fs.AddFlag(f)
		}
	})
}

// singleDashLong rewrites runc's Go-style "-bundle" into "--bundle" for
// the long flags of fs (callers of runc may spell flags either way), and
// leaves shorthands ("-d", "-dit") alone.
func singleDashLong(fs *pflag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if len(name) > 1 && fs.Lookup(name) != nil {
				a = "-" + a
			}
		}
		out = append(out, a)
	}
	return out
}

// flagError is cobra's flag error function: one line naming the command,
// the flag and the reason, with a suggestion for an unknown flag.
func flagError(cmd *cobra.Command, err error) error {
	return usagef("%s: %v%s", cmd.Name(), err, suggestFlag(cmd.Flags(), err))
}

// suggestFlag proposes the nearest flag name of fs for an unknown flag.
func suggestFlag(fs *pflag.FlagSet, err error) string {
	msg := err.Error()
	var name string
	switch {
	case strings.HasPrefix(msg, "unknown flag: --"):
		name = strings.TrimPrefix(msg, "unknown flag: --")
	case strings.HasPrefix(msg, "unknown shorthand flag: "):
		// "unknown shorthand flag: 'r' in -rm": a long flag typed with one dash?
		if _, word, ok := strings.Cut(msg, " in -"); ok {
			name = word
		}
	default:
		return ""
	}
	name, _, _ = strings.Cut(name, "=")
	best, bestD := "", 3
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		d := levenshtein.ComputeDistance(name, f.Name)
		if strings.HasPrefix(f.Name, name) && len(name) >= 3 {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = f.Name, d
		}
	})
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean --%s?)", best)
}

// completeContainers completes a container name from the store.
func completeContainers(_ *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
	st, err := oci.NewStore(gopts.root)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ids, _ := st.List()
	var out []string
	for _, id := range ids {
		if strings.HasPrefix(id, prefix) {
			out = append(out, id)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// stderrf prints one line on stderr.
func stderrf(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }

// ckptFlagSet is the checkpoint verbs' flag set (the standard package's,
// kept for now): quiet, its errors reported by ckptFlagErr.
func ckptFlagSet(verb string) *flag.FlagSet {
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// ckptFlagErr reports a checkpoint verb's flag error on one line, exit
// 125, or prints its flags for -h.
func ckptFlagErr(fs *flag.FlagSet, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(os.Stdout)
		fmt.Printf("usage: vessel %s [flags] (see the README's checkpoint section)\n\nflags:\n", fs.Name())
		fs.PrintDefaults()
		return 0
	}
	return fail("%s: %v", fs.Name(), err)
}
