// Package limits describes the resources a container may use and parses the
// textual forms people type for them.
//
// A [Resources] value is plain data with JSON tags: memory, CPU, pids, block
// I/O, huge pages and device access rules. It says what the limits are, not
// how they are enforced: package cgroups turns it into cgroup v1 or v2 files.
// [Rlimit] covers the per-process limits of setrlimit(2); the container's
// child applies them to itself with [Rlimit.Apply] before it executes the
// user's command.
//
// [ReadProcessUsage] reads what a set of processes hold of the resources
// rlimits bound (open files, locked memory, pending signals) and their file
// locks, from /proc, for a container's accounting.
//
// This package must not touch cgroups, mounts or any other process: apart
// from [Rlimit.Apply] (which changes only the calling process), the stat(2)
// calls that resolve device paths and the read-only /proc reads of
// [ReadProcessUsage], everything here is pure computation.
package limits
