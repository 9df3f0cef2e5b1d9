package storage

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openvessel/vessel/internal/testutil"

	"github.com/openvessel/vessel/rootfs"
)

// testLayers are the layers of testImage as raw tars: a busybox base with
// /data and /opt/dir, and a layer with a whiteout and an opaque dir.
func testLayers(t *testing.T, dir string) (base, top []byte) {
	tree := filepath.Join(dir, "tree")
	busyboxTree(t, tree)
	base = tarDir(t, tree, map[string]string{"opt/": "", "opt/dir/": "", "opt/dir/a": "a\n"})
	top = tarDir(t, "", map[string]string{
		"data/.wh.victim.txt":  "",
		"opt/dir/":             "",
		"opt/dir/.wh..wh..opq": "",
		"opt/dir/b":            "b\n",
		"data/from-layer2.txt": "layer2\n",
	})
	return base, top
}

// TestLayoutNestedIndexAndPlainLayers: vessel's own reader takes a layout
// written by hand per the image-spec: a named index entry pointing at an
// image index with a foreign platform first, one gzip and one plain tar
// layer.
func TestLayoutNestedIndexAndPlainLayers(t *testing.T) {
	dir := testutil.DiskTempDir(t)
	checkClean(t, dir)
	base, top := testLayers(t, dir)
	oci := filepath.Join(dir, "oci")
	cfg := testutil.ImageConfig{Env: []string{"PATH=/bin"}, Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"true"}, WorkingDir: "/data"}
	if err := testutil.WriteOCILayout(oci, []testutil.Layer{testutil.TarLayer(base, true), testutil.TarLayer(top, false)}, cfg, "app:2", true); err != nil {
		t.Fatal(err)
	}
	p := &rootfs.Plan{Root: rootfs.Image(oci).WithStore(filepath.Join(dir, "store"))}
	p.Root.Ref = "app:2"
	pr := prepare(t, p, PrepareOptions{})
	if got := strings.Join(pr.ImageConfig.Args(), " "); got != "/bin/sh -c true" || pr.ImageConfig.WorkingDir != "/data" {
		t.Errorf("image config %+v", pr.ImageConfig)
	}
	if out := mustRun(t, p, imageCheck); out != imageWant {
		t.Errorf("inside the image: %q, want %q", out, imageWant)
	}
}

// TestImageReaderErrors: what the reader refuses, each with a reason that
// names it, and nothing left in the store.
func TestImageReaderErrors(t *testing.T) {
	dir := testutil.DiskTempDir(t)
	checkClean(t, dir)
	base, _ := testLayers(t, dir)
	store := filepath.Join(dir, "store")
	try := func(name string, r rootfs.Root, want string) {
		t.Helper()
		p := &rootfs.Plan{Root: r.WithStore(store)}
		_, err := Prepare(t.Context(), "bad", p, PrepareOptions{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, want)
		}
	}

	zstd := filepath.Join(dir, "zstd")
	if err := testutil.WriteOCILayout(zstd, []testutil.Layer{testutil.TarLayer(base, false)}, testutil.ImageConfig{}, "", false); err != nil {
		t.Fatal(err)
	}
	// Replace the layer blob by one that starts with zstd's magic.
	blobs, _ := filepath.Glob(filepath.Join(zstd, "blobs", "sha256", "*"))
	for _, b := range blobs {
		if data, _ := os.ReadFile(b); len(data) == len(base) {
			os.WriteFile(b, append([]byte{0x28, 0xb5, 0x2f, 0xfd}, data...), 0o644)
		}
	}
	try("zstd layer", rootfs.Image(zstd), "zstd")

	// A layer whose content does not match the config's diff_id.
	tampered := filepath.Join(dir, "tampered")
	if err := testutil.WriteOCILayout(tampered, []testutil.Layer{testutil.TarLayer(base, false)}, testutil.ImageConfig{}, "", false); err != nil {
		t.Fatal(err)
	}
	blobs, _ = filepath.Glob(filepath.Join(tampered, "blobs", "sha256", "*"))
	for _, b := range blobs {
		if data, _ := os.ReadFile(b); len(data) == len(base) {
			// The content of opt/dir/a: the tar stays valid.
			i := bytes.Index(data, []byte("a\n\x00"))
			data[i] = 'z'
			os.WriteFile(b, data, 0o644)
		}
	}
	try("tampered layer", rootfs.Image(tampered), "digest")

	// A docker-save tarball with two images and no name given.
	two := filepath.Join(dir, "two.tar")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	m := []byte(`[{"Config":"a.json","RepoTags":["a:1"],"Layers":[]},{"Config":"b.json","RepoTags":["b:1"],"Layers":[]}]`)
	tw.WriteHeader(&tar.Header{Name: "manifest.json", Mode: 0o644, Size: int64(len(m)), Typeflag: tar.TypeReg})
	tw.Write(m)
	tw.Close()
	os.WriteFile(two, buf.Bytes(), 0o644)
	try("two images", rootfs.Image(two), "holds 2 images")
	named := rootfs.Image(two)
	named.Ref = "c:1"
	try("unknown name", named, `no image named "c:1"`)

	if ents, _ := os.ReadDir(filepath.Join(store, "sha256")); len(ents) != 0 {
		t.Errorf("the store kept %d entries after failures", len(ents))
	}
}
