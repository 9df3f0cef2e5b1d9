// Package security describes and applies the privilege limits of a container
// process: capability sets, securebits, no_new_privs, a seccomp filter
// (compiled to classic BPF in pure Go, no libseccomp) and a Landlock ruleset.
//
// The work is split in two halves so that the expensive part runs once, in the
// parent, and the part inside the container is a short list of system calls:
//
//   - Parent side (any goroutine, before the container starts): build a
//     [Profile] (or use [DefaultProfile] / [Privileged]), then call
//     [Profile.Prepare]. Prepare validates every field, resolves capability
//     names to bit masks and compiles the seccomp profile to BPF. The
//     resulting [Prepared] value is plain data and is meant to be sent to the
//     container child as JSON.
//
//   - Child side (inside the container, on the goroutine that called
//     runtime.LockOSThread and will call syscall.Exec next): call [Apply]
//     with the [Prepared] value and the target [Credential]. Apply changes
//     the credentials of the calling thread in the only safe order (see its
//     documentation) and loads the seccomp filter last. [ApplyToThread] is
//     the same for a supervisor thread that keeps its uid and gid and
//     starts processes by fork+exec; [Program.AllowsAll] (a BPF evaluator)
//     tells whether a filter lets such a thread make the calls it needs.
//
// The package does not mount, create namespaces or touch cgroups, and it never
// imports the root vessel package. It also offers [CheckSysctl], which tells
// whether a sysctl may be set in a container given which namespaces are
// private to it.
package security
