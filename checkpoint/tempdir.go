package checkpoint

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MkdirTemp is os.MkdirTemp in the system's temporary directory with
// this process's pid in the name (prefix + pid + "-" + random). Before
// creating it, it removes the directories with the same prefix whose
// process no longer exists: a program killed (kill -9) in the middle of a
// migration or restore could not remove its own.
func MkdirTemp(prefix string) (string, error) {
	sweepTemp(prefix)
	return os.MkdirTemp("", prefix+strconv.Itoa(os.Getpid())+"-")
}

func sweepTemp(prefix string) {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*-*"))
	for _, m := range matches {
		rest := strings.TrimPrefix(filepath.Base(m), prefix)
		pidText, _, ok := strings.Cut(rest, "-")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 {
			continue
		}
		if err := unix.Kill(pid, 0); err == unix.ESRCH {
			_ = os.RemoveAll(m)
		}
	}
}
