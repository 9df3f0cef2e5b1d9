// Package procfs reads the few facts vessel needs about other processes
// from /proc: a process tree, a process's pid in its own pid namespace, an
// open descriptor's mount and flags, and whether a process is about to
// die. CRIU checkpoint/restore and the pool's reset use them.
//
// It only reads /proc (of the pid namespace the caller's /proc shows); it
// must not signal, change or enter a process, and must not import other
// vessel packages.
package procfs
