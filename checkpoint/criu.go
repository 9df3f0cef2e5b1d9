package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultCriuPath is where .ci/install-criu.sh puts its criu wrapper; it
// is tried before the criu found in PATH.
const DefaultCriuPath = "/opt/vessel-criu/bin/criu"

// EnvCriu names an environment variable that, when set, is the criu
// binary to run unless Options.CriuPath says otherwise.
const EnvCriu = "VESSEL_CRIU"

// MinVersion is the oldest CRIU this package works with. 4.0 and later are
// preferred: older releases fail on recent kernels (3.17 cannot handle the
// vdso of Linux 6.x on some configurations).
var MinVersion = Version{Major: 3, Minor: 17}

// Version is a CRIU release number.
type Version struct {
	Major, Minor, Sublevel int
}

func (v Version) String() string {
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Sublevel)
}

// Less reports whether v is older than o.
func (v Version) Less(o Version) bool {
	if v.Major != o.Major {
		return v.Major < o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor < o.Minor
	}
	return v.Sublevel < o.Sublevel
}

// VersionError says that criu is missing or too old.
type VersionError struct {
	// Path is the criu binary tried ("" when none was found).
	Path string
	// Found is the version found; zero when criu is missing or did not run.
	Found Version
	// Need is the oldest version that works.
	Need Version
	// Err is why no version could be read, if so.
	Err error
}

func (e *VersionError) Error() string {
	if e.Err != nil {
		where := e.Path
		if where == "" {
			where = "criu"
		}
		return fmt.Sprintf("checkpoint: %s: %v; CRIU %s or newer is needed (4.x preferred; install it with .ci/install-criu.sh or set %s)", where, e.Err, e.Need, EnvCriu)
	}
	return fmt.Sprintf("checkpoint: %s is CRIU %s; CRIU %s or newer is needed (4.x preferred; install it with .ci/install-criu.sh or set %s)", e.Path, e.Found, e.Need, EnvCriu)
}

func (e *VersionError) Unwrap() error { return e.Err }

// CriuError is a failed CRIU operation.
type CriuError struct {
	// Op is "dump", "pre-dump", "restore", "page-server", "version" or
	// "check".
	Op string
	// Errno is the error CRIU reported, if any.
	Errno syscall.Errno
	// Msg is CRIU's own message, if any.
	Msg string
	// Log holds the error lines of CRIU's log, when it could be read.
	Log string
	// LogFile is the path of CRIU's full log.
	LogFile string
}

func (e *CriuError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "checkpoint: criu %s failed", e.Op)
	if e.Msg != "" {
		fmt.Fprintf(&b, ": %s", strings.TrimSpace(e.Msg))
	}
	if e.Errno != 0 {
		fmt.Fprintf(&b, " (%v)", e.Errno)
	}
	if e.Log != "" {
		fmt.Fprintf(&b, "\n%s", e.Log)
	}
	if e.LogFile != "" {
		fmt.Fprintf(&b, "\n(full log: %s)", e.LogFile)
	}
	return b.String()
}

// resolveCriu returns the criu binary to run.
func resolveCriu(path string) (string, error) {
	if path == "" {
		path = os.Getenv(EnvCriu)
	}
	if path == "" {
		if _, err := os.Stat(DefaultCriuPath); err == nil {
			path = DefaultCriuPath
		}
	}
	if path == "" {
		p, err := exec.LookPath("criu")
		if err != nil {
			return "", &VersionError{Need: MinVersion, Err: errors.New("not found (not in PATH, not at " + DefaultCriuPath + ")")}
		}
		path = p
	}
	if _, err := os.Stat(path); err != nil {
		return "", &VersionError{Path: path, Need: MinVersion, Err: err}
	}
	return path, nil
}

var (
	versionMu    sync.Mutex
	versionCache = map[string]Version{}
)

// CriuVersion runs criu (path "" picks it as Options.CriuPath does) and
// returns its version, or a *VersionError when it is missing, does not run
// or is older than MinVersion.
func CriuVersion(ctx context.Context, path string) (Version, error) {
	p, err := resolveCriu(path)
	if err != nil {
		return Version{}, err
	}
	versionMu.Lock()
	v, ok := versionCache[p]
	versionMu.Unlock()
	if !ok {
		resp, err := swrk(ctx, p, &criuReq{Type: reqVersion}, nil, nil, nil)
		if err != nil {
			return Version{}, &VersionError{Path: p, Need: MinVersion, Err: err}
		}
		if resp.Version == nil {
			return Version{}, &VersionError{Path: p, Need: MinVersion, Err: errors.New("criu answered no version (older than 3.0?)")}
		}
		v = *resp.Version
		versionMu.Lock()
		versionCache[p] = v
		versionMu.Unlock()
	}
	if v.Less(MinVersion) {
		return v, &VersionError{Path: p, Found: v, Need: MinVersion}
	}
	return v, nil
}

// CancelGrace is how long a dump, pre-dump or restore whose context is
// cancelled may still run before criu is killed: criu cannot be stopped
// safely in the middle of one, so a cancelled operation normally
// finishes (successfully or not) and reports what it did.
var CancelGrace = 30 * time.Second

// notifyFunc handles one of CRIU's notifications ("pre-dump",
// "post-dump", "network-lock", "network-unlock", "setup-namespaces",
// "post-setup-namespaces", "post-restore", "pre-resume", "post-resume",
// "orphan-pts-master").
type notifyFunc func(script string, pid int, files []*os.File) error

// swrk runs one request through a fresh `criu swrk` and returns its final
// response. files are inherited by criu as descriptors 4, 5, ... (the RPC
// socket is 3). Cancelling ctx kills criu.
func swrk(ctx context.Context, criuPath string, req *criuReq, files []*os.File, notify notifyFunc, launch func(*exec.Cmd) (func() error, func(), error)) (*criuResp, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: socketpair: %w", err)
	}
	client := os.NewFile(uintptr(fds[0]), "criu-rpc")
	server := os.NewFile(uintptr(fds[1]), "criu-rpc-server")
	defer client.Close()
	var stderr bytes.Buffer
	cmd := exec.Command(criuPath, "swrk", "3")
	cmd.ExtraFiles = append([]*os.File{server}, files...)
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	// criu must not die with the goroutine's thread, and must not be
	// signalled by the terminal with us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if launch == nil {
		launch = func(cmd *exec.Cmd) (func() error, func(), error) {
			if err := cmd.Start(); err != nil {
				return nil, nil, err
			}
			return cmd.Wait, func() { _ = cmd.Process.Kill() }, nil
		}
	}
	wait, kill, err := launch(cmd)
	if err != nil {
		server.Close()
		return nil, fmt.Errorf("checkpoint: start %s: %w", criuPath, err)
	}
	server.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ctx.Done():
		case <-stop:
			return
		}
		if req.Type == reqDump || req.Type == reqSinglePreDump || req.Type == reqRestore {
			// Killing criu in the middle of a dump can leave a task with
			// criu's parasite code running in it, or a restore with tasks
			// half made: give it time to finish (a dump that completes
			// is reported as done) before killing a criu that hangs.
			select {
			case <-stop:
				return
			case <-time.After(CancelGrace):
			}
		}
		kill()
	}()
	finish := func() error {
		client.Close()
		return wait()
	}
	resp, err := exchange(client, req, notify)
	werr := finish()
	if err != nil {
		if ctx.Err() != nil && req.Type != reqDump && req.Type != reqSinglePreDump && req.Type != reqRestore {
			return nil, ctx.Err()
		}
		msg := strings.TrimSpace(stderr.String())
		if werr != nil {
			msg = strings.TrimSpace(msg + " (" + werr.Error() + ")")
		}
		return nil, fmt.Errorf("checkpoint: criu swrk: %w: %s", err, msg)
	}
	if werr != nil && resp.Success {
		// criu did its work, but its end went wrong (with LaunchCriu:
		// whatever ran it failed to take the result over).
		return nil, werr
	}
	return resp, nil
}

func exchange(sk *os.File, req *criuReq, notify notifyFunc) (*criuResp, error) {
	if _, err := sk.Write(req.marshal()); err != nil {
		return nil, err
	}
	buf := make([]byte, 1<<16)
	oob := make([]byte, unix.CmsgSpace(16*4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(int(sk.Fd()), buf, oob, 0)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, errors.New("criu closed the connection")
		}
		files := receivedFiles(oob[:oobn])
		resp, err := unmarshalResp(buf[:n])
		if err != nil {
			closeAll(files)
			return nil, err
		}
		if resp.Type != reqNotify || resp.Notify == nil {
			closeAll(files)
			return resp, nil
		}
		ok := true
		if notify != nil {
			if err := notify(resp.Notify.Script, int(resp.Notify.Pid), files); err != nil {
				ok = false
			}
		}
		closeAll(files)
		ack := &criuReq{Type: reqNotify, NotifySuccess: &ok}
		if _, err := sk.Write(ack.marshal()); err != nil {
			return nil, err
		}
	}
}

func receivedFiles(oob []byte) []*os.File {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var files []*os.File
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "criu-fd"))
		}
	}
	return files
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// logErrors returns the error lines of a CRIU log (at most the last 20).
func logErrors(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, "Can't setup RLIMIT_NOFILE") {
			// criu tries to raise its own open-files limit at start and
			// says so as an error when it may not; harmless, and not why
			// anything failed.
			continue
		}
		if strings.Contains(l, "Error") || strings.Contains(l, "error") {
			lines = append(lines, l)
		}
	}
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

// relParent returns parent as CRIU wants it: relative to images.
func relParent(images, parent string) (string, error) {
	if parent == "" {
		return "", nil
	}
	if !filepath.IsAbs(parent) {
		return parent, nil
	}
	absImages, err := filepath.Abs(images)
	if err != nil {
		return "", err
	}
	return filepath.Rel(absImages, parent)
}
