package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/openvessel/vessel/rootfs"
)

// PrepareOptions are the host locations Prepare works in. Zero values
// mean the defaults.
type PrepareOptions struct {
	// StateDir holds per-container state (ephemeral disk images); default
	// DefaultStateDir. ReleaseStale cleans it after crashed owners.
	StateDir string
	// LayerStore is where image layers are unpacked when the root has no
	// Store of its own; default DefaultLayerStore.
	LayerStore string
	// VolumeDir holds named volumes; default DefaultVolumeDir.
	VolumeDir string
	// EphemeralOnDisk keeps a quota-limited ephemeral layer in a sparse
	// ext4 image on disk (deleted on Release) instead of a tmpfs in RAM.
	EphemeralOnDisk bool
}

func (o *PrepareOptions) defaults() {
	if o.StateDir == "" {
		o.StateDir = rootfs.DefaultStateDir
	}
	if o.LayerStore == "" {
		o.LayerStore = rootfs.DefaultLayerStore
	}
	if o.VolumeDir == "" {
		o.VolumeDir = rootfs.DefaultVolumeDir
	}
}

// BlockDevice is a loop device a container's storage sits on: the target
// of an I/O throttling rule (major:minor).
type BlockDevice struct {
	Path  string `json:"path"`
	Major uint32 `json:"major"`
	Minor uint32 `json:"minor"`
	// Use is "root-image" (a read-only image file), "root-layer" (the
	// writable layer's ext4 image) or "volume:NAME".
	Use string `json:"use"`
}

// Prepared is the host-side storage of one container. Release undoes it.
type Prepared struct {
	// ID is the container's id.
	ID string
	// QuotaMethod says how the root's quota is enforced: QuotaXFSProject,
	// QuotaExt4Project, QuotaTmpfs, QuotaLoopExt4, or "" (no quota).
	QuotaMethod string
	// VolumeQuota is the same for each size-limited named volume.
	VolumeQuota map[string]string
	// ImageConfig is the image's process defaults (image roots only).
	ImageConfig *rootfs.ImageConfig
	// Devices are the loop devices in use, for I/O throttling.
	Devices []BlockDevice

	mu       sync.Mutex
	released bool
	loops    []*loopDevice
	removes  []string
}

// Prepare does the host side of the storage p describes, before the
// container's child starts: unpacks image layers into the store, creates
// writable layers and named volumes, sets quotas, and attaches loop
// devices. It records the result in p (p.Root.Storage, and named volume
// mounts rewritten into binds or filesystem mounts) for Setup in the
// child. Call Release after the container is destroyed, and also when the
// container fails to start. Plans that do not need it
// (p.NeedsPrepare() false) are left alone.
func Prepare(ctx context.Context, id string, p *rootfs.Plan, opts PrepareOptions) (*Prepared, error) {
	if !rootfs.ValidName(id) {
		return nil, fmt.Errorf("id: %q must be 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit", id)
	}
	opts.defaults()
	pr := &Prepared{ID: id}
	done := false
	defer func() {
		if !done {
			pr.Release()
		}
	}()
	// Every storage field is checked before anything is made on the host.
	if err := p.ValidateStorage(); err != nil {
		return nil, err
	}
	if p.Root.NeedsPrepare() {
		st, err := pr.prepareRoot(ctx, &p.Root, &opts)
		if err != nil {
			return nil, err
		}
		p.Root.Storage = st
	}
	for i := range p.Mounts {
		m := &p.Mounts[i]
		if m.Type != rootfs.TypeVolume {
			continue
		}
		if err := pr.prepareVolume(ctx, m, &opts); err != nil {
			return nil, fmt.Errorf("mounts[%d]: volume %s: %w", i, m.Source, err)
		}
	}
	done = true
	return pr, nil
}

func (pr *Prepared) addLoop(l *loopDevice, use string) {
	pr.loops = append(pr.loops, l)
	maj, min := l.majorMinor()
	pr.Devices = append(pr.Devices, BlockDevice{Path: l.path, Major: maj, Minor: min, Use: use})
}

func (pr *Prepared) prepareRoot(ctx context.Context, r *rootfs.Root, opts *PrepareOptions) (*rootfs.Storage, error) {
	st := &rootfs.Storage{}
	switch r.Kind {
	case rootfs.KindOverlay:
		for _, l := range r.Lower {
			st.Lower = append(st.Lower, filepath.Clean(l))
		}
	case rootfs.KindImage:
		store := r.Store
		if store == "" {
			store = opts.LayerStore
		}
		img, err := loadImage(r.Path, r.Ref)
		if err != nil {
			return nil, fmt.Errorf("rootfs.path: %w", err)
		}
		lowers, ic, err := unpackImage(ctx, img, store)
		if err != nil {
			return nil, fmt.Errorf("rootfs.path: %s: %w", r.Path, err)
		}
		st.Lower = lowers
		pr.ImageConfig = &ic
	case rootfs.KindImageFile:
		fstype, err := rootfs.ImageFileFS(r.Path)
		if err != nil {
			return nil, fmt.Errorf("rootfs.path: %w", err)
		}
		l, err := attachLoop(r.Path, true)
		if err != nil {
			return nil, fmt.Errorf("rootfs.path: %w", err)
		}
		pr.addLoop(l, "root-image")
		st.Device, st.DeviceFS = l.path, fstype
		if !r.Writable && r.Layer == "" {
			return st, nil
		}
	}
	if r.Layer != "" {
		return st, pr.persistentLayer(ctx, r, st)
	}
	if r.Quota > 0 && opts.EphemeralOnDisk {
		dir, err := pr.stateDir(opts)
		if err != nil {
			return nil, err
		}
		img := filepath.Join(dir, "layer.ext4")
		if err := makeExt4Image(ctx, img, r.Quota, r.QuotaInodes, "diff", "work"); err != nil {
			return nil, fmt.Errorf("rootfs.quota: %w", err)
		}
		l, err := attachLoop(img, false)
		if err != nil {
			return nil, fmt.Errorf("rootfs.quota: %w", err)
		}
		pr.addLoop(l, "root-layer")
		st.UpperDevice = l.path
		pr.QuotaMethod = rootfs.QuotaLoopExt4
		return st, nil
	}
	st.UpperTmpfs, st.UpperSize, st.UpperInodes = true, r.Quota, r.QuotaInodes
	if r.Quota > 0 {
		pr.QuotaMethod = rootfs.QuotaTmpfs
	}
	return st, nil
}

// persistentLayer sets up the layer directory r.Layer: diff/ and work/ on
// the host filesystem (with a project quota when one is asked for and the
// filesystem enforces them), or an ext4 image layer.ext4 holding both.
func (pr *Prepared) persistentLayer(ctx context.Context, r *rootfs.Root, st *rootfs.Storage) error {
	// Mkdir, not MkdirAll: nothing above the layer is created on the host.
	if err := os.Mkdir(r.Layer, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("rootfs.layer: %w", err)
	}
	img := filepath.Join(r.Layer, "layer.ext4")
	diff, work := filepath.Join(r.Layer, "diff"), filepath.Join(r.Layer, "work")
	_, imgErr := os.Stat(img)
	_, diffErr := os.Stat(diff)
	if imgErr == nil || (r.Quota > 0 && os.IsNotExist(diffErr)) {
		method, project := "", false
		if imgErr != nil {
			method, project = projectQuotaMethod(r.Layer)
		}
		if !project {
			if imgErr != nil {
				if err := makeExt4Image(ctx, img, r.Quota, r.QuotaInodes, "diff", "work"); err != nil {
					return fmt.Errorf("rootfs.quota: %w", err)
				}
			}
			l, err := attachLoop(img, false)
			if err != nil {
				return fmt.Errorf("rootfs.layer: %w", err)
			}
			pr.addLoop(l, "root-layer")
			st.UpperDevice = l.path
			pr.QuotaMethod = rootfs.QuotaLoopExt4
			return nil
		}
		pr.QuotaMethod = method
	} else if r.Quota > 0 {
		method, ok := projectQuotaMethod(r.Layer)
		if !ok {
			return fmt.Errorf("rootfs.quota: layer %s already holds files without a limit and its filesystem enforces no project quotas (use a new layer directory)", r.Layer)
		}
		pr.QuotaMethod = method
	}
	for _, d := range []string{diff, work} {
		if err := os.Mkdir(d, 0o755); err != nil && !os.IsExist(err) {
			return fmt.Errorf("rootfs.layer: %w", err)
		}
	}
	if err := os.Chmod(diff, 0o755); err != nil {
		return fmt.Errorf("rootfs.layer: %w", err)
	}
	if pr.QuotaMethod != "" {
		// The whole layer, work/ included: overlay renames copied-up files
		// from work/ into diff/, which fails across projects.
		if _, err := setProjectQuota(r.Layer, r.Quota, r.QuotaInodes); err != nil {
			return fmt.Errorf("rootfs.quota: %w", err)
		}
	}
	st.UpperDir, st.WorkDir = diff, work
	return nil
}

// prepareVolume turns a named volume mount into a bind of the volume's
// directory or, for a size limit without project quotas, a mount of the
// volume's ext4 image.
func (pr *Prepared) prepareVolume(ctx context.Context, m *rootfs.Mount, opts *PrepareOptions) error {
	dir := filepath.Join(opts.VolumeDir, m.Source)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	img, data := filepath.Join(dir, "volume.ext4"), filepath.Join(dir, "data")
	_, imgErr := os.Stat(img)
	_, dataErr := os.Stat(data)
	useImage := imgErr == nil
	if !useImage && m.Size > 0 {
		method, ok := projectQuotaMethod(dir)
		switch {
		case ok:
			if err := os.Mkdir(data, 0o755); err != nil && !os.IsExist(err) {
				return err
			}
			if _, err := setProjectQuota(data, m.Size, 0); err != nil {
				return err
			}
			if pr.VolumeQuota == nil {
				pr.VolumeQuota = map[string]string{}
			}
			pr.VolumeQuota[m.Source] = method
		case dataErr == nil:
			return fmt.Errorf("size: the volume already holds files without a limit and its filesystem enforces no project quotas")
		default:
			if err := makeExt4Image(ctx, img, m.Size, 0); err != nil {
				return err
			}
			useImage = true
		}
	}
	if useImage {
		l, err := attachLoop(img, false)
		if err != nil {
			return err
		}
		pr.addLoop(l, "volume:"+m.Source)
		if pr.VolumeQuota == nil {
			pr.VolumeQuota = map[string]string{}
		}
		pr.VolumeQuota[m.Source] = rootfs.QuotaLoopExt4
		m.Type, m.Source, m.Size = "ext4", l.path, 0
		m.NoDev, m.NoSuid = true, true
		return nil
	}
	if err := os.Mkdir(data, 0o755); err != nil && !os.IsExist(err) {
		return err
	}
	m.Type, m.Source, m.Size = rootfs.TypeBind, data, 0
	return nil
}

// stateDir creates the container's state directory, recording its owner.
func (pr *Prepared) stateDir(opts *PrepareOptions) (string, error) {
	dir := filepath.Join(opts.StateDir, pr.ID)
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return "", err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if os.IsExist(err) {
			return "", fmt.Errorf("id: storage state for %q already exists in %s (another container, or run ReleaseStale)", pr.ID, opts.StateDir)
		}
		return "", err
	}
	pr.removes = append(pr.removes, dir)
	start, err := processStart(os.Getpid())
	if err != nil {
		return "", err
	}
	owner := fmt.Sprintf("%d %d\n", os.Getpid(), start)
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(owner), 0o600); err != nil {
		return "", err
	}
	return dir, nil
}

// Release undoes Prepare: it lets go of loop devices (the kernel detaches
// each once no mount uses it) and deletes ephemeral layers. Persistent
// layers, the layer store and named volumes stay. It is safe to call more
// than once.
func (pr *Prepared) Release() error {
	if pr == nil {
		return nil
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.released {
		return nil
	}
	pr.released = true
	var errs []error
	for _, l := range pr.loops {
		errs = append(errs, l.close())
	}
	for _, d := range pr.removes {
		errs = append(errs, os.RemoveAll(d))
	}
	return errors.Join(errs...)
}

// processStart is the start time of a process (field 22 of its stat), to
// tell a live owner from a reused pid.
func processStart(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// ReleaseStale deletes the state of containers in stateDir whose owning
// process is gone (it crashed before calling Release) and returns their
// ids. Their loop devices were detached by the kernel when the owner and
// the container's mounts went away.
func ReleaseStale(stateDir string) ([]string, error) {
	if stateDir == "" {
		stateDir = rootfs.DefaultStateDir
	}
	entries, err := os.ReadDir(stateDir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var gone []string
	var errs []error
	for _, e := range entries {
		dir := filepath.Join(stateDir, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err == nil {
			var pid int
			var start uint64
			if _, err := fmt.Sscanf(string(b), "%d %d", &pid, &start); err == nil {
				if now, err := processStart(pid); err == nil && now == start {
					continue // owner alive
				}
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		gone = append(gone, e.Name())
	}
	return gone, errors.Join(errs...)
}
