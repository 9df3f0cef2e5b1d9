package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// CgroupMode says what CRIU does with the cgroups of the tree.
type CgroupMode int

// Cgroup modes (CRIU's --manage-cgroups).
const (
	// CgroupSoft (the default) restores cgroup properties only into
	// cgroups that CRIU creates, and tasks into their cgroups.
	CgroupSoft CgroupMode = iota
	// CgroupIgnore leaves cgroups alone: restored tasks stay in the
	// cgroups of the restoring process.
	CgroupIgnore
	// CgroupProps restores properties but creates no cgroups.
	CgroupProps
	// CgroupFull restores properties into every cgroup.
	CgroupFull
	// CgroupStrict is CgroupFull, failing when a cgroup exists already.
	CgroupStrict
)

func (m CgroupMode) rpc() cgMode {
	switch m {
	case CgroupIgnore:
		return cgIgnore
	case CgroupProps:
		return cgProps
	case CgroupFull:
		return cgFull
	case CgroupStrict:
		return cgStrict
	}
	return cgSoft
}

// NetworkLock is how CRIU keeps a dumped tree's TCP peers from seeing
// resets while the tree is stopped.
type NetworkLock int

// Network lock methods.
const (
	// LockDefault is CRIU's default (iptables).
	LockDefault NetworkLock = iota
	// LockIptables uses iptables rules; needs the iptables tools.
	LockIptables
	// LockNftables uses an nftables table (CRIU built with libnftables).
	LockNftables
	// LockSkip does not lock: the caller keeps peers away itself.
	LockSkip
)

// InheritFD hands a descriptor of the caller to a restored tree in place
// of a file CRIU did not dump (an external pipe, socket, file or
// namespace, named by Key as CRIU prints it: "pipe:[1234]",
// "socket:[5678]", "net:[4026531992]", or a key given at dump).
type InheritFD struct {
	Key  string
	File *os.File
}

// Options configures one CRIU operation. The zero value plus ImagesDir
// dumps or restores a tree that CRIU can handle alone.
type Options struct {
	// CriuPath is the criu binary. Empty: $VESSEL_CRIU, then
	// DefaultCriuPath, then criu in PATH.
	CriuPath string
	// ImagesDir holds the images: written by Dump and PreDump (created if
	// missing), read by Restore (must exist).
	ImagesDir string
	// WorkDir receives CRIU's log and temporary files; empty: ImagesDir.
	WorkDir string
	// LogFile is the name of CRIU's log in WorkDir; empty: "<op>.log".
	LogFile string
	// LogLevel is CRIU's verbosity, 0-4; 0 means 4 (everything).
	LogLevel int

	// ParentImages is the images directory of the previous pre-dump
	// (absolute, or relative to ImagesDir): only memory changed since
	// then is written.
	ParentImages string
	// TrackMemory makes the kernel track dirty memory from this dump on,
	// for a later dump with ParentImages. Pre-dumps always track.
	TrackMemory bool
	// AutoDedup punches holes in parent images for pages this dump
	// rewrites.
	AutoDedup bool

	// LeaveRunning lets the tree continue after Dump; otherwise CRIU
	// kills it once the images are complete.
	LeaveRunning bool
	// TCPEstablished dumps established TCP connections (with TCP repair)
	// instead of failing on them.
	TCPEstablished bool
	// NetworkLock is how connections are kept quiet while stopped.
	NetworkLock NetworkLock
	// ShellJob lets the tree's session and process group lie outside it;
	// on restore they become the restoring process's.
	ShellJob bool
	// FileLocks dumps and restores file locks.
	FileLocks bool
	// LinkRemap allows dumping files that were unlinked but are open.
	LinkRemap bool
	// ExtUnixSockets allows unix sockets whose peer is outside the tree.
	ExtUnixSockets bool
	// External lists CRIU --external entries; build them with
	// ExternalMount, ExternalMountSource, ExternalFile, ExternalUnix and
	// ExternalNetns.
	External []string
	// InheritFDs (Restore) replace external files with the caller's.
	InheritFDs []InheritFD
	// InheritLaunched (Restore, with LaunchCriu) are keys of descriptors
	// that whatever LaunchCriu runs criu with adds after the files: the
	// first is criu's descriptor 4+len(InheritFDs), and so on.
	InheritLaunched []string
	// FreezeCgroup is a freezer cgroup directory holding exactly the
	// tree: CRIU freezes it instead of stopping tasks one by one (faster
	// for big trees, and needed for a paused tree, which it leaves frozen).
	FreezeCgroup string
	// Cgroups is what CRIU does with cgroups.
	Cgroups CgroupMode
	// CgroupRoots (Restore) moves the tree's cgroups: controller (as in
	// /proc/self/cgroup, "" for all) -> path to use as the tree's root.
	CgroupRoots map[string]string

	// Root (Restore) is the directory that becomes the restored mount
	// namespace's root.
	Root string
	// JoinNamespaces (Restore) maps namespace kinds CRIU can join ("net",
	// "uts", "ipc", "time", "user") to namespace files: the restored tree
	// enters those instead of namespaces made from the images.
	JoinNamespaces map[string]string
	// RestoreSibling (Restore) makes the restored root a child of the
	// caller's process instead of criu's (the caller must then reap it).
	RestoreSibling bool
	// LaunchCriu, when set, runs the criu command in place of cmd.Start,
	// possibly elsewhere: its path, arguments and ExtraFiles (which must
	// become criu's descriptors 3, 4, ...) are what counts. vessel runs
	// a restore's criu from a container's fresh init, so that the tree
	// restored with RestoreSibling becomes that init's child. It returns
	// functions that wait for criu's end and that kill it.
	LaunchCriu func(cmd *exec.Cmd) (wait func() error, kill func(), err error)

	// PageServer (Dump, PreDump), when set, is a connected stream socket
	// whose other end ServePages serves: the memory pages go through it,
	// into the images directory there, instead of into ImagesDir (which
	// gets the other images). CRIU uses the socket in blocking mode,
	// corked; Dump uncorks it when done, and the caller that shares it
	// with a Go net.Conn makes it non-blocking again.
	PageServer *os.File

	// PTSMaster (Restore), when set, receives the master of a terminal
	// whose master was outside the dumped tree: CRIU makes a new pair
	// (the slave where the old one was) and hands the master over
	// (CRIU's orphan-pts-master). The receiver owns the file.
	PTSMaster func(master *os.File)

	// Handoff (Dump), when set, runs once the images are complete, while
	// the tree is still frozen and its network locked: the moment to hand
	// the images to whoever restores them (live migration). When it fails
	// CRIU resumes the tree as if the dump had not happened, and Dump
	// returns a *HandoffError; when it succeeds Dump finishes (the tree is
	// killed unless LeaveRunning).
	Handoff func() error

	// Notify, when set, is called for each of CRIU's notifications
	// ("setup-namespaces", "post-restore", "network-lock", ...) with the
	// pid CRIU gives (the restored root's for "setup-namespaces" and
	// "post-restore"). An error fails the operation.
	Notify func(event string, pid int) error
}

// Stats describes a finished dump or restore.
type Stats struct {
	// Op is "dump", "pre-dump" or "restore".
	Op string `json:"op"`
	// Duration is the whole operation, wall clock, criu start included.
	Duration time.Duration `json:"duration"`
	// FreezeTime is how long the tree was stopped (dump: CRIU's frozen
	// time, freezing included).
	FreezeTime time.Duration `json:"freezeTime,omitempty"`
	// MemoryDumpTime is the part of FreezeTime spent copying memory.
	MemoryDumpTime time.Duration `json:"memoryDumpTime,omitempty"`
	// PagesWritten and PagesSkipped count memory pages written and
	// skipped because a parent image holds them already.
	PagesWritten uint64 `json:"pagesWritten,omitempty"`
	PagesSkipped uint64 `json:"pagesSkipped,omitempty"`
	// RestoreTime is CRIU's own restore time (Restore).
	RestoreTime time.Duration `json:"restoreTime,omitempty"`
	// Bytes is the size of the images this operation wrote (dump) or read.
	Bytes int64 `json:"bytes"`
}

func (o *Options) criuOpts(op string, imagesFD, workFD int) *criuOpts {
	lvl := o.LogLevel
	if lvl <= 0 {
		lvl = 4
	}
	logFile := o.LogFile
	if logFile == "" {
		logFile = op + ".log"
	}
	co := &criuOpts{
		ImagesDirFd:    ptr[int32](int32(imagesFD)),
		WorkDirFd:      ptr[int32](int32(workFD)),
		LogLevel:       ptr[int32](int32(lvl)),
		LogFile:        ptr(logFile),
		LeaveRunning:   ptr(o.LeaveRunning),
		TcpEstablished: ptr(o.TCPEstablished),
		ShellJob:       ptr(o.ShellJob),
		FileLocks:      ptr(o.FileLocks),
		LinkRemap:      ptr(o.LinkRemap),
		ExtUnixSk:      ptr(o.ExtUnixSockets),
		External:       append([]string(nil), o.External...),
		ManageCgroups:  ptr(o.Cgroups != CgroupIgnore),
		AutoDedup:      ptr(o.AutoDedup),
		TrackMem:       ptr(o.TrackMemory || op == "pre-dump"),
		NotifyScripts:  ptr(true),
	}
	mode := o.Cgroups.rpc()
	co.ManageCgroupsMode = &mode
	switch o.NetworkLock {
	case LockIptables:
		co.NetworkLock = ptr(lockIptables)
	case LockNftables:
		co.NetworkLock = ptr(lockNftables)
	case LockSkip:
		co.NetworkLock = ptr(lockSkip)
	}
	if o.FreezeCgroup != "" {
		co.FreezeCgroup = ptr(o.FreezeCgroup)
	}
	return co
}

func (o *Options) notify(handoffErr *error) notifyFunc {
	if o.Notify == nil && o.Handoff == nil && o.PTSMaster == nil {
		return nil
	}
	return func(script string, pid int, files []*os.File) error {
		if script == "orphan-pts-master" && o.PTSMaster != nil && len(files) > 0 {
			fd, err := unix.FcntlInt(files[0].Fd(), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				return err
			}
			o.PTSMaster(os.NewFile(uintptr(fd), "pts-master"))
		}
		if o.Notify != nil {
			if err := o.Notify(script, pid); err != nil {
				return err
			}
		}
		if script == "post-dump" && o.Handoff != nil && handoffErr != nil {
			if err := o.Handoff(); err != nil {
				*handoffErr = err
				return err
			}
		}
		return nil
	}
}

// HandoffError is returned by Dump when Options.Handoff failed: CRIU
// resumed the tree, which keeps running where it was.
type HandoffError struct {
	Err error
}

func (e *HandoffError) Error() string {
	return fmt.Sprintf("checkpoint: %v (the dumped tree was resumed and keeps running)", e.Err)
}

func (e *HandoffError) Unwrap() error { return e.Err }

// openDirs opens the images and work directories as descriptors CRIU
// reaches through /proc/<our pid>/fd.
func (o *Options) openDirs(create bool) (images, work *os.File, err error) {
	if o.ImagesDir == "" {
		return nil, nil, errors.New("checkpoint: Options.ImagesDir: empty")
	}
	if create {
		if err := os.MkdirAll(o.ImagesDir, 0o700); err != nil {
			return nil, nil, fmt.Errorf("checkpoint: Options.ImagesDir: %w", err)
		}
	}
	images, err = os.Open(o.ImagesDir)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint: Options.ImagesDir: %w", err)
	}
	if fi, err := images.Stat(); err != nil || !fi.IsDir() {
		images.Close()
		return nil, nil, fmt.Errorf("checkpoint: Options.ImagesDir: %s is not a directory", o.ImagesDir)
	}
	wd := o.WorkDir
	if wd == "" {
		return images, images, nil
	}
	if err := os.MkdirAll(wd, 0o700); err != nil {
		images.Close()
		return nil, nil, fmt.Errorf("checkpoint: Options.WorkDir: %w", err)
	}
	work, err = os.Open(wd)
	if err != nil {
		images.Close()
		return nil, nil, fmt.Errorf("checkpoint: Options.WorkDir: %w", err)
	}
	return images, work, nil
}

func (o *Options) logPath(op string) string {
	dir := o.WorkDir
	if dir == "" {
		dir = o.ImagesDir
	}
	name := o.LogFile
	if name == "" {
		name = op + ".log"
	}
	return filepath.Join(dir, name)
}

// Dump writes the process tree rooted at pid to opts.ImagesDir. Unless
// opts.LeaveRunning, the tree is gone when Dump returns successfully; on
// failure it keeps running.
func Dump(ctx context.Context, pid int, opts *Options) (*Stats, error) {
	return dump(ctx, "dump", pid, opts)
}

// PreDump writes the tree's memory to opts.ImagesDir while the tree keeps
// running (it is stopped only while its memory is copied into pipes), and
// starts tracking which pages change from now on. A later PreDump or Dump
// with ParentImages set to this directory writes only the pages changed
// since.
func PreDump(ctx context.Context, pid int, opts *Options) (*Stats, error) {
	return dump(ctx, "pre-dump", pid, opts)
}

func dump(ctx context.Context, op string, pid int, opts *Options) (*Stats, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("checkpoint: pid %d: not a process id", pid)
	}
	if opts == nil {
		return nil, errors.New("checkpoint: nil Options")
	}
	if err := unix.Kill(pid, 0); err != nil {
		return nil, fmt.Errorf("checkpoint: pid %d: %w", pid, err)
	}
	if err := Check(pid); err != nil {
		return nil, err
	}
	path, err := resolveCriu(opts.CriuPath)
	if err != nil {
		return nil, err
	}
	if _, err := CriuVersion(ctx, path); err != nil {
		return nil, err
	}
	images, work, err := opts.openDirs(true)
	if err != nil {
		return nil, err
	}
	defer images.Close()
	defer work.Close()
	co := opts.criuOpts(op, int(images.Fd()), int(work.Fd()))
	co.Pid = ptr[int32](int32(pid))
	tracking := MemoryTracking(ctx, path)
	if !tracking && op == "pre-dump" {
		return nil, ErrNoMemoryTracking
	}
	if !tracking {
		// Without the kernel's soft-dirty bits a pre-dump still copies
		// memory while the tree runs, but the final dump cannot tell what
		// changed since: it writes everything, parent or not.
		co.TrackMem = ptr(false)
	}
	if opts.ParentImages != "" && tracking {
		rel, err := relParent(opts.ImagesDir, opts.ParentImages)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: Options.ParentImages: %w", err)
		}
		if _, err := os.Stat(filepath.Join(opts.ImagesDir, rel)); err != nil {
			return nil, fmt.Errorf("checkpoint: Options.ParentImages: %w", err)
		}
		co.ParentImg = ptr(rel)
		co.TrackMem = ptr(true)
	}
	typ := reqDump
	if op == "pre-dump" {
		typ = reqSinglePreDump
		co.LeaveRunning = nil
	}
	before := dirSize(opts.ImagesDir)
	// CRIU leaves its network lock (an nftables table) in the tree's
	// network namespace when it kills the tree: that namespace may
	// outlive it (a joined one, the host's). Tables it adds are removed
	// below whatever happens.
	locks := newLockTables(pid)
	defer locks.removeNew()
	var files []*os.File
	if opts.PageServer != nil {
		// criu's descriptor 4 (3 is the RPC socket).
		files = []*os.File{opts.PageServer}
		co.PageServerFd = ptr[int32](4)
		defer uncork(opts.PageServer)
		stop := keepUncorked(opts.PageServer)
		defer stop()
	}
	start := time.Now()
	var handoffErr error
	resp, err := swrk(ctx, path, &criuReq{Type: typ, Opts: co}, files, opts.notify(&handoffErr), opts.LaunchCriu)
	if handoffErr != nil {
		return nil, &HandoffError{Err: handoffErr}
	}
	if err != nil {
		// CRIU died without an answer: its log says why.
		if b, rerr := os.ReadFile(opts.logPath(op)); rerr == nil {
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) > 8 {
				lines = lines[len(lines)-8:]
			}
			err = fmt.Errorf("criu %s: %w\n%s\n(full log: %s)", op, err, strings.Join(lines, "\n"), opts.logPath(op))
		}
		return nil, err
	}
	if !resp.Success {
		return nil, criuFailure(op, resp, opts.logPath(op))
	}
	st := &Stats{Op: op, Duration: time.Since(start), Bytes: dirSize(opts.ImagesDir) - before}
	if ds, ok := readStats(opts.ImagesDir, "stats-dump", statsDump); ok {
		st.FreezeTime = time.Duration(ds[dumpFreezingTime]+ds[dumpFrozenTime]) * time.Microsecond
		st.MemoryDumpTime = time.Duration(ds[dumpMemdumpTime]) * time.Microsecond
		st.PagesWritten = ds[dumpPagesWritten]
		st.PagesSkipped = ds[dumpPagesSkippedParent]
	}
	return st, nil
}

// ErrNoMemoryTracking is returned by PreDump when the kernel cannot track
// dirty memory (no soft-dirty bits: CONFIG_MEM_SOFT_DIRTY is off), which
// CRIU's pre-dump requires.
var ErrNoMemoryTracking = errors.New("checkpoint: pre-dump needs dirty memory tracking, which this kernel lacks (CONFIG_MEM_SOFT_DIRTY)")

var (
	trackMu    sync.Mutex
	trackCache = map[string]bool{}
)

// MemoryTracking reports whether criu and the kernel can track dirty
// memory (soft-dirty bits, CONFIG_MEM_SOFT_DIRTY), which makes pre-dumps
// shorten the final dump. Without it pre-dumps still work but save
// nothing.
func MemoryTracking(ctx context.Context, criuPath string) bool {
	path, err := resolveCriu(criuPath)
	if err != nil {
		return false
	}
	trackMu.Lock()
	v, ok := trackCache[path]
	trackMu.Unlock()
	if ok {
		return v
	}
	resp, err := swrk(ctx, path, &criuReq{Type: reqFeatureCheck, FeatureMemTrack: ptr(true)}, nil, nil, nil)
	v = err == nil && resp.Success && resp.MemTrack
	if err == nil {
		trackMu.Lock()
		trackCache[path] = v
		trackMu.Unlock()
	}
	return v
}

// Restore brings back the tree saved in opts.ImagesDir and returns the
// host pid of its root. The root is a child of criu, which exits before
// Restore returns: the caller sees the tree only if it is a child
// subreaper (prctl PR_SET_CHILD_SUBREAPER) or sets RestoreSibling. On
// failure nothing of the tree keeps running.
func Restore(ctx context.Context, opts *Options) (int, *Stats, error) {
	if opts == nil {
		return 0, nil, errors.New("checkpoint: nil Options")
	}
	if opts.ImagesDir == "" {
		return 0, nil, errors.New("checkpoint: Options.ImagesDir: empty")
	}
	if _, err := os.Stat(filepath.Join(opts.ImagesDir, "inventory.img")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil, fmt.Errorf("checkpoint: Options.ImagesDir: %s holds no checkpoint (no inventory.img)", opts.ImagesDir)
		}
		return 0, nil, fmt.Errorf("checkpoint: Options.ImagesDir: %w", err)
	}
	path, err := resolveCriu(opts.CriuPath)
	if err != nil {
		return 0, nil, err
	}
	if _, err := CriuVersion(ctx, path); err != nil {
		return 0, nil, err
	}
	images, work, err := opts.openDirs(false)
	if err != nil {
		return 0, nil, err
	}
	defer images.Close()
	defer work.Close()
	co := opts.criuOpts("restore", int(images.Fd()), int(work.Fd()))
	co.TrackMem, co.AutoDedup, co.LeaveRunning = nil, nil, nil
	if opts.LaunchCriu != nil {
		// criu may run in another mount namespace: descriptors reached
		// through /proc/<our pid>/fd would be directories of ours, where
		// it cannot mount. It opens the images by path.
		if opts.WorkDir != "" {
			return 0, nil, errors.New("checkpoint: Options.WorkDir: not supported with LaunchCriu")
		}
		abs, err := filepath.Abs(opts.ImagesDir)
		if err != nil {
			return 0, nil, fmt.Errorf("checkpoint: Options.ImagesDir: %w", err)
		}
		co.ImagesDirFd, co.WorkDirFd, co.ImagesDir = ptr[int32](-1), nil, &abs
	}
	if opts.Root != "" {
		co.Root = ptr(opts.Root)
	}
	co.RstSibling = ptr(opts.RestoreSibling)
	if opts.PTSMaster != nil {
		co.OrphanPtsMaster = ptr(true)
	}
	for _, k := range []string{"net", "uts", "ipc", "time", "user"} {
		if f, ok := opts.JoinNamespaces[k]; ok {
			co.JoinNs = append(co.JoinNs, joinNs{Ns: k, File: f})
		}
	}
	for ctrl, p := range opts.CgroupRoots {
		r := cgroupRoot{Path: p}
		if ctrl != "" {
			r.Ctrl = ptr(ctrl)
		}
		co.CgRoot = append(co.CgRoot, r)
	}
	var files []*os.File
	for _, in := range opts.InheritFDs {
		if in.File == nil || in.Key == "" {
			return 0, nil, fmt.Errorf("checkpoint: Options.InheritFDs: entry %q without key or file", in.Key)
		}
		co.InheritFd = append(co.InheritFd, inheritFd{Key: in.Key, Fd: int32(4 + len(files))})
		files = append(files, in.File)
	}
	for i, key := range opts.InheritLaunched {
		co.InheritFd = append(co.InheritFd, inheritFd{Key: key, Fd: int32(4 + len(files) + i)})
	}
	start := time.Now()
	resp, err := swrk(ctx, path, &criuReq{Type: reqRestore, Opts: co}, files, opts.notify(nil), opts.LaunchCriu)
	if err != nil {
		return 0, nil, err
	}
	if !resp.Success {
		return 0, nil, criuFailure("restore", resp, opts.logPath("restore"))
	}
	st := &Stats{Op: "restore", Duration: time.Since(start), Bytes: dirSize(opts.ImagesDir)}
	if rs, ok := readStats(opts.ImagesDir, "stats-restore", statsRestore); ok {
		st.RestoreTime = time.Duration(rs[restoreRestoreTime]+rs[restoreForkingTime]) * time.Microsecond
	}
	return int(resp.RestorePid), st, nil
}

func criuFailure(op string, resp *criuResp, logPath string) error {
	msg := resp.CrErrmsg
	if strings.Contains(msg, "Can't setup RLIMIT_NOFILE") {
		msg = "" // criu's start-up noise (see logErrors), not the failure
	}
	e := &CriuError{Op: op, Msg: msg, Log: logErrors(logPath), LogFile: logPath}
	if n := resp.CrErrno; n != 0 {
		e.Errno = syscall.Errno(n)
	}
	return e
}

// dirSize is the total size of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() && !strings.HasSuffix(p, ".log") {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// ExternalMount (Dump) marks the mount at mountpoint (inside the tree's
// mount namespace) as provided from outside; ExternalMountSource gives it
// back at restore under the same key.
func ExternalMount(mountpoint, key string) string {
	return "mnt[" + mountpoint + "]:" + key
}

// ExternalMountSource (Restore) says which host path provides the external
// mount named key.
func ExternalMountSource(key, hostPath string) string {
	return "mnt[" + key + "]:" + hostPath
}

// ExternalFile (Dump) marks an open file (mount id and inode, as in
// /proc/PID/fdinfo and stat) as external: Restore must hand it back with
// an InheritFD keyed "file[<mntid>:<inode>]" as this returns, hex.
func ExternalFile(mntID int, inode uint64) string {
	return fmt.Sprintf("file[%x:%x]", mntID, inode)
}

// ExternalUnix (Dump) marks the unix socket with this inode as external:
// its peer is outside the tree. Restore must hand a socket back with an
// InheritFD keyed "socket:[<inode>]".
func ExternalUnix(inode uint64) string {
	return fmt.Sprintf("unix[%d]", inode)
}

// ExternalNetns (Dump) marks the network namespace with this inode as
// external under key: Restore must hand a namespace file back with an
// InheritFD keyed key.
func ExternalNetns(inode uint64, key string) string {
	return fmt.Sprintf("net[%d]:%s", inode, key)
}

// Field numbers of CRIU's stats image (images/stats.proto): stats_entry
// holds dump (1) or restore (2) statistics.
const (
	statsDump    = 1
	statsRestore = 2

	dumpFreezingTime       = 1
	dumpFrozenTime         = 2
	dumpMemdumpTime        = 3
	dumpPagesSkippedParent = 6
	dumpPagesWritten       = 7

	restoreForkingTime = 3
	restoreRestoreTime = 4
)

// readStats reads the dump or restore part of one of CRIU's statistics
// files as its varint fields by number (false if unreadable).
func readStats(dir, name string, part number) (map[number]uint64, bool) {
	img, err := readImage(filepath.Join(dir, name))
	if err != nil || len(img.Entries) == 0 {
		return nil, false
	}
	sub, ok := bytesField(img.Entries[0], part)
	if !ok {
		return nil, false
	}
	out := map[number]uint64{}
	eachField(sub, func(n number, t wireType, val, _ []byte) {
		if t == varintType {
			if v, l := consumeVarint(val); l > 0 {
				out[n] = v
			}
		}
	})
	return out, true
}
