package main

import (
	"bytes"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/openvessel/vessel/internal/testutil"
)

// runOnTerminal runs vessel ARGS as the session leader of a new pty (so
// vessel is in the terminal's foreground group, as when a user types the
// command) and returns what the terminal showed.
func runOnTerminal(t *testing.T, input string, args ...string) string {
	t.Helper()
	ptm, pts, err := pty.Open()
	require.NoError(t, err)
	defer ptm.Close()
	cmd := exec.Command(vesselBin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	require.NoError(t, cmd.Start())
	pts.Close()
	if input != "" {
		_, err := ptm.Write([]byte(input))
		require.NoError(t, err)
	}
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&out, ptm); close(done) }() // ends with EIO once no one holds the slave
	err = cmd.Wait()
	<-done
	require.NoError(t, err, "vessel %v: %s", args, out.String())
	return strings.ReplaceAll(out.String(), "\r\n", "\n")
}

// TestRunDoesNotHandOverTheTerminal: without --tty, `vessel run` started
// on a terminal gives the container pipes (and /dev/null as input without
// -i), never the caller's terminal
// (which would let it read the user's input, change the terminal's modes
// or push input into it); input and output still flow. With --tty the
// container gets a terminal of its own.
func TestRunDoesNotHandOverTheTerminal(t *testing.T) {
	testutil.RequireRoot(t)
	out := runOnTerminal(t, "typed\n", "run", "--rm", "-i", "--", "/bin/sh", "-c", "for f in 0 1 2; do echo fd$f=$(readlink /proc/self/fd/$f); done; read x; echo got=$x")
	for _, fd := range []string{"fd0", "fd1", "fd2"} {
		assert.Regexp(t, fd+`=pipe:\[\d+\]`, out, "%s is not a pipe", fd)
	}
	assert.NotContains(t, out, "/dev/pts", "the container holds a terminal")
	assert.Contains(t, out, "got=typed\n", "typed input did not reach the container")
	out = runOnTerminal(t, "", "run", "--rm", "--", "/bin/sh", "-c", "for f in 0 1 2; do echo fd$f=$(readlink /proc/self/fd/$f); done")
	assert.Contains(t, out, "fd0=/dev/null", "without -i")
	assert.Regexp(t, `fd1=pipe:\[\d+\]`, out, "without -i")
	assert.NotContains(t, out, "/dev/pts", "the container holds a terminal")
	out = runOnTerminal(t, "", "run", "--rm", "-i", "--tty", "--", "/bin/sh", "-c", "readlink /proc/self/fd/0; tty")
	assert.Regexp(t, `/dev/pts/\d+\n/dev/pts/\d+`, out)
}

// TestExecDoesNotHandOverTheTerminal: `vessel exec` without -t, started
// on a terminal, gives the process pipes too, and typed input reaches it.
func TestExecDoesNotHandOverTheTerminal(t *testing.T) {
	testutil.RequireRoot(t)
	root := testRoot(t)
	removeOnFailure(t, root, "stdiobox")
	vcli(t, root, nil, "run", "-d", "--name", "stdiobox", "--", "/bin/sleep", "1000").must(t, "run -d")
	out := runOnTerminal(t, "typed\n", "--root", root, "exec", "-i", "stdiobox", "/bin/sh", "-c", "for f in 0 1 2; do echo fd$f=$(readlink /proc/self/fd/$f); done; read x; echo got=$x")
	for _, fd := range []string{"fd0", "fd1", "fd2"} {
		assert.Regexp(t, fd+`=pipe:\[\d+\]`, out, "%s is not a pipe", fd)
	}
	assert.NotContains(t, out, "/dev/pts", "the process holds a terminal")
	assert.Contains(t, out, "got=typed\n")
	vcli(t, root, nil, "rm", "-f", "stdiobox").must(t, "rm -f")
}
