package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openvessel/vessel/cgroups"
)

// TestPodmanRuntime runs containers through podman (Debian's package) with
// vessel as its OCI runtime: an image imported from a local tarball, no
// registry. Podman keeps its storage in a temporary root so nothing stays
// on the host, and its cgroups go under vessel-test.
func TestPodmanRuntime(t *testing.T) {
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatal("podman is not installed (test.sh installs it: apt-get install podman)")
	}
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "/bin/busybox", filepath.Join(rootfs, "bin/busybox")).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	for _, a := range []string{"sh", "echo", "cat", "hostname", "id", "sleep"} {
		os.Symlink("busybox", filepath.Join(rootfs, "bin", a))
	}
	tarball := filepath.Join(dir, "image.tar")
	if out, err := exec.Command("tar", "-C", rootfs, "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	storage := []string{"--root", filepath.Join(dir, "storage"), "--runroot", filepath.Join(dir, "run"),
		"--cgroup-manager", "cgroupfs", "--runtime", vesselBin, "--events-backend", "none"}
	podman := func(args ...string) (string, error) {
		cmd := exec.Command("podman", append(append([]string{}, storage...), args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		podman("rm", "--all", "--force")
		podman("rmi", "--all", "--force")
		// conmon's cgroups (podman makes PARENT/conmon with cgroupfs).
		for _, name := range []string{"vessel-test/podman/conmon", "vessel-test/podman"} {
			if m, err := cgroups.Load(cgroups.Options{Name: name, Parent: "/"}); err == nil {
				if err := m.Destroy(); err != nil {
					t.Errorf("removing podman's cgroup %s: %v", name, err)
				}
			}
		}
		exec.Command("umount", "-R", filepath.Join(dir, "storage")).Run()
		exec.Command("umount", "-R", filepath.Join(dir, "run")).Run()
	})
	if out, err := podman("import", tarball, "localhost/vessel-busybox:test"); err != nil {
		t.Fatalf("podman import: %v\n%s", err, out)
	}
	run := []string{"run", "--rm", "--network", "none", "--cgroup-parent", "/vessel-test/podman", "--hostname", "pod-box", "localhost/vessel-busybox:test"}
	out, err := podman(append(run, "/bin/sh", "-c", "echo hello from $(hostname); cat /proc/1/cmdline | tr '\\0' ' '")...)
	if err != nil || !strings.Contains(out, "hello from pod-box") {
		t.Fatalf("podman run through vessel: %v\n%s", err, out)
	}
	// The exit code of the container comes back through conmon.
	_, err = podman(append(run, "/bin/sh", "-c", "exit 3")...)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("podman run of exit 3: %v", err)
	}
}
