package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/internal/fsmount"
	"github.com/openvessel/vessel/internal/pathrs"
)

// A detached mount tree, cloned from a host path before anything is
// covered, and attached later inside the new root.
type clone struct {
	fd  int
	dst string
	dir bool
}

// builder holds the state of one Setup run.
type builder struct {
	p       *Plan
	rootfd  int    // O_PATH fd of the new root mount
	stage   string // host path where the new root (or scratch) hangs
	closes  []int
	sources map[int]int // Files index -> detached clone of File.Source
}

func (b *builder) close() {
	for _, fd := range b.closes {
		unix.Close(fd)
	}
	b.closes = nil
}

func (b *builder) track(fd int) int { b.closes = append(b.closes, fd); return fd }

// Setup assembles the root filesystem described by p and pivots into it.
// It must run in a new mount namespace on a thread that will also start the
// container's processes. On return the process's root and working
// directory are the container's /.
//
// With p.InheritMountNS, Setup runs in the caller's mount namespace
// instead and leaves the thread there (see Plan.InheritMountNS).
func Setup(p *Plan) error {
	if p.InheritMountNS {
		return setupDetached(p)
	}
	return setup(p)
}

// setupDetached builds the root in a scratch mount namespace of the
// calling thread and comes back to the thread's mount namespace with the
// root as a detached tree: the thread's root is in that tree, its mount
// namespace the one it had, and that namespace's mount table is never
// changed.
func setupDetached(p *Plan) error {
	own, err := unix.Open("/proc/thread-self/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return stepErr("open own mount namespace", "/proc/thread-self/ns/mnt", err)
	}
	defer unix.Close(own)
	// A thread of a multi-threaded process gets filesystem attributes of
	// its own before it may change mount namespace.
	if err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS); err != nil {
		return stepErr("unshare scratch mount namespace", "", err)
	}
	back := func() error {
		return unix.Setns(own, unix.CLONE_NEWNS)
	}
	if err := setup(p); err != nil {
		if berr := back(); berr != nil {
			return errors.Join(err, stepErr("return to own mount namespace", "", berr))
		}
		return err
	}
	tree, err := unix.OpenTree(unix.AT_FDCWD, "/", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		_ = back()
		return stepErr("detach the root tree", "/", err)
	}
	defer unix.Close(tree)
	if err := back(); err != nil {
		return stepErr("return to own mount namespace", "", err)
	}
	if err := unix.Fchdir(tree); err != nil {
		return stepErr("chdir to the detached root", "", err)
	}
	if err := unix.Chroot("."); err != nil {
		return stepErr("chroot to the detached root", "", err)
	}
	return stepErr("chdir /", "/", unix.Chdir("/"))
}

func setup(p *Plan) error {
	b := &builder{p: p, rootfd: -1}
	defer b.close()
	// Nothing we do may propagate back to the host. A slave root (asked
	// by an OCI spec) keeps receiving the host's mounts, as runc's does.
	if strings.HasSuffix(p.RootPropagation, "slave") {
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
			return stepErr("make / slave", "/", err)
		}
	} else if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return stepErr("make / private", "/", err)
	}
	// 1. Take every host tree we need as a detached clone, before any of
	// them can be covered by the mounts we are about to make.
	binds := make([]clone, 0, len(p.Mounts))
	for _, m := range p.Mounts {
		if m.Type != TypeBind {
			continue
		}
		fd := m.FD
		if fd <= 0 {
			var err error
			if fd, err = cloneTree(m.Source, !m.NonRecursive); err != nil {
				return stepErr("clone bind source", m.Source, err)
			}
		}
		b.track(fd)
		if m.ReadOnly {
			if err := setAttr(fd, unix.MOUNT_ATTR_RDONLY, !m.NonRecursive); err != nil {
				return stepErr("make bind read-only", m.Source, err)
			}
		}
		if err := setAttr(fd, mountAttrs(&m), !m.NonRecursive); err != nil {
			return stepErr("set bind flags", m.Source, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return stepErr("stat bind source", m.Source, err)
		}
		binds = append(binds, clone{fd: fd, dst: m.Destination, dir: st.Mode&unix.S_IFMT == unix.S_IFDIR})
	}
	// Host files bound over generated paths (a bridge's shared hosts).
	b.sources = map[int]int{}
	for i, f := range p.Files {
		if f.Source == "" {
			continue
		}
		fd, err := cloneTree(f.Source, false)
		if err != nil {
			return stepErr("clone file source", f.Source, err)
		}
		b.track(fd)
		if err := setAttr(fd, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC, false); err != nil {
			return stepErr("make file read-only", f.Source, err)
		}
		b.sources[i] = fd
	}
	devClones, err := b.cloneDevices()
	if err != nil {
		return err
	}
	nodeClones, err := b.cloneDeviceNodes()
	if err != nil {
		return err
	}
	procClone, sysClone := -1, -1
	// In a user namespace a new proc instance can only be one of a pid
	// namespace of that user namespace: the host's is cloned instead
	// (with a pid namespace of the container's own, SwapProc replaces it
	// once that namespace has its first process).
	if p.UserNS && !p.has("/proc") && (p.PidnsFD == 0 || !p.NewPID) {
		if procClone, err = cloneTree("/proc", true); err != nil {
			return stepErr("clone host /proc", "/proc", err)
		}
		b.track(procClone)
	}
	if p.UserNS && !p.NewNet && !p.has("/sys") {
		if sysClone, err = cloneTree("/sys", true); err != nil {
			return stepErr("clone host /sys", "/sys", err)
		}
		b.track(sysClone)
		if err := setAttr(sysClone, unix.MOUNT_ATTR_RDONLY, true); err != nil {
			return stepErr("make /sys read-only", "/sys", err)
		}
	}

	// 2. Attach the new root.
	switch p.Root.Kind {
	case KindHost:
		if err := b.hostRoot(); err != nil {
			return err
		}
	case KindDir:
		if err := b.dirRoot(); err != nil {
			return err
		}
	case KindOverlay, KindImage, KindImageFile:
		if err := b.storageRoot(); err != nil {
			return err
		}
	default:
		return stepErr("rootfs", "", fmt.Errorf("unknown kind %q", p.Root.Kind))
	}

	// 3. System mounts, unless the caller mounts the same destination.
	if !p.has("/proc") {
		if procClone >= 0 {
			err = b.attach(procClone, "/proc", true)
		} else {
			err = b.mountFS("proc", "proc", "/proc", nil, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
		}
		if err != nil {
			return err
		}
	}
	if !p.has("/dev") {
		if err := b.dev(devClones); err != nil {
			return err
		}
	}
	if !p.has("/sys") {
		if sysClone >= 0 {
			err = b.attach(sysClone, "/sys", true)
		} else {
			err = b.mountFS("sysfs", "sysfs", "/sys", nil, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC|unix.MOUNT_ATTR_RDONLY)
		}
		if err != nil {
			return err
		}
		if p.NewCgroup && p.CgroupV2 && sysClone < 0 {
			if err := b.mountFS("cgroup2", "cgroup", "/sys/fs/cgroup", nil, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC|unix.MOUNT_ATTR_RDONLY); err != nil {
				return err
			}
		} else if p.NewCgroup && len(p.CgroupV1) > 0 && sysClone < 0 && !p.UserNS {
			if err := b.cgroupV1(); err != nil {
				return err
			}
		}
	}
	if p.Root.Kind == KindHost {
		for _, d := range []string{"/tmp", "/run", "/var"} {
			if p.has(d) {
				continue
			}
			mode := "1777"
			if d != "/tmp" {
				mode = "755"
			}
			if err := b.mountFS("tmpfs", "tmpfs", d, []string{"mode=" + mode}, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV); err != nil {
				return err
			}
		}
		if !p.has("/var") {
			if err := b.privateVar(); err != nil {
				return err
			}
		}
	}

	// 4. The caller's mounts, in order.
	bi := 0
	for i := range p.Mounts {
		m := &p.Mounts[i]
		if m.Type == TypeBind {
			c := binds[bi]
			bi++
			// A fresh copy of the clone taken in step 1: mountinfo lists
			// mounts by creation, and the copy puts this bind in the spec's
			// order among the other mounts (as runc's, which the OCI
			// runtime-tools check), while its source was still taken
			// before anything could cover it.
			if fd, err := cloneDetached(c.fd, !m.NonRecursive); err == nil {
				c.fd = b.track(fd)
			}
			if err := b.attach(c.fd, c.dst, c.dir); err != nil {
				return err
			}
			if err := propagate(c.fd, m.Propagation); err != nil {
				return stepErr("set propagation", m.Destination, err)
			}
			continue
		}
		if err := b.mountUser(m); err != nil {
			return err
		}
	}

	// 5. Device nodes, then generated files.
	if err := b.deviceNodes(nodeClones); err != nil {
		return err
	}
	if err := b.files(); err != nil {
		return err
	}

	// 6. Pivot, after the caller's last look at the assembled tree.
	if p.BeforePivot != nil {
		if err := p.BeforePivot(); err != nil {
			return stepErr("before pivot_root", "", err)
		}
	}
	if err := pivot(b.rootfd); err != nil {
		return err
	}
	if err := rootPropagation(p.RootPropagation); err != nil {
		return stepErr("set root propagation", "/", err)
	}

	// 7. Inside the new root: hide and protect.
	masked := p.MaskedPaths
	if masked == nil {
		masked = DefaultMaskedPaths
	}
	var later *ProcSwap
	if p.DeferProc {
		later = p.ProcSwap()
	}
	for _, m := range masked {
		if later != nil && slices.Contains(later.Masked, m) {
			continue
		}
		if err := maskPath(m); err != nil {
			return err
		}
	}
	if p.Root.Kind == KindHost {
		if err := p.maskHostSecrets(); err != nil {
			return err
		}
	}
	ro := p.ReadonlyPaths
	if ro == nil {
		ro = DefaultReadonlyPaths
	}
	for _, r := range ro {
		if later != nil && slices.Contains(later.Readonly, r) {
			continue
		}
		if err := readonlyPath(r); err != nil {
			return err
		}
	}
	if p.Readonly || p.Root.Kind == KindHost {
		if err := unix.MountSetattr(unix.AT_FDCWD, "/", 0, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
			return stepErr("make root read-only", "/", err)
		}
	}
	return nil
}

// has reports whether the caller mounts something at dst.
func (p *Plan) has(dst string) bool {
	for _, m := range p.Mounts {
		if path.Clean(m.Destination) == dst {
			return true
		}
	}
	return false
}

func cloneTree(src string, recursive bool) (int, error) {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	return unix.OpenTree(unix.AT_FDCWD, src, flags)
}

// cloneDetached copies a detached mount tree (kernels that cannot clone a
// detached tree fail, and the caller keeps the one it has).
func cloneDetached(fd int, recursive bool) (int, error) {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC | unix.AT_EMPTY_PATH)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	return unix.OpenTree(fd, "", flags)
}

func setAttr(fd int, attr uint64, recursive bool) error {
	if attr == 0 {
		return nil
	}
	flags := uint(unix.AT_EMPTY_PATH)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	return unix.MountSetattr(fd, "", flags, &unix.MountAttr{Attr_set: attr})
}

func mountAttrs(m *Mount) uint64 {
	var a uint64
	if m.ReadOnly {
		a |= unix.MOUNT_ATTR_RDONLY
	}
	if m.NoExec {
		a |= unix.MOUNT_ATTR_NOEXEC
	}
	if m.NoSuid {
		a |= unix.MOUNT_ATTR_NOSUID
	}
	if m.NoDev {
		a |= unix.MOUNT_ATTR_NODEV
	}
	return a
}

func propagate(fd int, mode string) error {
	var p uint64
	rec := strings.HasPrefix(mode, "r")
	switch strings.TrimPrefix(mode, "r") {
	case "", "private":
		return nil
	case "shared":
		p = unix.MS_SHARED
	case "slave":
		p = unix.MS_SLAVE
	case "unbindable":
		p = unix.MS_UNBINDABLE
	}
	flags := uint(unix.AT_EMPTY_PATH)
	if rec {
		flags |= unix.AT_RECURSIVE
	}
	return unix.MountSetattr(fd, "", flags, &unix.MountAttr{Propagation: p})
}

// stagePoint returns a directory of the host's tree over which, inside our
// private mount namespace, a scratch mount can hang. Covering it hides
// nothing the container needs: every host source was cloned before.
func stagePoint() (string, error) {
	for _, d := range []string{"/tmp", "/mnt", "/run", "/var/tmp", "/opt", "/srv", "/media", "/home", "/root"} {
		if fi, err := os.Lstat(d); err == nil && fi.IsDir() {
			return d, nil
		}
	}
	return "", errors.New("no directory to stage the root on (tried /tmp, /mnt, /run, ...)")
}

// hostRoot builds a tmpfs root holding read-only recursive binds of every
// top-level directory of the host, and the host's top-level symlinks.
func (b *builder) hostRoot() error {
	entries, err := os.ReadDir("/")
	if err != nil {
		return stepErr("read host root", "/", err)
	}
	type entry struct {
		name, link string
		fd         int
		dir        bool
	}
	var list []entry
	for _, e := range entries {
		name := e.Name()
		switch name {
		case "proc", "sys", "dev", "tmp", "run":
			continue // replaced by the container's own
		}
		full := "/" + name
		switch {
		case e.Type()&os.ModeSymlink == 0 && !hostVisible(name):
			continue // hidden: see HostVisible
		case e.Type()&os.ModeSymlink != 0:
			l, err := os.Readlink(full)
			if err != nil {
				return stepErr("read host symlink", full, err)
			}
			list = append(list, entry{name: name, link: l, fd: -1})
		case e.IsDir() || e.Type().IsRegular():
			fd, err := cloneTree(full, true)
			if err != nil {
				if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
					continue
				}
				return stepErr("clone host directory", full, err)
			}
			b.track(fd)
			if err := setAttr(fd, unix.MOUNT_ATTR_RDONLY, true); err != nil {
				return stepErr("make host directory read-only", full, err)
			}
			list = append(list, entry{name: name, fd: fd, dir: e.IsDir()})
		}
	}
	stage, err := stagePoint()
	if err != nil {
		return stepErr("stage root", "", err)
	}
	b.stage = stage
	mfd, err := fsMount("tmpfs", "vessel-root", []string{"mode=0755", "size=1m"}, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return stepErr("mount root tmpfs", stage, err)
	}
	b.rootfd = b.track(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, stage, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return stepErr("attach root tmpfs", stage, err)
	}
	for _, d := range append([]string{"proc", "sys", "dev", "tmp", "run"}, hostPrivateDirs...) {
		if err := unix.Mkdirat(b.rootfd, d, 0o755); err != nil && err != unix.EEXIST {
			return stepErr("create mount point", "/"+d, err)
		}
	}
	for _, e := range list {
		if e.link != "" {
			if err := unix.Symlinkat(e.link, b.rootfd, e.name); err != nil {
				return stepErr("recreate host symlink", "/"+e.name, err)
			}
			continue
		}
		if err := b.attach(e.fd, "/"+e.name, e.dir); err != nil {
			return err
		}
	}
	return nil
}

// dirRoot attaches a recursive bind of the root directory over itself.
func (b *builder) dirRoot() error {
	src := b.p.Root.Path
	fd := b.p.Root.FD
	if fd <= 0 {
		var err error
		if fd, err = cloneTree(src, true); err != nil {
			return stepErr("clone root directory", src, err)
		}
	}
	b.track(fd)
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, src, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return stepErr("attach root directory", src, err)
	}
	b.rootfd = fd
	return nil
}

// target resolves dst inside the new root, creating a directory (or, when
// dir is false, an empty file) when it is missing. Symlinks are resolved as
// if the new root were /.
func (b *builder) target(dst string, dir bool) (int, error) {
	if dir {
		return pathrs.MkdirAllInRoot(b.rootfd, dst, 0o755, unix.O_PATH, 0)
	}
	fd, err := pathrs.OpenInRoot(b.rootfd, dst, unix.O_PATH, 0)
	if err != unix.ENOENT {
		return fd, err
	}
	parent, err := pathrs.MkdirAllInRoot(b.rootfd, path.Dir(path.Clean("/"+dst)), 0o755, unix.O_PATH, 0)
	if err != nil {
		return -1, err
	}
	f, err := unix.Openat(parent, path.Base(path.Clean("/"+dst)), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o644)
	unix.Close(parent)
	if err == nil {
		unix.Close(f)
	} else if err != unix.EEXIST {
		return -1, err
	}
	return pathrs.OpenInRoot(b.rootfd, dst, unix.O_PATH, 0)
}

// attach moves a detached mount onto dst inside the new root.
func (b *builder) attach(fd int, dst string, dir bool) error {
	t, err := b.target(dst, dir)
	if err != nil {
		return stepErr("create mount point", dst, err)
	}
	defer unix.Close(t)
	if err := checkKernelFSTarget(t, dst); err != nil {
		return stepErr("mount", dst, err)
	}
	if err := unix.MoveMount(fd, "", t, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return stepErr("mount", dst, err)
	}
	return nil
}

// fsMount creates a detached mount of a new filesystem instance.
func fsMount(fstype, source string, data []string, attrs uint64) (int, error) {
	return fsmount.New(fstype, source, data, attrs)
}

// fsMountNS is fsMount with, for proc when pidns >= 0, the pid namespace
// the instance shows (its pidns= option) instead of the caller's.
func fsMountNS(fstype, source string, data []string, attrs uint64, pidns int) (int, error) {
	var fdOpts []fsmount.FDOption
	if fstype == "proc" && pidns >= 0 {
		fdOpts = append(fdOpts, fsmount.FDOption{Key: "pidns", FD: pidns})
	}
	return fsmount.New(fstype, source, data, attrs, fdOpts...)
}

func (b *builder) mountFS(fstype, source, dst string, data []string, attrs uint64) error {
	fd, err := fsMountNS(fstype, source, data, attrs, b.p.PidnsFD-1)
	if err != nil {
		return stepErr("mount "+fstype, dst, err)
	}
	defer unix.Close(fd)
	return b.attach(fd, dst, true)
}

func (b *builder) mountUser(m *Mount) error {
	data := append([]string(nil), m.Data...)
	attrs := mountAttrs(m)
	switch m.Type {
	case TypeTmpfs:
		mode := m.Mode
		if mode == 0 {
			mode = 0o1777
		}
		data = append(data, fmt.Sprintf("mode=%o", mode))
		if m.Size > 0 {
			data = append(data, fmt.Sprintf("size=%d", m.Size))
		}
	case TypeProc, TypeSysfs, TypeMqueue:
		attrs |= unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC
	case TypeVolume:
		return stepErr("mount volume", m.Destination, fmt.Errorf("named volume %q was not prepared (call storage.Prepare on the host first)", m.Source))
	}
	src := m.Source
	if src == "" {
		src = m.Type
	}
	fd, err := fsMountNS(m.Type, src, data, attrs, b.p.PidnsFD-1)
	if err != nil {
		return stepErr("mount "+m.Type, m.Destination, err)
	}
	defer unix.Close(fd)
	if m.CopyUp {
		if err := b.copyUp(fd, m.Destination); err != nil {
			return stepErr("tmpcopyup", m.Destination, err)
		}
	}
	if err := b.attach(fd, m.Destination, true); err != nil {
		return err
	}
	if err := propagate(fd, m.Propagation); err != nil {
		return stepErr("set propagation", m.Destination, err)
	}
	return nil
}

// devices of the minimal /dev: name, major, minor.
var devices = []struct {
	name         string
	major, minor uint32
}{
	{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
}

// cloneDevices takes the host's device nodes when mknod will not work (in a
// user namespace) or the whole /dev when privileged.
func (b *builder) cloneDevices() (map[string]int, error) {
	if b.p.has("/dev") {
		return nil, nil
	}
	out := map[string]int{}
	if b.p.Privileged {
		fd, err := cloneTree("/dev", true)
		if err != nil {
			return nil, stepErr("clone host /dev", "/dev", err)
		}
		out["/"] = b.track(fd)
		return out, nil
	}
	if !b.p.UserNS {
		return out, nil
	}
	for _, d := range devices {
		fd, err := cloneTree("/dev/"+d.name, false)
		if err != nil {
			return nil, stepErr("clone device", "/dev/"+d.name, err)
		}
		out[d.name] = b.track(fd)
	}
	return out, nil
}

// dev builds the container's /dev.
func (b *builder) dev(clones map[string]int) error {
	if fd, ok := clones["/"]; ok {
		return b.attach(fd, "/dev", true)
	}
	if err := b.mountFS("tmpfs", "tmpfs", "/dev", []string{"mode=755", "size=65536k"}, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_STRICTATIME); err != nil {
		return err
	}
	dev, err := b.target("/dev", true)
	if err != nil {
		return stepErr("open /dev", "/dev", err)
	}
	defer unix.Close(dev)
	// O_PATH fds cannot be used as dirfd for mknod; reopen as a directory.
	dir, err := unix.Openat(dev, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return stepErr("open /dev", "/dev", err)
	}
	defer unix.Close(dir)
	old := unix.Umask(0)
	defer unix.Umask(old)
	for _, d := range devices {
		if fd, ok := clones[d.name]; ok {
			f, err := unix.Openat(dir, d.name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o666)
			if err != nil {
				return stepErr("create device mount point", "/dev/"+d.name, err)
			}
			unix.Close(f)
			if err := b.attach(fd, "/dev/"+d.name, false); err != nil {
				return err
			}
			continue
		}
		if err := unix.Mknodat(dir, d.name, unix.S_IFCHR|0o666, int(unix.Mkdev(d.major, d.minor))); err != nil {
			return stepErr("mknod", "/dev/"+d.name, err)
		}
	}
	for _, l := range [][2]string{
		{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"}, {"pts/0", "console"},
	} {
		if l[1] == "console" && !b.p.Console {
			continue
		}
		if err := unix.Symlinkat(l[0], dir, l[1]); err != nil {
			return stepErr("symlink", "/dev/"+l[1], err)
		}
	}
	for _, d := range []string{"pts", "shm", "mqueue"} {
		if err := unix.Mkdirat(dir, d, 0o755); err != nil {
			return stepErr("mkdir", "/dev/"+d, err)
		}
	}
	pts := []string{"newinstance", "ptmxmode=0666", "mode=0620"}
	if b.p.TTYGid >= 0 {
		pts = append(pts, fmt.Sprintf("gid=%d", b.p.TTYGid))
	}
	if b.p.PtyMax > 0 {
		pts = append(pts, fmt.Sprintf("max=%d", b.p.PtyMax))
	}
	shm := "size=65536k"
	if b.p.ShmSize > 0 {
		shm = fmt.Sprintf("size=%d", b.p.ShmSize)
	}
	if err := b.mountFS("devpts", "devpts", "/dev/pts", pts, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC); err != nil {
		return err
	}
	if err := b.mountFS("tmpfs", "shm", "/dev/shm", []string{"mode=1777", shm}, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC); err != nil {
		return err
	}
	if b.p.NewIPC || !b.p.UserNS {
		if err := b.mountFS("mqueue", "mqueue", "/dev/mqueue", nil, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC); err != nil {
			return err
		}
	}
	return nil
}

// files writes generated files on a scratch tmpfs and binds each over its
// path in the new root. A file whose path does not exist and cannot be
// created (a read-only root) is skipped.
func (b *builder) files() error {
	if len(b.p.Files) == 0 {
		return nil
	}
	scratch, err := fsMount("tmpfs", "vessel-files", []string{"mode=0755", "size=1m"}, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return stepErr("mount scratch tmpfs", "", err)
	}
	defer unix.Close(scratch)
	// Attach it where nothing of the container is: the stage point when the
	// root hangs elsewhere, else a directory of our own root tmpfs.
	var at string
	if b.stage == "" {
		if at, err = stagePoint(); err != nil {
			return stepErr("stage files", "", err)
		}
		if err := unix.MoveMount(scratch, "", unix.AT_FDCWD, at, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return stepErr("attach scratch tmpfs", at, err)
		}
	} else {
		if err := unix.Mkdirat(b.rootfd, ".vessel-files", 0o700); err != nil {
			return stepErr("mkdir scratch", "/.vessel-files", err)
		}
		t, err := b.target("/.vessel-files", true)
		if err != nil {
			return stepErr("open scratch", "/.vessel-files", err)
		}
		err = unix.MoveMount(scratch, "", t, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
		unix.Close(t)
		if err != nil {
			return stepErr("attach scratch tmpfs", "/.vessel-files", err)
		}
		defer unix.Unlinkat(b.rootfd, ".vessel-files", unix.AT_REMOVEDIR)
	}
	defer func() {
		// Detach the scratch tmpfs: the binds keep the files alive.
		_ = unix.Unmount(fmt.Sprintf("/proc/self/fd/%d", scratch), unix.MNT_DETACH)
	}()
	dir, err := unix.Openat(scratch, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return stepErr("open scratch", "", err)
	}
	defer unix.Close(dir)
	for i, f := range b.p.Files {
		if b.p.has(path.Clean(f.Path)) {
			continue // the caller mounts its own file there
		}
		if f.Source != "" {
			t, err := b.target(f.Path, false)
			if err != nil {
				if errors.Is(err, unix.EROFS) || errors.Is(err, unix.EACCES) {
					continue
				}
				return stepErr("create file mount point", f.Path, err)
			}
			err = unix.MoveMount(b.sources[i], "", t, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
			unix.Close(t)
			if err != nil {
				return stepErr("bind file", f.Path, err)
			}
			continue
		}
		name := fmt.Sprintf("f%d", i)
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		fd, err := unix.Openat(dir, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, mode)
		if err != nil {
			return stepErr("write file", f.Path, err)
		}
		_, err = unix.Write(fd, f.Data)
		unix.Fchmod(fd, mode)
		unix.Close(fd)
		if err != nil {
			return stepErr("write file", f.Path, err)
		}
		t, err := b.target(f.Path, false)
		if err != nil {
			if errors.Is(err, unix.EROFS) || errors.Is(err, unix.EACCES) {
				continue // read-only root without the file: nothing to cover
			}
			return stepErr("create file mount point", f.Path, err)
		}
		c, err := unix.OpenTree(dir, name, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err == nil && b.p.Readonly {
			// A read-only root keeps /etc/hosts and friends read-only too.
			err = setAttr(c, unix.MOUNT_ATTR_RDONLY, false)
		}
		if err == nil {
			err = unix.MoveMount(c, "", t, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
			unix.Close(c)
		}
		unix.Close(t)
		if err != nil {
			return stepErr("bind file", f.Path, err)
		}
	}
	return nil
}

// pivot makes the root mount behind rootfd the process's root and detaches
// the old root. Where pivot_root(2) cannot work (an initramfs root), it
// falls back to moving the mount over / and chroot.
func pivot(rootfd int) error {
	if err := unix.Fchdir(rootfd); err != nil {
		return stepErr("chdir to new root", "", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		if err != unix.EINVAL {
			return stepErr("pivot_root", "", err)
		}
		// initramfs: the root is not a mount we can pivot away from.
		if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
			return stepErr("move root (pivot_root fallback)", "", err)
		}
		if err := unix.Chroot("."); err != nil {
			return stepErr("chroot (pivot_root fallback)", "", err)
		}
		return stepErr("chdir /", "/", unix.Chdir("/"))
	}
	// The old root now sits on top of the new one; detach it.
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return stepErr("make old root slave", "", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return stepErr("detach old root", "", err)
	}
	return stepErr("chdir /", "/", unix.Chdir("/"))
}

func maskPath(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return nil // nothing to hide
	}
	if fi.IsDir() {
		fd, err := fsMount("tmpfs", "masked", []string{"size=0", "mode=0555"}, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
		if err != nil {
			return stepErr("mask", p, err)
		}
		defer unix.Close(fd)
		if err := unix.MoveMount(fd, "", unix.AT_FDCWD, p, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return stepErr("mask", p, err)
		}
		return nil
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, "/dev/null", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return stepErr("mask", p, err)
	}
	defer unix.Close(fd)
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, p, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return stepErr("mask", p, err)
	}
	return nil
}

func readonlyPath(p string) error {
	fd, err := cloneTree(p, true)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return stepErr("read-only path", p, err)
	}
	defer unix.Close(fd)
	if err := setAttr(fd, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC, true); err != nil {
		return stepErr("read-only path", p, err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, p, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return stepErr("read-only path", p, err)
	}
	return nil
}

// cgroupV1 shows the container's own cgroups at /sys/fs/cgroup on a v1 or
// hybrid host as runtimes do there: a read-only tmpfs holding each
// hierarchy, mounted read-only from inside the container's cgroup
// namespace (so each shows the container's cgroup as its root), and the
// links between controller names.
func (b *builder) cgroupV1() error {
	const ro = unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC | unix.MOUNT_ATTR_RDONLY
	tmp, err := fsMount("tmpfs", "cgroup", []string{"mode=755", "size=64k"}, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return stepErr("mount cgroup tmpfs", "/sys/fs/cgroup", err)
	}
	b.track(tmp)
	if err := b.attach(tmp, "/sys/fs/cgroup", true); err != nil {
		return err
	}
	for _, h := range b.p.CgroupV1 {
		if h.Name == "" || strings.ContainsAny(h.Name, "/\x00") || h.Name == "." || h.Name == ".." {
			return stepErr("cgroup hierarchy", h.Name, unix.EINVAL)
		}
		if err := unix.Mkdirat(tmp, h.Name, 0o755); err != nil {
			return stepErr("mkdir cgroup hierarchy", "/sys/fs/cgroup/"+h.Name, err)
		}
		fstype, opts := "cgroup", h.Options
		if h.V2 {
			fstype, opts = "cgroup2", nil
		}
		fd, err := fsMount(fstype, "cgroup", opts, ro)
		if err != nil {
			return stepErr("mount "+fstype, "/sys/fs/cgroup/"+h.Name, err)
		}
		err = b.attach(fd, "/sys/fs/cgroup/"+h.Name, true)
		unix.Close(fd)
		if err != nil {
			return err
		}
		for _, l := range h.Links {
			if l == "" || strings.ContainsAny(l, "/\x00") || l == "." || l == ".." {
				continue
			}
			if err := unix.Symlinkat(h.Name, tmp, l); err != nil {
				return stepErr("symlink", "/sys/fs/cgroup/"+l, err)
			}
		}
	}
	if err := setAttr(tmp, unix.MOUNT_ATTR_RDONLY, false); err != nil {
		return stepErr("make /sys/fs/cgroup read-only", "/sys/fs/cgroup", err)
	}
	return nil
}
