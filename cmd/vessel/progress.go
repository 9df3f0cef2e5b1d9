package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/rootfs"
)

// progressDelay is how long a start may unpack an image before a progress
// bar shows: $VESSEL_PROGRESS_DELAY (a duration), else one second.
func progressDelay() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("VESSEL_PROGRESS_DELAY")); err == nil && d >= 0 {
		return d
	}
	return time.Second
}

// importProgress shows on a terminal (stderr) how much of an --image the
// start has unpacked into the layer store, once that takes longer than
// progressDelay. The library unpacks; this watches the bytes arrive in the
// store. Call the returned function when the start has returned.
func importProgress(cfg *vessel.Config) (stop func()) {
	if cfg.Rootfs.Kind != rootfs.KindImage || !isTerminal(2) {
		return func() {}
	}
	base := filepath.Join(layerStore, "sha256")
	known := map[string]bool{}
	if ents, err := os.ReadDir(base); err == nil {
		for _, e := range ents {
			known[e.Name()] = true
		}
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case <-done:
			return
		case <-time.After(progressDelay()):
		}
		bar := progressbar.NewOptions64(-1,
			progressbar.OptionSetDescription("unpacking image "+filepath.Base(cfg.Rootfs.Path)),
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionSpinnerType(14),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetRenderBlankState(true),
			progressbar.OptionClearOnFinish())
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				_ = bar.Set64(unpackedSince(base, known))
				_ = bar.Finish()
				return
			case <-tick.C:
				_ = bar.Set64(unpackedSince(base, known))
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// unpackedSince sums the bytes of the layers (finished or being unpacked)
// that appeared in the store after known was taken.
func unpackedSince(base string, known map[string]bool) int64 {
	ents, err := os.ReadDir(base)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		if known[e.Name()] || !e.IsDir() {
			continue
		}
		_ = filepath.WalkDir(filepath.Join(base, e.Name()), func(_ string, de fs.DirEntry, err error) error {
			if err == nil && de.Type().IsRegular() {
				if fi, err := de.Info(); err == nil {
					n += fi.Size()
				}
			}
			return nil
		})
	}
	return n
}
