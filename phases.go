package vessel

import (
	"context"
	"errors"
)

// phase names one part of starting or restoring a container. Start runs
// storage, init config, cgroup, init, prepare, config, wait and run, in
// that order (startRun); Restore runs its own phases around a start
// (restoreRun). A failure names the phase it happened in: in the debug
// log always, and as the Step of a *SetupError when the error has no step
// of its own.
type phase string

// The phases of a start.
const (
	// phaseStorage: the security profile, the root's plan and its storage
	// (images, layers, overlay). Undone by the cleanup it registers.
	phaseStorage phase = "storage"
	// phaseInitConfig: the init's config as far as it is known before
	// the init runs.
	phaseInitConfig phase = "init config"
	// phaseCgroup: the container's cgroup. Undone by its cleanup.
	phaseCgroup phase = "cgroup"
	// phaseInit: a fresh init, or one from Spares, in its namespaces.
	// Undone by killing it and closing its sockets and stdio.
	phaseInit phase = "init"
	// phasePrepare: what the init must find done: the cgroup's limits,
	// the id maps, createRuntime hooks, the network, idmapped mounts. The
	// network is undone by its cleanup.
	phasePrepare phase = "prepare"
	// phaseConfig: the init's config sent.
	phaseConfig phase = "config"
	// phaseWait: the init's answer, the main process started or a step
	// that failed.
	phaseWait phase = "wait"
	// phaseRun: the terminal's copier, the control session, poststart.
	phaseRun phase = "run"
)

// phaseStep is a phase and the function that does it.
type phaseStep struct {
	name phase
	do   func() error
}

// phases runs the phases of one start or restore in order and, when one
// fails, undoes what the phases done hold: first the undos registered on
// it (in reverse order), then, by its caller, the container's cleanups
// (storage, cgroup, network), which only a phase that got that far has
// registered.
type phases struct {
	c     *Container
	what  string // "start", "restore"
	done  []phase
	undos []func()
}

func (c *Container) newPhases(what string) *phases { return &phases{c: c, what: what} }

// undo registers f to run if a later phase fails.
func (p *phases) undo(f func()) { p.undos = append(p.undos, f) }

// run does steps in order and stops at the first that fails.
func (p *phases) run(steps ...phaseStep) error {
	for _, st := range steps {
		if err := st.do(); err != nil {
			return p.fail(st.name, err)
		}
		p.done = append(p.done, st.name)
	}
	return nil
}

// fail undoes the phases done and returns err, named by phase when it
// names no step of its own.
func (p *phases) fail(name phase, err error) error {
	p.c.logf(p.what+" failed", "phase", string(name), "done", p.done, "err", err)
	for i := len(p.undos) - 1; i >= 0; i-- {
		p.undos[i]()
	}
	p.undos = nil
	var se *SetupError
	var ce *ConfigError
	if errors.As(err, &se) || errors.As(err, &ce) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || isSentinel(err) {
		return err
	}
	step := string(name)
	if p.what != "start" {
		step = p.what + ": " + step
	}
	return &SetupError{Step: step, Err: err}
}

// isSentinel reports whether err is one of the package's errors for
// errors.Is, which callers compare as they are.
func isSentinel(err error) bool {
	for _, s := range []error{ErrOOMKilled, ErrTimeout, ErrKilled, ErrCPUTime, ErrNotRunning, ErrNotStarted, ErrAlreadyStarted, ErrIDInUse, ErrDestroyed} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
