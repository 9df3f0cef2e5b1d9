package procfs

import (
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
	nspid := -1
	var err error
	ferr := Fields(fmt.Sprintf("/proc/%d/status", pid), func(k, v string) bool {
		if k != "NSpid" {
			return true
		}
		if fs := strings.Fields(v); len(fs) > 0 {
			nspid, err = strconv.Atoi(fs[len(fs)-1])
		}
		return false
	})
	switch {
	case ferr != nil:
		return 0, ferr
	case err != nil:
		return 0, err
	case nspid < 0:
		return 0, fmt.Errorf("no NSpid in /proc/%d/status", pid)
	}
	return nspid, nil
}

// FDInfo reads the mount id (mnt_id; -1 if absent) and the open flags of
// descriptor fd of process pid, from /proc/PID/fdinfo/FD.
func FDInfo(pid int, fd string) (mnt int, flags int, err error) {
	mnt = -1
	err = Fields(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd), func(k, v string) bool {
		switch k {
		case "mnt_id":
			mnt, _ = strconv.Atoi(v)
		case "flags":
			f, _ := strconv.ParseInt(v, 8, 64)
			flags = int(f)
		}
		return true
	})
	if err != nil {
		return 0, 0, err
	}
	return mnt, flags, nil
}

// Alive reports whether pid runs and is not about to die: not a zombie,
// and no SIGKILL pending (one sent a moment ago may not have been
// delivered yet), from /proc/PID/status.
func Alive(pid int) bool {
	const sigkillBit = 1 << (unix.SIGKILL - 1)
	alive := true
	err := Fields("/proc/"+strconv.Itoa(pid)+"/status", func(k, v string) bool {
		switch k {
		case "State":
			if strings.HasPrefix(v, "Z") || strings.HasPrefix(v, "X") {
				alive = false
			}
		case "SigPnd", "ShdPnd":
			if m, err := strconv.ParseUint(v, 16, 64); err == nil && m&sigkillBit != 0 {
				alive = false
			}
		}
		return alive
	})
	return err == nil && alive
}

// Fields calls f with the key and the value, trimmed, of each "key: value"
// line of a /proc file (status, fdinfo, net/sockstat, ...), in order,
// until f returns false. Lines without a colon are passed over.
func Fields(file string, f func(key, value string) bool) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if !f(k, strings.TrimSpace(v)) {
			break
		}
	}
	return nil
}

// OpenFile is one open descriptor of a process.
type OpenFile struct {
	FD int
	// Link is what /proc/PID/fd/FD points to: a path, or a name such as
	// "pipe:[1234]", "socket:[5678]", "anon_inode:[io_uring]".
	Link string
	// Path is /proc/PID/fd/FD itself: stat(2) of it reaches the open file.
	Path string
}

// OpenFiles lists the open descriptors of pid in /proc/PID/fd order. A
// descriptor closed meanwhile is missing; the error is the directory's
// (the process is gone, or may not be inspected).
func OpenFiles(pid int) ([]OpenFile, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make([]OpenFile, 0, len(ents))
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p := dir + "/" + e.Name()
		link, err := os.Readlink(p)
		if err != nil {
			continue
		}
		out = append(out, OpenFile{FD: fd, Link: link, Path: p})
	}
	return out, nil
}
