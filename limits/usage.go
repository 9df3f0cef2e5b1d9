package limits

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/internal/procfs"
)

// ProcessUsage is what a set of processes hold of the resources that
// setrlimit(2) bounds one process at a time (open files, locked memory,
// pending signals) and of file locks, summed over the processes, with the
// largest single process where the limit is per process.
type ProcessUsage struct {
	// Processes is how many of the pids could be read (the others ended).
	Processes int `json:"processes"`
	// OpenFiles counts file descriptors; MaxOpenFiles is the most one
	// process holds (what RLIMIT_NOFILE bounds).
	OpenFiles    uint64 `json:"openFiles"`
	MaxOpenFiles uint64 `json:"maxOpenFiles"`
	// FileLocks counts the flock(2), POSIX and lease locks the processes
	// hold, from /proc/locks (open file description locks have no owner
	// there and are not counted).
	FileLocks uint64 `json:"fileLocks"`
	// LockedBytes is mlock(2)ed memory (VmLck); MaxLockedBytes the most
	// one process holds (what RLIMIT_MEMLOCK bounds).
	LockedBytes    uint64 `json:"lockedBytes"`
	MaxLockedBytes uint64 `json:"maxLockedBytes"`
	// PendingSignals counts the distinct signals pending for the processes
	// and their threads (a real-time signal queued twice counts once).
	PendingSignals uint64 `json:"pendingSignals"`
	// PrivateBytes is private data and stack mappings (VmData + VmStk).
	PrivateBytes uint64 `json:"privateBytes"`
}

// ReadProcessUsage reads the counters of the processes pids from /proc
// (pids as this process's pid namespace numbers them). It only reads;
// processes that end meanwhile are skipped.
func ReadProcessUsage(pids []int) (*ProcessUsage, error) {
	u := &ProcessUsage{}
	own := map[int]bool{}
	for _, pid := range pids {
		fds, err := countDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			if gone(err) {
				continue
			}
			return nil, fmt.Errorf("limits: open files of %d: %w", pid, err)
		}
		st, err := readStatus(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			if gone(err) {
				continue
			}
			return nil, fmt.Errorf("limits: status of %d: %w", pid, err)
		}
		own[pid] = true
		u.Processes++
		u.OpenFiles += fds
		u.MaxOpenFiles = max(u.MaxOpenFiles, fds)
		lck := st["VmLck"] << 10
		u.LockedBytes += lck
		u.MaxLockedBytes = max(u.MaxLockedBytes, lck)
		u.PrivateBytes += (st["VmData"] + st["VmStk"]) << 10
		u.PendingSignals += st["ShdPnd"] + threadSignals(pid)
	}
	locks, err := countLocks("/proc/locks", own)
	if err != nil {
		return nil, fmt.Errorf("limits: file locks: %w", err)
	}
	u.FileLocks = locks
	return u, nil
}

func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

func countDir(dir string) (uint64, error) {
	f, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	return uint64(len(names)), err
}

// threadSignals counts the signals pending for each thread of pid
// (SigPnd of /proc/PID/task/TID/status).
func threadSignals(pid int) uint64 {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	f, err := os.Open(dir)
	if err != nil {
		return 0
	}
	tids, _ := f.Readdirnames(-1)
	f.Close()
	var n uint64
	for _, tid := range tids {
		st, err := readStatus(dir + "/" + tid + "/status")
		if err == nil {
			n += st["SigPnd"]
		}
	}
	return n
}

// readStatus reads the fields of a /proc status file that ProcessUsage
// needs: sizes in kB, and the pending signal masks as counts of set bits.
func readStatus(file string) (map[string]uint64, error) {
	out := map[string]uint64{}
	err := procfs.Fields(file, func(k, v string) bool {
		switch k {
		case "VmLck", "VmData", "VmStk":
			n, err := strconv.ParseUint(strings.TrimSuffix(v, " kB"), 10, 64)
			if err == nil {
				out[k] = n
			}
		case "SigPnd", "ShdPnd":
			mask, err := strconv.ParseUint(v, 16, 64)
			if err == nil {
				out[k] = uint64(bits.OnesCount64(mask))
			}
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// countLocks counts the lines of a /proc/locks file held by the pids in
// own. A line looks like
//
//	1: FLOCK  ADVISORY  WRITE 1234 00:2a:17 0 EOF
//
// and waiters appear as "1: -> FLOCK ..." lines, which hold nothing.
func countLocks(file string, own map[int]bool) (uint64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var n uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[1] == "->" {
			continue
		}
		if pid, err := strconv.Atoi(fields[4]); err == nil && own[pid] {
			n++
		}
	}
	return n, sc.Err()
}

// ReadRlimit returns the rlimit name ("RLIMIT_NOFILE", or "nofile") of
// process pid, with prlimit(2) (which only reads here).
func ReadRlimit(pid int, name string) (Rlimit, error) {
	canon, err := CanonicalRlimitName(name)
	if err != nil {
		return Rlimit{}, err
	}
	var r unix.Rlimit
	if err := unix.Prlimit(pid, rlimitNumbers[canon], nil, &r); err != nil {
		return Rlimit{}, fmt.Errorf("limits: %s of %d: %w", canon, pid, err)
	}
	return Rlimit{Type: canon, Soft: r.Cur, Hard: r.Max}, nil
}
