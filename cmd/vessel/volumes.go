package main

// vessel volume: the named volumes that run's -v NAME:/dst and --mount
// type=volume create in the library's volume directory.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/openvessel/vessel/rootfs"
)

// volumeDir is where named volumes live.
var volumeDir = rootfs.DefaultVolumeDir

// volumeDoc is what volume inspect prints.
type volumeDoc struct {
	Name string `json:"name"`
	// Path is the directory the volume's files are in, or its ext4 image
	// for a size-limited volume on a filesystem without project quotas.
	Path    string   `json:"path"`
	Image   bool     `json:"image,omitempty"`
	Size    int64    `json:"size"`
	UsedBy  []string `json:"usedBy"`
	InUseBy []string `json:"inUseBy"`
}

// volumeUsers maps each volume to the containers of the store that mount
// it, and to those of them that are live.
func volumeUsers() (all, live map[string][]string, err error) {
	st, err := openStore()
	if err != nil {
		return nil, nil, err
	}
	entries, err := listEntries(st)
	if err != nil {
		return nil, nil, err
	}
	all, live = map[string][]string{}, map[string][]string{}
	for _, e := range entries {
		if e.rec.Config == nil {
			continue
		}
		for _, m := range e.rec.Config.Mounts {
			if m.Type != rootfs.TypeVolume || slices.Contains(all[m.Source], e.rec.ID) {
				continue
			}
			all[m.Source] = append(all[m.Source], e.rec.ID)
			if e.live() {
				live[m.Source] = append(live[m.Source], e.rec.ID)
			}
		}
	}
	return all, live, nil
}

func volumeNames() ([]string, error) {
	ents, err := os.ReadDir(volumeDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && rootfs.ValidName(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func describeVolume(name string, all, live map[string][]string) (volumeDoc, error) {
	dir := filepath.Join(volumeDir, name)
	if !rootfs.ValidName(name) {
		return volumeDoc{}, fmt.Errorf("volume %q: not a volume name", name)
	}
	if _, err := os.Stat(dir); err != nil {
		return volumeDoc{}, fmt.Errorf("no such volume: %s", name)
	}
	d := volumeDoc{Name: name, Path: filepath.Join(dir, "data"), UsedBy: all[name], InUseBy: live[name]}
	if fi, err := os.Stat(filepath.Join(dir, "volume.ext4")); err == nil {
		d.Path, d.Image, d.Size = filepath.Join(dir, "volume.ext4"), true, fi.Size()
	} else {
		_ = filepath.WalkDir(d.Path, func(_ string, de fs.DirEntry, err error) error {
			if err == nil && de.Type().IsRegular() {
				if fi, err := de.Info(); err == nil {
					d.Size += fi.Size()
				}
			}
			return nil
		})
	}
	if d.UsedBy == nil {
		d.UsedBy = []string{}
	}
	if d.InUseBy == nil {
		d.InUseBy = []string{}
	}
	return d, nil
}

func volumeCommand() *cobra.Command {
	vol := &cobra.Command{
		Use:   "volume",
		Short: "Manage named volumes (run -v NAME:/dst)",
		Long:  "Named volumes outlive their containers, in " + rootfs.DefaultVolumeDir + ".",
	}
	var quiet bool
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List named volumes",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			names, err := volumeNames()
			if err != nil {
				return codeErr(reportErr(err))
			}
			all, live, err := volumeUsers()
			if err != nil {
				return codeErr(reportErr(err))
			}
			if quiet {
				for _, n := range names {
					fmt.Println(n)
				}
				return nil
			}
			w := tabwriter.NewWriter(os.Stdout, 8, 1, 3, ' ', 0)
			fmt.Fprint(w, "NAME\tSIZE\tCONTAINERS\n")
			for _, n := range names {
				d, err := describeVolume(n, all, live)
				if err != nil {
					continue
				}
				fmt.Fprintf(w, "%s\t%s\t%d\n", n, humanBytes(uint64(d.Size)), len(d.UsedBy))
			}
			w.Flush()
			return nil
		},
	}
	ls.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the names")
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an empty named volume",
		Args:  exactArgs(1, "want one volume name"),
		RunE: func(_ *cobra.Command, args []string) error {
			if !rootfs.ValidName(args[0]) {
				return usagef("volume create: %q is not a volume name (letters, digits, '_', '.', '-')", args[0])
			}
			if err := os.MkdirAll(filepath.Join(volumeDir, args[0], "data"), 0o755); err != nil {
				return codeErr(reportErr(err))
			}
			if err := os.Chmod(filepath.Join(volumeDir, args[0]), 0o700); err != nil {
				return codeErr(reportErr(err))
			}
			fmt.Println(args[0])
			return nil
		},
	}
	inspect := &cobra.Command{
		Use:   "inspect NAME...",
		Short: "Print volumes' path, size and users as JSON",
		Args:  minArgs(1, "want at least one volume name"),
		RunE: func(_ *cobra.Command, args []string) error {
			all, live, err := volumeUsers()
			if err != nil {
				return codeErr(reportErr(err))
			}
			var docs []volumeDoc
			code := 0
			for _, n := range args {
				d, err := describeVolume(n, all, live)
				if err != nil {
					stderrf("vessel: %v", err)
					code = 1
					continue
				}
				docs = append(docs, d)
			}
			if docs != nil {
				b, _ := json.MarshalIndent(docs, "", "  ")
				fmt.Printf("%s\n", b)
			}
			return codeErr(code)
		},
	}
	var force bool
	rm := &cobra.Command{
		Use:   "rm [-f] NAME...",
		Short: "Remove named volumes and their files",
		Args:  minArgs(1, "want at least one volume name"),
		RunE: func(_ *cobra.Command, args []string) error {
			all, live, err := volumeUsers()
			if err != nil {
				return codeErr(reportErr(err))
			}
			code := 0
			for _, n := range args {
				if err := removeVolume(n, all, live, force); err != nil {
					stderrf("vessel: %v", err)
					code = 1
					continue
				}
				fmt.Println(n)
			}
			return codeErr(code)
		},
	}
	rm.Flags().BoolVarP(&force, "force", "f", false, "also remove a volume that stopped containers name (never one a live container mounts)")
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Remove every named volume no container of the store names",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			names, err := volumeNames()
			if err != nil {
				return codeErr(reportErr(err))
			}
			all, live, err := volumeUsers()
			if err != nil {
				return codeErr(reportErr(err))
			}
			code := 0
			for _, n := range names {
				if len(all[n]) > 0 {
					continue
				}
				if err := removeVolume(n, all, live, false); err != nil {
					stderrf("vessel: %v", err)
					code = 1
					continue
				}
				fmt.Println(n)
			}
			return codeErr(code)
		},
	}
	prune.Flags().BoolP("force", "f", false, "do not ask (vessel never asks)")
	vol.AddCommand(ls, create, inspect, rm, prune)
	return vol
}

func removeVolume(name string, all, live map[string][]string, force bool) error {
	if _, err := describeVolume(name, all, live); err != nil {
		return err
	}
	if len(live[name]) > 0 {
		return fmt.Errorf("volume %s is in use by %v", name, live[name])
	}
	if len(all[name]) > 0 && !force {
		return fmt.Errorf("volume %s is named by the stopped containers %v (rm them, or volume rm -f)", name, all[name])
	}
	return os.RemoveAll(filepath.Join(volumeDir, name))
}
