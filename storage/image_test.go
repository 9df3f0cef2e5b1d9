package storage

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/internal/testutil"

	"github.com/openvessel/vessel/rootfs"
)

// tarDir returns dir as an uncompressed layer tar, plus extra entries.
func tarDir(t testing.TB, dir string, extra map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if dir != "" {
		if err := testutil.AddTree(tw, dir); err != nil {
			t.Fatal(err)
		}
	}
	names := make([]string, 0, len(extra))
	for n := range extra {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if strings.HasSuffix(n, "/") {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: n, Mode: 0o755}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		data := extra[n]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(data))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func layerOf(t testing.TB, data []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// testImage builds a two-layer busybox image whose second layer deletes
// /data/victim.txt (a whiteout) and replaces /opt/dir (an opaque dir).
func testImage(t testing.TB, dir string) v1.Image {
	t.Helper()
	tree := filepath.Join(dir, "tree")
	busyboxTree(t, tree)
	l1 := layerOf(t, tarDir(t, tree, map[string]string{"opt/": "", "opt/dir/": "", "opt/dir/a": "a\n"}))
	l2 := layerOf(t, tarDir(t, "", map[string]string{
		"data/.wh.victim.txt":  "",
		"opt/dir/":             "",
		"opt/dir/.wh..wh..opq": "",
		"opt/dir/b":            "b\n",
		"data/from-layer2.txt": "layer2\n",
	}))
	img, err := mutate.AppendLayers(empty.Image, l1, l2)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, v1.Config{Env: []string{"PATH=/bin", "GREETING=hello"}, Cmd: []string{"/bin/sh"}, WorkingDir: "/data", User: "0:0"})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

const imageCheck = "cat /data/base.txt /data/from-layer2.txt; test -e /data/victim.txt && echo VICTIM; ls /opt/dir; echo w > /data/w && cat /data/w"
const imageWant = "base\nlayer2\nb\nw\n"

func TestOCILayoutImage(t *testing.T) {
	dir := testutil.DiskTempDir(t)
	checkClean(t, dir)
	img := testImage(t, dir)
	lp, err := layout.Write(filepath.Join(dir, "oci"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "test:1"})); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	p := &rootfs.Plan{Root: rootfs.Image(filepath.Join(dir, "oci")).WithStore(store)}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	pr := prepare(t, p, PrepareOptions{})
	if pr.ImageConfig == nil || !slices.Equal(pr.ImageConfig.Env, []string{"PATH=/bin", "GREETING=hello"}) ||
		pr.ImageConfig.WorkingDir != "/data" || !slices.Equal(pr.ImageConfig.Args(), []string{"/bin/sh"}) {
		t.Errorf("image config %+v", pr.ImageConfig)
	}
	if len(p.Root.Storage.Lower) != 2 {
		t.Fatalf("lowers %v, want two layers", p.Root.Storage.Lower)
	}
	if out := mustRun(t, p, imageCheck); out != imageWant {
		t.Errorf("inside the image: %q, want %q", out, imageWant)
	}
	// Layers are unpacked once: a second container reuses them.
	st, err := os.Stat(p.Root.Storage.Lower[0])
	if err != nil {
		t.Fatal(err)
	}
	p2 := &rootfs.Plan{Root: rootfs.Image(filepath.Join(dir, "oci")).WithStore(store)}
	p2.Root.Ref = "test:1"
	prepare(t, p2, PrepareOptions{})
	st2, err := os.Stat(p2.Root.Storage.Lower[0])
	if err != nil || !os.SameFile(st, st2) {
		t.Errorf("second prepare did not reuse the unpacked layer: %v", err)
	}
	if out := mustRun(t, p2, "test -e /data/w && echo LEAK; cat /data/base.txt"); out != "base\n" {
		t.Errorf("second container: %q", out)
	}
	bad := &rootfs.Plan{Root: rootfs.Image(filepath.Join(dir, "oci")).WithStore(store)}
	bad.Root.Ref = "nope"
	if _, err := Prepare(t.Context(), "bad", bad, PrepareOptions{}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown ref: %v", err)
	}
}

func TestDockerSaveTarballImage(t *testing.T) {
	dir := testutil.DiskTempDir(t)
	checkClean(t, dir)
	img := testImage(t, dir)
	tarPath := filepath.Join(dir, "image.tar")
	if err := tarball.WriteToFile(tarPath, name.MustParseReference("vessel/test:1"), img); err != nil {
		t.Fatal(err)
	}
	p := &rootfs.Plan{Root: rootfs.Image(tarPath).WithStore(filepath.Join(dir, "store"))}
	pr := prepare(t, p, PrepareOptions{})
	if pr.ImageConfig == nil || pr.ImageConfig.WorkingDir != "/data" {
		t.Errorf("image config %+v", pr.ImageConfig)
	}
	if out := mustRun(t, p, imageCheck); out != imageWant {
		t.Errorf("inside the image: %q, want %q", out, imageWant)
	}
}

func TestLayerUnpackStaysInside(t *testing.T) {
	dir := testutil.DiskTempDir(t)
	outside := filepath.Join(dir, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "esc", Linkname: outside})
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "esc/pwned", Mode: 0o644, Size: 2})
	tw.Write([]byte("x\n"))
	tw.Close()
	layer := filepath.Join(dir, "layer")
	os.Mkdir(layer, 0o755)
	// The symlink resolves inside the layer, where its target is missing.
	if err := unpackLayer(bytes.NewReader(buf.Bytes()), layer); err == nil {
		t.Error("writing through a symlink to a missing directory succeeded")
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("a layer's symlink made us write outside it: %v", entries)
	}

	buf.Reset()
	tw = tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "../../dotdot", Mode: 0o644})
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "up", Linkname: "../../.."})
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "up/via-link", Mode: 0o644})
	tw.Close()
	layer2 := filepath.Join(dir, "layer2")
	os.Mkdir(layer2, 0o755)
	if err := unpackLayer(bytes.NewReader(buf.Bytes()), layer2); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"dotdot", "via-link"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
			t.Errorf("%s escaped the layer", p)
		}
		// Resolved as if the layer were /.
		if _, err := os.Stat(filepath.Join(layer2, p)); err != nil {
			t.Errorf("%s not inside the layer: %v", p, err)
		}
	}
}

func TestSquashfsAndErofsImages(t *testing.T) {
	need(t, "mksquashfs", "mkfs.erofs")
	dir := testutil.DiskTempDir(t)
	checkClean(t, dir)
	tree := filepath.Join(dir, "tree")
	busyboxTree(t, tree)
	sq, ero := filepath.Join(dir, "root.sqfs"), filepath.Join(dir, "root.erofs")
	if out, err := exec.Command("mksquashfs", tree, sq, "-noappend", "-quiet", "-no-progress").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v %s", err, out)
	}
	if out, err := exec.Command("mkfs.erofs", "--quiet", ero, tree).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.erofs: %v %s", err, out)
	}
	for _, c := range []struct {
		path, fs string
	}{{sq, "squashfs"}, {ero, "erofs"}} {
		t.Run(c.fs, func(t *testing.T) {
			p := &rootfs.Plan{Root: rootfs.ImageFile(c.path)}
			if err := p.Validate(); err != nil {
				t.Fatal(err)
			}
			pr := prepare(t, p, PrepareOptions{})
			if p.Root.Storage.DeviceFS != c.fs || len(pr.Devices) != 1 || pr.Devices[0].Use != "root-image" {
				t.Fatalf("storage %+v devices %+v", p.Root.Storage, pr.Devices)
			}
			out, err := run(t, p, "cat /data/base.txt; grep ' / ' /proc/self/mountinfo; echo x > /data/new")
			if err == nil || !strings.HasPrefix(out, "base\n") || !strings.Contains(out, " "+c.fs+" ") || !strings.Contains(out, "Read-only file system") {
				t.Errorf("read-only %s root: err=%v out=%q", c.fs, err, out)
			}
			// Two containers on one image share one loop device.
			p2 := &rootfs.Plan{Root: rootfs.ImageFile(c.path).WithWritable()}
			pr2 := prepare(t, p2, PrepareOptions{})
			if pr2.Devices[0].Path != pr.Devices[0].Path {
				t.Errorf("second container got %s, first %s", pr2.Devices[0].Path, pr.Devices[0].Path)
			}
			if out := mustRun(t, p2, "echo x > /data/new && cat /data/new /data/base.txt"); out != "x\nbase\n" {
				t.Errorf("writable %s root: %q", c.fs, out)
			}
		})
	}
}

// TestWhiteoutHostileNames unpacks layers whose whiteout entries name no
// file of the layer (".wh." alone, "." or ".." after the prefix, a
// whiteout used as a directory): each is an invalid layer, and neither the
// directory being unpacked nor anything beside or above it loses a file.
func TestWhiteoutHostileNames(t *testing.T) {
	for _, hostile := range []string{".wh.", ".wh..", ".wh...", "sub/.wh..", "sub/.wh...", ".wh.../x", "sub/.wh.x/y"} {
		t.Run(strings.ReplaceAll(hostile, "/", "|"), func(t *testing.T) {
			dir := testutil.DiskTempDir(t)
			// A sibling layer stands for the rest of the store.
			sibling := filepath.Join(dir, "sibling")
			require.NoError(t, os.MkdirAll(filepath.Join(sibling, "keep"), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(sibling, "keep", "f"), []byte("x"), 0o644))
			layer := filepath.Join(dir, "layer")
			require.NoError(t, os.Mkdir(layer, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(layer, "before"), []byte("x"), 0o644))

			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			require.NoError(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "sub/", Mode: 0o755}))
			require.NoError(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "sub/file", Mode: 0o644}))
			require.NoError(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: hostile, Mode: 0o644}))
			require.NoError(t, tw.Close())

			err := unpackLayer(bytes.NewReader(buf.Bytes()), layer)
			require.Error(t, err, "a layer with the entry %q was accepted", hostile)
			assert.Contains(t, err.Error(), "invalid layer")
			for _, p := range []string{filepath.Join(layer, "before"), filepath.Join(layer, "sub", "file"), filepath.Join(sibling, "keep", "f")} {
				_, err := os.Stat(p)
				assert.NoError(t, err, "the entry %q removed %s", hostile, p)
			}
		})
	}
}

// TestWhiteoutRemovesDirectoryInside checks that a whiteout over a
// directory still removes that directory and its contents, and only it.
func TestWhiteoutRemovesDirectoryInside(t *testing.T) {
	dir := testutil.DiskTempDir(t)
	layer := filepath.Join(dir, "layer")
	require.NoError(t, os.MkdirAll(filepath.Join(layer, "a", "victim", "deep"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(layer, "a", "victim", "deep", "f"), []byte("x"), 0o644))
	require.NoError(t, os.Symlink(dir, filepath.Join(layer, "a", "victim", "up")))
	require.NoError(t, os.WriteFile(filepath.Join(layer, "a", "keep"), []byte("x"), 0o644))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	require.NoError(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "a/.wh.victim", Mode: 0o644}))
	require.NoError(t, tw.Close())
	require.NoError(t, unpackLayer(bytes.NewReader(buf.Bytes()), layer))
	var st unix.Stat_t
	require.NoError(t, unix.Lstat(filepath.Join(layer, "a", "victim"), &st))
	assert.Equal(t, uint32(unix.S_IFCHR), st.Mode&unix.S_IFMT, "the whiteout is not an overlay whiteout")
	assert.FileExists(t, filepath.Join(layer, "a", "keep"))
	assert.DirExists(t, layer)
}
