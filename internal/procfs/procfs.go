package procfs

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Descendants returns pid followed by every descendant of it (children of
// each of its threads, recursively), from /proc/PID/task/TID/children.
// A process that exits meanwhile is simply missing.
func Descendants(pid int) []int {
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", out[i]))
		for _, t := range tasks {
			data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", out[i], t.Name()))
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(data)) {
				if n, err := strconv.Atoi(f); err == nil {
					out = append(out, n)
				}
			}
		}
	}
	return out
}

// NSPid returns pid's number in its innermost pid namespace (the last
// field of NSpid in /proc/PID/status).
func NSPid(pid int) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "NSpid:"); ok {
			fs := strings.Fields(rest)
			if len(fs) > 0 {
				return strconv.Atoi(fs[len(fs)-1])
			}
		}
	}
	return 0, fmt.Errorf("no NSpid in /proc/%d/status", pid)
}

// FDInfo reads the mount id (mnt_id; -1 if absent) and the open flags of
// descriptor fd of process pid, from /proc/PID/fdinfo/FD.
func FDInfo(pid int, fd string) (mnt int, flags int, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd))
	if err != nil {
		return 0, 0, err
	}
	mnt = -1
	for _, l := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "mnt_id":
			mnt, _ = strconv.Atoi(v)
		case "flags":
			f, _ := strconv.ParseInt(v, 8, 64)
			flags = int(f)
		}
	}
	return mnt, flags, nil
}

// Alive reports whether pid runs and is not about to die: not a zombie,
// and no SIGKILL pending (one sent a moment ago may not have been
// delivered yet), from /proc/PID/status.
func Alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	const sigkillBit = 1 << (unix.SIGKILL - 1)
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "State":
			if strings.HasPrefix(v, "Z") || strings.HasPrefix(v, "X") {
				return false
			}
		case "SigPnd", "ShdPnd":
			if m, err := strconv.ParseUint(v, 16, 64); err == nil && m&sigkillBit != 0 {
				return false
			}
		}
	}
	return true
}
