package testutil

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// DebianSystemDir is where DebianSystemRoot keeps its tree between runs.
const DebianSystemDir = "/var/tmp/vessel-test-debian-systemd"

// DebianSystemRoot returns a Debian bookworm tree with systemd, dbus,
// openssh-server and iproute2: a system to boot in a container. The first
// call on a machine builds it with debootstrap from Debian's archive (a
// few minutes) into DebianSystemDir/rootfs, and a marker file says it is
// complete; containers use it as a read-only base under a layer of their
// own. A missing debootstrap fails the test with how to install it. The
// qemu guest (no network there) gets the host's tree: test.sh adds it.
func DebianSystemRoot(t testing.TB) string {
	t.Helper()
	root := filepath.Join(DebianSystemDir, "rootfs")
	done := filepath.Join(DebianSystemDir, "complete")
	if _, err := os.Stat(done); err == nil {
		return root
	}
	if os.Getenv("VESSEL_IN_QEMU") == "1" {
		t.Fatalf("no Debian system tree at %s in the guest: build it on the host (any test calling testutil.DebianSystemRoot) and add it with .ci/qemu/run-v2-tests.sh -add %s:%s",
			DebianSystemDir, DebianSystemDir, DebianSystemDir)
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Fatal("debootstrap is not installed (test.sh installs it: apt-get install debootstrap)")
	}
	if err := os.RemoveAll(DebianSystemDir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(DebianSystemDir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "debootstrap", "--variant=minbase",
		"--include=systemd,systemd-sysv,dbus,openssh-server,iproute2", "bookworm", root,
		"http://deb.debian.org/debian").CombinedOutput()
	if err != nil {
		os.RemoveAll(DebianSystemDir)
		lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
		if len(lines) > 20 {
			lines = lines[len(lines)-20:]
		}
		t.Fatalf("debootstrap: %v\n%s", err, strings.Join(lines, "\n"))
	}
	t.Logf("debootstrap took %v", time.Since(start).Round(time.Second))
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}
