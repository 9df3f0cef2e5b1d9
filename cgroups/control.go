package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// freezeTimeout bounds how long Freeze and Thaw wait for the kernel to
// report the new state, and how long Kill waits for processes to die.
const freezeTimeout = 5 * time.Second

// Freeze stops every process in the cgroup until Thaw. It returns once the
// kernel reports the whole cgroup frozen. The cgroup2 freezer is used on
// v2 hosts (frozen tasks stay killable); the v1 freezer controller on v1
// and hybrid hosts, where the v1 hierarchies hold the container (see
// unifiedHoldsMore), else the unified cgroup's.
func (m *Manager) Freeze() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.setFrozen(true)
}

// Thaw resumes the processes Freeze stopped.
func (m *Manager) Thaw() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.setFrozen(false)
}

// Frozen reports whether the cgroup is frozen.
func (m *Manager) Frozen() (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if dir, ok := m.v2FreezerDir(); ok {
		return v2Frozen(dir)
	}
	if dir, ok := m.v1Dir("freezer"); ok {
		state, err := os.ReadFile(filepath.Join(dir, "freezer.state"))
		if err != nil {
			return false, fmt.Errorf("cgroups: %w", err)
		}
		return strings.TrimSpace(string(state)) == "FROZEN", nil
	}
	return false, errors.New("cgroups: this host has no cgroup freezer")
}

// unifiedHoldsMore: on a hybrid host the v1 hierarchies hold the
// container, its limits and every one of its processes; its cgroup in the
// unified hierarchy, which holds no limits, may hold its supervisor too
// (vessel's init lives there, so that the container's cgroup namespace is
// rooted there). So there processes are listed, frozen and killed through
// the v1 hierarchies.
func (m *Manager) unifiedHoldsMore() bool { return m.sys.layout == Hybrid }

func (m *Manager) v2FreezerDir() (string, bool) {
	dir, ok := m.dirs[unifiedKey]
	if !ok {
		return "", false
	}
	if _, v1 := m.v1Dir("freezer"); v1 && m.unifiedHoldsMore() {
		return "", false
	}
	if _, err := os.Stat(filepath.Join(dir, "cgroup.freeze")); err != nil {
		return "", false
	}
	return dir, true
}

// FreezerDir is the directory of the freezer Freeze uses (its
// cgroup.freeze or freezer.state), for a program that freezes the cgroup
// itself, such as CRIU's --freeze-cgroup.
func (m *Manager) FreezerDir() (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if dir, ok := m.v2FreezerDir(); ok {
		return dir, true
	}
	return m.v1Dir("freezer")
}

func (m *Manager) setFrozen(frozen bool) error {
	if dir, ok := m.v2FreezerDir(); ok {
		return freezeV2(dir, frozen)
	}
	if dir, ok := m.v1Dir("freezer"); ok {
		return freezeV1(dir, frozen)
	}
	return errors.New("cgroups: this host has no cgroup freezer (neither cgroup.freeze nor the v1 freezer controller)")
}

func freezeV2(dir string, frozen bool) error {
	v := "0"
	if frozen {
		v = "1"
	}
	if err := writeFile(dir, "cgroup.freeze", v); err != nil {
		return err
	}
	deadline := time.Now().Add(freezeTimeout)
	for delay := 100 * time.Microsecond; ; delay = min(2*delay, 20*time.Millisecond) {
		got, err := v2Frozen(dir)
		if err != nil {
			return err
		}
		if got == frozen {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroups: %s: the kernel did not report frozen=%s within %v", dir, v, freezeTimeout)
		}
		time.Sleep(delay)
	}
}

func v2Frozen(dir string) (bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return false, fmt.Errorf("cgroups: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, _ := strings.Cut(line, " "); k == "frozen" {
			return v == "1", nil
		}
	}
	return false, fmt.Errorf("cgroups: %s/cgroup.events has no frozen field", dir)
}

func freezeV1(dir string, frozen bool) error {
	want := "THAWED"
	if frozen {
		want = "FROZEN"
	}
	deadline := time.Now().Add(freezeTimeout)
	for delay := 100 * time.Microsecond; ; delay = min(2*delay, 20*time.Millisecond) {
		// Writing again is what makes a FREEZING cgroup retry tasks that
		// were busy the first time.
		if err := writeFile(dir, "freezer.state", want); err != nil {
			return err
		}
		b, err := os.ReadFile(filepath.Join(dir, "freezer.state"))
		if err != nil {
			return fmt.Errorf("cgroups: %w", err)
		}
		if strings.TrimSpace(string(b)) == want {
			return nil
		}
		if time.Now().After(deadline) {
			if frozen {
				writeFile(dir, "freezer.state", "THAWED")
			}
			return fmt.Errorf("cgroups: %s: still %s after %v", dir, strings.TrimSpace(string(b)), freezeTimeout)
		}
		time.Sleep(delay)
	}
}

// Kill sends SIGKILL to every process in the cgroup and its descendants
// (in every hierarchy; on a hybrid host in the v1 ones, see
// unifiedHoldsMore), and waits (a few seconds at most) until none is left
// running; zombies the caller has yet to reap do not count. It uses
// cgroup.kill on v2 hosts and otherwise freezes the cgroup, signals each
// process and thaws it, so that no process escapes by forking in between.
func (m *Manager) Kill() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.kill()
}

func (m *Manager) kill() error {
	if dir, ok := m.dirs[unifiedKey]; ok && !m.unifiedHoldsMore() {
		if _, err := os.Stat(filepath.Join(dir, "cgroup.kill")); err == nil {
			if err := writeFile(dir, "cgroup.kill", "1"); err != nil {
				return err
			}
		}
	}
	deadline := time.Now().Add(freezeTimeout)
	for delay := 100 * time.Microsecond; ; delay = min(2*delay, 20*time.Millisecond) {
		pids, err := m.pids()
		if err != nil {
			return err
		}
		live := alive(pids)
		if len(live) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroups: processes %v survived SIGKILL for %v", live, freezeTimeout)
		}
		// Processes not in the unified cgroup (or no cgroup.kill): freeze,
		// signal, thaw.
		frozeErr := m.setFrozen(true)
		pids, err = m.pids()
		if err == nil {
			for _, pid := range pids {
				unix.Kill(pid, unix.SIGKILL)
			}
		}
		if frozeErr == nil {
			m.setFrozen(false)
		}
		time.Sleep(delay)
	}
}

// alive returns the pids that are not zombies.
func alive(pids []int) []int {
	var out []int
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue // gone
		}
		// The state follows the command name, which is in parentheses and
		// may itself contain them.
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X') {
			continue
		}
		out = append(out, pid)
	}
	return out
}
