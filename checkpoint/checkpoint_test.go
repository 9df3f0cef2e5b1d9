package checkpoint_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/checkpoint"
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		os.Stderr.WriteString("checkpoint tests must run as root\n")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func TestMissingCriu(t *testing.T) {
	_, err := checkpoint.CriuVersion(context.Background(), "/nonexistent/criu")
	var ve *checkpoint.VersionError
	if !errors.As(err, &ve) || ve.Need != checkpoint.MinVersion || !strings.Contains(err.Error(), "3.17") || !strings.Contains(err.Error(), "/nonexistent/criu") {
		t.Fatalf("missing criu: %v", err)
	}
	// A program that is not criu: no version.
	_, err = checkpoint.CriuVersion(context.Background(), "/bin/true")
	if !errors.As(err, &ve) {
		t.Fatalf("/bin/true as criu: %v, want a VersionError", err)
	}
}

func TestInstalledCriu(t *testing.T) {
	v, err := checkpoint.CriuVersion(context.Background(), "")
	if err != nil {
		t.Fatalf("%v (the test script installs criu with .ci/install-criu.sh)", err)
	}
	if v.Less(checkpoint.MinVersion) {
		t.Fatalf("version %v passed the check but is older than %v", v, checkpoint.MinVersion)
	}
}

func TestBadOptions(t *testing.T) {
	ctx := context.Background()
	if _, err := checkpoint.Dump(ctx, 0, &checkpoint.Options{ImagesDir: t.TempDir()}); err == nil {
		t.Fatal("Dump of pid 0 succeeded")
	}
	if _, err := checkpoint.Dump(ctx, os.Getpid(), &checkpoint.Options{}); err == nil || !strings.Contains(err.Error(), "ImagesDir") {
		t.Fatalf("Dump without ImagesDir: %v", err)
	}
	_, _, err := checkpoint.Restore(ctx, &checkpoint.Options{ImagesDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "no checkpoint") {
		t.Fatalf("Restore from an empty directory: %v", err)
	}
	_, _, err = checkpoint.Restore(ctx, &checkpoint.Options{ImagesDir: filepath.Join(t.TempDir(), "missing")})
	if err == nil {
		t.Fatal("Restore from a missing directory succeeded")
	}
}

// TestDumpRestoreProcess dumps a plain process tree (a shell in its own
// session counting into a file) and restores it as a child of the test.
func TestDumpRestoreProcess(t *testing.T) {
	if _, err := checkpoint.CriuVersion(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	counter := filepath.Join(dir, "n")
	// Builtins only: the tree is one process, whose pid is free again once
	// the dump has killed it and Wait has reaped it.
	cmd := exec.Command("/bin/sh", "-c", `i=0; while :; do i=$((i+1)); echo $i > `+counter+`; done`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	devnull, _ := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	defer devnull.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { unix.Kill(pid, unix.SIGKILL) })
	waitFile(t, counter)
	images := filepath.Join(dir, "img")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := checkpoint.Dump(ctx, pid, &checkpoint.Options{ImagesDir: images, ShellJob: true, Cgroups: checkpoint.CgroupIgnore, NetworkLock: checkpoint.LockSkip})
	if err != nil {
		t.Fatalf("Dump: %v", err)
	}
	if st.Bytes <= 0 || st.FreezeTime <= 0 {
		t.Fatalf("dump stats %+v", st)
	}
	cmd.Wait() // CRIU killed it.
	before, _ := os.ReadFile(counter)
	rpid, _, err := checkpoint.Restore(ctx, &checkpoint.Options{ImagesDir: images, ShellJob: true, Cgroups: checkpoint.CgroupIgnore, NetworkLock: checkpoint.LockSkip, RestoreSibling: true})
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	t.Cleanup(func() {
		unix.Kill(rpid, unix.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(rpid, &ws, 0, nil)
	})
	if rpid != pid {
		t.Fatalf("restored pid %d, want the original %d", rpid, pid)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		now, _ := os.ReadFile(counter)
		if len(now) > 1 && string(now) != string(before) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restored process does not count (stuck at %q)", before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitFile(t *testing.T, p string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if fi, err := os.Stat(p); err == nil && fi.Size() > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", p)
}

// fakeSource writes a few files per round, like CRIU does, with a parent
// link.
type fakeSource struct{ rounds int }

func (s *fakeSource) DumpRound(ctx context.Context, dir, parent string, final bool) (*checkpoint.Stats, error) {
	s.rounds++
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "pages-1.img"), []byte(strings.Repeat("x", 4096*s.rounds)), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "dump.log"), []byte("log"), 0o600); err != nil {
		return nil, err
	}
	if parent != "" {
		if err := os.Symlink("../"+filepath.Base(parent), filepath.Join(dir, "parent")); err != nil {
			return nil, err
		}
	}
	return &checkpoint.Stats{Op: "fake", FreezeTime: time.Millisecond, Bytes: int64(4096 * s.rounds)}, nil
}

func TestMigrateStreamsRounds(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recv := t.TempDir()
	type res struct {
		st  *checkpoint.ReceiveStats
		err error
	}
	done := make(chan res, 1)
	var restoredFrom string
	go func() {
		st, err := checkpoint.ReceiveOn(ctx, l, recv, func(ctx context.Context, dir string) error {
			restoredFrom = dir
			return nil
		})
		done <- res{st, err}
	}()
	src := &fakeSource{}
	st, err := checkpoint.MigrateTo(ctx, l.Addr().String(), src, &checkpoint.MigrateOptions{PreDumps: 2})
	r := <-done
	if err != nil || r.err != nil {
		t.Fatalf("sender %v, receiver %v", err, r.err)
	}
	if len(st.Rounds) != 3 || r.st.Rounds != 3 || st.BytesSent != r.st.BytesReceived || st.FinalBytes >= st.BytesSent {
		t.Fatalf("sender %+v, receiver %+v", st, r.st)
	}
	if restoredFrom != filepath.Join(recv, "final") {
		t.Fatalf("restored from %q", restoredFrom)
	}
	if link, err := os.Readlink(filepath.Join(recv, "final", "parent")); err != nil || link != "../pre-2" {
		t.Fatalf("parent link %q, %v", link, err)
	}
	if data, err := os.ReadFile(filepath.Join(recv, "pre-1", "pages-1.img")); err != nil || len(data) != 4096 {
		t.Fatalf("pre-1 pages: %d bytes, %v", len(data), err)
	}
	if _, err := os.Stat(filepath.Join(recv, "final", "dump.log")); !os.IsNotExist(err) {
		t.Fatalf("logs are not images and must not travel: %v", err)
	}
}

func TestMigrateReportsRestoreFailure(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go checkpoint.ReceiveOn(ctx, l, t.TempDir(), func(ctx context.Context, dir string) error {
		return errors.New("no room here")
	})
	work := t.TempDir()
	_, err = checkpoint.MigrateTo(ctx, l.Addr().String(), &fakeSource{}, &checkpoint.MigrateOptions{WorkDir: work})
	if err == nil || !strings.Contains(err.Error(), "no room here") || !strings.Contains(err.Error(), work) {
		t.Fatalf("failed restore: %v, want the receiver's reason and where the images are", err)
	}
}

// TestDumpThroughPageServer dumps a process with its memory pages sent
// over a TCP connection to ServePages at the other end (CRIU's page
// server on a socket it is given): the pages land there and not beside
// the other images, the connection carries on after the transfer, and
// the two halves together restore the process.
func TestDumpThroughPageServer(t *testing.T) {
	if _, err := checkpoint.CriuVersion(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	counter := filepath.Join(dir, "n")
	cmd := exec.Command("/bin/sh", "-c", `i=0; while :; do i=$((i+1)); echo $i > `+counter+`; done`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	devnull, _ := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	defer devnull.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { unix.Kill(pid, unix.SIGKILL) })
	waitFile(t, counter)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	sf, err := server.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	cf, err := client.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	served := filepath.Join(dir, "served")
	done := make(chan error, 1)
	go func() { done <- checkpoint.ServePages(ctx, sf, &checkpoint.Options{ImagesDir: served}) }()
	images := filepath.Join(dir, "img")
	st, err := checkpoint.Dump(ctx, pid, &checkpoint.Options{ImagesDir: images, ShellJob: true, Cgroups: checkpoint.CgroupIgnore, NetworkLock: checkpoint.LockSkip, PageServer: cf})
	if err != nil {
		t.Fatalf("Dump through the page server: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("ServePages: %v", err)
	}
	cmd.Wait() // CRIU killed it.
	if st.PagesWritten == 0 {
		t.Fatalf("dump stats %+v: no pages written", st)
	}
	local, _ := filepath.Glob(filepath.Join(images, "pages-*.img"))
	remote, _ := filepath.Glob(filepath.Join(served, "pages-*.img"))
	if len(local) != 0 || len(remote) == 0 {
		t.Fatalf("pages beside the dump: %v; at the page server: %v", local, remote)
	}
	var size int64
	for _, p := range remote {
		fi, _ := os.Stat(p)
		size += fi.Size()
	}
	if want := int64(st.PagesWritten) * int64(os.Getpagesize()); size != want {
		t.Fatalf("the page server wrote %d bytes of pages, the dump reports %d", size, want)
	}
	// The connection goes on after the page transfer (criu leaves what
	// follows it in the socket), once it is non-blocking again.
	for _, c := range []*os.File{cf, sf} {
		rc, _ := c.SyscallConn()
		rc.Control(func(fd uintptr) { unix.SetNonblock(int(fd), true) })
	}
	if _, err := client.Write([]byte("after\n")); err != nil {
		t.Fatal(err)
	}
	server.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 6)
	if _, err := io.ReadFull(server, buf); err != nil || string(buf) != "after\n" {
		t.Fatalf("after the page transfer the connection reads %q, %v", buf, err)
	}

	// Both halves together restore the process.
	ents, err := os.ReadDir(images)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(images, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(served, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := os.ReadFile(counter)
	rpid, _, err := checkpoint.Restore(ctx, &checkpoint.Options{ImagesDir: served, ShellJob: true, Cgroups: checkpoint.CgroupIgnore, NetworkLock: checkpoint.LockSkip, RestoreSibling: true})
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	t.Cleanup(func() {
		unix.Kill(rpid, unix.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(rpid, &ws, 0, nil)
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		now, _ := os.ReadFile(counter)
		if len(now) > 1 && string(now) != string(before) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restored process does not count (stuck at %q)", before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
