package testutil

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// RootfsProbePath is where BusyboxRootfs puts the probe inside the rootfs.
const RootfsProbePath = "/bin/probe"

// UserUID and UserGID are the ids of the unprivileged "user" account in the
// busybox rootfs's /etc/passwd and /etc/group.
const (
	UserUID = 1000
	UserGID = 1000
)

var (
	rootfsOnce sync.Once
	rootfsPath string
	rootfsErr  error
)

// BusyboxRootfs returns a small root filesystem directory, built once per
// test binary and shared by its tests, so treat it as read-only (use
// BusyboxRootfsCopy for a private, writable one). It holds:
//
//   - /bin/busybox (a copy of the static busybox, VESSEL_BUSYBOX or
//     /bin/busybox) and a symlink in /bin for each of its applets (sh, ls,
//     cat, echo, sleep, true, false, id, hostname, mount, ps, ...);
//   - /bin/probe (RootfsProbePath), the probe from BuildProbe;
//   - /bin/nop (RootfsNopPath), NopELF, a program that only exits 0;
//   - /etc/passwd and /etc/group with root (0), user (UserUID/UserGID,
//     home /home/user) and nobody (65534);
//   - empty /proc, /dev, /sys, /tmp (1777), /mnt, /run, /root, /var/tmp.
//
// It has no /etc/hostname, /etc/hosts or /etc/resolv.conf: providing those
// is the container runtime's job. Everything is owned by root except
// /home/user, and readable by all, so that it also works as the root of a
// container with a user namespace. A missing busybox fails the test with a
// message saying how to install it.
func BusyboxRootfs(t testing.TB) string {
	t.Helper()
	probe := BuildProbe(t)
	rootfsOnce.Do(func() { rootfsPath, rootfsErr = buildBusyboxRootfs(probe) })
	if rootfsErr != nil {
		t.Fatalf("testutil.BusyboxRootfs: %v", rootfsErr)
	}
	return rootfsPath
}

// BusyboxRootfsCopy returns a private, writable copy of BusyboxRootfs in a
// new 0755 directory that is removed when the test ends. Removal fails the
// test if something is still mounted inside it.
func BusyboxRootfsCopy(t testing.TB) string {
	t.Helper()
	src := BusyboxRootfs(t)
	dir, err := sharedDir()
	if err != nil {
		t.Fatalf("testutil.BusyboxRootfsCopy: %v", err)
	}
	dst, err := os.MkdirTemp(dir, "rootfs-copy-")
	if err != nil {
		t.Fatalf("testutil.BusyboxRootfsCopy: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dst); err != nil {
			t.Errorf("testutil.BusyboxRootfsCopy: removing %s: %v (is something still mounted in it?)", dst, err)
		}
	})
	if err := copyTree(src, dst); err != nil {
		t.Fatalf("testutil.BusyboxRootfsCopy: %v", err)
	}
	return dst
}

func busyboxPath() string {
	if p := os.Getenv("VESSEL_BUSYBOX"); p != "" {
		return p
	}
	return "/bin/busybox"
}

func buildBusyboxRootfs(probe string) (string, error) {
	bb := busyboxPath()
	if _, err := os.Stat(bb); err != nil {
		return "", fmt.Errorf("static busybox not found at %s (%v): install it with `apt-get install -y busybox-static` or set VESSEL_BUSYBOX", bb, err)
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return "", fmt.Errorf("%s --list: %v (is it a busybox binary?)", bb, err)
	}
	applets := strings.Fields(string(out))
	if len(applets) == 0 {
		return "", fmt.Errorf("%s --list printed no applets", bb)
	}
	dir, err := sharedDir()
	if err != nil {
		return "", err
	}
	root := filepath.Join(dir, "rootfs-busybox")
	dirs := []struct {
		path string
		mode uint32 // raw st_mode bits: os.FileMode has no 0o1000 sticky bit
	}{
		{"", 0o755}, {"bin", 0o755}, {"sbin", 0o755}, {"usr", 0o755}, {"usr/bin", 0o755},
		{"usr/sbin", 0o755}, {"etc", 0o755}, {"proc", 0o555}, {"sys", 0o555}, {"dev", 0o755},
		{"tmp", 0o1777}, {"mnt", 0o755}, {"run", 0o755}, {"root", 0o700}, {"home", 0o755},
		{"home/user", 0o755}, {"var", 0o755}, {"var/tmp", 0o1777},
	}
	for _, d := range dirs {
		p := filepath.Join(root, d.path)
		if err := os.Mkdir(p, 0o755); err != nil {
			return "", err
		}
		if err := unix.Chmod(p, d.mode); err != nil { // not subject to umask
			return "", err
		}
	}
	// An ordinary user (a rootless test run) cannot give files away; the
	// rootfs then belongs to that user, which is its container root.
	if err := os.Chown(filepath.Join(root, "home/user"), UserUID, UserGID); err != nil && os.Geteuid() == 0 {
		return "", err
	}
	if err := copyFile(bb, filepath.Join(root, "bin/busybox"), 0o755); err != nil {
		return "", err
	}
	if err := copyFile(probe, filepath.Join(root, RootfsProbePath), 0o755); err != nil {
		return "", err
	}
	nop, err := NopELF()
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(root, RootfsNopPath), nop, 0o755); err != nil {
		return "", err
	}
	for _, a := range applets {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil && !os.IsExist(err) {
			return "", err
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n" +
			fmt.Sprintf("user:x:%d:%d:user:/home/user:/bin/sh\n", UserUID, UserGID) +
			"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group": "root:x:0:\n" +
			fmt.Sprintf("user:x:%d:\n", UserGID) +
			"nogroup:x:65534:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	return root, nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}

// copyTree copies directories, regular files and symlinks from src into the
// existing directory dst, keeping modes and owners.
func copyTree(src, dst string) error {
	return filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		mode := info.Mode()
		switch {
		case mode.IsDir():
			if rel != "." {
				if err := os.Mkdir(target, mode.Perm()); err != nil {
					return err
				}
			}
			if err := os.Chmod(target, mode.Perm()|mode&(os.ModeSticky|os.ModeSetgid|os.ModeSetuid)); err != nil {
				return err
			}
		case mode&os.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		case mode.IsRegular():
			if err := copyFile(p, target, mode.Perm()); err != nil {
				return err
			}
		default:
			return fmt.Errorf("copy %s: unsupported file type %v", p, mode.Type())
		}
		if uid, gid, ok := owner(info); ok && os.Geteuid() == 0 {
			if err := os.Lchown(target, uid, gid); err != nil {
				return err
			}
		}
		return nil
	})
}

// HostMarker creates a file with unique content in /tmp on the host and
// returns its path; it is removed when the test ends. Give it to "probe try
// chroot-escape" (or read it through /proc/N/root): a container must not see
// it.
func HostMarker(t testing.TB) string {
	t.Helper()
	f, err := os.CreateTemp("/tmp", "vessel-host-marker-")
	if err != nil {
		t.Fatalf("testutil.HostMarker: %v", err)
	}
	name := f.Name()
	t.Cleanup(func() { _ = os.Remove(name) })
	var b bytes.Buffer
	fmt.Fprintf(&b, "vessel host marker %s\n", filepath.Base(name))
	_, err = f.Write(b.Bytes())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("testutil.HostMarker: %v", err)
	}
	return name
}
