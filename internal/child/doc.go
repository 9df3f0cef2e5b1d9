// Package child is the code that runs inside a container's processes: the
// container's init (which finishes the namespaces, builds the root
// filesystem, starts the main process and every Exec, reaps, forwards
// signals and serves the control sockets), the exec stage (which applies
// one process's settings and execve()s it) and the idle PID 1 of pooled
// containers (which only reaps: a raw fork of the init that executes
// nothing, rawchild.go, so that a dynamically linked host program never
// has to start again inside the container's root).
//
// The init stays outside the workload: in its starter's pid namespace and
// cgroups. The main process is PID 1 of a pid namespace the init unshares
// for it; each process the init starts (spawn.go: its own fork, raw
// system calls up to execve) joins the container's cgroup before it runs
// anything, from files the parent opened (workload.go).
//
// A container child is the host program re-executed, as the interpreter
// of a shim (internal/selfexe, exeguard.go), so that no process the init
// forks has the program as its /proc/self/exe. The package runs
// the child from its own initialisation, before most of the packages the
// child does not need have been initialised (Go initialises, among the
// packages whose imports are done, the first by import path, so a few
// that sort before this one still come first), and never returns there;
// in any other process its initialisation does nothing. An init started
// ahead of its container (argv[0] SpareArg0, vessel.Spares) moves its
// control socket into its network namespace, brings its loopback up when
// argv[1] is SpareLoopback, says when it is ready and then waits for its
// config like any other; the main process's stdio then come with the
// config (Config.Stdio).
//
// It must not import the packages only the host side needs (network,
// cgroups, checkpoint, the OCI and image code), and must not grow
// package-level state that costs time to initialise: every package it
// imports is initialised in every container start.
package child
