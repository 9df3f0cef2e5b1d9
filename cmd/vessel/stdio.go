package main

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// containerStdio returns what `vessel run` hands the container as its
// standard streams; standard input only with --interactive (else the
// container reads /dev/null). With --tty the container gets a pty of its
// own (the library copies between it and these). Without it, a stream
// that is the caller's terminal is wrapped so that the container gets a
// pipe instead of the terminal itself: a process holding the host's
// terminal can change its modes, read what the user types next, or push
// input into it. Files and pipes the caller redirected are handed on
// unchanged, as os/exec does. A terminal's input is copied only while
// vessel is in the terminal's foreground process group (a background
// `vessel run -i ... &` must neither steal typed input nor be stopped by
// SIGTTIN); the container reads an empty stream otherwise.
func containerStdio(tty, interactive bool) (io.Reader, io.Writer, io.Writer) {
	var in io.Reader
	if interactive {
		in = os.Stdin
	}
	if tty {
		return in, os.Stdout, os.Stderr
	}
	if interactive && isTerminal(int(os.Stdin.Fd())) {
		in = nil // /dev/null
		if foreground(os.Stdin) {
			// A pipe of our own, not the library's: os/exec would wait for
			// its copier, which waits for the user to type.
			if pr, pw, err := os.Pipe(); err == nil {
				go func() {
					_, _ = io.Copy(pw, os.Stdin)
					pw.Close()
				}()
				in = pr
			}
		}
	}
	var out, errw io.Writer = os.Stdout, os.Stderr
	if isTerminal(int(os.Stdout.Fd())) {
		out = struct{ io.Writer }{os.Stdout}
	}
	if isTerminal(int(os.Stderr.Fd())) {
		errw = struct{ io.Writer }{os.Stderr}
		if isTerminal(int(os.Stdout.Fd())) && sameFile(os.Stdout, os.Stderr) {
			errw = out // one pipe keeps the two streams in order
		}
	}
	return in, out, errw
}

// foreground reports whether this process's group is the foreground
// group of the terminal f.
func foreground(f *os.File) bool {
	pg, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPGRP)
	return err == nil && pg == unix.Getpgrp()
}

func sameFile(a, b *os.File) bool {
	var sa, sb unix.Stat_t
	return unix.Fstat(int(a.Fd()), &sa) == nil && unix.Fstat(int(b.Fd()), &sb) == nil && sa.Dev == sb.Dev && sa.Ino == sb.Ino && sa.Rdev == sb.Rdev
}
