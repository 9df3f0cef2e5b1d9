package vessel

import (
	"context"
	"fmt"
	"net"
	"path"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/namespaces"
)

// WaitTCP waits, after Start, until something inside the container
// accepts TCP connections on port: on its loopback address, or on one of
// its own network addresses (bridge, macvlan), seen from inside its
// network namespace (the host's, when the container shares it). The
// check connects and closes at once, as a port probe does. It returns nil
// once a connection succeeds, ctx's error (wrapped) when ctx ends first,
// and an error wrapping ErrNotRunning when the container ends first.
func (c *Container) WaitTCP(ctx context.Context, port int) error {
	if port < 1 || port > 65535 {
		return &ConfigError{Field: "port", Reason: fmt.Sprintf("%d is not a TCP port (1-65535)", port)}
	}
	return c.waitUntil(ctx, fmt.Sprintf("TCP port %d", port), func(pid int) bool {
		addrs := []string{"127.0.0.1"}
		if a := c.Network(); a != nil {
			for _, p := range a.Addresses() {
				if p.Addr().Is4() {
					addrs = append(addrs, p.Addr().String())
				}
			}
		}
		dial := func() error {
			var err error
			for _, ip := range addrs {
				// A short timeout per try: a port that drops SYNs must
				// not hold one try past ctx.
				d := net.Dialer{Timeout: 250 * time.Millisecond}
				var conn net.Conn
				if conn, err = d.DialContext(ctx, "tcp4", net.JoinHostPort(ip, strconv.Itoa(port))); err == nil {
					return conn.Close()
				}
			}
			return err
		}
		var err error
		if c.cfg.Namespaces.Has(namespaces.Net) {
			// The socket is made on a thread inside the container's
			// network namespace, so it is the container's.
			err = namespaces.Do(namespaces.Net, fmt.Sprintf("/proc/%d/ns/net", pid), dial)
		} else {
			err = dial()
		}
		return err == nil
	})
}

// WaitFile waits, after Start, until file exists inside the container: an
// absolute path in the container's root filesystem, looked up as the
// container sees it (symlinks resolve inside its root). A server that
// writes a pid or socket file when it is ready can be waited for this
// way. Its results are those of WaitTCP.
func (c *Container) WaitFile(ctx context.Context, file string) error {
	if !path.IsAbs(file) {
		return &ConfigError{Field: "file", Reason: fmt.Sprintf("%q is not an absolute path inside the container", file)}
	}
	return c.waitUntil(ctx, "file "+file, func(pid int) bool {
		root, err := unix.Open(fmt.Sprintf("/proc/%d/root", pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return false // the process is going; waitUntil sees it end
		}
		defer unix.Close(root)
		fd, err := unix.Openat2(root, file, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
		if err != nil {
			return false
		}
		unix.Close(fd)
		return true
	})
}

// waitUntil polls ready (given the pid of the container's main process)
// until it holds, the container ends, or ctx ends.
func (c *Container) waitUntil(ctx context.Context, what string, ready func(pid int) bool) error {
	c.mu.Lock()
	st := c.status
	c.mu.Unlock()
	if st == Created || st == Waiting {
		return ErrNotStarted
	}
	interval := 5 * time.Millisecond
	for {
		select {
		case <-c.done:
			return fmt.Errorf("vessel: waiting for %s: %w (%v)", what, ErrNotRunning, c.State().Exit)
		default:
		}
		pid := c.State().Pid
		if pid <= 0 {
			return fmt.Errorf("vessel: waiting for %s: %w", what, ErrNotRunning)
		}
		if ready(pid) {
			return nil
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("vessel: waiting for %s: %w", what, ctx.Err())
		case <-c.done:
			t.Stop()
		case <-t.C:
		}
		if interval < 100*time.Millisecond {
			interval *= 2
		}
	}
}
