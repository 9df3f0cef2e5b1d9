package testutil

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
)

// ImageConfig is the process part of an image configuration.
type ImageConfig struct {
	Env        []string `json:"Env,omitempty"`
	Entrypoint []string `json:"Entrypoint,omitempty"`
	Cmd        []string `json:"Cmd,omitempty"`
	WorkingDir string   `json:"WorkingDir,omitempty"`
	User       string   `json:"User,omitempty"`
}

// Layer is one image layer: an uncompressed tar stream (Open) stored
// gzip-compressed or as it is.
type Layer struct {
	Open func() (io.ReadCloser, error)
	Gzip bool
}

// TarLayer is a Layer over bytes.
func TarLayer(data []byte, gz bool) Layer {
	return Layer{Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }, Gzip: gz}
}

// WriteOCILayout writes an OCI image layout at dir holding one image of
// the given layers (bottom first) and config, named ref in index.json
// when ref is not empty. With nested, index.json points at an image
// index that points at the manifest, as multi-platform images do.
// Written by hand, per the image-spec, so tests do not depend on the
// library that reads it.
func WriteOCILayout(dir string, layers []Layer, cfg ImageConfig, ref string, nested bool) error {
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return err
	}
	put := func(data []byte) (string, int64, error) {
		sum := sha256.Sum256(data)
		h := hex.EncodeToString(sum[:])
		return "sha256:" + h, int64(len(data)), os.WriteFile(filepath.Join(blobs, h), data, 0o644)
	}
	type desc struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int64             `json:"size"`
		Annotations map[string]string `json:"annotations,omitempty"`
		Platform    map[string]string `json:"platform,omitempty"`
	}
	var diffIDs []string
	var layerDescs []desc
	for _, l := range layers {
		rc, err := l.Open()
		if err != nil {
			return err
		}
		raw, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		sum := sha256.Sum256(raw)
		diffIDs = append(diffIDs, "sha256:"+hex.EncodeToString(sum[:]))
		blob, mt := raw, "application/vnd.oci.image.layer.v1.tar"
		if l.Gzip {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			zw.Write(raw)
			zw.Close()
			blob, mt = b.Bytes(), "application/vnd.oci.image.layer.v1.tar+gzip"
		}
		d, n, err := put(blob)
		if err != nil {
			return err
		}
		layerDescs = append(layerDescs, desc{MediaType: mt, Digest: d, Size: n})
	}
	cfgJSON, _ := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH, "os": "linux", "config": cfg,
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	cd, cn, err := put(cfgJSON)
	if err != nil {
		return err
	}
	man, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": desc{MediaType: "application/vnd.oci.image.config.v1+json", Digest: cd, Size: cn},
		"layers": layerDescs,
	})
	md, mn, err := put(man)
	if err != nil {
		return err
	}
	top := desc{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: md, Size: mn}
	if nested {
		other := desc{MediaType: top.MediaType, Digest: top.Digest, Size: top.Size, Platform: map[string]string{"os": "linux", "architecture": "no-such-arch"}}
		mine := top
		mine.Platform = map[string]string{"os": "linux", "architecture": runtime.GOARCH}
		idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []desc{other, mine}})
		id, in, err := put(idx)
		if err != nil {
			return err
		}
		top = desc{MediaType: "application/vnd.oci.image.index.v1+json", Digest: id, Size: in}
	}
	if ref != "" {
		top.Annotations = map[string]string{"org.opencontainers.image.ref.name": ref}
	}
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []desc{top}})
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "index.json"), index, 0o644)
}
