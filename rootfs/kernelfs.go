package rootfs

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// procFiles are the files inside /proc that a mount may cover: the ones
// lxcfs serves a container's own view of (runc accepts the same list).
var procFiles = []string{
	"/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
	"/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev", "/proc/sys/kernel/ns_last_pid",
}

// checkKernelFSDestination reports why a mount of type typ may not be
// made at the clean absolute path dst: a mount inside /proc or /sys would
// replace what the kernel shows there (a bind over /proc/sys/kernel/...
// or /sys/kernel/... redirects the kernel's own knobs), so only proc at
// /proc, sysfs (or a bind of it) at /sys, cgroup views at /sys/fs/cgroup
// and the lxcfs files in procFiles are accepted, as runc does.
func checkKernelFSDestination(dst, typ string) error {
	switch {
	case dst == "/proc":
		if typ != TypeProc {
			return fmt.Errorf("/proc takes only a proc mount, not %s", typ)
		}
	case strings.HasPrefix(dst, "/proc/"):
		if !slices.Contains(procFiles, dst) {
			return fmt.Errorf("%s is inside /proc; only these may be covered there: %s", dst, strings.Join(procFiles, ", "))
		}
	case strings.HasPrefix(dst, "/sys/") && dst != "/sys/fs/cgroup" && !strings.HasPrefix(dst, "/sys/fs/cgroup/"):
		return fmt.Errorf("%s is inside /sys; only /sys itself and /sys/fs/cgroup may be mounted there", dst)
	}
	return nil
}

// checkKernelFSTarget refuses a mount onto the resolved target fd that
// lies on procfs or sysfs unless dst is a destination allowed there: a
// symlink in the root filesystem must not carry a mount into /proc or
// /sys that the destination's name does not show.
func checkKernelFSTarget(fd int, dst string) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return err
	}
	if st.Type != unix.PROC_SUPER_MAGIC && st.Type != unix.SYSFS_MAGIC {
		return nil
	}
	d := path.Clean("/" + dst)
	if d == "/proc" || d == "/sys" || d == "/sys/fs/cgroup" || strings.HasPrefix(d, "/sys/fs/cgroup/") || slices.Contains(procFiles, d) {
		return nil
	}
	return fmt.Errorf("%s resolves to a place inside /proc or /sys: %w", dst, unix.EPERM)
}
