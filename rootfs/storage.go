package rootfs

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/openvessel/vessel/fielderr"
)

// Default host locations of vessel's storage.
const (
	// DefaultLayerStore holds unpacked image layers and snapshots, one
	// directory per layer named by its digest.
	DefaultLayerStore = "/var/lib/vessel/layers"
	// DefaultVolumeDir holds named volumes.
	DefaultVolumeDir = "/var/lib/vessel/volumes"
	// DefaultStateDir holds per-container storage state (ephemeral disk
	// images, owner records) while a container exists.
	DefaultStateDir = "/run/vessel/storage"
)

// TypeVolume is a named volume: Source is the volume's name.
// storage.Prepare turns it into a bind mount of the volume's directory or a
// mount of its size-limited filesystem.
const TypeVolume = "volume"

// Quota methods, as reported by storage.Prepared.QuotaMethod.
const (
	QuotaXFSProject  = "xfs-project"
	QuotaExt4Project = "ext4-project"
	QuotaTmpfs       = "tmpfs"
	QuotaLoopExt4    = "loop-ext4"
)

// Storage is what storage.Prepare resolved on the host, for Setup in the child.
// Paths are host paths; the child opens them before it covers anything.
type Storage struct {
	// Lower are read-only directories, top-most first.
	Lower []string `json:"lower,omitempty"`
	// Device is a loop device holding a read-only image (the bottom-most
	// lower, or the whole root when there is no writable layer).
	Device string `json:"device,omitempty"`
	// DeviceFS is the filesystem on Device: squashfs or erofs.
	DeviceFS string `json:"deviceFS,omitempty"`
	// UpperDir and WorkDir are a persistent writable layer on the host.
	UpperDir string `json:"upperDir,omitempty"`
	WorkDir  string `json:"workDir,omitempty"`
	// UpperDevice is a loop device holding an ext4 filesystem whose
	// diff/ and work/ directories are the writable layer.
	UpperDevice string `json:"upperDevice,omitempty"`
	// UpperTmpfs puts the writable layer on a tmpfs of UpperSize bytes
	// (0: the kernel default) in the container's mount namespace.
	UpperTmpfs bool  `json:"upperTmpfs,omitempty"`
	UpperSize  int64 `json:"upperSize,omitempty"`
	// UpperInodes is the tmpfs layer's nr_inodes (0: the default).
	UpperInodes int64 `json:"upperInodes,omitempty"`
}

// readOnly reports whether the root has no writable layer.
func (s *Storage) readOnly() bool {
	return s.UpperDir == "" && s.UpperDevice == "" && !s.UpperTmpfs
}

// Overlay returns a root made of read-only lower directories (top-most
// first) under a writable layer kept in the directory layer, which vessel
// owns: the container's changes are in layer/diff (layer/work is the
// overlay's scratch). Many containers can share the same lowers; nothing
// is copied, so start time does not depend on their size. An empty layer
// means an ephemeral layer, as EphemeralOverlay.
func Overlay(layer string, lower ...string) Root {
	return Root{Kind: KindOverlay, Layer: layer, Lower: lower}
}

// EphemeralOverlay returns read-only lower directories (top-most first)
// under a writable layer on a tmpfs of the container's own, gone with the
// container. WithQuota limits its size.
func EphemeralOverlay(lower ...string) Root {
	return Root{Kind: KindOverlay, Lower: lower}
}

// Image returns an image as the root filesystem: an OCI image layout
// directory or a `docker save` tarball. storage.Prepare unpacks its layers once
// into the layer store and overlays them under an ephemeral writable layer
// (WithLayer for a persistent one).
func Image(path string) Root { return Root{Kind: KindImage, Path: path} }

// ImageFile returns a single-file squashfs or erofs image (found by its
// magic number), mounted read-only through a loop device. Writable or
// WithLayer put a writable overlay on top.
func ImageFile(path string) Root { return Root{Kind: KindImageFile, Path: path} }

// Squashfs is ImageFile for a squashfs image.
func Squashfs(path string) Root { return ImageFile(path) }

// Erofs is ImageFile for an erofs image.
func Erofs(path string) Root { return ImageFile(path) }

// WithQuota limits what the container can write to its root, in bytes.
func (r Root) WithQuota(bytes int64) Root { r.Quota = bytes; return r }

// WithInodeQuota limits how many files the container can create in its
// root (with WithQuota; see Root.QuotaInodes).
func (r Root) WithInodeQuota(inodes int64) Root { r.QuotaInodes = inodes; return r }

// WithLayer keeps the writable layer in the directory layer, across
// containers (see Overlay).
func (r Root) WithLayer(layer string) Root { r.Layer = layer; return r }

// WithStore sets the layer store of an image root.
func (r Root) WithStore(dir string) Root { r.Store = dir; return r }

// WithWritable puts an ephemeral writable layer over an image file.
func (r Root) WithWritable() Root { r.Writable = true; return r }

// NamedVolume returns a mount of the named volume at dst. The volume is
// created on first use under the volume directory and outlives the
// container.
func NamedVolume(name, dst string) Mount {
	return Mount{Type: TypeVolume, Source: name, Destination: dst}
}

// NamedVolumeLimited is NamedVolume with a size limit in bytes, enforced by
// a project quota or, where the host has none, an ext4 image of that size.
func NamedVolumeLimited(name, dst string, size int64) Mount {
	return Mount{Type: TypeVolume, Source: name, Destination: dst, Size: size}
}

// NeedsPrepare reports whether storage.Prepare must run on the host before the
// container starts: for overlay, image and image-file roots, and for named
// volumes.
func (p *Plan) NeedsPrepare() bool {
	if p.Root.NeedsPrepare() {
		return true
	}
	for _, m := range p.Mounts {
		if m.Type == TypeVolume {
			return true
		}
	}
	return false
}

// NeedsPrepare reports whether the root is an overlay, image or image-file
// root that storage.Prepare has not resolved yet (Storage is nil).
func (r *Root) NeedsPrepare() bool {
	switch r.Kind {
	case KindOverlay, KindImage, KindImageFile:
		return r.Storage == nil
	}
	return false
}

// ValidateStorage checks what storage.Prepare works from: the fields of an
// overlay, image or image-file root that still needs preparing, and every
// named volume mount. Validate checks the same, among the rest of the plan.
func (p *Plan) ValidateStorage() error {
	if p.Root.NeedsPrepare() {
		if err := p.Root.validateStorage(); err != nil {
			return err
		}
	}
	for i := range p.Mounts {
		if m := &p.Mounts[i]; m.Type == TypeVolume {
			if err := validateVolume(fmt.Sprintf("mounts[%d]", i), m); err != nil {
				return err
			}
		}
	}
	return nil
}

// validateStorage checks the fields of overlay, image and image-file roots.
func (r *Root) validateStorage() error {
	if r.Quota < 0 {
		return fielderr.New("rootfs.quota", "negative (%d)", r.Quota)
	}
	if r.Quota > 0 && r.Quota < 1<<20 {
		return fielderr.New("rootfs.quota", "%d bytes is below the minimum of 1 MiB", r.Quota)
	}
	if r.QuotaInodes < 0 {
		return fmt.Errorf("rootfs.quotaInodes: negative (%d)", r.QuotaInodes)
	}
	if r.QuotaInodes > 0 && r.Quota == 0 {
		return fmt.Errorf("rootfs.quotaInodes: needs a disk quota (rootfs.quota) to be enforced")
	}
	if r.Layer != "" && !filepath.IsAbs(r.Layer) {
		return fielderr.New("rootfs.layer", "%q is not absolute", r.Layer)
	}
	if r.Layer != "" {
		// Only the layer directory itself is created, never its parents.
		if fi, err := os.Stat(filepath.Dir(filepath.Clean(r.Layer))); err != nil || !fi.IsDir() {
			return fmt.Errorf("rootfs.layer: the parent of %q must be an existing directory", r.Layer)
		}
	}
	if r.Store != "" && !filepath.IsAbs(r.Store) {
		return fielderr.New("rootfs.store", "%q is not absolute", r.Store)
	}
	switch r.Kind {
	case KindOverlay:
		if r.Path != "" {
			return fielderr.New("rootfs.path", "an overlay root takes lower directories, not a path (got %q)", r.Path)
		}
		if len(r.Lower) == 0 {
			return fielderr.New("rootfs.lower", "an overlay root needs at least one lower directory")
		}
		for i, l := range r.Lower {
			if err := isDir(l); err != nil {
				return fielderr.Wrap(fmt.Sprintf("rootfs.lower[%d]", i), err)
			}
		}
	case KindImage:
		if r.Path == "" || !filepath.IsAbs(r.Path) {
			return fielderr.New("rootfs.path", "image path %q must be absolute", r.Path)
		}
		if _, err := os.Stat(r.Path); err != nil {
			return fielderr.Wrap("rootfs.path", err)
		}
	case KindImageFile:
		if r.Path == "" || !filepath.IsAbs(r.Path) {
			return fielderr.New("rootfs.path", "image file %q must be absolute", r.Path)
		}
		if _, err := ImageFileFS(r.Path); err != nil {
			return fielderr.Wrap("rootfs.path", err)
		}
		if r.Quota > 0 && !r.Writable && r.Layer == "" {
			return fielderr.New("rootfs.quota", "a read-only image file takes no quota (add WithWritable or WithLayer)")
		}
	}
	if r.Kind != KindImageFile && r.Writable {
		return fielderr.New("rootfs.writable", "only image-file roots take it (overlay and image roots are always writable)")
	}
	return nil
}

func isDir(p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("%q is not absolute", p)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%q is not a directory", p)
	}
	return nil
}

// validateVolume checks a named volume mount.
func validateVolume(field string, m *Mount) error {
	if !ValidName(m.Source) {
		return fielderr.New(field+".source", "volume name %q must be 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit", m.Source)
	}
	if m.Size < 0 {
		return fielderr.New(field+".size", "negative")
	}
	if m.Size > 0 && m.Size < 1<<20 {
		return fielderr.New(field+".size", "%d bytes is below the minimum of 1 MiB", m.Size)
	}
	return nil
}

// validateKindFields rejects storage fields on roots that do not take them.
func (r *Root) validateKindFields() error {
	switch r.Kind {
	case KindOverlay, KindImage, KindImageFile:
		return nil
	}
	switch {
	case r.Quota != 0:
		return fielderr.New("rootfs.quota", "a %s root takes no quota (use an overlay, image or image-file root)", r.Kind)
	case len(r.Lower) != 0:
		return fielderr.New("rootfs.lower", "a %s root takes no lower directories", r.Kind)
	case r.Layer != "":
		return fielderr.New("rootfs.layer", "a %s root takes no writable layer", r.Kind)
	case r.Storage != nil:
		return fielderr.New("rootfs.storage", "a %s root needs no preparation", r.Kind)
	}
	return nil
}

// ImageConfig is the part of an image's configuration that sets the
// defaults of the container's process.
type ImageConfig struct {
	Env        []string `json:"env,omitempty"`
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	User       string   `json:"user,omitempty"`
}

// Args is the command line the image runs by default: Entrypoint then Cmd.
func (c *ImageConfig) Args() []string {
	return append(append([]string(nil), c.Entrypoint...), c.Cmd...)
}
