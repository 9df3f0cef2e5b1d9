package security

import (
	"fmt"
	"strings"
)

// ipcSysctls are the sysctls the IPC namespace owns outside fs.mqueue.
var ipcSysctls = map[string]bool{
	"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true,
	"kernel.sem": true, "kernel.shmall": true, "kernel.shmmax": true,
	"kernel.shmmni": true, "kernel.shm_rmid_forced": true,
	"kernel.msg_next_id": true, "kernel.sem_next_id": true, "kernel.shm_next_id": true,
}

// CheckSysctl tells whether a container may set the sysctl name (dotted,
// "net.ipv4.ip_forward", or slashed, "net/ipv4/ip_forward"). Only sysctls
// that a namespace owned by the container isolates are allowed: the IPC ones
// (kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*) when the IPC namespace
// is private, net.* when the network namespace is private, and
// kernel.hostname / kernel.domainname when the UTS namespace is private.
// Anything else would change the host, and is refused with the reason.
func CheckSysctl(name string, netnsPrivate, ipcPrivate, utsPrivate bool) error {
	n := NormalizeSysctl(name)
	if n == "" {
		return fmt.Errorf("sysctl %q: empty name", name)
	}
	for _, part := range strings.Split(n, ".") {
		// A component made only of slashes would be "." or ".." in the path.
		if strings.Trim(part, "/") == "" || strings.ContainsAny(part, "\x00") {
			return fmt.Errorf("sysctl %q: malformed name", name)
		}
	}
	switch {
	case ipcSysctls[n] || strings.HasPrefix(n, "fs.mqueue."):
		if !ipcPrivate {
			return fmt.Errorf("sysctl %q: belongs to the IPC namespace, which the container shares with the host", name)
		}
		return nil
	case strings.HasPrefix(n, "net."):
		if !netnsPrivate {
			return fmt.Errorf("sysctl %q: belongs to the network namespace, which the container shares with the host", name)
		}
		return nil
	case n == "kernel.hostname" || n == "kernel.domainname":
		if !utsPrivate {
			return fmt.Errorf("sysctl %q: belongs to the UTS namespace, which the container shares with the host", name)
		}
		return nil
	}
	return fmt.Errorf("sysctl %q: not namespaced; setting it would change the whole host", name)
}

// NormalizeSysctl returns the dotted form of a sysctl name. As in
// sysctl(8), the first separator tells the form: in the slashed form a dot
// is part of a component (an interface name such as "eth0.100") and becomes
// a slash in the dotted form.
func NormalizeSysctl(name string) string {
	name = strings.TrimSpace(name)
	if i := strings.IndexAny(name, "./"); i < 0 || name[i] == '.' {
		return name
	}
	name = strings.Trim(name, "/")
	var b strings.Builder
	for _, r := range name {
		switch r {
		case '/':
			b.WriteByte('.')
		case '.':
			b.WriteByte('/')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// SysctlPath returns the /proc/sys file of a sysctl name (either form).
func SysctlPath(name string) string {
	n := NormalizeSysctl(name)
	var b strings.Builder
	b.WriteString("/proc/sys/")
	for _, r := range n {
		switch r {
		case '.':
			b.WriteByte('/')
		case '/':
			b.WriteByte('.')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
