// Package vessel runs processes inside Linux containers configured in Go
// code: namespaces, a private root filesystem, resource limits, networking
// and a locked-down security profile, with an API shaped like os/exec.
//
// A program that uses vessel calls Init first thing in main. vessel starts a
// container by re-executing the program itself (/proc/self/exe, through a
// read-only bind mount or a sealed memfd made once per program, so no
// container can ever write to it) in new namespaces. That child runs as
// the container (package internal/child) while the program's packages are
// being initialised, before main, and never returns; Init in main returns
// at once.
//
//	func main() {
//		vessel.Init()
//		cfg := vessel.NewConfig().WithRootfs(rootfs.Host()).WithHostname("job")
//		c, err := vessel.New("job", cfg)
//		...
//		err = c.Run(ctx, "/bin/sh", "-c", "echo hello")
//		c.Destroy()
//	}
//
// Inside every container a small init stays as PID 1 (the same binary,
// made non-dumpable): it reaps zombies, forwards signals, reports exits and
// starts the processes that Exec asks for (with a plain fork+exec when it
// can carry the container's profile itself, see internal/child/direct.go),
// so Exec works in any namespace combination, a user namespace included, without cgo or setns.
//
// Programs that start many containers can keep inits started ahead of time
// (Spares: each container still gets fresh namespaces of its own) or reuse
// warm containers for short jobs (Pool).
//
// The root package composes the subpackages (namespaces, rootfs, ...); none
// of them imports it. It must not be imported by them, and it must not
// leave anything behind on the host when a container is destroyed or fails
// to start.
package vessel
