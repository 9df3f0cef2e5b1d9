// Package probe is the in-container half of vessel's isolation tests.
//
// vessel's tests check isolation from the inside: they build the small static
// program in internal/probe/cmd/probe (CGO_ENABLED=0, only the standard
// library and golang.org/x/sys/unix), run it inside a container and assert on
// what it prints. This package holds that program's logic and the JSON types
// it prints, so that tests can decode its output into the same types:
//
//   - "probe report" prints one [Report]: identity, namespaces, id maps,
//     capabilities, seccomp, mounts, rlimits, clocks, interfaces, tty,
//     open file descriptors and more, as seen by the process itself.
//   - "probe try ACTION [ARGS]" performs one real system call sequence (mount,
//     pivot_root, ptrace, setns, open_by_handle_at, ...) and prints one
//     [TryResult] carrying the kernel's answer (ok or errno).
//   - the remaining commands are workloads: sleep, spawn, count, alloc, spin,
//     forkbomb, echo, trap and the like (see [Usage]).
//
// The probe reports; it never judges. A read that fails becomes an entry in
// [Report.Errors] instead of aborting, and a try reports the errno of the step
// that failed. The few actions that would damage the host when run directly on
// it (unmounting or pivoting the host's mount namespace) refuse and say so in
// [TryResult.Refused]; every other action does exactly what it says.
//
// This package must stay small and dependency free (standard library and
// golang.org/x/sys/unix only), must not import any other vessel package, and
// is for tests only: no production code path runs it.
package probe
