package main

// --user NAME[:GROUP] and the environment docker gives a process (HOME,
// HOSTNAME), read from the container's own /etc/passwd and /etc/group.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/internal/pathrs"
	"github.com/openvessel/vessel/oci"
	"github.com/openvessel/vessel/rootfs"
)

// rootDir is where the container's /etc/passwd and /etc/group are read
// from before it starts: the host's /, --rootfs DIR, or "image:PATH" for
// an --image ("" for other roots: overlays and image files).
func rootDir(cfg *vessel.Config) string {
	switch cfg.Rootfs.Kind {
	case rootfs.KindHost:
		return "/"
	case rootfs.KindDir:
		return cfg.Rootfs.Path
	case rootfs.KindImage:
		return "image:" + cfg.Rootfs.Path
	}
	return ""
}

// openInRoot opens name inside root, every symlink resolved inside it
// (a container's /etc/passwd may be a link to anywhere).
func openInRoot(root, name string, flags int) (*os.File, error) {
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(dir)
	fd, err := pathrs.OpenInRoot(dir, name, uint64(flags), 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: filepath.Join(root, name), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(root, name)), nil
}

// colonFile reads the lines of a passwd or group file as fields. root is
// a directory, or "image:PATH" for the files of an --image.
func colonFile(root, name string) ([][]string, error) {
	var data []byte
	if img, ok := strings.CutPrefix(root, "image:"); ok {
		files, err := imageFiles(img)
		if err != nil {
			return nil, err
		}
		d, ok := files[strings.TrimLeft(name, "/")]
		if !ok {
			return nil, &os.PathError{Op: "open", Path: img + ":" + name, Err: os.ErrNotExist}
		}
		data = d
	} else {
		f, err := openInRoot(root, name, unix.O_RDONLY)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if data, err = io.ReadAll(io.LimitReader(f, 16<<20)); err != nil {
			return nil, err
		}
	}
	var out [][]string
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out, nil
}

// passwdEntry is a user of the container's /etc/passwd.
type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

func lookupPasswd(root, user string) (*passwdEntry, error) {
	lines, err := colonFile(root, "/etc/passwd")
	if err != nil {
		return nil, err
	}
	for _, f := range lines {
		if len(f) < 6 || (f[0] != user && f[2] != user) {
			continue
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return &passwdEntry{name: f[0], uid: uint32(uid), gid: uint32(gid), home: f[5]}, nil
	}
	return nil, os.ErrNotExist
}

// groupsOf returns the gid of group (a name or number) and the groups that
// list user as a member.
func groupsOf(root, group, user string) (gid uint32, found bool, member []uint32, err error) {
	lines, err := colonFile(root, "/etc/group")
	if err != nil {
		return 0, false, nil, err
	}
	for _, f := range lines {
		if len(f) < 4 {
			continue
		}
		n, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		if group != "" && (f[0] == group || f[2] == group) && !found {
			gid, found = uint32(n), true
		}
		if user != "" {
			for _, m := range strings.Split(f[3], ",") {
				if m == user {
					member = append(member, uint32(n))
				}
			}
		}
	}
	return gid, found, member, nil
}

// applyUser resolves --user and sets HOME as docker does: the user's home
// from /etc/passwd, else /.
func (o *runOpts) applyUser(cfg *vessel.Config) error {
	root := rootDir(cfg)
	home := ""
	if o.user != "" {
		us, gs, hasG := strings.Cut(o.user, ":")
		if us == "" || (hasG && gs == "") {
			return usagef("run: --user %q: want NAME|UID[:GROUP|GID]", o.user)
		}
		uidNum, uerr := strconv.ParseUint(us, 10, 32)
		var uid, gid uint32
		var groups []uint32
		var ent *passwdEntry
		if root != "" {
			ent, _ = lookupPasswd(root, us)
		}
		switch {
		case ent != nil:
			uid, gid, home = ent.uid, ent.gid, ent.home
			if root != "" {
				_, _, groups, _ = groupsOf(root, "", ent.name)
			}
		case uerr == nil:
			uid, gid = uint32(uidNum), uint32(uidNum)
		case root == "":
			return usagef("run: --user %q: user names are resolved in --rootfs DIR, an --image or the host's files; give a number with --overlay or an image file", o.user)
		default:
			return usagef("run: --user %q: no such user in %s", us, passwdPath(root, "etc/passwd"))
		}
		if hasG {
			if n, err := strconv.ParseUint(gs, 10, 32); err == nil {
				gid = uint32(n)
			} else if root == "" {
				return usagef("run: --user %q: group names need --rootfs DIR or the host's files", o.user)
			} else if g, ok, _, _ := groupsOf(root, gs, ""); ok {
				gid = g
			} else {
				return usagef("run: --user %q: no such group in %s", gs, passwdPath(root, "etc/group"))
			}
		}
		cfg.WithUser(uid, gid)
		if len(groups) > 0 {
			cfg.WithGroups(groups...)
		}
	} else if root != "" && !strings.HasPrefix(root, "image:") {
		// (An image's /etc/passwd is read only for --user: it costs a
		// read of every layer.)
		if ent, err := lookupPasswd(root, "0"); err == nil {
			home = ent.home
		}
	}
	if home == "" {
		home = "/"
		if o.user == "" {
			home = "/root"
		}
	}
	if !hasEnv(cfg.Process.Env, "HOME") {
		cfg.WithEnv("HOME=" + home)
	}
	return nil
}

// passwdPath names a file of the container's root in a message.
func passwdPath(root, name string) string {
	if img, ok := strings.CutPrefix(root, "image:"); ok {
		return "/" + name + " of the image " + img
	}
	return filepath.Join(root, name)
}

func hasEnv(env []string, key string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, key+"=") {
			return true
		}
	}
	return false
}

// makeWorkdir creates --workdir in a --rootfs directory, as docker does
// (also with --read-only: vessel writes it before the container starts),
// owned by the process's user. Other roots are checked at start.
func makeWorkdir(cfg *vessel.Config) error {
	dir := cfg.Process.Dir
	if dir == "" || cfg.Rootfs.Kind != rootfs.KindDir {
		return nil
	}
	if !filepath.IsAbs(dir) {
		return usagef("run: --workdir %q: must be an absolute path", dir)
	}
	parts := strings.Split(strings.Trim(filepath.Clean(dir), "/"), "/")
	for i := range parts {
		p := "/" + strings.Join(parts[:i+1], "/")
		f, err := openInRoot(cfg.Rootfs.Path, p, unix.O_PATH|unix.O_DIRECTORY)
		if err == nil {
			f.Close()
			continue
		}
		if !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("--workdir %s: %v", dir, err)
		}
		parent, err := openInRoot(cfg.Rootfs.Path, filepath.Dir(p), unix.O_PATH|unix.O_DIRECTORY)
		if err != nil {
			return fmt.Errorf("--workdir %s: %v", dir, err)
		}
		err = unix.Mkdirat(int(parent.Fd()), filepath.Base(p), 0o755)
		if err == nil {
			u := cfg.Process.User
			_ = unix.Fchownat(int(parent.Fd()), filepath.Base(p), int(u.UID), int(u.GID), unix.AT_SYMLINK_NOFOLLOW)
		}
		parent.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("--workdir %s: %v", dir, err)
		}
	}
	return nil
}

// execUser resolves exec's --user NAME|UID[:GROUP|GID]: names in the
// running container's own /etc/passwd and /etc/group, read through its
// main process's root (/proc/PID/root).
func execUser(rec *oci.Record, s string) (uint32, uint32, error) {
	if uid, gid, err := parseUser(s); err == nil || rec.Main.Pid <= 1 || !rec.Main.Alive() {
		return uid, gid, err
	}
	root := fmt.Sprintf("/proc/%d/root", rec.Main.Pid)
	us, gs, hasG := strings.Cut(s, ":")
	var uid, gid uint32
	if n, err := strconv.ParseUint(us, 10, 32); err == nil {
		uid, gid = uint32(n), uint32(n)
	} else {
		ent, err := lookupPasswd(root, us)
		if err != nil {
			return 0, 0, fmt.Errorf("%q: no such user in the container's /etc/passwd", us)
		}
		uid, gid = ent.uid, ent.gid
	}
	if hasG {
		if n, err := strconv.ParseUint(gs, 10, 32); err == nil {
			gid = uint32(n)
		} else if g, ok, _, _ := groupsOf(root, gs, ""); ok {
			gid = g
		} else {
			return 0, 0, fmt.Errorf("%q: no such group in the container's /etc/group", gs)
		}
	}
	return uid, gid, nil
}
