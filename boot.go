package vessel

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/rootfs"
)

// SIGRTMIN+3 is what systemd takes as "halt": the stop signal of a
// container that boots it.
const sigRTMin3 = syscall.Signal(34 + 3)

// WithBoot makes the container a system container: its main process is
// the image's own init (args, or /sbin/init), which gets what systemd
// (and sysvinit or openrc) expect of a container: container=vessel in its
// environment, tmpfs /run and /run/lock, a writable cgroup2 hierarchy at
// /sys/fs/cgroup rooted at the container's own cgroup (its cgroup
// namespace; on a hybrid host the container's unified cgroup, which
// systemd uses in its unified mode), CAP_SYS_ADMIN for the mounts and
// namespaces of its services, and SIGRTMIN+3 as the stop signal (Stop).
// The container needs its own pid and cgroup namespaces (the default).
func (c *Config) WithBoot(args ...string) *Config {
	if len(args) == 0 {
		args = []string{"/sbin/init"}
	}
	c.Process.Args = args
	c.Boot = true
	c.WithEnv("container=vessel")
	if c.StopSignal == 0 {
		c.StopSignal = sigRTMin3
	}
	run := rootfs.Tmpfs("/run", 0)
	run.Mode = 0o755
	lock := rootfs.Tmpfs("/run/lock", 5<<20)
	lock.Mode = 0o1777
	cg := rootfs.Mount{Type: "cgroup2", Source: "cgroup2", Destination: "/sys/fs/cgroup", NoSuid: true, NoDev: true, NoExec: true}
	c.WithMount(run, lock, cg)
	return c.WithCapAdd("CAP_SYS_ADMIN")
}

// validateBoot checks the stop signal and what booting an init needs.
func (c *Config) validateBoot() []error {
	var errs []error
	if c.StopSignal < 0 || c.StopSignal > 64 {
		errs = append(errs, &ConfigError{Field: "stopSignal", Reason: fmt.Sprintf("%d is not a signal number (1-64)", int(c.StopSignal))})
	}
	if c.Boot {
		// The init gets a cgroup2 hierarchy rooted at the container's
		// cgroup: only a v2 or hybrid host puts the container in one.
		if l, err := cgroups.Detect(); err == nil && l == cgroups.V1 {
			errs = append(errs, &ConfigError{Field: "boot", Reason: "booting an init needs a cgroup2 hierarchy for it (a unified or hybrid host); this host has cgroup v1 only"})
		}
		if !c.Namespaces.IsNew(namespaces.PID) || !c.Namespaces.IsNew(namespaces.Cgroup) {
			errs = append(errs, &ConfigError{Field: "boot", Reason: "booting an init needs new pid and cgroup namespaces"})
		}
		if c.Cgroup.Disabled {
			errs = append(errs, &ConfigError{Field: "boot", Reason: "booting an init needs a cgroup of the container's own"})
		}
	}
	return errs
}

// Stop asks the container to end with its stop signal (Config.StopSignal,
// SIGTERM by default; SIGRTMIN+3 for a booted init, which then shuts its
// services down) and waits for its main process to exit; after timeout it
// kills the container. It returns Wait's error, nil for a clean exit.
func (c *Container) Stop(ctx context.Context, timeout time.Duration) error {
	sig := c.cfg.StopSignal
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	if err := c.Signal(sig); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.Done():
	case <-t.C:
		c.Kill()
	case <-ctx.Done():
		c.Kill()
	}
	return c.Wait()
}
