package storage

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/rootfs"
)

// Annotations naming an image inside a layout's index.
var refAnnotations = []string{"org.opencontainers.image.ref.name", "io.containerd.image.name"}

// imageSource is an image found in a layout or a tarball: its
// configuration and a way to open each layer, bottom first.
type imageSource struct {
	config imageConfigFile
	layers []func() (io.ReadCloser, error)
}

// descriptor is an OCI content descriptor (the fields vessel reads).
type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform,omitempty"`
}

// index is an OCI image index or a Docker manifest list; manifest an
// image manifest (OCI or Docker schema 2).
type index struct {
	Manifests []descriptor `json:"manifests"`
}

type manifest struct {
	Config descriptor   `json:"config"`
	Layers []descriptor `json:"layers"`
}

// imageConfigFile is the image configuration blob.
type imageConfigFile struct {
	Config struct {
		Env        []string `json:"Env"`
		Entrypoint []string `json:"Entrypoint"`
		Cmd        []string `json:"Cmd"`
		WorkingDir string   `json:"WorkingDir"`
		User       string   `json:"User"`
	} `json:"config"`
	RootFS struct {
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

func isIndex(mediaType string) bool {
	return mediaType == "application/vnd.oci.image.index.v1+json" ||
		mediaType == "application/vnd.docker.distribution.manifest.list.v2+json"
}

// loadImage opens an OCI image layout directory or a docker-save tarball.
func loadImage(p, ref string) (*imageSource, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		img, err := loadDockerSave(p, ref)
		if err != nil {
			return nil, fmt.Errorf("docker-save tarball %s: %w", p, err)
		}
		return img, nil
	}
	img, err := loadLayout(p, ref)
	if err != nil {
		return nil, fmt.Errorf("OCI image layout %s: %w", p, err)
	}
	return img, nil
}

// sha256Hex returns the hex part of a "sha256:<64 hex digits>" digest.
func sha256Hex(digest string) (string, error) {
	alg, hexpart, ok := strings.Cut(digest, ":")
	if !ok || alg != "sha256" || len(hexpart) != 64 || strings.Trim(hexpart, "0123456789abcdef") != "" {
		return "", fmt.Errorf("digest %q: want sha256:<64 hex digits>", digest)
	}
	return hexpart, nil
}

// blobPath is where a layout keeps the blob of a digest.
func blobPath(layout, digest string) (string, error) {
	h, err := sha256Hex(digest)
	if err != nil {
		return "", err
	}
	return filepath.Join(layout, "blobs", "sha256", h), nil
}

func readJSONBlob(layout, digest string, v any) error {
	p, err := blobPath(layout, digest)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("blob %s: %w", digest, err)
	}
	return nil
}

// loadLayout picks the image named ref (or the first one for this
// machine's platform) in an OCI layout, descending into nested indexes.
func loadLayout(dir, ref string) (*imageSource, error) {
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, err
	}
	var idx index
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	for depth := 0; ; depth++ {
		d, err := pickManifest(idx, ref, dir)
		if err != nil {
			return nil, err
		}
		if !isIndex(d.MediaType) {
			return layoutImage(dir, d)
		}
		if depth == 8 {
			return nil, errors.New("indexes nested too deep")
		}
		idx = index{}
		if err := readJSONBlob(dir, d.Digest, &idx); err != nil {
			return nil, err
		}
		ref = ""
	}
}

func pickManifest(idx index, ref, where string) (descriptor, error) {
	for _, d := range idx.Manifests {
		if ref != "" {
			for _, a := range refAnnotations {
				if d.Annotations[a] == ref {
					return d, nil
				}
			}
			continue
		}
		if d.Platform != nil && (d.Platform.OS != "linux" || d.Platform.Architecture != runtime.GOARCH) {
			continue
		}
		return d, nil
	}
	if ref != "" {
		return descriptor{}, fmt.Errorf("%s: no image named %q", where, ref)
	}
	return descriptor{}, fmt.Errorf("%s: no image for linux/%s", where, runtime.GOARCH)
}

func layoutImage(dir string, d descriptor) (*imageSource, error) {
	var m manifest
	if err := readJSONBlob(dir, d.Digest, &m); err != nil {
		return nil, err
	}
	img := &imageSource{}
	if err := readJSONBlob(dir, m.Config.Digest, &img.config); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	for _, l := range m.Layers {
		p, err := blobPath(dir, l.Digest)
		if err != nil {
			return nil, err
		}
		img.layers = append(img.layers, func() (io.ReadCloser, error) {
			f, err := os.Open(p)
			if err != nil {
				return nil, err
			}
			return uncompressed(f, f)
		})
	}
	return img, nil
}

// dockerSaveEntry is one image of a docker-save manifest.json.
type dockerSaveEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// loadDockerSave reads the image named ref (or the only one) from a
// tarball written by docker save.
func loadDockerSave(p, ref string) (*imageSource, error) {
	data, err := tarMember(p, "manifest.json")
	if err != nil {
		return nil, err
	}
	var entries []dockerSaveEntry
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, fmt.Errorf("manifest.json: %w", err)
	}
	var chosen *dockerSaveEntry
	for i := range entries {
		e := &entries[i]
		if ref == "" {
			if len(entries) != 1 {
				return nil, fmt.Errorf("it holds %d images: name one", len(entries))
			}
			chosen = e
			break
		}
		for _, t := range e.RepoTags {
			if t == ref || t == ref+":latest" || strings.HasSuffix(t, "/"+ref) {
				chosen = e
			}
		}
	}
	if chosen == nil {
		return nil, fmt.Errorf("no image named %q", ref)
	}
	img := &imageSource{}
	cfg, err := tarMember(p, chosen.Config)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(cfg, &img.config); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	for _, l := range chosen.Layers {
		img.layers = append(img.layers, func() (io.ReadCloser, error) {
			f, err := os.Open(p)
			if err != nil {
				return nil, err
			}
			tr := tar.NewReader(f)
			for {
				h, err := tr.Next()
				if err != nil {
					f.Close()
					if err == io.EOF {
						err = fmt.Errorf("no %s in the tarball", l)
					}
					return nil, err
				}
				if path.Clean(h.Name) == path.Clean(l) {
					return uncompressed(tr, f)
				}
			}
		})
	}
	return img, nil
}

// tarMember returns the content of one file of a tarball (at most 64 MiB).
func tarMember(p, name string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("no %s in the tarball", name)
		}
		if err != nil {
			return nil, err
		}
		if path.Clean(h.Name) == path.Clean(name) {
			return io.ReadAll(io.LimitReader(tr, 64<<20))
		}
	}
}

// uncompressed returns r as an uncompressed tar stream: gzip is undone;
// zstd, which Go's standard library cannot read, is refused by name.
func uncompressed(r io.Reader, c io.Closer) (io.ReadCloser, error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(4)
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			c.Close()
			return nil, err
		}
		return readCloser{zr, c}, nil
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		c.Close()
		return nil, errors.New("zstd-compressed layers are not supported (recompress the image with gzip)")
	}
	return readCloser{br, c}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// unpackImage makes sure every layer of img is in the store and returns
// the layer directories, top-most first, and the image's configuration.
func unpackImage(ctx context.Context, img *imageSource, store string) ([]string, rootfs.ImageConfig, error) {
	c := img.config.Config
	ic := rootfs.ImageConfig{Env: c.Env, Entrypoint: c.Entrypoint, Cmd: c.Cmd, WorkingDir: c.WorkingDir, User: c.User}
	if len(img.layers) == 0 {
		return nil, ic, errors.New("image has no layers")
	}
	diffIDs := img.config.RootFS.DiffIDs
	if len(diffIDs) != len(img.layers) {
		return nil, ic, fmt.Errorf("image config lists %d layer digests for %d layers", len(diffIDs), len(img.layers))
	}
	dirs := make([]string, len(img.layers))
	for i, open := range img.layers {
		if err := ctx.Err(); err != nil {
			return nil, ic, err
		}
		dir, err := storeLayer(store, diffIDs[i], open)
		if err != nil {
			return nil, ic, fmt.Errorf("layer %d (%s): %w", i, diffIDs[i], err)
		}
		dirs[len(img.layers)-1-i] = dir
	}
	return dirs, ic, nil
}

// layerDir is where a layer with the given digest lives in a store.
func layerDir(store, digest string) (string, error) {
	h, err := sha256Hex(digest)
	if err != nil {
		return "", fmt.Errorf("layer digest: %w", err)
	}
	return filepath.Join(store, "sha256", h), nil
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
