package storage

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/internal/fsmount"
	"github.com/openvessel/vessel/rootfs"
)

// Snapshot freezes the writable layer in layerDir (the directory given to
// Overlay or WithLayer; stop the container first) into a new read-only
// layer in store (DefaultLayerStore when empty). It returns the layer's
// digest, which is the sha256 of its OCI tar form, and its directory,
// which later containers can use as a lower: Overlay(newLayer, dir, base...).
// Overlay whiteouts and opaque directories carry over.
func Snapshot(layerDir, store string) (digest, dir string, err error) {
	if store == "" {
		store = rootfs.DefaultLayerStore
	}
	if !filepath.IsAbs(layerDir) {
		return "", "", fmt.Errorf("layer: %q is not absolute", layerDir)
	}
	err = withLayer(layerDir, func(diff string) error {
		pr, pw := io.Pipe()
		type result struct {
			dir string
			err error
		}
		res := make(chan result, 1)
		go func() {
			d, err := storeLayer(store, "", func() (io.ReadCloser, error) { return pr, nil })
			pr.CloseWithError(err)
			res <- result{d, err}
		}()
		// The walk runs on this goroutine: it may be the one locked into a
		// private mount namespace where the layer's image is mounted.
		werr := writeLayerTar(diff, pw)
		pw.CloseWithError(werr)
		r := <-res
		if werr != nil {
			return werr
		}
		if r.err != nil {
			return r.err
		}
		dir = r.dir
		return nil
	})
	if err != nil {
		return "", "", fmt.Errorf("snapshot %s: %w", layerDir, err)
	}
	return "sha256:" + filepath.Base(dir), dir, nil
}

// withLayer calls fn with the diff directory of a layer. A layer kept in an
// ext4 image is mounted read-only for the call in a private mount
// namespace of a thread that dies afterwards, so the host never sees it.
func withLayer(layerDir string, fn func(diff string) error) error {
	img := filepath.Join(layerDir, "layer.ext4")
	if _, err := os.Stat(img); err != nil {
		diff := filepath.Join(layerDir, "diff")
		if fi, err := os.Stat(diff); err != nil || !fi.IsDir() {
			return fmt.Errorf("%s holds no writable layer (no diff/ or layer.ext4)", layerDir)
		}
		return fn(diff)
	}
	// fsmount gives a detached mount: reachable through its descriptor
	// only, attached nowhere, gone when the descriptor is closed. No
	// namespace is needed (and changing one from a Go thread could leave
	// the program's main thread behind in it).
	l, err := attachLoop(img, false)
	if err != nil {
		return err
	}
	defer l.close()
	fd, err := fsmount.New("ext4", l.path, nil, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return fmt.Errorf("mount %s: %w", img, err)
	}
	defer unix.Close(fd)
	return fn(fmt.Sprintf("/proc/self/fd/%d/diff", fd))
}

// writeLayerTar writes the overlay layer in dir as an OCI layer tar:
// overlay whiteouts become .wh. entries, opaque directories get a
// .wh..wh..opq entry, hard links are kept, and overlay's private xattrs
// are dropped. The order is sorted, so equal trees give equal digests.
func writeLayerTar(dir string, w io.Writer) error {
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			parent, base := filepath.Split(name)
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: parent + whiteoutPrefix + base, ModTime: time.Unix(0, 0), Mode: 0o600})
		}
		hdr := &tar.Header{
			Name:    name,
			Mode:    int64(st.Mode & 0o7777),
			Uid:     int(st.Uid),
			Gid:     int(st.Gid),
			ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
			Format:  tar.FormatPAX,
		}
		xattrs, opaque, err := fileXattrs(p)
		if err != nil {
			return err
		}
		for k, v := range xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
		case unix.S_IFREG:
			key := [2]uint64{st.Dev, st.Ino}
			if first, ok := links[key]; ok && st.Nlink > 1 {
				hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
				return tw.WriteHeader(hdr)
			}
			links[key] = name
			hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
			hdr.Typeflag = map[uint32]byte{unix.S_IFCHR: tar.TypeChar, unix.S_IFBLK: tar.TypeBlock, unix.S_IFIFO: tar.TypeFifo}[st.Mode&unix.S_IFMT]
			hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		default:
			return nil // sockets do not belong in a layer
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return err
			}
		}
		if opaque {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name + "/" + whiteoutOpaque, ModTime: time.Unix(0, 0), Mode: 0o600})
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// fileXattrs returns p's extended attributes except overlay's own, and
// whether p is an opaque directory.
func fileXattrs(p string) (map[string]string, bool, error) {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if errors.Is(err, unix.ERANGE) {
		if n, err = unix.Llistxattr(p, nil); err == nil {
			buf = make([]byte, n)
			n, err = unix.Llistxattr(p, buf)
		}
	}
	if errors.Is(err, unix.ENOTSUP) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("list xattrs of %s: %w", p, err)
	}
	var names []string
	for _, k := range strings.Split(string(buf[:n]), "\x00") {
		if k != "" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	out := map[string]string{}
	opaque := false
	for _, k := range names {
		v := make([]byte, 65536)
		m, err := unix.Lgetxattr(p, k, v)
		if err != nil {
			return nil, false, fmt.Errorf("read xattr %s of %s: %w", k, p, err)
		}
		if strings.HasPrefix(k, "trusted.overlay.") || strings.HasPrefix(k, "user.overlay.") {
			if strings.HasSuffix(k, ".opaque") && string(v[:m]) == "y" {
				opaque = true
			}
			continue
		}
		out[k] = string(v[:m])
	}
	return out, opaque, nil
}
