package rootfs

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/fielderr"
	"github.com/openvessel/vessel/steperr"
)

// Kind is the kind of root filesystem.
type Kind string

// Root filesystem kinds.
const (
	// KindHost is the host's program directories (HostVisible), read-only,
	// on a private tmpfs root with fresh /dev, /proc, /sys, /tmp, /run and
	// /var; HostSecrets are masked.
	KindHost Kind = "host"
	// KindDir is a directory holding a complete root filesystem.
	KindDir Kind = "dir"
	// KindOverlay is read-only lower directories under a writable layer.
	KindOverlay Kind = "overlay"
	// KindImage is an OCI image layout directory or a docker-save tarball,
	// unpacked into a layer store and overlaid.
	KindImage Kind = "image"
	// KindImageFile is a single-file squashfs or erofs image on a loop device.
	KindImageFile Kind = "imagefile"
)

// Root says what the container's / is.
type Root struct {
	Kind Kind   `json:"kind"`
	Path string `json:"path,omitempty"`
	// Lower are the read-only directories of an overlay root, top-most first.
	Lower []string `json:"lower,omitempty"`
	// Layer is the directory of a persistent writable layer (overlay,
	// image and image-file roots); empty means an ephemeral layer that is
	// gone when the container is.
	Layer string `json:"layer,omitempty"`
	// Writable puts an ephemeral writable layer over an image file, which
	// is otherwise mounted read-only.
	Writable bool `json:"writable,omitempty"`
	// Quota limits, in bytes, what the container can write to its root
	// (0: no limit). storage.Prepared.QuotaMethod says how it is enforced.
	Quota int64 `json:"quota,omitempty"`
	// QuotaInodes limits how many files and directories the container can
	// create in its root's writable layer (0: the filesystem's default).
	// It needs Quota: the writable layer is then a tmpfs (nr_inodes), an
	// ext4 image made with that many inodes, or an XFS/ext4 project quota
	// with an inode hard limit.
	QuotaInodes int64 `json:"quotaInodes,omitempty"`
	// Store is the layer store of image roots (default DefaultLayerStore).
	Store string `json:"store,omitempty"`
	// Ref picks one image of a layout or tarball holding several, by its
	// org.opencontainers.image.ref.name annotation or repo:tag.
	Ref string `json:"ref,omitempty"`
	// Storage is what storage.Prepare resolved on the host for the child's Setup.
	Storage *Storage `json:"storage,omitempty"`
	// IDMap mounts a directory root idmapped through the container's user
	// namespace, so files owned by host root appear owned by container
	// root without any chown (mount_setattr MOUNT_ATTR_IDMAP).
	IDMap bool `json:"idmap,omitempty"`
	// FD, when positive, is an idmapped detached mount of Path that the
	// parent made (see IDMapped); the child attaches it instead of a clone.
	FD int `json:"-"`
}

// Host returns the host's own files, read-only, as the root filesystem (the
// common use of bubblewrap): the directories in HostVisible, with the
// files in HostSecrets masked; the rest of the host's top level is not
// visible. /tmp, /run and /var are private tmpfs mounts and /dev, /proc
// and /sys are the container's own.
func Host() Root { return Root{Kind: KindHost} }

// Dir returns a directory holding a complete root filesystem. Missing mount
// points are created inside it, as runc does.
func Dir(path string) Root { return Root{Kind: KindDir, Path: path} }

// Mount types with special handling; any other type is passed to fsopen(2).
const (
	TypeBind   = "bind"
	TypeTmpfs  = "tmpfs"
	TypeProc   = "proc"
	TypeSysfs  = "sysfs"
	TypeDevpts = "devpts"
	TypeMqueue = "mqueue"
)

// Mount is one mount inside the container.
type Mount struct {
	Type        string `json:"type"`
	Source      string `json:"source,omitempty"`
	Destination string `json:"destination"`
	// ReadOnly makes the mount (and, for recursive binds, every submount)
	// read-only.
	ReadOnly bool `json:"readonly,omitempty"`
	// NonRecursive binds only the source mount, not its submounts.
	NonRecursive bool `json:"nonRecursive,omitempty"`
	// Size limits a tmpfs, in bytes (0: the kernel default, half of RAM).
	Size int64 `json:"size,omitempty"`
	// Mode is a tmpfs root's permission bits (0: 01777 for tmpfs).
	Mode uint32 `json:"mode,omitempty"`
	// Propagation is private (default), shared, slave or unbindable.
	Propagation string `json:"propagation,omitempty"`
	NoExec      bool   `json:"noexec,omitempty"`
	NoSuid      bool   `json:"nosuid,omitempty"`
	NoDev       bool   `json:"nodev,omitempty"`
	// Data holds filesystem options as key=value or bare flags.
	Data []string `json:"data,omitempty"`
	// IDMap makes a bind mount idmapped through the container's user
	// namespace (see Root.IDMap).
	IDMap bool `json:"idmap,omitempty"`
	// FD, when positive, is the parent-made idmapped mount of Source.
	FD int `json:"-"`
	// Stacked says that the mount deliberately covers an earlier mount of
	// the list at the same destination (OCI specs do that, and runtimes
	// apply such mounts in order). Without it a repeated destination is
	// taken for a mistake and refused.
	Stacked bool `json:"stacked,omitempty"`
	// CopyUp fills a new tmpfs with what its destination held before it
	// was mounted over (files, directories, symlinks, device nodes, with
	// their modes and owners): podman's tmpcopyup option.
	CopyUp bool `json:"copyUp,omitempty"`
}

// Device is a device node (or fifo) created in the container, as an OCI
// spec's linux.devices asks.
type Device struct {
	// Path is where the node is created inside the container.
	Path string `json:"path"`
	// Type is "c" (or "u") for a character device, "b" for a block
	// device, "p" for a fifo.
	Type  string `json:"type"`
	Major int64  `json:"major,omitempty"`
	Minor int64  `json:"minor,omitempty"`
	// Mode holds the permission bits (0: 0666).
	Mode uint32 `json:"mode,omitempty"`
	UID  uint32 `json:"uid,omitempty"`
	GID  uint32 `json:"gid,omitempty"`
}

// Bind returns a read-write recursive bind mount of host path src at dst.
func Bind(src, dst string) Mount { return Mount{Type: TypeBind, Source: src, Destination: dst} }

// BindRO returns a read-only recursive bind mount of host path src at dst.
func BindRO(src, dst string) Mount {
	return Mount{Type: TypeBind, Source: src, Destination: dst, ReadOnly: true}
}

// Tmpfs returns a tmpfs at dst limited to size bytes (0: kernel default).
func Tmpfs(dst string, size int64) Mount {
	return Mount{Type: TypeTmpfs, Source: "tmpfs", Destination: dst, Size: size, NoSuid: true, NoDev: true}
}

// File is a file vessel writes for the container (e.g. /etc/hosts) and
// bind-mounts over Path, leaving the root filesystem itself untouched.
type File struct {
	Path string `json:"path"`
	Data []byte `json:"data"`
	Mode uint32 `json:"mode,omitempty"`
	// Source, when set, is a host file bound read-only over Path instead
	// of Data (a file the host keeps up to date, like a bridge's hosts).
	Source string `json:"source,omitempty"`
}

// Plan is everything Setup needs. The container runtime fills in the
// namespace facts; callers mostly set Root, Mounts and Readonly.
type Plan struct {
	Root     Root    `json:"root"`
	Readonly bool    `json:"readonly,omitempty"`
	Mounts   []Mount `json:"mounts,omitempty"`
	// MaskedPaths are hidden (a file gets /dev/null over it, a directory an
	// empty read-only tmpfs). nil means DefaultMaskedPaths.
	MaskedPaths []string `json:"maskedPaths"`
	// ReadonlyPaths are remounted read-only. nil means DefaultReadonlyPaths.
	ReadonlyPaths []string `json:"readonlyPaths"`
	Files         []File   `json:"files,omitempty"`

	// Facts about the container's namespaces.
	UserNS    bool `json:"userns,omitempty"`
	NewPID    bool `json:"newPID,omitempty"`
	NewNet    bool `json:"newNet,omitempty"`
	NewIPC    bool `json:"newIPC,omitempty"`
	NewCgroup bool `json:"newCgroup,omitempty"`
	// CgroupV2 mounts a read-only cgroup2 at /sys/fs/cgroup (with NewCgroup).
	CgroupV2 bool `json:"cgroupV2,omitempty"`
	// DeferProc: Setup skips the paths it would hide and protect below
	// its proc mounts, which SwapProc replaces (and hides and protects)
	// once the pid namespace they show has its first process. Set by the
	// process that runs Setup, never serialised.
	DeferProc bool `json:"-"`
	// PidnsFD, when positive, is 1 + a descriptor of the pid namespace
	// the container's processes live in (made before Setup): its proc
	// mounts show that namespace (proc's pidns= option). Set by the
	// process that runs Setup, never serialised.
	PidnsFD int `json:"-"`
	// CgroupV1 are the host's hierarchies of a v1 or hybrid layout, shown
	// read-only below /sys/fs/cgroup as the container's cgroup namespace
	// sees them (with NewCgroup, without CgroupV2 and a user namespace).
	CgroupV1 []CgroupMount `json:"cgroupV1,omitempty"`
	// TTYGid is the group that owns pty slaves (5 on Debian); -1 leaves it.
	TTYGid int `json:"ttyGid"`
	// PtyMax limits the pseudo-terminals of the container's devpts (its
	// max= option; 0: the kernel's default). Opening /dev/ptmx beyond it
	// fails with ENOSPC.
	PtyMax int64 `json:"ptyMax,omitempty"`
	// Console makes /dev/console the main process's pseudo-terminal (the
	// first of the container's devpts, pts/0), for an init that writes to
	// its console.
	Console bool `json:"console,omitempty"`
	// ShmSize is the size of the container's /dev/shm tmpfs in bytes
	// (0: 64 MiB).
	ShmSize int64 `json:"shmSize,omitempty"`
	// Privileged binds the host's /dev instead of a minimal one.
	Privileged bool `json:"privileged,omitempty"`
	// Devices are created after the mounts (mknod; in a user namespace,
	// where mknod is refused, a bind of the host's node at the same path).
	Devices []Device `json:"devices,omitempty"`
	// RootPropagation is the propagation of the container's root mount:
	// "" (private), private, rprivate, shared, rshared, slave, rslave,
	// unbindable, runbindable. A slave root receives the host's mounts
	// below the root directory; nothing ever propagates back to the host.
	RootPropagation string `json:"rootPropagation,omitempty"`
	// BeforePivot, when set, runs once every mount is in place, before
	// pivot_root (OCI createContainer hooks run here).
	BeforePivot func() error `json:"-"`
	// InheritMountNS builds the root for a process that stays in the
	// caller's mount namespace (an OCI container without a mount
	// namespace of its own): Setup assembles it in a scratch mount
	// namespace of its own, takes the finished tree as a detached copy,
	// returns to the caller's mount namespace and chroots into that copy.
	// Nothing is mounted in the caller's namespace; the tree goes away
	// with the last process whose root it is.
	InheritMountNS bool `json:"inheritMountNS,omitempty"`
}

// CgroupMount is one cgroup hierarchy mounted below /sys/fs/cgroup.
type CgroupMount struct {
	// Name is its directory there ("memory", "cpu,cpuacct", "unified").
	Name string `json:"name"`
	// V2: a cgroup2 hierarchy (a hybrid layout's unified one).
	V2 bool `json:"v2,omitempty"`
	// Options are its v1 mount options ("memory"; "none", "name=systemd").
	Options []string `json:"options,omitempty"`
	// Links are other names there that point to it ("cpu", "cpuacct").
	Links []string `json:"links,omitempty"`
}

// DefaultMaskedPaths are hidden from every container (runc's defaults).
var DefaultMaskedPaths = []string{
	"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
	"/sys/firmware", "/sys/devices/virtual/powercap", "/proc/interrupts",
}

// DefaultReadonlyPaths are read-only in every container (runc's defaults).
var DefaultReadonlyPaths = []string{
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
}

// Error is a failed setup step: vessel's one step-error type
// (steperr.Error).
type Error = steperr.Error

// stepErr names the step that failed, unless err already does.
func stepErr(step, p string, err error) error { return steperr.Wrap(step, p, err) }

// Validate checks the plan on the parent side, naming the field at fault.
func (p *Plan) Validate() error {
	if err := p.Root.validateKindFields(); err != nil {
		return err
	}
	switch p.Root.Kind {
	case KindHost:
		if p.Root.Path != "" {
			return fielderr.New("rootfs.path", "a host root takes no path (got %q)", p.Root.Path)
		}
	case KindDir:
		if p.Root.Path == "" {
			return fielderr.New("rootfs.path", "empty")
		}
		if !filepath.IsAbs(p.Root.Path) {
			return fielderr.New("rootfs.path", "%q is not absolute", p.Root.Path)
		}
		fi, err := os.Stat(p.Root.Path)
		if err != nil {
			return fielderr.Wrap("rootfs.path", err)
		}
		if !fi.IsDir() {
			return fielderr.New("rootfs.path", "%q is not a directory", p.Root.Path)
		}
	case KindOverlay, KindImage, KindImageFile:
		if err := p.Root.validateStorage(); err != nil {
			return err
		}
	case "":
		return fielderr.New("rootfs.kind", "not set (use rootfs.Host() or rootfs.Dir(path))")
	default:
		return fielderr.New("rootfs.kind", "unknown kind %q", p.Root.Kind)
	}
	seen := map[string]int{}
	for i, m := range p.Mounts {
		field := fmt.Sprintf("mounts[%d]", i)
		if m.Destination == "" {
			return fielderr.New(field+".destination", "empty")
		}
		if !path.IsAbs(m.Destination) {
			return fielderr.New(field+".destination", "%q is not absolute", m.Destination)
		}
		d := path.Clean(m.Destination)
		if d == "/" {
			return fielderr.New(field+".destination", "cannot mount over / (set the root filesystem instead)")
		}
		if j, ok := seen[d]; ok && !m.Stacked {
			return fielderr.New(field+".destination", "%s is already the destination of mounts[%d] (overlapping mounts)", d, j)
		}
		seen[d] = i
		if err := checkKernelFSDestination(d, m.Type); err != nil {
			return fielderr.Wrap(field+".destination", err)
		}
		switch m.Type {
		case TypeBind:
			if m.Source == "" || !filepath.IsAbs(m.Source) {
				return fielderr.New(field+".source", "bind source %q must be an absolute host path", m.Source)
			}
			if _, err := os.Stat(m.Source); err != nil {
				return fielderr.Wrap(field+".source", err)
			}
		case TypeVolume:
			if err := validateVolume(field, &m); err != nil {
				return err
			}
		case "":
			return fielderr.New(field+".type", "empty")
		default:
			if strings.ContainsAny(m.Type, "/ ") {
				return fielderr.New(field+".type", "%q is not a filesystem type", m.Type)
			}
		}
		if m.Size < 0 {
			return fielderr.New(field+".size", "negative")
		}
		if m.CopyUp && m.Type != TypeTmpfs {
			return fmt.Errorf("%s.copyUp: only a tmpfs can be filled from what it covers", field)
		}
		if m.Size > 0 && m.Type != TypeTmpfs && m.Type != TypeVolume {
			return fielderr.New(field+".size", "only a tmpfs takes a size")
		}
		switch m.Propagation {
		case "", "private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable":
		default:
			return fielderr.New(field+".propagation", "unknown mode %q", m.Propagation)
		}
	}
	if p.Root.IDMap && p.Root.Kind != KindDir {
		return fielderr.New("rootfs.idmap", "only a directory root can be idmapped (kind %q)", p.Root.Kind)
	}
	for i, m := range p.Mounts {
		if m.IDMap && m.Type != TypeBind {
			return fielderr.New(fmt.Sprintf("mounts[%d].idmap", i), "only bind mounts can be idmapped")
		}
	}
	if p.NeedsIDMap() && !p.UserNS {
		return fielderr.New("rootfs.idmap", "idmapped mounts need a new user namespace to map through")
	}
	for i, d := range p.Devices {
		field := fmt.Sprintf("devices[%d]", i)
		if !path.IsAbs(d.Path) || path.Clean(d.Path) == "/" {
			return fmt.Errorf("%s.path: %q must be an absolute path below /", field, d.Path)
		}
		switch d.Type {
		case "c", "u", "b", "p":
		default:
			return fmt.Errorf("%s.type: %q is not c, u, b or p", field, d.Type)
		}
		if d.Major < 0 || d.Minor < 0 || d.Major > 0xfff || d.Minor > 0xfffff {
			return fmt.Errorf("%s: device number %d:%d is out of range", field, d.Major, d.Minor)
		}
		if d.Mode > 0o7777 {
			return fmt.Errorf("%s.mode: %#o is not a permission mode", field, d.Mode)
		}
	}
	switch p.RootPropagation {
	case "", "private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable":
	default:
		return fmt.Errorf("rootPropagation: unknown mode %q", p.RootPropagation)
	}
	for i, f := range p.Files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) == "/" {
			return fielderr.New(fmt.Sprintf("files[%d].path", i), "%q must be an absolute file path", f.Path)
		}
	}
	for _, l := range []struct {
		field string
		paths []string
	}{{"maskedPaths", p.MaskedPaths}, {"readonlyPaths", p.ReadonlyPaths}} {
		for i, m := range l.paths {
			if !path.IsAbs(m) {
				return fielderr.New(fmt.Sprintf("%s[%d]", l.field, i), "%q is not absolute", m)
			}
		}
	}
	return nil
}

// ParseVolume parses the CLI form SRC:DST[:ro|rw][,...] into a bind mount.
func ParseVolume(s string) (Mount, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return Mount{}, fmt.Errorf("volume %q: want SRC:DST[:ro]", s)
	}
	m := Bind(parts[0], parts[1])
	if parts[0] != "" && !strings.ContainsAny(parts[0], "/.") {
		// A bare name is a named volume that outlives the container.
		m = NamedVolume(parts[0], parts[1])
	}
	if len(parts) == 3 {
		for _, o := range strings.Split(parts[2], ",") {
			switch o {
			case "ro":
				m.ReadOnly = true
			case "rw":
				m.ReadOnly = false
			case "norecursive", "bind":
				m.NonRecursive = true
			case "rbind":
				m.NonRecursive = false
			case "private", "rprivate", "shared", "rshared", "slave", "rslave":
				m.Propagation = o
			default:
				return Mount{}, fmt.Errorf("volume %q: unknown option %q", s, o)
			}
		}
	}
	if m.Type == TypeBind && !filepath.IsAbs(m.Source) {
		abs, err := filepath.Abs(m.Source)
		if err != nil {
			return Mount{}, err
		}
		m.Source = abs
	}
	return m, nil
}

// ParseTmpfs parses the CLI form DST[:SIZE] (SIZE like 64m, 1g).
func ParseTmpfs(s string) (Mount, error) {
	dst, size, _ := strings.Cut(s, ":")
	m := Tmpfs(dst, 0)
	if size != "" {
		n, err := ParseSize(size)
		if err != nil {
			return Mount{}, fmt.Errorf("tmpfs %q: %w", s, err)
		}
		m.Size = n
	}
	return m, nil
}

// ParseSize parses 512, 64k, 10M, 1G (powers of 1024).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToLower(s))
	t = strings.TrimSuffix(t, "b")
	t = strings.TrimSuffix(t, "i")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'k':
			mult, t = 1<<10, t[:len(t)-1]
		case 'm':
			mult, t = 1<<20, t[:len(t)-1]
		case 'g':
			mult, t = 1<<30, t[:len(t)-1]
		case 't':
			mult, t = 1<<40, t[:len(t)-1]
		}
	}
	var n int64
	if _, err := fmt.Sscanf(t, "%d", &n); err != nil || n < 0 || fmt.Sprint(n) != t {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

// IDMapped makes a detached recursive clone of the host path src whose
// ids are mapped through the user namespace at usernsPath
// (/proc/PID/ns/user of the container's init). It must run in the host's
// user namespace: idmapping needs CAP_SYS_ADMIN over the filesystem.
func IDMapped(src, usernsPath string, recursive bool) (*os.File, error) {
	ns, err := unix.Open(usernsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(ns)
	fd, err := cloneTree(src, recursive)
	if err != nil {
		return nil, fmt.Errorf("clone %s: %w", src, err)
	}
	flags := uint(unix.AT_EMPTY_PATH)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	if err := unix.MountSetattr(fd, "", flags, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns)}); err != nil {
		unix.Close(fd)
		if err == unix.EINVAL {
			var st unix.Statfs_t
			_ = unix.Statfs(src, &st)
			return nil, fmt.Errorf("idmap %s: this kernel cannot idmap mounts of its filesystem (type %#x; tmpfs needs Linux 6.3+): %w", src, st.Type, err)
		}
		return nil, fmt.Errorf("idmap %s: %w", src, err)
	}
	return os.NewFile(uintptr(fd), "idmapped:"+src), nil
}

// NeedsIDMap reports whether the parent must make idmapped mounts for the
// child (see IDMapped).
func (p *Plan) NeedsIDMap() bool {
	if p.Root.IDMap {
		return true
	}
	for _, m := range p.Mounts {
		if m.IDMap {
			return true
		}
	}
	return false
}

// ValidName reports whether s is a valid container id or volume name: 1 to
// 128 letters, digits, '_', '.' and '-', starting with a letter or digit.
// (A hand-written check: the equivalent regexp costs a millisecond to
// compile at every program start, container inits included.)
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || (c != '_' && c != '.' && c != '-')) {
			return false
		}
	}
	return true
}
