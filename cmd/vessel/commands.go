package main

// The verbs as cobra commands.

import (
	"github.com/spf13/cobra"
)

// ociCommands are runc's verbs: each parses its own flags as runc names
// them (so that podman, containerd and conmon find what they expect).
func ociCommands() []*cobra.Command {
	verbs := []struct {
		use, short string
		run        func(*globalOpts, []string) int
	}{
		{"spec [--bundle DIR] [--rootless]", "Write a default OCI config.json (runc)", ociSpec},
		{"create [--bundle DIR] [--pid-file FILE] [--console-socket SOCK] ID", "Create a container from an OCI bundle (runc)", ociCreate},
		{"start ID", "Start a created container (runc)", ociStart},
		{"state ID", "Print a container's OCI state as JSON (runc)", ociState},
		{"delete [--force] ID", "Delete a container (runc; also see rm)", ociDelete},
		{"list [--format table|json] [--quiet]", "List the containers as runc does (also see ps)", ociList},
		{"pause ID", "Freeze every process of a container", ociPause},
		{"resume ID", "Thaw a paused container", ociResume},
		{"update [flags] ID", "Change a running container's resource limits (runc)", ociUpdate},
		{"events [--stats] [--interval D] ID", "Print a container's statistics and OOM events as JSON (runc)", ociEvents},
		{"features", "Print what this runtime supports as JSON (runc)", ociFeatures},
		{"beancounters [--json] ID", "A running container's finite resources: held, maxheld, limit, failcnt (OpenVZ's table)", ociBeancounters},
		{"exec [flags] ID CMD [ARGS...]", "Run a process in a running container (runc's and docker's flags: -it, -e, -u, -w, -d)", ociExec},
		{"beancounters [--json] ID", "Print a running container's finite resources: held, maxheld, limit, failcnt (OpenVZ's table)", ociBeancounters},
	}
	var out []*cobra.Command
	for _, v := range verbs {
		c := rawCommand(v.use, v.short, func(args []string) int { return v.run(gopts, args) })
		if c.Name() == "resume" {
			c.Aliases = []string{"unpause"} // docker's name
		}
		out = append(out, c)
	}
	return out
}
