package rootfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"
)

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

// Annotations naming an image inside a layout's index.
var refAnnotations = []string{"org.opencontainers.image.ref.name", "io.containerd.image.name"}

// loadImage opens an OCI image layout directory or a docker-save tarball.
func loadImage(p, ref string) (v1.Image, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		var tag *name.Tag
		if ref != "" {
			t, err := name.NewTag(ref)
			if err != nil {
				return nil, fmt.Errorf("image ref %q: %w", ref, err)
			}
			tag = &t
		}
		img, err := tarball.ImageFromPath(p, tag)
		if err != nil {
			return nil, fmt.Errorf("docker-save tarball %s: %w", p, err)
		}
		return img, nil
	}
	idx, err := layout.ImageIndexFromPath(p)
	if err != nil {
		return nil, fmt.Errorf("OCI image layout %s: %w", p, err)
	}
	return pickImage(idx, ref, p)
}

// pickImage chooses the image named ref (or the only / first one) in an
// index, descending into nested indexes for this machine's platform.
func pickImage(idx v1.ImageIndex, ref, where string) (v1.Image, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var chosen *v1.Descriptor
	for i := range m.Manifests {
		d := &m.Manifests[i]
		if ref != "" {
			for _, a := range refAnnotations {
				if d.Annotations[a] == ref {
					chosen = d
				}
			}
			continue
		}
		if d.Platform != nil && (d.Platform.OS != "linux" || d.Platform.Architecture != runtime.GOARCH) {
			continue
		}
		chosen = d
		break
	}
	if chosen == nil {
		if ref != "" {
			return nil, fmt.Errorf("%s: no image named %q", where, ref)
		}
		return nil, fmt.Errorf("%s: no image for linux/%s", where, runtime.GOARCH)
	}
	if chosen.MediaType.IsIndex() {
		sub, err := idx.ImageIndex(chosen.Digest)
		if err != nil {
			return nil, err
		}
		return pickImage(sub, "", where)
	}
	return idx.Image(chosen.Digest)
}

// unpackImage makes sure every layer of img is in the store and returns
// the layer directories, top-most first, and the image's configuration.
func unpackImage(ctx context.Context, img v1.Image, store string) ([]string, ImageConfig, error) {
	var ic ImageConfig
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, ic, fmt.Errorf("image config: %w", err)
	}
	ic = ImageConfig{Env: cf.Config.Env, Entrypoint: cf.Config.Entrypoint, Cmd: cf.Config.Cmd, WorkingDir: cf.Config.WorkingDir, User: cf.Config.User}
	layers, err := img.Layers()
	if err != nil {
		return nil, ic, fmt.Errorf("image layers: %w", err)
	}
	if len(layers) == 0 {
		return nil, ic, errors.New("image has no layers")
	}
	dirs := make([]string, len(layers))
	for i, l := range layers {
		if err := ctx.Err(); err != nil {
			return nil, ic, err
		}
		diffID, err := l.DiffID()
		if err != nil {
			return nil, ic, fmt.Errorf("layer %d: %w", i, err)
		}
		dir, err := storeLayer(store, diffID.String(), func() (io.ReadCloser, error) { return l.Uncompressed() })
		if err != nil {
			return nil, ic, fmt.Errorf("layer %d (%s): %w", i, diffID, err)
		}
		dirs[len(layers)-1-i] = dir
	}
	return dirs, ic, nil
}

// layerDir is where a layer with the given digest lives in a store.
func layerDir(store, digest string) (string, error) {
	h, err := v1.NewHash(digest)
	if err != nil {
		return "", fmt.Errorf("layer digest %q: %w", digest, err)
	}
	if h.Algorithm != "sha256" {
		return "", fmt.Errorf("layer digest %q: only sha256 is supported", digest)
	}
	return filepath.Join(store, h.Algorithm, h.Hex), nil
}

// storeLayer unpacks the uncompressed tar stream open returns into the
// store under digest, unless it is there already, and checks that the
// stream has that digest. Concurrent unpackers of one layer race to an
// atomic rename; the loser discards its copy.
//
// An empty digest means "whatever the stream's digest is" (snapshots).
func storeLayer(store, digest string, open func() (io.ReadCloser, error)) (string, error) {
	final := ""
	if digest != "" {
		var err error
		if final, err = layerDir(store, digest); err != nil {
			return "", err
		}
		if fi, err := os.Stat(final); err == nil && fi.IsDir() {
			return final, nil
		}
	}
	base := filepath.Join(store, "sha256")
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(base, ".unpack-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	rc, err := open()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := sha256.New()
	if err := unpackLayer(io.TeeReader(rc, h), tmp); err != nil {
		return "", err
	}
	// Drain what the tar reader left (padding), so the digest is the blob's.
	if _, err := io.Copy(h, rc); err != nil {
		return "", err
	}
	got := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if digest == "" {
		final = filepath.Join(base, strings.TrimPrefix(got, "sha256:"))
		if fi, err := os.Stat(final); err == nil && fi.IsDir() {
			return final, nil
		}
	} else if got != digest {
		return "", fmt.Errorf("layer content has digest %s, want %s", got, digest)
	}
	if err := os.Rename(tmp, final); err != nil {
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			return final, nil
		}
		return "", err
	}
	return final, nil
}
