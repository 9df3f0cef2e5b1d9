package main

// vessel image: the layer store that --image fills. An image given to
// --image (an OCI layout or a docker-save tarball) is unpacked there once,
// one directory per layer named by its digest, and shared by every
// container of that image; these verbs list and remove those layers.

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/spf13/cobra"

	"github.com/openvessel/vessel/rootfs"
)

// layerStore is where --image unpacks layers.
var layerStore = rootfs.DefaultLayerStore

// layerInfo is one unpacked layer.
type layerInfo struct {
	Digest   string    `json:"digest"`
	Path     string    `json:"path"`
	Size     int64     `json:"size"`
	Unpacked time.Time `json:"unpacked"`
	UsedBy   []string  `json:"usedBy"`
}

func listLayers() ([]*layerInfo, error) {
	dir := filepath.Join(layerStore, "sha256")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*layerInfo
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue // an unpack in progress
		}
		l := &layerInfo{Digest: "sha256:" + e.Name(), Path: filepath.Join(dir, e.Name()), UsedBy: []string{}}
		if fi, err := e.Info(); err == nil {
			l.Unpacked = fi.ModTime()
		}
		_ = filepath.WalkDir(l.Path, func(_ string, de fs.DirEntry, err error) error {
			if err == nil && de.Type().IsRegular() {
				if fi, err := de.Info(); err == nil {
					l.Size += fi.Size()
				}
			}
			return nil
		})
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Unpacked.After(out[j].Unpacked) })
	return out, nil
}

// imageLayers returns the layer digests (diff ids) of every image in an
// OCI layout or docker-save tarball.
func imageLayers(p string) ([]string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	var images []v1.Image
	if fi.IsDir() {
		idx, err := layout.ImageIndexFromPath(p)
		if err != nil {
			return nil, err
		}
		if images, err = indexImages(idx); err != nil {
			return nil, err
		}
	} else {
		m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(p) })
		if err != nil {
			return nil, err
		}
		for _, d := range m {
			var tag *name.Tag
			if len(d.RepoTags) > 0 {
				if t, err := name.NewTag(d.RepoTags[0]); err == nil {
					tag = &t
				}
			}
			img, err := tarball.ImageFromPath(p, tag)
			if err != nil {
				return nil, err
			}
			images = append(images, img)
		}
	}
	var out []string
	for _, img := range images {
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		for _, d := range cf.RootFS.DiffIDs {
			out = append(out, d.String())
		}
	}
	return out, nil
}

func indexImages(idx v1.ImageIndex) ([]v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []v1.Image
	for _, d := range im.Manifests {
		if d.MediaType.IsIndex() {
			sub, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			imgs, err := indexImages(sub)
			if err != nil {
				return nil, err
			}
			out = append(out, imgs...)
			continue
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

// markUsers fills UsedBy with the live containers of the store whose
// --image has the layer.
func markUsers(layers []*layerInfo) error {
	st, err := openStore()
	if err != nil {
		return err
	}
	entries, err := listEntries(st)
	if err != nil {
		return err
	}
	byDigest := map[string]*layerInfo{}
	for _, l := range layers {
		byDigest[l.Digest] = l
	}
	for _, e := range entries {
		cfg := e.rec.Config
		if cfg == nil || cfg.Rootfs.Kind != rootfs.KindImage || !e.live() {
			continue
		}
		digests, err := imageLayers(cfg.Rootfs.Path)
		if err != nil {
			return fmt.Errorf("container %s: image %s: %v (its layers count as in use)", e.rec.ID, cfg.Rootfs.Path, err)
		}
		for _, d := range digests {
			if l, ok := byDigest[d]; ok {
				l.UsedBy = append(l.UsedBy, e.rec.ID)
			}
		}
	}
	return nil
}

func imageCommand() *cobra.Command {
	img := &cobra.Command{
		Use:   "image",
		Short: "Manage the layers --image unpacks (" + rootfs.DefaultLayerStore + ")",
	}
	var quiet bool
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List unpacked image layers and the running containers using them",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			layers, err := listLayers()
			if err != nil {
				return codeErr(reportErr(err))
			}
			if err := markUsers(layers); err != nil {
				stderrf("vessel: warning: %v", err)
			}
			if quiet {
				for _, l := range layers {
					fmt.Println(l.Digest)
				}
				return nil
			}
			w := tabwriter.NewWriter(os.Stdout, 8, 1, 3, ' ', 0)
			fmt.Fprint(w, "LAYER\tSIZE\tUNPACKED\tUSED BY\n")
			for _, l := range layers {
				fmt.Fprintf(w, "%s\t%s\t%s ago\t%s\n", l.Digest[:19], humanBytes(uint64(l.Size)), since(l.Unpacked), strings.Join(l.UsedBy, ","))
			}
			w.Flush()
			return nil
		},
	}
	ls.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the digests")
	rm := &cobra.Command{
		Use:   "rm LAYER...",
		Short: "Remove unpacked layers (a digest or a unique prefix of one) no running container uses",
		Args:  minArgs(1, "want at least one layer digest"),
		RunE: func(_ *cobra.Command, args []string) error {
			layers, err := listLayers()
			if err != nil {
				return codeErr(reportErr(err))
			}
			if err := markUsers(layers); err != nil {
				return codeErr(reportErr(err))
			}
			code := 0
			for _, a := range args {
				l, err := findLayer(layers, a)
				if err == nil && len(l.UsedBy) > 0 {
					err = fmt.Errorf("layer %s is in use by %s", l.Digest, strings.Join(l.UsedBy, ", "))
				}
				if err == nil {
					err = os.RemoveAll(l.Path)
				}
				if err != nil {
					stderrf("vessel: %v", err)
					code = 1
					continue
				}
				fmt.Println(l.Digest)
			}
			return codeErr(code)
		},
	}
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Remove every unpacked layer no running container uses",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			layers, err := listLayers()
			if err != nil {
				return codeErr(reportErr(err))
			}
			if err := markUsers(layers); err != nil {
				return codeErr(reportErr(err))
			}
			code := 0
			for _, l := range layers {
				if len(l.UsedBy) > 0 {
					continue
				}
				if err := os.RemoveAll(l.Path); err != nil {
					stderrf("vessel: %v", err)
					code = 1
					continue
				}
				fmt.Println(l.Digest)
			}
			return codeErr(code)
		},
	}
	prune.Flags().BoolP("force", "f", false, "do not ask (vessel never asks)")
	img.AddCommand(ls, rm, prune)
	return img
}

func findLayer(layers []*layerInfo, s string) (*layerInfo, error) {
	want := strings.TrimPrefix(s, "sha256:")
	if want == "" || strings.Trim(want, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("%q is not a layer digest", s)
	}
	var found *layerInfo
	for _, l := range layers {
		if strings.HasPrefix(strings.TrimPrefix(l.Digest, "sha256:"), want) {
			if found != nil {
				return nil, fmt.Errorf("%q names more than one layer", s)
			}
			found = l
		}
	}
	if found == nil {
		return nil, fmt.Errorf("no such layer: %s", s)
	}
	return found, nil
}

// imageFiles reads /etc/passwd and /etc/group from the (first) image of
// an OCI layout or docker-save tarball, through its layers and whiteouts,
// without unpacking it (for --user NAME).
func imageFiles(p string) (map[string][]byte, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	var img v1.Image
	if fi.IsDir() {
		idx, err := layout.ImageIndexFromPath(p)
		if err != nil {
			return nil, err
		}
		imgs, err := indexImages(idx)
		if err != nil {
			return nil, err
		}
		if len(imgs) == 0 {
			return nil, fmt.Errorf("%s holds no image", p)
		}
		img = imgs[0]
	} else if img, err = tarball.ImageFromPath(p, nil); err != nil {
		return nil, err
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if (name == "etc/passwd" || name == "etc/group") && h.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(io.LimitReader(tr, 16<<20))
			if err != nil {
				return nil, err
			}
			out[name] = data
		}
	}
}
