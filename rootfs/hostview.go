package rootfs

import (
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// What a container on the host's own files (KindHost) sees of the host.
//
// Only the host directories that hold programs and their configuration
// are visible, read-only: HostVisible. The rest of the host tree (/home,
// /root, /var, /srv, /mnt, /media, /boot, ...) is not there at all: that
// is where the host keeps its state, its users' files, and the unix
// sockets and FIFOs of its services, which a read-only mount does not
// protect (connecting to a socket and opening a FIFO for writing ignore
// it) and which container root, host root to the kernel's permission
// checks unless the container has a user namespace, could otherwise use.
// /tmp, /run and /var are private tmpfs mounts (/var with an empty /var/tmp),
// /dev, /proc and /sys the container's own; /root and /home are empty
// directories. Inside the visible directories, HostSecrets are masked. A
// caller that wants more of the host binds it explicitly.

// HostVisible are the top-level host directories a KindHost container
// sees, read-only, when the host has them. Top-level symbolic links (such
// as /bin -> usr/bin) are recreated as they are.
var HostVisible = []string{"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc"}

// HostSecrets are host files and directories (shell patterns) masked in a
// KindHost container: files read as empty, directories as empty
// directories. A caller's own mount at one of these paths wins.
var HostSecrets = []string{
	"/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-",
	"/etc/security/opasswd",
	"/etc/ssh/ssh_host_*_key", "/etc/ssl/private", "/etc/pki/tls/private",
	"/etc/krb5.keytab", "/etc/letsencrypt", "/etc/wireguard", "/etc/ipsec.secrets", "/etc/ipsec.d/private",
	"/etc/ppp/chap-secrets", "/etc/ppp/pap-secrets", "/etc/NetworkManager/system-connections",
	"/etc/docker/key.json", "/etc/containers/auth.json",
}

// hostVisible reports whether the top-level host directory name is shown.
func hostVisible(name string) bool { return slices.Contains(HostVisible, name) }

// hostPrivateDirs are directories of the container's tmpfs root that
// stand for hidden host directories: empty, read-only.
var hostPrivateDirs = []string{"root", "home", "var"}

// maskHostSecrets masks HostSecrets inside the new root (after pivot_root),
// except the paths the plan mounts itself.
func (p *Plan) maskHostSecrets() error {
	for _, pattern := range HostSecrets {
		matches, _ := filepath.Glob(pattern)
		for _, m := range matches {
			if p.has(m) {
				continue
			}
			if err := maskPath(m); err != nil {
				return err
			}
		}
	}
	return nil
}

// privateVar fills the private /var tmpfs of a KindHost container: a
// sticky, world-writable /var/tmp, and /var/run and /var/lock pointing
// into the private /run as on the host.
func (b *builder) privateVar() error {
	if err := unix.Mkdirat(b.rootfd, "var/tmp", 0o755); err != nil && err != unix.EEXIST {
		return stepErr("create", "/var/tmp", err)
	}
	if err := unix.Fchmodat(b.rootfd, "var/tmp", 0o1777, 0); err != nil {
		return stepErr("chmod", "/var/tmp", err)
	}
	for _, l := range [][2]string{{"/run", "var/run"}, {"/run/lock", "var/lock"}} {
		if err := unix.Symlinkat(l[0], b.rootfd, l[1]); err != nil && err != unix.EEXIST {
			return stepErr("create", "/"+l[1], err)
		}
	}
	return nil
}
