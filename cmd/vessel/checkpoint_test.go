package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/checkpoint"
	"github.com/openvessel/vessel/internal/testutil"
)

// ckptCmd is `vessel ARGS` with the test cgroup group.
func ckptCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(vesselBin, args...)
	cmd.Env = append(os.Environ(), "VESSEL_CGROUP_GROUP="+testutil.CgroupGroup)
	return cmd
}

// cgroupLeft reports whether container name's cgroup exists.
func cgroupLeft(name string) bool {
	_, err := cgroups.Load(vessel.CgroupOptions(name, vessel.CgroupConfig{Group: testutil.CgroupGroup}))
	return err == nil
}

// restoreDirsOf lists the restore directories process pid left.
func restoreDirsOf(pid int) []string {
	m, _ := filepath.Glob(filepath.Join(os.TempDir(), "vessel-restore-"+strconv.Itoa(pid)+"-*"))
	return m
}

// firstNumber reads lines from r until one is a number and returns it.
func firstNumber(t *testing.T, r io.Reader) int {
	t.Helper()
	type res struct {
		n   int
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s := bufio.NewScanner(r)
		for s.Scan() {
			if n, err := strconv.Atoi(strings.TrimSpace(s.Text())); err == nil {
				ch <- res{n: n}
				return
			}
		}
		ch <- res{err: fmt.Errorf("no number before the end: %v", s.Err())}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.n
	case <-time.After(20 * time.Second):
		t.Fatal("no number read within 20s")
	}
	return 0
}

// lastNumber is the last line of file as a number.
func lastNumber(t *testing.T, file string) int {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(data))
	if len(lines) == 0 {
		t.Fatalf("%s is empty", file)
	}
	n, err := strconv.Atoi(lines[len(lines)-1])
	if err != nil {
		t.Fatalf("%s: last line %q", file, lines[len(lines)-1])
	}
	return n
}

// stopAndCheck sends sig to the verb, expects exit 128+sig, and checks
// that nothing of the container is left.
func stopAndCheck(t *testing.T, cmd *exec.Cmd, sig syscall.Signal, name string) {
	t.Helper()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("vessel %s did not end after %v", cmd.Args[1], sig)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 128+int(sig) {
		t.Fatalf("vessel %s after %v: %v, want exit %d", cmd.Args[1], sig, err, 128+int(sig))
	}
	if name != "" && cgroupLeft(name) {
		t.Fatalf("cgroup of %s left after %v", name, sig)
	}
	if left := restoreDirsOf(cmd.Process.Pid); len(left) > 0 {
		t.Fatalf("restore directories left after %v: %v", sig, left)
	}
}

// The standard streams of a checkpointed container may be a regular file,
// and a restore may give it a new file, a pipe or a terminal: the count,
// kept only in the process's memory, goes on from where it stood in each.
// SIGTERM, SIGINT and SIGHUP end each restore, leaving no cgroup and no
// restore directory; --env reaches the checkpointed command.
func TestCheckpointCLIStdioAndSignals(t *testing.T) {
	if _, err := checkpoint.CriuVersion(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	root := testutil.BusyboxRootfsCopy(t)
	dir := filepath.Join(t.TempDir(), "ckpt")
	name := fmt.Sprintf("ckcli-%d", os.Getpid())
	out1 := filepath.Join(t.TempDir(), "out1")
	f1, err := os.Create(out1)
	if err != nil {
		t.Fatal(err)
	}
	cp := ckptCmd("checkpoint", "--dir", dir, "--rootfs", root, "--name", name, "--after", "700ms",
		"--env", "GREETING=hello-from-env", "--", "/bin/sh", "-c", `echo "$GREETING"; exec /bin/probe ticker`)
	cp.Stdout = f1
	var cpErr strings.Builder
	cp.Stderr = &cpErr
	err = cp.Run()
	f1.Close()
	if err != nil {
		t.Fatalf("vessel checkpoint: %v\n%s", err, cpErr.String())
	}
	if data, _ := os.ReadFile(out1); !strings.HasPrefix(string(data), "hello-from-env\n") {
		t.Fatalf("--env did not reach the command: output starts %q", string(data[:min(len(data), 40)]))
	}
	last := lastNumber(t, out1)
	if cgroupLeft(name) {
		t.Fatal("cgroup left after the checkpoint")
	}
	check := func(kind string, n int) {
		t.Helper()
		if n <= last || n > last+5 {
			t.Fatalf("restore into a %s: first number %d, want just after %d (restarted or not the same process)", kind, n, last)
		}
	}

	// Into a new regular file, stopped by SIGTERM.
	r, f2r := restoreToFile(t, dir, root, func() string { return "" })
	check("file", firstNumber(t, f2r))
	f2r.Close()
	stopAndCheck(t, r, syscall.SIGTERM, name)

	// Into a pipe, stopped by SIGINT.
	r = ckptCmd("restore", "--dir", dir, "--rootfs", root)
	r.Stderr = os.Stderr
	pipe, err := r.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	check("pipe", firstNumber(t, pipe))
	go io.Copy(io.Discard, pipe)
	stopAndCheck(t, r, syscall.SIGINT, name)

	// Into a terminal, stopped by SIGHUP.
	r = ckptCmd("restore", "--dir", dir, "--rootfs", root)
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	r.Stdout, r.Stderr = tty, os.Stderr
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	check("terminal", firstNumber(t, ptmx))
	go io.Copy(io.Discard, ptmx)
	stopAndCheck(t, r, syscall.SIGHUP, name)
}

// kill -9 of a checkpointing or restoring program leaves a cgroup
// behind (nothing can remove it then): the next checkpoint or restore
// under that name takes it over instead of failing.
func TestCheckpointCLIKill9ThenRestoreAgain(t *testing.T) {
	if _, err := checkpoint.CriuVersion(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	root := testutil.BusyboxRootfsCopy(t)
	dir := filepath.Join(t.TempDir(), "ckpt")
	name := fmt.Sprintf("ckk9-%d", os.Getpid())
	// A checkpoint verb killed before it could clean up.
	k := ckptCmd("checkpoint", "--dir", dir, "--rootfs", root, "--name", name, "--after", "60s", "--", "/bin/probe", "ticker")
	k.Stderr = os.Stderr
	kp, err := k.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Start(); err != nil {
		t.Fatal(err)
	}
	firstNumber(t, kp)
	go io.Copy(io.Discard, kp)
	k.Process.Kill()
	k.Wait()
	t.Cleanup(func() { vessel.DestroyStale(name, vessel.CgroupConfig{Group: testutil.CgroupGroup}) })

	// The same name again, at once.
	cp := ckptCmd("checkpoint", "--dir", dir, "--rootfs", root, "--name", name, "--after", "500ms", "--", "/bin/probe", "ticker")
	var cpErr strings.Builder
	cp.Stdout, cp.Stderr = io.Discard, &cpErr
	if err := cp.Run(); err != nil {
		t.Fatalf("vessel checkpoint: %v\n%s", err, cpErr.String())
	}
	for round := 0; round < 2; round++ {
		r := ckptCmd("restore", "--dir", dir, "--rootfs", root)
		r.Stderr = os.Stderr
		pipe, err := r.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(); err != nil {
			t.Fatal(err)
		}
		if n := firstNumber(t, pipe); n < 10 {
			t.Fatalf("restore %d: first number %d: restarted", round, n)
		}
		go io.Copy(io.Discard, pipe)
		if round == 1 {
			stopAndCheck(t, r, syscall.SIGTERM, name)
			break
		}
		r.Process.Kill()
		r.Wait()
	}
}

// `vessel checkpoint` run from a terminal: the container gets the
// terminal through pipes, so its checkpoint restores (here into a file)
// and the count goes on.
func TestCheckpointCLIFromTerminal(t *testing.T) {
	if _, err := checkpoint.CriuVersion(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	root := testutil.BusyboxRootfsCopy(t)
	dir := filepath.Join(t.TempDir(), "ckpt")
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	cp := ckptCmd("checkpoint", "--dir", dir, "--rootfs", root, "--after", "500ms", "--", "/bin/probe", "ticker")
	cp.Stdin, cp.Stdout, cp.Stderr = tty, tty, tty
	if err := cp.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	var seen strings.Builder
	go io.Copy(&syncWriter{b: &seen}, ptmx)
	if err := cp.Wait(); err != nil {
		t.Fatalf("vessel checkpoint from a terminal: %v", err)
	}
	r, fr := restoreToFile(t, dir, root, func() string {
		return fmt.Sprintf("; the checkpoint's terminal showed %q", seen.String())
	})
	if n := firstNumber(t, fr); n < 20 {
		t.Fatalf("first number after restore %d: restarted (the ticker ran 500ms before the checkpoint)", n)
	}
	fr.Close()
	stopAndCheck(t, r, syscall.SIGTERM, "")
}

// restoreToFile runs "vessel restore" of dir into root with its output
// going to a new regular file, waits until the restored workload has
// written two lines there, and returns the running restore and the file
// opened for reading. why adds to the failure when nothing comes.
func restoreToFile(t *testing.T, dir, root string, why func() string) (*exec.Cmd, *os.File) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := ckptCmd("restore", "--dir", dir, "--rootfs", root)
	r.Stdout, r.Stderr = f, os.Stderr
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if data, _ := os.ReadFile(out); strings.Count(string(data), "\n") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			r.Process.Kill()
			t.Fatalf("restore into a file wrote nothing%s", why())
		}
		time.Sleep(20 * time.Millisecond)
	}
	fr, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	return r, fr
}

// syncWriter serialises writes to a strings.Builder.
type syncWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// A checkpoint restores with another build of vessel: the images hold
// the workload alone (no part of the vessel that took them).
func TestCheckpointCLIOtherBuild(t *testing.T) {
	if _, err := checkpoint.CriuVersion(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "vessel-other")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", other, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building another vessel: %v\n%s", err, out)
	}
	a, _ := os.ReadFile(vesselBin)
	b, _ := os.ReadFile(other)
	if string(a) == string(b) {
		t.Fatal("the second build is identical to the first")
	}
	root := testutil.BusyboxRootfsCopy(t)
	dir := filepath.Join(t.TempDir(), "ckpt")
	cp := ckptCmd("checkpoint", "--dir", dir, "--rootfs", root, "--after", "500ms", "--", "/bin/probe", "ticker")
	var cpErr strings.Builder
	cp.Stdout, cp.Stderr = io.Discard, &cpErr
	if err := cp.Run(); err != nil {
		t.Fatalf("vessel checkpoint: %v\n%s", err, cpErr.String())
	}
	r := exec.Command(other, "restore", "--dir", dir, "--rootfs", root)
	r.Env = append(os.Environ(), "VESSEL_CGROUP_GROUP="+testutil.CgroupGroup)
	r.Stderr = os.Stderr
	pipe, err := r.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	if n := firstNumber(t, pipe); n < 20 {
		t.Fatalf("first number after a restore by another build: %d: restarted", n)
	}
	go io.Copy(io.Discard, pipe)
	stopAndCheck(t, r, syscall.SIGTERM, "")
}

// `vessel checkpoint NAME` checkpoints a container of the store (run -d),
// which stops it; `vessel restore` brings its work back, going on from
// where it stood.
func TestCheckpointCLIByName(t *testing.T) {
	if _, err := checkpoint.CriuVersion(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	root := testRoot(t)
	removeOnFailure(t, root, "ckname")
	rfs := testutil.BusyboxRootfsCopy(t)
	counter := filepath.Join(rfs, "counter")
	vcli(t, root, nil, "run", "-d", "--name", "ckname", "--rootfs", rfs, "/bin/probe", "count", "/counter").must(t, "run -d")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if data, _ := os.ReadFile(counter); len(strings.TrimSpace(string(data))) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the counter did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	dir := filepath.Join(t.TempDir(), "ckpt")
	vcli(t, root, nil, "checkpoint", "--dir", dir, "ckname").must(t, "checkpoint NAME")
	read := func() int {
		data, err := os.ReadFile(counter)
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil {
			t.Fatalf("counter %q: %v", data, err)
		}
		return n
	}
	at := read()
	time.Sleep(100 * time.Millisecond)
	if n := read(); n != at {
		t.Fatalf("the counter moved from %d to %d after the checkpoint stopped it", at, n)
	}
	r := ckptCmd("--root", root, "restore", "--dir", dir, "--rootfs", rfs, "--name", "ckname-r")
	r.Stdout, r.Stderr = io.Discard, os.Stderr
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for read() == at {
		if time.Now().After(deadline) {
			r.Process.Kill()
			t.Fatal("the restored counter does not move")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := read(); n > at+50 {
		r.Process.Kill()
		t.Fatalf("counter jumped from %d to %d", at, n)
	}
	stopAndCheck(t, r, syscall.SIGTERM, "ckname-r")
	vcli(t, root, nil, "rm", "-f", "ckname").must(t, "rm")
}
