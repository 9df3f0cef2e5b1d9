package probe

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// tryAction performs one action into r. Returning a *UsageError means the
// arguments were wrong and nothing was attempted.
type tryAction struct {
	usage string
	run   func(r *TryResult, args []string) error
}

var tryActions map[string]tryAction

func init() {
	tryActions = map[string]tryAction{
		"mount":             {"[TARGET [FSTYPE]]  mount FSTYPE (tmpfs) on TARGET (/mnt), then unmount it", tryMount},
		"umount":            {"[PATH]  umount2(PATH (/), MNT_DETACH); refused in the host mount namespace", tryUmount},
		"pivot_root":        {"[DIR]  mount a tmpfs on DIR (/mnt, else /tmp, /dev, /run) and pivot_root into it; refused in the host mount namespace", tryPivotRoot},
		"chroot-escape":     {"MARKER [DIR]  chroot(DIR), chdir(..) x64, chroot(.); ok when MARKER (a host path) is then visible", tryChrootEscape},
		"mknod":             {"[DIR]  mknod DIR/probe-null-PID c 1 3 and open it read-write (DIR: /tmp, else /dev)", tryMknod},
		"open_by_handle_at": {"[PATH [shocker]]  name_to_handle_at(PATH (/)) + open_by_handle_at; with shocker: open inode 2 of PATH's filesystem", tryOpenByHandle},
		"ptrace-attach":     {"[PID]  PTRACE_SEIZE PID (1), then interrupt, wait and detach", tryPtraceAttach},
		"write-sysrq":       {"[KEY]  write KEY (h: print help) to /proc/sysrq-trigger", tryWriteSysrq},
		"write-procsys":     {"[PATH [VALUE]]  open PATH (/proc/sys/kernel/hostname) for writing and write VALUE (default: its current value)", tryWriteProcSys},
		"write-sys":         {"[PATH [VALUE]]  like write-procsys, PATH default /sys/kernel/rcu_expedited", tryWriteSys},
		"keyctl":            {"  keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL) then add_key(user) to it", tryKeyctl},
		"unshare-user":      {"  unshare(CLONE_NEWUSER) (in a single-threaded child)", tryUnshareUser},
		"unshare-ns":        {"FLAGS  unshare(FLAGS), FLAGS like mnt,net or 0x20000; with user: in a single-threaded child", tryUnshareNS},
		"clone-ns":          {"FLAGS  start a child with clone(FLAGS) that exits 0", tryCloneNS},
		"release-agent":     {"[OPTIONS]  mount cgroup v1 (none,name=vessel-test-probe) and write its release_agent (current value back)", tryReleaseAgent},
		"read-root":         {"[PATH]  open and read PATH (/proc/1/root/etc/shadow)", tryReadRoot},
		"write-exe":         {"[PATH...]  open each PATH (/proc/1/exe /proc/self/exe) for writing; nothing is written", tryWriteExe},
		"setns-pid1":        {"[TYPES [PID]]  setns into PID's (1) namespaces TYPES (mnt,pid,net,ipc,uts,cgroup,time)", trySetnsPID1},
		"connect":           {"HOST:PORT [TIMEOUT]  TCP connect (timeout 2s)", tryConnect},
		"bind":              {"PORT [ADDR]  TCP listen on ADDR:PORT (0.0.0.0)", tryBind},
		"open":              {"PATH [r|w|rw|create|excl|append|trunc|dir|path]  open(2) PATH (mode r)", tryOpen},
		"mkdir":             {"PATH  mkdir PATH 0755", tryMkdir},
		"remove":            {"PATH  unlink PATH (rmdir if a directory)", tryRemove},
		"rename":            {"OLD NEW  rename(2)", tryRename},
		"exec":              {"PATH [ARGS...]  execute PATH as a child and wait; ok when it started", tryExec},
		"syscall":           {"NR  raw syscall NR with zero arguments", trySyscall},
		"kill":              {"PID [SIG]  kill(PID, SIG (0))", tryKill},
		"sethostname":       {"[NAME]  sethostname(NAME (the current hostname))", trySethostname},
		"settime":           {"  clock_settime(CLOCK_REALTIME, now)", trySettime},
		"chown":             {"PATH [UID [GID]]  chown(PATH, UID (0), GID (0))", tryChown},
		"setuid":            {"UID  setuid(UID)", trySetuid},
		"setgid":            {"GID  setgid(GID)", trySetgid},
		"setgroups":         {"[GID,...]  setgroups(GIDs) (empty list by default)", trySetgroups},
		"dmesg":             {"  syslog(SYSLOG_ACTION_READ_ALL)", tryDmesg},
		"raw-socket":        {"  socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)", tryRawSocket},
		"tiocsti":           {"[high]  TIOCSTI into a new pty made a child's controlling terminal (high: bits above 32 set in the request)", tryTIOCSTI},
		"tiocsti-ctty":      {"[high]  TIOCSTI on fd 0, the controlling terminal (run by tiocsti)", tryTIOCSTICtty},
		"tioclinux":         {"  TIOCLINUX (get shift state) on a new pty", tryTIOCLINUX},
		"connect-unix":      {"PATH  connect to the unix stream socket at PATH", tryConnectUnix},
	}
}

// TryActions lists the action names "probe try" accepts, sorted.
func TryActions() []string {
	names := make([]string, 0, len(tryActions))
	for n := range tryActions {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// UsageError reports bad arguments to a probe command; nothing was done.
type UsageError struct {
	Command string
	Reason  string
}

// Error names the command and what is wrong with its arguments.
func (e *UsageError) Error() string {
	return "probe " + e.Command + ": " + e.Reason
}

func usagef(cmd, format string, a ...any) error {
	return &UsageError{Command: cmd, Reason: fmt.Sprintf(format, a...)}
}

// Try performs the named action in the calling process and returns its
// result. Some actions change the calling process for good (chroot-escape,
// pivot_root, setuid, ...): call Try from the probe program, not from a test.
func Try(action string, args []string) (TryResult, error) {
	a, ok := tryActions[action]
	if !ok {
		return TryResult{}, usagef("try", "unknown action %q (known: %s)", action, strings.Join(TryActions(), ", "))
	}
	r := TryResult{Action: action, Args: append([]string{}, args...)}
	if err := a.run(&r, args); err != nil {
		return TryResult{}, err
	}
	if r.Step != "" || r.Errno != 0 {
		r.OK = false
	}
	return r, nil
}

// errnoOf extracts a system error number from err.
func errnoOf(err error) (syscall.Errno, bool) {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e, true
	}
	return 0, false
}

// fail records that step failed with err.
func (r *TryResult) fail(step string, err error) {
	r.OK = false
	r.Step = step
	if e, ok := errnoOf(err); ok {
		r.Errno = int(e)
		r.ErrnoName = unix.ErrnoName(e)
	}
	r.addDetail(step + ": " + err.Error())
}

func (r *TryResult) succeed(detail string) {
	r.OK = true
	r.addDetail(detail)
}

func (r *TryResult) addDetail(s string) {
	if s == "" {
		return
	}
	if r.Detail != "" {
		r.Detail += "; "
	}
	r.Detail += s
}

// describeFD fills FS and Object from an open descriptor.
func (r *TryResult) describeFD(fd int) {
	r.FS, r.Object = fsName(fd), objectKind(fd)
}

// Namespace inode numbers of initial namespaces, fixed by the kernel
// (include/linux/proc_ns.h); the mount one only on newer kernels.
const (
	procUserInitIno = 0xEFFFFFFD
	procPidInitIno  = 0xEFFFFFFC
	procMntInitIno  = 0xEFFFFFF8
)

// inHostMountNS reports whether the probe runs in the initial user and pid
// namespaces and in the host's mount namespace: the initial one, or the one
// of PID 1 or of its parent process (whichever can be read; if neither can,
// it assumes the worst). There, umount / and pivot_root would damage the
// host, so they are refused.
func inHostMountNS() bool {
	ns := func(p string) uint64 {
		l, err := os.Readlink(p)
		if err != nil {
			return 0
		}
		_, ino, err := ParseNamespaceLink(l)
		if err != nil {
			return 0
		}
		return ino
	}
	if ns("/proc/self/ns/user") != procUserInitIno || ns("/proc/self/ns/pid") != procPidInitIno {
		return false
	}
	self := ns("/proc/self/ns/mnt")
	if self == 0 || self == procMntInitIno {
		return true
	}
	init1 := ns("/proc/1/ns/mnt")
	parent := ns(fmt.Sprintf("/proc/%d/ns/mnt", os.Getppid()))
	if init1 == 0 && parent == 0 {
		return true
	}
	return self == init1 || self == parent
}

func (r *TryResult) refuse() {
	r.Refused = true
	r.OK = false
	r.Detail = "refused: the probe runs in the host's initial user, pid and mount namespaces, where this action would damage the host"
}

func arg(args []string, i int, def string) string {
	if i < len(args) && args[i] != "" {
		return args[i]
	}
	return def
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// scratchDir makes a fresh directory in /tmp (else the working directory);
// when neither is writable it falls back to an existing fallback directory,
// which cleanup then leaves in place.
func scratchDir(fallback string) (dir string, cleanup func(), err error) {
	for _, base := range []string{"/tmp", "."} {
		d, err := os.MkdirTemp(base, "vessel-probe-")
		if err == nil {
			abs, _ := filepath.Abs(d)
			return abs, func() { _ = os.Remove(abs) }, nil
		}
	}
	if fallback != "" && isDir(fallback) {
		return fallback, func() {}, nil
	}
	return "", nil, fmt.Errorf("no writable /tmp or working directory, and no %s", fallback)
}

func tryMount(r *TryResult, args []string) error {
	fstype := arg(args, 1, "tmpfs")
	target := arg(args, 0, "")
	cleanup := func() {}
	if target == "" {
		if isDir("/mnt") {
			target = "/mnt"
		} else {
			d, c, err := scratchDir("")
			if err != nil {
				r.fail("mkdir", err)
				return nil
			}
			target, cleanup = d, c
		}
	}
	defer cleanup()
	if err := unix.Mount(fstype, target, fstype, 0, ""); err != nil {
		r.fail("mount", err)
		return nil
	}
	if err := unix.Unmount(target, 0); err != nil {
		_ = unix.Unmount(target, unix.MNT_DETACH)
	}
	r.succeed(fmt.Sprintf("mounted %s on %s and unmounted it", fstype, target))
	return nil
}

func tryUmount(r *TryResult, args []string) error {
	if inHostMountNS() {
		r.refuse()
		return nil
	}
	path := arg(args, 0, "/")
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
		r.fail("umount2", err)
		return nil
	}
	r.succeed("detached " + path)
	return nil
}

func tryPivotRoot(r *TryResult, args []string) error {
	if inHostMountNS() {
		r.refuse()
		return nil
	}
	// Mount over an existing directory: this mount namespace is not the
	// host's, and a directory made for the purpose could not be removed
	// once it is the new root's mount point.
	dir := arg(args, 0, "")
	for _, d := range []string{"/mnt", "/tmp", "/dev", "/run"} {
		if dir == "" && isDir(d) {
			dir = d
		}
	}
	if dir == "" {
		r.fail("find dir", unix.ENOENT)
		return nil
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, ""); err != nil {
		r.fail("mount", err)
		// Still ask the kernel about pivot_root itself: EPERM means denied,
		// EINVAL/EBUSY that only the missing mount stopped it.
		if perr := unix.PivotRoot(dir, dir); perr != nil {
			r.addDetail("pivot_root without the mount: " + perr.Error())
		}
		return nil
	}
	old := filepath.Join(dir, ".old")
	if err := os.Mkdir(old, 0o700); err != nil {
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		r.fail("mkdir put_old", err)
		return nil
	}
	if err := unix.PivotRoot(dir, old); err != nil {
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		r.fail("pivot_root", err)
		return nil
	}
	_ = unix.Chdir("/")
	detail := "pivoted into a tmpfs at " + dir
	if err := unix.Unmount("/.old", unix.MNT_DETACH); err != nil {
		detail += "; detaching the old root failed: " + err.Error()
	}
	r.succeed(detail)
	return nil
}

func tryChrootEscape(r *TryResult, args []string) error {
	if len(args) < 1 || args[0] == "" {
		return usagef("try chroot-escape", "MARKER (a path that exists only on the host) is required")
	}
	marker := args[0]
	_, errBefore := os.Lstat(marker)
	dir := arg(args, 1, "")
	if dir == "" {
		for _, d := range []string{"/tmp", "/dev", "/proc", "/etc", "/bin", "/usr", "/var"} {
			if isDir(d) {
				dir = d
				break
			}
		}
	}
	if dir == "" {
		r.fail("find dir", unix.ENOENT)
		return nil
	}
	if err := unix.Chdir("/"); err != nil {
		r.fail("chdir /", err)
		return nil
	}
	if err := unix.Chroot(dir); err != nil {
		r.fail("chroot "+dir, err)
		return nil
	}
	for i := 0; i < 64; i++ {
		if err := unix.Chdir(".."); err != nil {
			r.fail("chdir ..", err)
			return nil
		}
	}
	if err := unix.Chroot("."); err != nil {
		r.fail("chroot .", err)
		return nil
	}
	_ = unix.Chdir("/")
	_, errAfter := os.Lstat(marker)
	detail := fmt.Sprintf("marker %s visible before: %v, after: %v", marker, errBefore == nil, errAfter == nil)
	if errAfter != nil {
		// The sequence ran but did not reach the host: the kernel said no in
		// effect, with ENOENT for the marker.
		r.Step = "marker"
		r.Errno = int(unix.ENOENT)
		r.ErrnoName = unix.ErrnoName(unix.ENOENT)
		r.Detail = detail + "; escaped to the top of the mount namespace only"
		return nil
	}
	r.succeed(detail)
	return nil
}

func tryMknod(r *TryResult, args []string) error {
	dir := arg(args, 0, "")
	if dir == "" {
		dir = "/tmp"
		if !isDir(dir) {
			dir = "/dev"
		}
	}
	path := filepath.Join(dir, fmt.Sprintf("probe-null-%d", os.Getpid()))
	if err := unix.Mknod(path, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		r.fail("mknod "+path, err)
		return nil
	}
	defer os.Remove(path)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		r.fail("open "+path, err)
		return nil
	}
	defer unix.Close(fd)
	r.describeFD(fd)
	if _, err := unix.Write(fd, []byte("x")); err != nil {
		r.fail("write", err)
		return nil
	}
	r.succeed("created " + path + " (c 1:3), opened and wrote it, removed it")
	return nil
}

func tryOpenByHandle(r *TryResult, args []string) error {
	path := arg(args, 0, "/")
	// The mount descriptor may not be O_PATH: open_by_handle_at rejects those.
	mfd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		r.fail("open "+path, err)
		return nil
	}
	defer unix.Close(mfd)
	var h unix.FileHandle
	if arg(args, 1, "") == "shocker" {
		// Inode 2 is the root directory of ext2/3/4; FILEID_INO32_GEN is
		// handle type 1 with a 32-bit inode and a 32-bit generation.
		h = unix.NewFileHandle(1, []byte{2, 0, 0, 0, 0, 0, 0, 0})
	} else {
		h, _, err = unix.NameToHandleAt(unix.AT_FDCWD, path, 0)
		if err != nil {
			r.fail("name_to_handle_at", err)
			return nil
		}
	}
	fd, err := unix.OpenByHandleAt(mfd, h, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		r.fail("open_by_handle_at", err)
		return nil
	}
	defer unix.Close(fd)
	r.describeFD(fd)
	detail := fmt.Sprintf("opened handle type %d (%d bytes)", h.Type(), h.Size())
	if r.Object == "dir" {
		f := os.NewFile(uintptr(fd), "handle")
		names, _ := f.Readdirnames(32)
		sort.Strings(names)
		r.Data = strings.Join(names, "\n")
	}
	r.succeed(detail)
	return nil
}

func tryPtraceAttach(r *TryResult, args []string) error {
	pid, err := strconv.Atoi(arg(args, 0, "1"))
	if err != nil || pid <= 0 {
		return usagef("try ptrace-attach", "PID %q: want a positive integer", arg(args, 0, "1"))
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.PtraceSeize(pid); err != nil {
		r.fail("ptrace(PTRACE_SEIZE)", err)
		return nil
	}
	detail := fmt.Sprintf("seized pid %d", pid)
	if err := unix.PtraceInterrupt(pid); err == nil {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err == nil {
			if err := unix.PtraceDetach(pid); err == nil {
				detail += ", stopped and detached it"
			} else {
				detail += "; detach failed (it detaches when the probe exits): " + err.Error()
			}
		} else {
			detail += "; wait failed (it detaches when the probe exits): " + err.Error()
		}
	}
	r.succeed(detail)
	return nil
}

func tryWriteSysrq(r *TryResult, args []string) error {
	writeFile(r, "/proc/sysrq-trigger", arg(args, 0, "h"), true)
	return nil
}

func tryWriteProcSys(r *TryResult, args []string) error {
	writeFile(r, arg(args, 0, "/proc/sys/kernel/hostname"), arg(args, 1, ""), len(args) > 1)
	return nil
}

func tryWriteSys(r *TryResult, args []string) error {
	writeFile(r, arg(args, 0, "/sys/kernel/rcu_expedited"), arg(args, 1, ""), len(args) > 1)
	return nil
}

// writeFile opens path for writing and writes value, or when hasValue is
// false the file's current content (so that a success changes nothing).
func writeFile(r *TryResult, path, value string, hasValue bool) {
	data := []byte(value)
	if !hasValue {
		cur, err := os.ReadFile(path)
		if err == nil {
			data = cur
			if len(data) == 0 {
				data = []byte("\n")
			}
		} else {
			data = nil
		}
	}
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		r.fail("open "+path, err)
		return
	}
	defer unix.Close(fd)
	r.describeFD(fd)
	if data == nil {
		r.succeed("opened " + path + " for writing; wrote nothing (current value unreadable and no VALUE given)")
		return
	}
	n, err := unix.Write(fd, data)
	if err != nil {
		r.fail("write", err)
		return
	}
	r.succeed(fmt.Sprintf("wrote %d bytes %q to %s (%s, %s)", n, data, path, r.FS, r.Object))
}

func tryKeyctl(r *TryResult, _ []string) error {
	ring, _, errno := unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0, 0)
	if errno != 0 {
		r.fail("keyctl(KEYCTL_JOIN_SESSION_KEYRING)", errno)
		return nil
	}
	id, err := unix.AddKey("user", "vessel-probe", []byte("x"), unix.KEY_SPEC_SESSION_KEYRING)
	if err != nil {
		r.fail("add_key", err)
		return nil
	}
	r.succeed(fmt.Sprintf("joined new session keyring %d, added key %d", ring, id))
	return nil
}

// selfExe is the path to run this program again.
func selfExe() string {
	if _, err := os.Stat("/proc/self/exe"); err == nil {
		return "/proc/self/exe"
	}
	if p, err := exec.LookPath(os.Args[0]); err == nil {
		return p
	}
	return os.Args[0]
}

// runChild starts "probe exit 0" with attr and reports the outcome; the
// namespace system call happens in the forked child, before execve.
func runChild(r *TryResult, step string, attr *syscall.SysProcAttr) {
	cmd := exec.Command(selfExe(), "exit", "0")
	cmd.Args[0] = "probe"
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		r.fail(step, err)
		return
	}
	if err := cmd.Wait(); err != nil {
		r.fail("child", err)
		return
	}
	r.succeed("child started and exited 0")
}

func tryUnshareUser(r *TryResult, _ []string) error {
	runChild(r, "unshare(CLONE_NEWUSER)", &syscall.SysProcAttr{Unshareflags: unix.CLONE_NEWUSER})
	return nil
}

// nsFlagNames maps namespace names to clone flags.
var nsFlagNames = map[string]uintptr{
	"user": unix.CLONE_NEWUSER, "mnt": unix.CLONE_NEWNS, "mount": unix.CLONE_NEWNS,
	"ns": unix.CLONE_NEWNS, "uts": unix.CLONE_NEWUTS, "ipc": unix.CLONE_NEWIPC,
	"net": unix.CLONE_NEWNET, "pid": unix.CLONE_NEWPID, "cgroup": unix.CLONE_NEWCGROUP,
	"time": unix.CLONE_NEWTIME,
}

// ParseNamespaceFlags parses namespace flags given as names separated by ","
// or "|" (user, mnt, uts, ipc, net, pid, cgroup, time; with or without a
// CLONE_NEW prefix) or as one number (0x20000, 131072).
func ParseNamespaceFlags(s string) (uintptr, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("namespace flags: empty")
	}
	if n, err := strconv.ParseUint(s, 0, 64); err == nil {
		return uintptr(n), nil
	}
	var flags uintptr
	for _, part := range strings.FieldsFunc(s, func(c rune) bool { return c == ',' || c == '|' }) {
		name := strings.ToLower(strings.TrimSpace(part))
		name = strings.TrimPrefix(name, "clone_new")
		f, ok := nsFlagNames[name]
		if !ok {
			return 0, fmt.Errorf("namespace flags %q: unknown namespace %q", s, part)
		}
		flags |= f
	}
	return flags, nil
}

func tryUnshareNS(r *TryResult, args []string) error {
	flags, err := ParseNamespaceFlags(arg(args, 0, ""))
	if err != nil {
		return usagef("try unshare-ns", "%v", err)
	}
	if flags&unix.CLONE_NEWUSER != 0 {
		// A multi-threaded process may not unshare a user namespace.
		runChild(r, "unshare", &syscall.SysProcAttr{Unshareflags: flags})
		return nil
	}
	// The other namespaces are per thread: unshare on a locked thread that
	// is thrown away afterwards (the goroutine exits without unlocking).
	done := make(chan error)
	go func() {
		runtime.LockOSThread()
		done <- unix.Unshare(int(flags))
	}()
	if err := <-done; err != nil {
		r.fail("unshare", err)
		return nil
	}
	r.succeed(fmt.Sprintf("unshare(%#x) succeeded", flags))
	return nil
}

func tryCloneNS(r *TryResult, args []string) error {
	flags, err := ParseNamespaceFlags(arg(args, 0, ""))
	if err != nil {
		return usagef("try clone-ns", "%v", err)
	}
	runChild(r, "clone", &syscall.SysProcAttr{Cloneflags: flags})
	return nil
}

func tryReleaseAgent(r *TryResult, args []string) error {
	opts := arg(args, 0, "none,name=vessel-test-probe")
	dir, cleanup, err := scratchDir("/mnt")
	if err != nil {
		r.fail("mkdir", err)
		return nil
	}
	defer cleanup()
	if err := unix.Mount("cgroup", dir, "cgroup", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
		r.fail("mount cgroup "+opts, err)
		return nil
	}
	defer func() {
		if err := unix.Unmount(dir, 0); err != nil {
			_ = unix.Unmount(dir, unix.MNT_DETACH)
		}
	}()
	writeFile(r, filepath.Join(dir, "release_agent"), "", false)
	if r.OK {
		r.Detail = "mounted cgroup (" + opts + "); " + r.Detail
	}
	return nil
}

func tryReadRoot(r *TryResult, args []string) error {
	path := arg(args, 0, "/proc/1/root/etc/shadow")
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		r.fail("open "+path, err)
		return nil
	}
	defer unix.Close(fd)
	r.describeFD(fd)
	if r.Object == "dir" {
		names, err := os.NewFile(uintptr(fd), path).Readdirnames(64)
		if err != nil && len(names) == 0 {
			r.fail("readdir", err)
			return nil
		}
		sort.Strings(names)
		r.Data = strings.Join(names, "\n")
		r.succeed(fmt.Sprintf("listed %d entries of %s", len(names), path))
		return nil
	}
	buf := make([]byte, 4096)
	n, err := unix.Read(fd, buf)
	if err != nil {
		r.fail("read", err)
		return nil
	}
	r.Data = string(buf[:n])
	r.succeed(fmt.Sprintf("read %d bytes from %s", n, path))
	return nil
}

func tryWriteExe(r *TryResult, args []string) error {
	paths := args
	if len(paths) == 0 {
		paths = []string{"/proc/1/exe", "/proc/self/exe"}
	}
	var firstErr error
	var firstStep string
	for _, p := range paths {
		readable := "read-only open: ok"
		if rfd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			readable = "read-only open: " + err.Error()
		} else {
			unix.Close(rfd)
		}
		fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			r.addDetail(p + ": " + err.Error() + " (" + readable + ")")
			if firstErr == nil {
				firstErr, firstStep = err, "open "+p
			}
			continue
		}
		r.describeFD(fd)
		unix.Close(fd)
		r.addDetail(p + ": opened for writing (nothing written)")
		r.OK = true
	}
	if !r.OK && firstErr != nil {
		d := r.Detail
		r.fail(firstStep, firstErr)
		r.Detail = d
	}
	return nil
}

// setnsTypes maps /proc/PID/ns names to setns nstype values.
var setnsTypes = map[string]int{
	"mnt": unix.CLONE_NEWNS, "pid": unix.CLONE_NEWPID, "net": unix.CLONE_NEWNET,
	"ipc": unix.CLONE_NEWIPC, "uts": unix.CLONE_NEWUTS, "cgroup": unix.CLONE_NEWCGROUP,
	"time": unix.CLONE_NEWTIME, "user": unix.CLONE_NEWUSER,
}

func trySetnsPID1(r *TryResult, args []string) error {
	types := strings.FieldsFunc(arg(args, 0, "mnt,pid,net,ipc,uts,cgroup,time"), func(c rune) bool { return c == ',' || c == '|' })
	pid := arg(args, 1, "1")
	if _, err := strconv.Atoi(pid); err != nil {
		return usagef("try setns-pid1", "PID %q: want an integer", pid)
	}
	for _, t := range types {
		if _, ok := setnsTypes[t]; !ok {
			return usagef("try setns-pid1", "namespace type %q: want one of mnt,pid,net,ipc,uts,cgroup,time,user", t)
		}
	}
	var firstErr error
	var firstStep string
	note := func(step string, err error) {
		r.addDetail(step + ": " + err.Error())
		if firstErr == nil {
			firstErr, firstStep = err, step
		}
	}
	entered := 0
	for _, t := range types {
		target := "/proc/" + pid + "/ns/" + t
		self, _ := os.Readlink("/proc/self/ns/" + t)
		fd, err := unix.Open(target, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			note("open "+target, err)
			continue
		}
		other, _ := os.Readlink(target)
		if other != "" && other == self {
			unix.Close(fd)
			r.addDetail(t + ": same namespace, skipped")
			continue
		}
		done := make(chan error)
		go func() {
			// The thread is discarded afterwards: the goroutine exits locked.
			runtime.LockOSThread()
			done <- unix.Setns(fd, setnsTypes[t])
		}()
		err = <-done
		unix.Close(fd)
		switch {
		case err == nil:
			entered++
			r.addDetail(t + ": entered " + other)
		case t == "mnt" && isErrno(err, unix.EINVAL):
			// The kernel checks CAP_SYS_ADMIN/CAP_SYS_CHROOT first and only
			// then refuses because Go's threads share their fs_struct: the
			// permission was granted.
			entered++
			r.addDetail("mnt: permission granted (EINVAL only because the probe is multi-threaded)")
		case t == "user" && isErrno(err, unix.EINVAL):
			note("setns "+t, fmt.Errorf("%w (a multi-threaded process cannot join a user namespace; permission not tested)", err))
		default:
			note("setns "+t, err)
		}
	}
	if entered > 0 {
		r.OK = true
		return nil
	}
	if firstErr != nil {
		d := r.Detail
		r.fail(firstStep, firstErr)
		r.Detail = d
	}
	return nil
}

func tryConnect(r *TryResult, args []string) error {
	addr := arg(args, 0, "")
	if addr == "" {
		return usagef("try connect", "HOST:PORT is required")
	}
	timeout := 2 * time.Second
	if s := arg(args, 1, ""); s != "" {
		d, err := parseDuration(s)
		if err != nil {
			return usagef("try connect", "TIMEOUT %q: %v", s, err)
		}
		timeout = d
	}
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			r.fail("connect", fmt.Errorf("%w: %v", unix.ETIMEDOUT, err))
			return nil
		}
		r.fail("connect", err)
		return nil
	}
	defer c.Close()
	r.succeed(fmt.Sprintf("connected %s -> %s", c.LocalAddr(), c.RemoteAddr()))
	return nil
}

func tryBind(r *TryResult, args []string) error {
	port := arg(args, 0, "")
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return usagef("try bind", "PORT %q: want 0-65535", port)
	}
	l, err := net.Listen("tcp", net.JoinHostPort(arg(args, 1, "0.0.0.0"), port))
	if err != nil {
		r.fail("bind", err)
		return nil
	}
	defer l.Close()
	r.succeed("listening on " + l.Addr().String())
	return nil
}

// openModes maps "probe try open" modes to open(2) flags.
var openModes = map[string]int{
	"r": unix.O_RDONLY, "w": unix.O_WRONLY, "rw": unix.O_RDWR,
	"create": unix.O_WRONLY | unix.O_CREAT, "excl": unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL,
	"append": unix.O_WRONLY | unix.O_APPEND, "trunc": unix.O_WRONLY | unix.O_TRUNC,
	"dir": unix.O_RDONLY | unix.O_DIRECTORY, "path": unix.O_PATH,
}

func tryOpen(r *TryResult, args []string) error {
	path := arg(args, 0, "")
	if path == "" {
		return usagef("try open", "PATH is required")
	}
	mode := arg(args, 1, "r")
	flags, ok := openModes[mode]
	if !ok {
		return usagef("try open", "mode %q: want r, w, rw, create, excl, append, trunc, dir or path", mode)
	}
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0o644)
	if err != nil {
		r.fail("open", err)
		return nil
	}
	defer unix.Close(fd)
	r.describeFD(fd)
	r.succeed(fmt.Sprintf("opened %s (%s)", path, mode))
	return nil
}

func tryMkdir(r *TryResult, args []string) error {
	path := arg(args, 0, "")
	if path == "" {
		return usagef("try mkdir", "PATH is required")
	}
	if err := unix.Mkdir(path, 0o755); err != nil {
		r.fail("mkdir", err)
		return nil
	}
	r.succeed("created " + path)
	return nil
}

func tryRemove(r *TryResult, args []string) error {
	path := arg(args, 0, "")
	if path == "" {
		return usagef("try remove", "PATH is required")
	}
	flags := 0
	if st, err := os.Lstat(path); err == nil && st.IsDir() {
		flags = unix.AT_REMOVEDIR
	}
	if err := unix.Unlinkat(unix.AT_FDCWD, path, flags); err != nil {
		r.fail("unlink", err)
		return nil
	}
	r.succeed("removed " + path)
	return nil
}

func tryRename(r *TryResult, args []string) error {
	if len(args) < 2 {
		return usagef("try rename", "OLD and NEW are required")
	}
	if err := unix.Rename(args[0], args[1]); err != nil {
		r.fail("rename", err)
		return nil
	}
	r.succeed("renamed " + args[0] + " to " + args[1])
	return nil
}

func tryExec(r *TryResult, args []string) error {
	if len(args) < 1 {
		return usagef("try exec", "PATH is required")
	}
	cmd := exec.Command(args[0], args[1:]...)
	out, err := cmd.CombinedOutput()
	r.Data = truncate(string(out), 4096)
	if cmd.Process == nil {
		r.fail("execve", err)
		return nil
	}
	if err != nil {
		r.succeed("started; " + err.Error())
		return nil
	}
	r.succeed("started; exit status 0")
	return nil
}

// syscallsRefused are syscalls that, called with zero arguments, would end
// or wedge the probe itself rather than answer.
var syscallsRefused = map[uintptr]string{
	unix.SYS_EXIT: "exit", unix.SYS_EXIT_GROUP: "exit_group", unix.SYS_FORK: "fork",
	unix.SYS_VFORK: "vfork", unix.SYS_CLONE: "clone", unix.SYS_PAUSE: "pause",
	unix.SYS_RT_SIGRETURN: "rt_sigreturn", unix.SYS_RT_SIGSUSPEND: "rt_sigsuspend",
	unix.SYS_SETSID: "setsid", unix.SYS_MUNMAP: "munmap",
}

func trySyscall(r *TryResult, args []string) error {
	n, err := strconv.ParseUint(arg(args, 0, ""), 0, 32)
	if err != nil {
		return usagef("try syscall", "NR %q: want a system call number", arg(args, 0, ""))
	}
	nr := uintptr(n)
	if name, bad := syscallsRefused[nr]; bad {
		r.Refused = true
		r.Detail = "refused: " + name + " with zero arguments would disrupt the probe itself"
		return nil
	}
	r1, _, errno := unix.Syscall6(nr, 0, 0, 0, 0, 0, 0)
	if errno != 0 {
		r.fail(fmt.Sprintf("syscall %d", nr), errno)
		return nil
	}
	r.succeed(fmt.Sprintf("syscall %d returned %d", nr, int64(r1)))
	return nil
}

// ParseSignal parses a signal given as a number, "TERM" or "SIGTERM".
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("signal %q: unknown", s)
}

func tryKill(r *TryResult, args []string) error {
	pid, err := strconv.Atoi(arg(args, 0, ""))
	if err != nil {
		return usagef("try kill", "PID %q: want an integer", arg(args, 0, ""))
	}
	sig, err := ParseSignal(arg(args, 1, "0"))
	if err != nil {
		return usagef("try kill", "%v", err)
	}
	if err := unix.Kill(pid, sig); err != nil {
		r.fail("kill", err)
		return nil
	}
	r.succeed(fmt.Sprintf("sent signal %d to %d", sig, pid))
	return nil
}

func trySethostname(r *TryResult, args []string) error {
	name := arg(args, 0, "")
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			r.fail("uname", err)
			return nil
		}
		name = h
	}
	if err := unix.Sethostname([]byte(name)); err != nil {
		r.fail("sethostname", err)
		return nil
	}
	r.succeed("hostname set to " + name)
	return nil
}

func trySettime(r *TryResult, _ []string) error {
	var real0, mono0, mono1 unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_REALTIME, &real0); err != nil {
		r.fail("clock_gettime", err)
		return nil
	}
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono0)
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono1)
	// Set the clock to what it reads now, corrected for the time elapsed
	// since it was read, so that a success moves it by well under 1 ms.
	now := unix.NsecToTimespec(real0.Nano() + (mono1.Nano() - mono0.Nano()))
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &now); err != nil {
		r.fail("clock_settime", err)
		return nil
	}
	r.succeed("CLOCK_REALTIME set to its current value")
	return nil
}

func tryChown(r *TryResult, args []string) error {
	path := arg(args, 0, "")
	if path == "" {
		return usagef("try chown", "PATH is required")
	}
	uid, err1 := strconv.Atoi(arg(args, 1, "0"))
	gid, err2 := strconv.Atoi(arg(args, 2, "0"))
	if err1 != nil || err2 != nil {
		return usagef("try chown", "UID and GID must be integers")
	}
	if err := unix.Chown(path, uid, gid); err != nil {
		r.fail("chown", err)
		return nil
	}
	r.succeed(fmt.Sprintf("chowned %s to %d:%d", path, uid, gid))
	return nil
}

func trySetuid(r *TryResult, args []string) error {
	id, err := strconv.Atoi(arg(args, 0, ""))
	if err != nil {
		return usagef("try setuid", "UID %q: want an integer", arg(args, 0, ""))
	}
	if err := unix.Setuid(id); err != nil {
		r.fail("setuid", err)
		return nil
	}
	r.succeed(fmt.Sprintf("uid now %d", os.Getuid()))
	return nil
}

func trySetgid(r *TryResult, args []string) error {
	id, err := strconv.Atoi(arg(args, 0, ""))
	if err != nil {
		return usagef("try setgid", "GID %q: want an integer", arg(args, 0, ""))
	}
	if err := unix.Setgid(id); err != nil {
		r.fail("setgid", err)
		return nil
	}
	r.succeed(fmt.Sprintf("gid now %d", os.Getgid()))
	return nil
}

func trySetgroups(r *TryResult, args []string) error {
	gids := []int{}
	for _, s := range strings.FieldsFunc(arg(args, 0, ""), func(c rune) bool { return c == ',' }) {
		g, err := strconv.Atoi(s)
		if err != nil {
			return usagef("try setgroups", "GID %q: want an integer", s)
		}
		gids = append(gids, g)
	}
	if err := unix.Setgroups(gids); err != nil {
		r.fail("setgroups", err)
		return nil
	}
	r.succeed(fmt.Sprintf("groups set to %v", gids))
	return nil
}

func tryDmesg(r *TryResult, _ []string) error {
	buf := make([]byte, 4096)
	n, err := unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, buf)
	if err != nil {
		r.fail("syslog(SYSLOG_ACTION_READ_ALL)", err)
		return nil
	}
	r.Data = string(buf[:n])
	r.succeed(fmt.Sprintf("read %d bytes of the kernel log", n))
	return nil
}

func tryRawSocket(r *TryResult, _ []string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
	if err != nil {
		r.fail("socket", err)
		return nil
	}
	unix.Close(fd)
	r.succeed("opened a raw ICMP socket")
	return nil
}

// fsMagics names common filesystem magic numbers (statfs f_type).
var fsMagics = map[int64]string{
	unix.PROC_SUPER_MAGIC: "proc", unix.SYSFS_MAGIC: "sysfs", unix.TMPFS_MAGIC: "tmpfs",
	unix.DEVPTS_SUPER_MAGIC: "devpts", unix.CGROUP_SUPER_MAGIC: "cgroup",
	unix.CGROUP2_SUPER_MAGIC: "cgroup2", unix.EXT4_SUPER_MAGIC: "ext4",
	unix.XFS_SUPER_MAGIC: "xfs", unix.BTRFS_SUPER_MAGIC: "btrfs",
	unix.OVERLAYFS_SUPER_MAGIC: "overlay", unix.SQUASHFS_MAGIC: "squashfs",
	unix.NSFS_MAGIC: "nsfs", unix.SECURITYFS_MAGIC: "securityfs",
	unix.DEBUGFS_MAGIC: "debugfs", unix.TRACEFS_MAGIC: "tracefs",
	unix.BPF_FS_MAGIC: "bpf", unix.FUSE_SUPER_MAGIC: "fuse", unix.RAMFS_MAGIC: "ramfs",
	unix.EROFS_SUPER_MAGIC_V1: "erofs", unix.PIPEFS_MAGIC: "pipefs",
	unix.SOCKFS_MAGIC: "sockfs", unix.ANON_INODE_FS_MAGIC: "anon_inodefs",
}

func fsName(fd int) string {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return ""
	}
	if n, ok := fsMagics[int64(st.Type)]; ok {
		return n
	}
	return fmt.Sprintf("0x%x", uint64(st.Type))
}

func objectKind(fd int) string {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return ""
	}
	return fileKind(st.Mode, st.Rdev)
}

func fileKind(mode uint32, rdev uint64) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "regular"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFCHR:
		return fmt.Sprintf("chardev %d:%d", unix.Major(rdev), unix.Minor(rdev))
	case unix.S_IFBLK:
		return fmt.Sprintf("blockdev %d:%d", unix.Major(rdev), unix.Minor(rdev))
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	}
	return "unknown"
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// parseDuration accepts Go durations ("1.5s") and plain seconds ("2", "0.5").
func parseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 {
			return 0, fmt.Errorf("negative duration")
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err == nil && d < 0 {
		return 0, fmt.Errorf("negative duration")
	}
	return d, err
}
