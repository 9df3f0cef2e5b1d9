package storage

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/internal/pathrs"
)

// OCI whiteout names inside a layer tarball.
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// Overlay's opaque-directory marker, set under both namespaces so a layer
// works in overlays mounted in the initial user namespace (trusted.) and
// in a user namespace with userxattr (user.).
var opaqueXattrs = []string{"trusted.overlay.opaque", "user.overlay.opaque"}

// unpacker writes one layer's tar stream into a directory as an overlay
// layer: OCI whiteouts become overlay whiteouts (a 0:0 character device,
// or the opaque xattr on a directory). Every path is resolved inside the
// layer directory (openat2 RESOLVE_IN_ROOT), so a hostile layer whose
// symlinks point out of it cannot make us write anywhere else.
type unpacker struct {
	root int
	dirs []dirTime
}

type dirTime struct {
	rel   string
	mtime time.Time
}

// unpackLayer extracts the tar stream r into the existing directory dir.
func unpackLayer(r io.Reader, dir string) error {
	root, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(root)
	u := &unpacker{root: root}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read layer: %w", err)
		}
		if err := u.entry(hdr, tr); err != nil {
			return fmt.Errorf("layer entry %s: %w", hdr.Name, err)
		}
	}
	// Directory times last: creating entries inside changed them.
	for i := len(u.dirs) - 1; i >= 0; i-- {
		d := u.dirs[i]
		ts := []unix.Timespec{unix.NsecToTimespec(d.mtime.UnixNano()), unix.NsecToTimespec(d.mtime.UnixNano())}
		rel := d.rel
		if rel == "" {
			rel = "."
		}
		_ = unix.UtimesNanoAt(root, rel, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	return nil
}

// openDir opens the directory rel inside the layer, creating missing
// components when create is set.
func (u *unpacker) openDir(rel string, create bool) (int, error) {
	if create {
		return pathrs.MkdirAllInRoot(u.root, rel, 0o755, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	}
	return pathrs.OpenInRoot(u.root, rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
}

// remove deletes name in dir, whatever it is. name must be one plain
// component: every step, the recursive one included, works on file
// descriptors below dir, so nothing above dir can be reached.
func remove(dir int, name string) error {
	if !plainName(name) {
		return fmt.Errorf("remove %q: not a plain file name", name)
	}
	err := unix.Unlinkat(dir, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return err
	}
	sub, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(sub), name)
	names, err := f.Readdirnames(-1)
	if err == nil {
		for _, n := range names {
			if err = remove(sub, n); err != nil {
				break
			}
		}
	}
	f.Close()
	if err != nil {
		return err
	}
	return unix.Unlinkat(dir, name, unix.AT_REMOVEDIR)
}

// plainName reports whether name is a single path component that names
// an entry of a directory: not empty, not . or .., no slash, no NUL.
func plainName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	rel := strings.TrimLeft(path.Clean("/"+hdr.Name), "/")
	if rel == "" {
		return nil // the layer's root: its metadata is not ours to take
	}
	dirRel, base := path.Split(rel)
	for _, c := range strings.Split(strings.TrimSuffix(dirRel, "/"), "/") {
		if strings.HasPrefix(c, whiteoutPrefix+whiteoutPrefix) {
			return nil // inside a .wh..wh. meta directory (aufs's): no file of the image
		}
		if strings.HasPrefix(c, whiteoutPrefix) {
			return fmt.Errorf("invalid layer: whiteout %q used as a directory", c)
		}
	}
	create := hdr.Typeflag != tar.TypeLink
	d, err := u.openDir(dirRel, create)
	if err != nil {
		return err
	}
	defer unix.Close(d)
	if base == whiteoutOpaque {
		for _, x := range opaqueXattrs {
			if err := unix.Fsetxattr(d, x, []byte("y"), 0); err != nil {
				return fmt.Errorf("set %s: %w", x, err)
			}
		}
		return nil
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		name := strings.TrimPrefix(base, whiteoutPrefix)
		if strings.HasPrefix(name, whiteoutPrefix) && plainName(name) {
			return nil // other .wh..wh. meta entries (aufs's) carry no file
		}
		if !plainName(name) {
			return fmt.Errorf("invalid layer: whiteout %q names no file (want %s<name>, name not empty, . or .., without a slash)", base, whiteoutPrefix)
		}
		if err := remove(d, name); err != nil {
			return err
		}
		return unix.Mknodat(d, name, unix.S_IFCHR, 0)
	}
	// A later entry replaces an earlier one, except a directory over a
	// directory, which keeps its contents.
	var st unix.Stat_t
	if unix.Fstatat(d, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
		if !(hdr.Typeflag == tar.TypeDir && st.Mode&unix.S_IFMT == unix.S_IFDIR) {
			if err := remove(d, base); err != nil {
				return err
			}
		}
	}
	mode := uint32(hdr.Mode) & 0o7777
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(d, base, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
		u.dirs = append(u.dirs, dirTime{rel: rel, mtime: hdr.ModTime})
	case tar.TypeReg: // tar.Reader turns the legacy TypeRegA into TypeReg or TypeDir
		f, err := unix.Openat(d, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		file := os.NewFile(uintptr(f), base)
		_, err = io.Copy(file, r)
		if cerr := file.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, d, base); err != nil {
			return err
		}
	case tar.TypeLink:
		target := strings.TrimLeft(path.Clean("/"+hdr.Linkname), "/")
		td, err := u.openDir(path.Dir(target), false)
		if err != nil {
			return fmt.Errorf("hard link target %s: %w", hdr.Linkname, err)
		}
		err = unix.Linkat(td, path.Base(target), d, base, 0)
		unix.Close(td)
		return err // a link shares its target's metadata
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		kind := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		if err := unix.Mknodat(d, base, kind|0o600, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))); err != nil {
			return err
		}
	default:
		return nil // pax headers and the like carry no file
	}
	if err := unix.Fchownat(d, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			p := fmt.Sprintf("/proc/self/fd/%d/%s", d, base)
			if err := unix.Lsetxattr(p, name, []byte(v), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
				return fmt.Errorf("set xattr %s: %w", name, err)
			}
		}
	}
	if hdr.Typeflag != tar.TypeSymlink {
		// After chown, which clears set-id bits.
		if err := unix.Fchmodat(d, base, mode, 0); err != nil {
			return err
		}
	}
	if hdr.Typeflag != tar.TypeDir {
		ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
		_ = unix.UtimesNanoAt(d, base, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	return nil
}
