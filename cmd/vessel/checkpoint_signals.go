package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/cgroups"
)

// ckptSignals is how the checkpoint verbs (checkpoint, restore, migrate,
// receive) meet SIGINT, SIGTERM and SIGHUP: the first one cancels ctx. A
// dump or restore under way is not cut short (criu cannot be stopped
// safely midway: checkpoint.CancelGrace), a migration not yet handed over
// is abandoned (its source resumes), and the verb then destroys its
// container and exits with 128+signal, leaving no cgroup, temporary
// directory or process behind.
type ckptSignals struct {
	ctx    context.Context
	cancel context.CancelFunc
	ch     chan os.Signal
	got    chan os.Signal
}

func catchCkptSignals() *ckptSignals {
	s := &ckptSignals{ch: make(chan os.Signal, 1), got: make(chan os.Signal, 1)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	signal.Notify(s.ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		sig, ok := <-s.ch
		if !ok {
			return
		}
		s.got <- sig
		s.cancel()
	}()
	return s
}

// stop restores the default signal handling.
func (s *ckptSignals) stop() {
	signal.Stop(s.ch)
	s.cancel()
}

// caught returns the signal received, if any.
func (s *ckptSignals) caught() (os.Signal, bool) {
	if s.ctx.Err() == nil {
		return nil, false
	}
	select {
	case sig := <-s.got:
		s.got <- sig
		return sig, true
	default:
		return nil, false
	}
}

// exitCode is 128 + the signal's number.
func signalExit(sig os.Signal) int {
	if n, ok := sig.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 128 + int(syscall.SIGTERM)
}

// waitContainer waits for c to end or for a signal; on a signal c is
// destroyed and the exit code is 128+signal.
func (s *ckptSignals) waitContainer(c *vessel.Container) int {
	select {
	case <-c.Done():
		return ckptExitCode(c.Wait())
	case <-s.ctx.Done():
	}
	sig, ok := s.caught()
	if !ok {
		return ckptExitCode(c.Wait())
	}
	c.Destroy()
	return signalExit(sig)
}

// reclaimStaleCgroup removes the cgroup that a checkpoint verb killed
// with -9 left for container name, so that a later run under that name
// does not fail: only an empty one (a container still running there is
// an error). A container whose program was just killed gets a moment to
// go (its init kills the rest when its control socket closes).
func reclaimStaleCgroup(name string, cc vessel.CgroupConfig) error {
	if cc.Disabled {
		return nil
	}
	m, err := cgroups.Load(vessel.CgroupOptions(name, cc))
	if err != nil {
		return nil
	}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		pids, err := m.Pids()
		if err != nil {
			return nil
		}
		if len(pids) == 0 {
			return m.Destroy()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("--name %s: a container of that name is running (its cgroup holds %d processes)", name, len(pids))
		}
	}
}
