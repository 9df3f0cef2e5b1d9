// Package selfexe gives vessel the program it re-executes as a container's
// init: a handle on /proc/self/exe that a container process cannot write
// through (a detached read-only bind mount, else a sealed memfd copy; the
// CVE-2019-5736 class of attack), the shim that the init is executed as
// (a tiny ELF whose interpreter is that handle, so that no process the
// init forks has the program as its /proc/self/exe), and the program's
// ELF interpreter, read from its program headers, so that a dynamically
// linked caller is told why a root other than the host's cannot run it.
//
// It must not copy the binary more than once per program, must not attach
// the bind mount anywhere (it stays detached, reachable only through its
// descriptor), must not give the shim any code of its own (it is only an
// interpreter path: run where that descriptor is not open, it must fail
// in execve), and must not import debug/elf: every vessel program would
// pay for that package's initialisation at start.
package selfexe
