// Command vessel is the command-line face of the vessel library.
//
//	vessel run [flags] CMD ARGS...
//
// runs CMD in a new container whose root filesystem is, by default, the
// host's own files read-only, with docker's flags (-it, -d, --rm, -e, -v,
// -p, --network, ...). The exit code is the container's own, 128+N when a
// signal N killed it, and 125 when vessel itself failed or the command
// line is wrong (with a one-line reason on stderr).
//
// Containers live in one store (/run/vessel, or $XDG_RUNTIME_DIR/vessel):
// docker's verbs (ps, exec, logs, stop, kill, rm, inspect, stats, top,
// wait, system prune, volume, image) act on every container of it, those
// `vessel run` started and those runc's verbs created. vessel also speaks
// runc's command line (spec, create, start, run ID, state, kill, delete,
// exec, ps ID, list, pause, resume, update, events, features, with --root,
// --log, --log-format and --systemd-cgroup), so podman, containerd and
// Kubernetes can use it as their OCI runtime; has checkpoint, restore,
// migrate and receive verbs over CRIU; and bench, which times vessel
// against runc and bubblewrap on this machine, next to a floor: what this
// command takes to start a program chrooted in new namespaces with nothing
// else.
//
// Verbs are spf13/cobra commands and flags spf13/pflag flags; runc's verbs
// parse their own flags, under runc's names, so that engines find them.
//
// This command must stay a thin layer: every behaviour it offers lives in
// the library, where Go programs can use it too.
package main
