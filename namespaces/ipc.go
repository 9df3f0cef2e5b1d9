package namespaces

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// IPCUsage is what an IPC namespace holds of System V shared memory, and
// its limits (the namespace's kernel.shm* sysctls).
type IPCUsage struct {
	// ShmSegments and ShmBytes count the namespace's shared memory
	// segments and their sizes.
	ShmSegments uint64 `json:"shmSegments"`
	ShmBytes    uint64 `json:"shmBytes"`
	// ShmAllBytes is kernel.shmall in bytes: the most all segments may
	// hold (shmget fails with ENOSPC beyond it), math.MaxUint64 when it
	// is too large to say in bytes (the default); ShmMaxBytes is
	// kernel.shmmax, the largest segment; ShmMni is kernel.shmmni, the
	// most segments.
	ShmAllBytes uint64 `json:"shmAllBytes"`
	ShmMaxBytes uint64 `json:"shmMaxBytes"`
	ShmMni      uint64 `json:"shmMni"`
}

// ReadIPCUsage reads the System V shared memory of the IPC namespace at
// path (such as /proc/PID/ns/ipc), from a thread that enters it for the
// read: /proc/sysvipc and /proc/sys/kernel show the reader's namespace.
func ReadIPCUsage(path string) (*IPCUsage, error) {
	u := &IPCUsage{}
	err := Do(IPC, path, func() error {
		b, err := os.ReadFile("/proc/sysvipc/shm")
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if i == 0 || len(f) < 4 {
				continue // header
			}
			size, err := strconv.ParseUint(f[3], 10, 64)
			if err != nil {
				return fmt.Errorf("/proc/sysvipc/shm: %q: %w", line, err)
			}
			u.ShmSegments++
			u.ShmBytes += size
		}
		for file, v := range map[string]*uint64{"shmall": &u.ShmAllBytes, "shmmax": &u.ShmMaxBytes, "shmmni": &u.ShmMni} {
			b, err := os.ReadFile("/proc/sys/kernel/" + file)
			if err != nil {
				return err
			}
			if *v, err = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err != nil {
				return fmt.Errorf("kernel.%s: %w", file, err)
			}
		}
		page := uint64(os.Getpagesize())
		if u.ShmAllBytes > math.MaxUint64/page {
			u.ShmAllBytes = math.MaxUint64 // the default: no limit
		} else {
			u.ShmAllBytes *= page
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("namespaces: IPC usage of %s: %w", path, err)
	}
	return u, nil
}
