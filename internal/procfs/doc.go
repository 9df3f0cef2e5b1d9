// Package procfs reads the few facts vessel needs about other processes
// from /proc: a process tree, a process's pid in its own pid namespace,
// its open descriptors with each one's mount and flags, whether a process
// is about to die, and the "key: value" lines of status-like files
// (Fields). CRIU checkpoint/restore, the pool's reset and the usage
// readers of limits and network use them.
//
// It only reads /proc (of the pid namespace the caller's /proc shows); it
// must not signal, change or enter a process, and must not import other
// vessel packages.
package procfs
