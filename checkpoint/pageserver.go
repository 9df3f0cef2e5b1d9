package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ServePages runs CRIU's page server on sock, a connected stream socket
// whose other end is a Dump or PreDump with Options.PageServer: the
// pages that dump sends are written into opts.ImagesDir (created if
// missing; a "parent" symlink there to the previous round's directory
// lets CRIU tell the dump which pages it need not send). It returns when
// the dump has sent its last page and closed the page transfer (the
// socket stays open for the caller), or when criu fails. Cancelling ctx
// kills criu. Only CriuPath, ImagesDir, WorkDir, LogFile and LogLevel of
// opts are used.
//
// criu reads exactly the page transfer from sock: whatever the peer
// writes after it stays in the socket for the caller. It uses the socket
// in blocking mode; a caller sharing it with a Go net.Conn makes it
// non-blocking again afterwards.
func ServePages(ctx context.Context, sock *os.File, opts *Options) error {
	if sock == nil {
		return errors.New("checkpoint: ServePages: nil socket")
	}
	if opts == nil || opts.ImagesDir == "" {
		return errors.New("checkpoint: Options.ImagesDir: empty")
	}
	path, err := resolveCriu(opts.CriuPath)
	if err != nil {
		return err
	}
	if _, err := CriuVersion(ctx, path); err != nil {
		return err
	}
	if err := os.MkdirAll(opts.ImagesDir, 0o700); err != nil {
		return fmt.Errorf("checkpoint: Options.ImagesDir: %w", err)
	}
	lvl := opts.LogLevel
	if lvl <= 0 {
		lvl = 4
	}
	logFile := opts.LogFile
	if logFile == "" {
		logFile = "page-server.log"
	}
	args := []string{"page-server", "--ps-socket", "3", "-D", opts.ImagesDir, "-o", logFile, "-v" + strconv.Itoa(lvl)}
	if opts.WorkDir != "" {
		if err := os.MkdirAll(opts.WorkDir, 0o700); err != nil {
			return fmt.Errorf("checkpoint: Options.WorkDir: %w", err)
		}
		args = append(args, "-W", opts.WorkDir)
	}
	var out strings.Builder
	cmd := exec.Command(path, args...)
	cmd.ExtraFiles = []*os.File{sock}
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("checkpoint: start %s page-server: %w", path, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
	err = cmd.Wait()
	stop()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("checkpoint: page server: %w", ctx.Err())
		}
		logPath := filepath.Join(opts.ImagesDir, logFile)
		if opts.WorkDir != "" {
			logPath = filepath.Join(opts.WorkDir, logFile)
		}
		msg := strings.TrimSpace(out.String())
		if msg == "" {
			msg = err.Error()
		}
		return &CriuError{Op: "page-server", Msg: msg, Log: logErrors(logPath), LogFile: logPath}
	}
	return nil
}

// uncork clears TCP_CORK, which CRIU sets on a page-server socket and
// leaves set: later small writes on it would wait for the cork's 200 ms.
// (Not a TCP socket: nothing to do.)
func uncork(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_CORK, 0)
	})
}

// keepUncorked clears TCP_CORK on f as soon as criu sets it (when it
// starts using the socket, before it freezes anything), until stop is
// called. A corked socket holds a partial frame for up to 200 ms: CRIU
// pushes its requests that wait for an answer, but not the last message
// of a transfer (PS_IOV_FORCE_CLOSE, whose answer it waits for), so
// every dump through a page server would stay frozen that much longer.
func keepUncorked(f *os.File) (stop func()) {
	rc, err := f.SyscallConn()
	if err != nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			corked := false
			_ = rc.Control(func(fd uintptr) {
				v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_CORK)
				if err == nil && v != 0 {
					corked = true
					_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_CORK, 0)
				}
			})
			if corked {
				return
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
