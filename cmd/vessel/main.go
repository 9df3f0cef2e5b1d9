package main

import (
	"fmt"
	"os"

	"github.com/openvessel/vessel"
)

// exitVessel is the exit code for vessel's own errors (as docker and runc).
const exitVessel = 125

func main() {
	vessel.Init()
	os.Exit(dispatch(os.Args[1:]))
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: vessel COMMAND [flags]

commands:
  run [flags] -- CMD ARGS...   run a command in a new container
  run|create ID --bundle DIR   OCI runtime (runc's command line): also spec,
                               start, state, kill, delete, exec, ps, list,
                               pause, resume, update, events, features; global
                               flags --root, --log, --log-format, --systemd-cgroup
  checkpoint|restore|migrate|receive
                               CRIU checkpoint, restore and live migration of a
                               container this command runs (see -h of each)
  bench [-n N] [-scenario start|exec|all]
                               start and exec times against runc, bubblewrap
                               and a floor (bench floor ROOT CMD...: CMD
                               chrooted in new namespaces, nothing else)
  beancounters [--json] ID     a running container's finite resources: held,
                               maxheld, limit, failcnt (OpenVZ's table)
  version                      print the version

Run 'vessel COMMAND -h' for a command's flags.
`)
}

// Version is the vessel version, set at build time with -ldflags.
var Version = "0.1.0-dev"

func dispatch(args []string) int {
	g, args, err := parseGlobal(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vessel: %v\n", err)
		return 1
	}
	if len(args) == 0 {
		usage()
		return 2
	}
	switch args[0] {
	case "run":
		if isOCIRun(g, args[1:]) {
			return ociRun(g, args[1:])
		}
		return cmdRun(args[1:])
	case "spec", "create", "start", "state", "kill", "delete", "exec", "ps", "list",
		"pause", "resume", "update", "events", "features", "beancounters":
		return ociDispatch(g, args[0], args[1:])
	case "checkpoint", "restore", "migrate", "receive":
		return map[string]func([]string) int{"checkpoint": cmdCheckpoint, "restore": cmdRestore,
			"migrate": cmdMigrate, "receive": cmdReceive}[args[0]](args[1:])
	case "bench":
		return cmdBench(args[1:])
	case "version", "--version", "-v":
		fmt.Printf("vessel version %s\n", Version)
		return 0
	case "help", "-h", "--help":
		usage()
		return 0
	}
	fmt.Fprintf(os.Stderr, "vessel: unknown command %q\n", args[0])
	usage()
	return 2
}

func fail(format string, a ...any) int {
	fmt.Fprintf(os.Stderr, "vessel: "+format+"\n", a...)
	return exitVessel
}
