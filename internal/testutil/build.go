package testutil

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/openvessel/vessel/cgroups"
)

var (
	sharedOnce sync.Once
	sharedPath string
	sharedErr  error

	probeOnce sync.Once
	probePath string
	probeErr  error
)

// sharedDir returns the per-process directory that holds shared builds. It
// is world-traversable (0755) so that containers running under a mapped
// user id can still reach binaries and root filesystems inside it.
func sharedDir() (string, error) {
	sharedOnce.Do(func() {
		d, err := os.MkdirTemp("", "vessel-testutil-")
		if err != nil {
			sharedErr = fmt.Errorf("create shared test directory: %w", err)
			return
		}
		if err := os.Chmod(d, 0o755); err != nil {
			sharedErr = fmt.Errorf("chmod shared test directory: %w", err)
			return
		}
		sharedPath = d
	})
	return sharedPath, sharedErr
}

// Cleanup removes the shared directory that BuildProbe and BusyboxRootfs
// build into. Call it once after all tests have run (Main does); it is safe
// to call when nothing was built.
func Cleanup() error {
	if sharedPath == "" {
		return nil
	}
	return os.RemoveAll(sharedPath)
}

// Main runs the tests and then Cleanup, and exits with the tests' status.
// Use it as the whole body of TestMain.
//
// A test binary built with cgo (Go's default where a C compiler is
// installed) is dynamically linked, and tests whose containers re-execute
// the test binary as their init inside a root filesystem of their own
// cannot run it there: the host's dynamic loader is not in that root. So
// a dynamically linked test binary rebuilds the package's tests with
// CGO_ENABLED=0 and runs that binary in its place, with the same
// arguments: a plain `go test` passes whatever CGO_ENABLED is.
func Main(m *testing.M) {
	if code, replaced := runStatic(); replaced {
		os.Exit(code)
	}
	code := m.Run()
	if err := Cleanup(); err != nil {
		fmt.Fprintf(os.Stderr, "testutil: cleanup: %v\n", err)
	}
	RemoveCgroupGroup()
	os.Exit(code)
}

// staticEnv marks a test binary that runStatic built and started.
const staticEnv = "VESSEL_TEST_STATIC"

// runStatic runs a statically linked build of this package's tests in
// place of this dynamically linked one (see Main), and reports its exit
// status; replaced is false when this binary is static already.
func runStatic() (code int, replaced bool) {
	if os.Getenv(staticEnv) == "1" || !dynamicallyLinked() {
		return 0, false
	}
	dir, err := os.MkdirTemp("", "vessel-static-test-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "testutil: %v\n", err)
		return 1, true
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755) // the rootless tests run it as another user
	bin := filepath.Join(dir, filepath.Base(os.Args[0]))
	// go test runs a test binary in its package's directory.
	build := exec.Command(goTool(), "test", "-c", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "testutil: this test binary is dynamically linked (cgo) and rebuilding it with CGO_ENABLED=0 failed: %v\n", err)
		return 1, true
	}
	cmd := exec.Command(bin, os.Args[1:]...)
	cmd.Env = append(os.Environ(), staticEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// If go test kills this process (its timeout), the tests go too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), true
	case err != nil:
		fmt.Fprintf(os.Stderr, "testutil: running the static test binary: %v\n", err)
		return 1, true
	}
	return 0, true
}

// dynamicallyLinked reports whether this program has an ELF interpreter.
func dynamicallyLinked() bool {
	f, err := elf.Open("/proc/self/exe")
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true
		}
	}
	return false
}

// CgroupGroup is the group every test cgroup goes under.
const CgroupGroup = "vessel-test"

// RemoveCgroupGroup removes what is left of the tests' cgroup group once
// they are done: the cpuset parents vessel keeps (see cgroups.Destroy).
func RemoveCgroupGroup() {
	if err := cgroups.RemoveGroup(CgroupGroup); err != nil {
		fmt.Fprintf(os.Stderr, "testutil: %v\n", err)
	}
}

// GroupDirs returns the directory of group under this process's own
// cgroup in every mounted hierarchy (whether or not it exists): where
// vessel puts a group's containers by default.
func GroupDirs(t testing.TB, group string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	var dirs []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var mnt string
		switch {
		case parts[0] == "0" && parts[1] == "":
			for _, m := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
				if exists(filepath.Join(m, "cgroup.controllers")) {
					mnt = m
					break
				}
			}
		case strings.HasPrefix(parts[1], "name="):
			mnt = filepath.Join("/sys/fs/cgroup", strings.TrimPrefix(parts[1], "name="))
		default:
			mnt = filepath.Join("/sys/fs/cgroup", strings.Split(parts[1], ",")[0])
		}
		if mnt == "" || !exists(mnt) {
			continue
		}
		dirs = append(dirs, filepath.Join(mnt, parts[2], group))
	}
	return dirs
}

// GroupChildren lists the cgroups inside group (GroupDirs) in every
// hierarchy.
func GroupChildren(t testing.TB, group string) []string {
	t.Helper()
	var cgs []string
	for _, dir := range GroupDirs(t, group) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue // no such group in this hierarchy
		}
		for _, e := range ents {
			if e.IsDir() {
				cgs = append(cgs, filepath.Join(dir, e.Name()))
			}
		}
	}
	return cgs
}

// BuildProbe returns the path of the static probe program
// (internal/probe/cmd/probe built with CGO_ENABLED=0), building it on first
// use; later calls from any test of the same test binary reuse that build.
// The binary is mode 0755 in a 0755 directory. If VESSEL_PROBE is set, that
// file is used instead of building. A failed build fails the test.
func BuildProbe(t testing.TB) string {
	t.Helper()
	probeOnce.Do(func() { probePath, probeErr = buildProbe() })
	if probeErr != nil {
		t.Fatalf("testutil.BuildProbe: %v", probeErr)
	}
	return probePath
}

func buildProbe() (string, error) {
	if p := os.Getenv("VESSEL_PROBE"); p != "" {
		st, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("VESSEL_PROBE=%s: %w", p, err)
		}
		if st.Mode()&0o111 == 0 || !st.Mode().IsRegular() {
			return "", fmt.Errorf("VESSEL_PROBE=%s: not an executable file", p)
		}
		return filepath.Abs(p)
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	dir, err := sharedDir()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "probe")
	cmd := exec.Command(goTool(), "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./internal/probe/cmd/probe")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./internal/probe/cmd/probe in %s: %v\n%s", root, err, stderr.String())
	}
	if err := os.Chmod(out, 0o755); err != nil {
		return "", err
	}
	return out, nil
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	// go test puts its own GOROOT/bin first in the test's PATH, so the
	// lookup above finds the go that runs the tests; this is the fallback
	// for a test binary started by hand.
	return "/usr/local/go/bin/go"
}

// ModuleRoot returns the directory of vessel's go.mod: from `go env GOMOD`
// run in the working directory (a test runs in its package directory), else
// from this source file's location.
func ModuleRoot() (string, error) {
	var tried []string
	if out, err := exec.Command(goTool(), "env", "GOMOD").Output(); err == nil {
		gomod := strings.TrimSpace(string(out))
		if gomod != "" && gomod != os.DevNull {
			if root := filepath.Dir(gomod); isVesselRoot(root) {
				return root, nil
			}
			tried = append(tried, filepath.Dir(gomod))
		}
	} else {
		tried = append(tried, "go env GOMOD: "+err.Error())
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		root := filepath.Join(filepath.Dir(file), "..", "..")
		if isVesselRoot(root) {
			return filepath.Clean(root), nil
		}
		tried = append(tried, root)
	}
	return "", errors.New("cannot find the vessel module root (tried " + strings.Join(tried, ", ") + "); set VESSEL_PROBE to a prebuilt probe")
}

func isVesselRoot(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil || !bytes.Contains(b, []byte("module github.com/openvessel/vessel")) {
		return false
	}
	st, err := os.Stat(filepath.Join(dir, "internal", "probe", "cmd", "probe"))
	return err == nil && st.IsDir()
}

// RequireRoot fails the test (it does not skip) unless it runs as root:
// vessel's tests are meant to run as root against the real kernel.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("this test must run as root (euid is %d): run `go test` as root", os.Geteuid())
	}
}
