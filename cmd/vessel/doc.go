// Command vessel is the command-line face of the vessel library.
//
//	vessel run [flags] -- CMD ARGS...
//
// runs CMD in a new container whose root filesystem is, by default, the
// host's own files read-only. The exit code is the container's own, 128+N
// when a signal N killed it, and 125 when vessel itself failed (with a
// one-line reason on stderr).
//
// It also speaks runc's command line (spec, create, start, run ID, state,
// kill, delete, exec, ps, list, pause, resume, update, events, features,
// with --root, --log, --log-format and --systemd-cgroup), so podman,
// containerd and Kubernetes can use it as their OCI runtime; has
// checkpoint, restore, migrate and receive verbs over CRIU; and bench,
// which times vessel against runc and bubblewrap on this machine, next to
// a floor: what this command takes to start a program chrooted in new
// namespaces with nothing else.
//
// This command must stay a thin layer: every behaviour it offers lives in
// the library, where Go programs can use it too.
package main
