package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openvessel/vessel/rootfs"
)

// The test binary doubles as the container child: with this variable set
// it runs Setup on the plan in VESSEL_ROOTFS_TEST_PLAN (in the new mount and
// pid namespaces it was cloned into) and execs /bin/sh -c SCRIPT from the
// new root. init, not TestMain, so the package's other tests may have
// their own TestMain.
const childMarker = "VESSEL_ROOTFS_TEST_CHILD"

func init() {
	script := os.Getenv(childMarker)
	if script == "" {
		return
	}
	runtime.LockOSThread()
	var p rootfs.Plan
	if err := json.Unmarshal([]byte(os.Getenv("VESSEL_ROOTFS_TEST_PLAN")), &p); err != nil {
		fmt.Fprintln(os.Stderr, "child: plan:", err)
		os.Exit(125)
	}
	if err := rootfs.Setup(&p); err != nil {
		fmt.Fprintln(os.Stderr, "child: setup:", err)
		os.Exit(125)
	}
	err := syscall.Exec("/bin/sh", []string{"sh", "-c", script}, []string{"PATH=/bin:/usr/bin:/sbin:/usr/sbin", "HOME=/"})
	fmt.Fprintln(os.Stderr, "child: exec /bin/sh:", err)
	os.Exit(126)
}

// run starts a container child on p and returns its combined output.
func run(t testing.TB, p *rootfs.Plan, script string) (string, error) {
	t.Helper()
	if p.MaskedPaths == nil {
		p.MaskedPaths = []string{}
	}
	if p.ReadonlyPaths == nil {
		p.ReadonlyPaths = []string{}
	}
	p.NewPID = true
	p.TTYGid = -1
	js, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/proc/self/exe")
	cmd.Env = []string{childMarker + "=" + script, "VESSEL_ROOTFS_TEST_PLAN=" + string(js)}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return out.String(), err
}

// mustRun is run that fails the test on a non-zero exit.
func mustRun(t testing.TB, p *rootfs.Plan, script string) string {
	t.Helper()
	out, err := run(t, p, script)
	if err != nil {
		t.Fatalf("container %q: %v\n%s", script, err, out)
	}
	return out
}

// prepare runs Prepare and registers Release.
func prepare(t testing.TB, p *rootfs.Plan, opts PrepareOptions) *Prepared {
	t.Helper()
	id := fmt.Sprintf("t%d", time.Now().UnixNano())
	pr, err := Prepare(context.Background(), id, p, opts)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	t.Cleanup(func() {
		if err := pr.Release(); err != nil {
			t.Errorf("Release: %v", err)
		}
	})
	return pr
}

// busyboxTree fills dir with a static busybox userland.
func busyboxTree(t testing.TB, dir string) {
	t.Helper()
	for _, d := range []string{"bin", "etc", "tmp", "data", "proc", "dev", "sys"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static is needed: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), src, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range applets {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "data/base.txt"), []byte("base\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data/victim.txt"), []byte("victim\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

var applets = []string{"sh", "cat", "ls", "echo", "dd", "rm", "mkdir", "touch", "test", "true", "false", "grep", "stat", "sync", "mount", "wc", "df", "id"}

// treeDigest summarises a directory tree (names, modes, sizes, contents of
// small files), to show it did not change.
func treeDigest(t testing.TB, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v %d\n", strings.TrimPrefix(p, dir), fi.Mode(), fi.Size())
		if fi.Mode().IsRegular() && fi.Size() < 4096 {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.Write(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func mountTable(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkClean fails the test when, after cleanup, the host's mount table
// changed or a loop device is still attached to a file under dir.
func checkClean(t *testing.T, dir string) {
	t.Helper()
	before := mountTable(t)
	t.Cleanup(func() {
		if after := mountTable(t); after != before {
			t.Errorf("host mount table changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			left := loopsUnder(dir)
			if len(left) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("loop devices still attached to files under %s: %v", dir, left)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// loopsUnder lists attached loop devices whose backing file is under dir.
func loopsUnder(dir string) []string {
	var out []string
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(string(b)), dir) {
			out = append(out, f+"="+strings.TrimSpace(string(b)))
		}
	}
	return out
}

// need skips nothing: a missing tool is a broken test machine.
func need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install Debian's squashfs-tools, erofs-utils, e2fsprogs, xfsprogs", tool)
		}
	}
}

func isENOSPC(out string) bool {
	return strings.Contains(out, "No space left") || strings.Contains(out, "quota exceeded") || strings.Contains(out, "Disk quota")
}
