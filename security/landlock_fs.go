package security

// ContainerFS describes a container's filesystem as a Landlock ruleset
// needs it: whether its root is writable, whether the root is the host's
// own files, and its mounts.
type ContainerFS struct {
	// RootWritable: the container may write anywhere in its root.
	RootWritable bool
	// HostRoot: the root is the host's files (read-only) with private
	// /tmp and /run.
	HostRoot bool
	// Mounts are the container's mounts by destination.
	Mounts []MountAccess
}

// MountAccess is one mount of a ContainerFS.
type MountAccess struct {
	Destination string
	ReadOnly    bool
}

// HasPaths reports whether the ruleset names any path.
func (l *Landlock) HasPaths() bool {
	return len(l.ReadOnly)+len(l.ReadExec)+len(l.ReadWrite) != 0
}

// WithContainerFS returns l with the paths of the container's own
// filesystem added: the root readable and executable (writable when fs
// says so), each mount as its options say, /dev and /proc writable (and
// /tmp and /run on a host root).
func (l Landlock) WithContainerFS(fs ContainerFS) Landlock {
	if fs.RootWritable {
		l.ReadWrite = append(l.ReadWrite, "/")
	} else {
		l.ReadExec = append(l.ReadExec, "/")
		l.ReadWrite = append(l.ReadWrite, "/dev", "/proc")
		if fs.HostRoot {
			l.ReadWrite = append(l.ReadWrite, "/tmp", "/run")
		}
	}
	for _, m := range fs.Mounts {
		switch {
		case m.ReadOnly:
			l.ReadExec = append(l.ReadExec, m.Destination)
		case !fs.RootWritable:
			l.ReadWrite = append(l.ReadWrite, m.Destination)
		}
	}
	return l
}
