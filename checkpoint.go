package vessel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/cgroups"
	"github.com/openvessel/vessel/checkpoint"
	"github.com/openvessel/vessel/internal/child"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/network"
	"github.com/openvessel/vessel/rootfs"
)

// How a container maps onto CRIU (see also package checkpoint):
//
//   - The dumped tree is rooted at the container's main process, PID 1 of
//     its own pid namespace; vessel's init stays outside that namespace
//     and is not dumped, so the images hold the workload alone (as
//     small as runc's, and any build of vessel restores them). The main
//     process's session lies outside the tree: dumps are "shell jobs".
//   - Its standard streams: pipes to the starting program are external
//     (CRIU's pipe:[inode] keys); regular files outside the container's
//     mounts are external files whose image entries fixImages rewrites so
//     that the restored process shares whatever the restoring program
//     gives (a file, a pipe or a terminal); a terminal of the container's
//     own (WithTTY) is remade by CRIU, which hands the new master back.
//     Other files open outside the container's mounts are reopened by
//     path.
//   - The root mount becomes CRIU's --root (the restore config's rootfs
//     directory, or for rootfs.Host a fresh directory with the host
//     root's symlinks). Bind mounts from the host are external mounts,
//     keyed by their mountpoint and resolved at restore from the restore
//     config's binds (so they may move), or for rootfs.Host from the same
//     host paths. /etc/hostname, /etc/hosts and /etc/resolv.conf are
//     regenerated. proc, sysfs, devpts, mqueue and the container's own
//     tmpfs mounts are recreated by CRIU.
//   - The network namespace is always external: the restored tree gets
//     the one the restoring init made (or joined: network.Netns, which is
//     how a container moves to another "host"), set up by vessel as for a
//     start, so a bridge's veth (its peer on the host) is no obstacle.
//   - The cgroup is the restore config's: created as Start creates it, and
//     CRIU is told to use it as the root of the restored tree's cgroups.
//   - Restore starts a fresh init as Start does, but the init runs criu
//     (child.RestoreSpec) instead of a command: the tree, restored as
//     criu's sibling, becomes the init's child, and the init enters its
//     pid, mount, UTS, IPC and cgroup namespaces, so Wait, Kill, Exec,
//     Pause and Destroy work as for a started container.

// checkpointMetaFile is vessel's own description of a checkpoint, next to
// CRIU's images.
const checkpointMetaFile = "vessel.json"

// CheckpointOptions configures Container.Checkpoint.
type CheckpointOptions struct {
	// CriuPath is the criu binary (see checkpoint.Options.CriuPath).
	CriuPath string
	// LeaveRunning keeps the container running after the checkpoint;
	// otherwise it is stopped once the images are complete.
	LeaveRunning bool
	// TCPEstablished saves established TCP connections.
	TCPEstablished bool
	// PreDumps is the number of pre-dump rounds, each copying the memory
	// changed since the previous one while the container runs, before
	// the final dump (which then freezes it only for what changed last).
	PreDumps int
	// NetworkLock is how CRIU keeps TCP peers quiet while the container
	// is frozen; checkpoint.LockDefault means nftables here (CRIU's
	// libnftables: no iptables tools needed).
	NetworkLock checkpoint.NetworkLock
}

// CheckpointResult describes a finished checkpoint.
type CheckpointResult struct {
	// Dir holds the final images.
	Dir string `json:"dir"`
	// FreezeTime is how long the container was frozen by the final dump.
	FreezeTime time.Duration `json:"freezeTime"`
	// Duration is the whole checkpoint, pre-dumps included.
	Duration time.Duration `json:"duration"`
	// Bytes is the size of all images written.
	Bytes int64 `json:"bytes"`
	// Rounds has one entry per pre-dump, then the final dump.
	Rounds []checkpoint.Stats `json:"rounds"`
	// PreDumpsSkipped is set when pre-dumps were asked for but the kernel
	// cannot track dirty memory (checkpoint.MemoryTracking): the final
	// dump then copied everything.
	PreDumpsSkipped bool `json:"preDumpsSkipped,omitempty"`
}

// checkpointMeta is written to vessel.json in the final images directory.
// Version 2: the dumped tree is the workload alone (version 1 held the
// init, and is refused by Restore).
type checkpointMeta struct {
	Version int            `json:"version"`
	ID      string         `json:"id"`
	Config  *Config        `json:"config"`
	Paused  bool           `json:"paused,omitempty"`
	Stdio   []stdioFile    `json:"stdio,omitempty"`
	Files   []externalFile `json:"files,omitempty"`
	Mounts  []externalMnt  `json:"mounts,omitempty"`
	// Mountpoints are every mount's target below the root (files end
	// without a slash, directories with one): Restore creates those a
	// new root directory lacks, as Start does.
	Mountpoints []string  `json:"mountpoints,omitempty"`
	NetnsKey    string    `json:"netnsKey,omitempty"`
	Created     time.Time `json:"created"`
}

// stdioFile is one of the main process's standard streams.
type stdioFile struct {
	FD  int    `json:"fd"`
	Key string `json:"key"`
	// Shared is set for a regular file outside the container: the
	// inherit key fixImages gave it (checkpoint.ShareExternalFile).
	Shared string `json:"shared,omitempty"`
}

// externalFile is a file open in the tree on a mount outside it.
type externalFile struct {
	Key string `json:"key"`
	// Path is the file's host path.
	Path  string `json:"path"`
	Flags int    `json:"flags"`
}

// externalMnt is a mount provided from the host.
type externalMnt struct {
	Key        string `json:"key"`
	Mountpoint string `json:"mountpoint"`
	// Generated marks /etc/hostname, /etc/hosts and /etc/resolv.conf.
	Generated bool `json:"generated,omitempty"`
	File      bool `json:"file,omitempty"`
}

func (o *CheckpointOptions) networkLock() checkpoint.NetworkLock {
	if o.NetworkLock == checkpoint.LockDefault {
		return checkpoint.LockNftables
	}
	return o.NetworkLock
}

// Checkpoint saves the running container to dir (created if missing):
// its process tree, memory, open files, mounts, namespaces and, with
// opts.TCPEstablished, its established TCP connections. With
// opts.PreDumps > 0, that many rounds copy memory while the container
// runs (into dir/pre-1, dir/pre-2, ...), and the final dump, in dir, is
// frozen only for the memory dirtied since the last round. Unless
// opts.LeaveRunning, the container is stopped when Checkpoint returns
// (Wait then reports it killed). A paused container stays paused. On
// error the container keeps running.
func (c *Container) Checkpoint(ctx context.Context, dir string, opts *CheckpointOptions) (*CheckpointResult, error) {
	if opts == nil {
		opts = &CheckpointOptions{}
	}
	if dir == "" {
		return nil, &ConfigError{Field: "dir", Reason: "empty checkpoint directory"}
	}
	if opts.PreDumps < 0 || opts.PreDumps > 64 {
		return nil, &ConfigError{Field: "preDumps", Reason: fmt.Sprintf("%d is outside 0..64", opts.PreDumps)}
	}
	start := time.Now()
	res := &CheckpointResult{Dir: dir}
	parent := ""
	rounds := opts.PreDumps
	if rounds > 0 && !checkpoint.MemoryTracking(ctx, opts.CriuPath) {
		// Pre-dumps cannot run without dirty-page tracking, and would save
		// nothing: the final dump does it all.
		res.PreDumpsSkipped = true
		rounds = 0
	}
	for i := 1; i <= rounds; i++ {
		round := filepath.Join(dir, "pre-"+strconv.Itoa(i))
		st, err := c.DumpRound(ctx, round, parent, false, opts)
		if err != nil {
			return nil, err
		}
		res.Rounds = append(res.Rounds, *st)
		res.Bytes += st.Bytes
		parent = round
	}
	st, err := c.DumpRound(ctx, dir, parent, true, opts)
	if err != nil {
		return nil, err
	}
	res.Rounds = append(res.Rounds, *st)
	res.Bytes += st.Bytes
	res.FreezeTime = st.FreezeTime
	res.Duration = time.Since(start)
	return res, nil
}

// CheckpointRunning checkpoints a container that another program started
// and still holds (the CLI's `vessel checkpoint NAME` of a container in
// its store): id and cfg as it was created, mainPid and initPid its main
// process and its init as the host sees them. It is Checkpoint otherwise:
// unless opts.LeaveRunning the container's workload is stopped, and the
// program holding the container sees it end.
func CheckpointRunning(ctx context.Context, id string, cfg *Config, mainPid, initPid int, dir string, opts *CheckpointOptions) (*CheckpointResult, error) {
	if mainPid <= 0 {
		return nil, &ConfigError{Field: "mainPid", Reason: fmt.Sprintf("%d is not a process id", mainPid)}
	}
	c, err := New(id, cfg)
	if err != nil {
		return nil, err
	}
	c.status, c.mainPid, c.initPid = Running, mainPid, initPid
	if !cfg.Cgroup.Disabled {
		if m, err := cgroups.Load(c.cgroupOptions()); err == nil {
			c.cg = m
			if frozen, err := m.Frozen(); err == nil {
				c.paused = frozen
			}
		}
	}
	return c.Checkpoint(ctx, dir, opts)
}

// DumpRound runs one CRIU round on the container into dir: a pre-dump
// (final false: memory only, the container keeps running) or the final
// dump. parent, when not empty, is the directory of the previous pre-dump;
// only memory changed since it is written. It is the building block of
// Checkpoint and of live migration (checkpoint.Migrate).
func (c *Container) DumpRound(ctx context.Context, dir, parent string, final bool, opts *CheckpointOptions) (*checkpoint.Stats, error) {
	return c.dumpRound(ctx, dir, parent, final, opts, checkpoint.RoundOptions{})
}

// dumpRound is DumpRound; ro.Handoff, for a final dump, runs while the
// container is frozen with complete images (checkpoint.Options.Handoff),
// and ro.Pages is where the memory pages go (checkpoint.Options.PageServer).
func (c *Container) dumpRound(ctx context.Context, dir, parent string, final bool, opts *CheckpointOptions, ro checkpoint.RoundOptions) (*checkpoint.Stats, error) {
	handoff := ro.Handoff
	if opts == nil {
		opts = &CheckpointOptions{}
	}
	c.mu.Lock()
	running := c.status == Running && c.mainPid > 0
	rootPid, paused, cg := c.mainPid, c.paused, c.cg
	c.mu.Unlock()
	if !running {
		return nil, ErrNotRunning
	}
	if !c.cfg.Namespaces.IsNew(namespaces.PID) || !c.cfg.Namespaces.IsNew(namespaces.Mount) {
		return nil, &ConfigError{Field: "namespaces", Reason: "checkpoint needs the container's own pid and mount namespaces"}
	}
	// What CRIU would refuse is refused here, before anything is frozen.
	if err := checkpoint.Check(rootPid); err != nil {
		return nil, err
	}
	if err := c.checkDumpShape(rootPid); err != nil {
		return nil, err
	}
	meta, external, err := c.describeForDump(rootPid)
	if err != nil {
		return nil, &SetupError{Step: "checkpoint: inspect container", Err: err}
	}
	meta.Paused = paused
	co := &checkpoint.Options{
		CriuPath:       opts.CriuPath,
		ImagesDir:      dir,
		ParentImages:   parent,
		LeaveRunning:   opts.LeaveRunning,
		TCPEstablished: opts.TCPEstablished,
		NetworkLock:    opts.networkLock(),
		ShellJob:       true,
		FileLocks:      true,
		External:       external,
		Cgroups:        checkpoint.CgroupSoft,
		Handoff:        handoff,
		PageServer:     ro.Pages,
	}
	if !final {
		co.LeaveRunning = true
	}
	if cg != nil {
		// The freezer Pause uses: CRIU must thaw what Pause froze.
		if d, ok := cg.FreezerDir(); ok {
			co.FreezeCgroup = d
		}
	}
	if final {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, &ConfigError{Field: "dir", Reason: err.Error()}
		}
		data, err := json.MarshalIndent(meta, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, checkpointMetaFile), data, 0o600); err != nil {
			return nil, &ConfigError{Field: "dir", Reason: err.Error()}
		}
		// The images are rewritten where CRIU's own restore would fail
		// (see fixImages), before a handoff sends them.
		fix := func() error { return fixImages(dir, meta) }
		if handoff != nil {
			co.Handoff = func() error {
				if err := fix(); err != nil {
					return err
				}
				return handoff()
			}
		}
		// The final dump freezes the container's cgroup itself, from
		// CRIU's "pre-dump" notification (just before CRIU would):
		// CRIU's freezer, finding the cgroup thawed, waits in steps of
		// 100 ms for the kernel to report it frozen, which it usually is
		// within a millisecond. A cgroup CRIU finds frozen it leaves
		// frozen: thawed here when the container lives on (LeaveRunning,
		// a failed dump, a failed handoff). The freeze time is then
		// measured from that freeze to Dump's return (a little more
		// than the tree was stopped, never less).
		var frozeAt time.Time
		if cg != nil && co.FreezeCgroup != "" && !paused {
			co.Notify = func(event string, _ int) error {
				if event != "pre-dump" || !frozeAt.IsZero() {
					return nil
				}
				frozeAt = time.Now()
				if err := cg.Freeze(); err != nil {
					// CRIU's own freezer does it then.
					_ = cg.Thaw()
					frozeAt = time.Time{}
				}
				return nil
			}
		}
		st, err := checkpoint.Dump(ctx, rootPid, co)
		if !frozeAt.IsZero() {
			if err != nil || opts.LeaveRunning {
				if terr := cg.Thaw(); terr != nil && err == nil {
					err = &SetupError{Step: "checkpoint: thaw after the dump", Err: terr}
				}
			}
			if st != nil {
				st.FreezeTime = time.Since(frozeAt)
			}
		}
		if err != nil {
			return nil, err
		}
		if err := fix(); err != nil {
			return nil, err
		}
		if !opts.LeaveRunning {
			c.mu.Lock()
			c.reason.killed = true
			c.mu.Unlock()
		}
		return st, nil
	}
	return checkpoint.PreDump(ctx, rootPid, co)
}

// fixImages rewrites what CRIU would restore badly: standard streams
// that were regular files outside the container
// (checkpoint.ShareExternalFile: at restore they become whatever the
// restoring program gives, file, pipe or terminal). Idempotent.
func fixImages(dir string, meta *checkpointMeta) error {
	for _, s := range meta.Stdio {
		if s.Shared == "" {
			continue
		}
		if _, err := checkpoint.ShareExternalFile(dir, s.Key, s.Shared); err != nil {
			return &SetupError{Step: "checkpoint: rewrite standard stream " + strconv.Itoa(s.FD), Err: err}
		}
	}
	return nil
}

var generatedFilePaths = map[string]bool{"/etc/hostname": true, "/etc/hosts": true, "/etc/resolv.conf": true}

// internalFS are filesystems CRIU recreates itself.
var internalFS = map[string]bool{"proc": true, "sysfs": true, "devpts": true, "mqueue": true, "cgroup": true, "cgroup2": true, "tmpfs": true, "devtmpfs": true, "binfmt_misc": true, "securityfs": true}

// checkDumpShape refuses, before anything is frozen, a container whose
// shape the dump cannot carry: processes in its cgroup outside the tree
// rooted at its main process (CRIU would leave them out), a user
// namespace (not restored yet), a terminal of its own.
func (c *Container) checkDumpShape(root int) error {
	refuse := func(why string) error {
		return &checkpoint.UnsupportedError{Problems: []checkpoint.Problem{{Pid: root, FD: -1, What: "container " + c.id, Why: why}}}
	}
	if c.cfg.Namespaces.IsNew(namespaces.User) {
		return refuse("it has a user namespace of its own, which vessel does not restore yet")
	}
	if err := restorableRoot(c.cfg.Rootfs); err != nil {
		return refuse(err.Error())
	}
	c.mu.Lock()
	cg, initPid := c.cg, c.initPid
	c.mu.Unlock()
	if cg == nil {
		return nil
	}
	pids, err := cg.Pids()
	if err != nil {
		return nil
	}
	tree := map[int]bool{}
	for _, p := range treePids(root) {
		tree[p] = true
	}
	var outside []string
	for _, p := range pids {
		// (On a hybrid host the init sits in the unified cgroup, which
		// holds no limits.)
		if !tree[p] && p != initPid {
			outside = append(outside, strconv.Itoa(p))
		}
	}
	if len(outside) > 0 {
		return refuse("processes " + strings.Join(outside, ", ") + " run in it outside the main process's tree (Exec'd processes still running?): a checkpoint would lose them")
	}
	return nil
}

// restorableRoot says why a root filesystem cannot be restored, or nil:
// a directory, the host's files, or an overlay or image root whose
// writable layer is a directory on the host (rootfs.Overlay with a layer,
// WithLayer), which a restore mounts again over the same lowers.
func restorableRoot(r rootfs.Root) error {
	switch r.Kind {
	case rootfs.KindDir, rootfs.KindHost:
		return nil
	case rootfs.KindOverlay, rootfs.KindImage:
		if r.Layer == "" {
			return fmt.Errorf("its %s root has an ephemeral writable layer (a tmpfs of the container's own), whose changes a checkpoint cannot carry: give it a persistent layer (rootfs.Overlay(layer, ...), WithLayer)", r.Kind)
		}
		exists := func(name string) bool {
			_, err := os.Stat(filepath.Join(r.Layer, name))
			return err == nil
		}
		if exists("layer.ext4") || r.Quota > 0 && !exists("diff") {
			return fmt.Errorf("its %s root's writable layer is an ext4 image on a loop device (a quota without project quotas), which vessel does not restore yet", r.Kind)
		}
		return nil
	}
	return fmt.Errorf("its root filesystem is of kind %s (a loop-mounted image file), which vessel does not restore yet: a directory, the host's files, an overlay or image root with a persistent layer do", r.Kind)
}

// describeForDump inspects the running container, whose main process
// (the root of the dumped tree, PID 1 of its pid namespace) is root, and
// returns what a restore needs to know, and CRIU's --external list for
// it.
func (c *Container) describeForDump(root int) (*checkpointMeta, []string, error) {
	meta := &checkpointMeta{Version: 2, ID: c.id, Config: c.cfg.clone(), Created: time.Now()}
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", root))
	if err != nil {
		return nil, nil, err
	}
	mounts, err := mountinfo.GetMountsFromReader(f, nil)
	f.Close()
	if err != nil {
		return nil, nil, err
	}
	var external []string
	inNS := map[int]bool{}
	fullFS := map[[2]int]bool{}
	for _, m := range mounts {
		inNS[m.ID] = true
		if m.Root == "/" {
			fullFS[[2]int{m.Major, m.Minor}] = true
		}
	}
	for _, m := range mounts {
		if m.Mountpoint == "/" {
			continue
		}
		mp := m.Mountpoint + "/"
		if fi, err := os.Stat(fmt.Sprintf("/proc/%d/root%s", root, m.Mountpoint)); err == nil && !fi.IsDir() {
			mp = m.Mountpoint
		}
		meta.Mountpoints = append(meta.Mountpoints, mp)
		// A cgroup mount made in the container's cgroup namespace shows,
		// read from here, the namespace's root as its root: it is the
		// container's own all the same, and CRIU recreates it.
		cgroupFS := m.FSType == "cgroup2" || m.FSType == "cgroup"
		if internalFS[m.FSType] && (fullFS[[2]int{m.Major, m.Minor}] || cgroupFS) {
			continue
		}
		key := "vessel-mnt-" + strconv.Itoa(len(meta.Mounts))
		em := externalMnt{Key: key, Mountpoint: m.Mountpoint, Generated: generatedFilePaths[m.Mountpoint] && !c.bindsAt(m.Mountpoint)}
		if fi, err := os.Stat(fmt.Sprintf("/proc/%d/root%s", root, m.Mountpoint)); err == nil && !fi.IsDir() {
			em.File = true
		}
		meta.Mounts = append(meta.Mounts, em)
		external = append(external, checkpoint.ExternalMount(m.Mountpoint, key))
	}
	seen := map[string]bool{}
	for _, pid := range treePids(root) {
		files, err := openFiles(pid)
		if err != nil {
			continue
		}
		for _, of := range files {
			fd, link := of.FD, of.Link
			switch {
			case pid == root && fd <= 2 && strings.HasPrefix(link, "pipe:["):
				meta.Stdio = append(meta.Stdio, stdioFile{FD: fd, Key: link})
			case strings.HasPrefix(link, "/"):
				mnt, flags, err := fdInfo(pid, strconv.Itoa(fd))
				if err != nil || inNS[mnt] {
					continue
				}
				var st unix.Stat_t
				if err := unix.Stat(of.Path, &st); err != nil {
					continue
				}
				if st.Mode&unix.S_IFMT == unix.S_IFCHR && isTTYMajor(unix.Major(st.Rdev)) {
					// A terminal of the host (the controller's): handed
					// over at restore like a file (fixImages cannot turn
					// a tty entry into one), so refuse it plainly.
					return nil, nil, &checkpoint.UnsupportedError{Problems: []checkpoint.Problem{{Pid: pid, FD: fd, What: "terminal " + link,
						Why: "a host terminal open in the container cannot be restored", Fix: "give the container pipes or files as its standard streams"}}}
				}
				key := checkpoint.ExternalFile(mnt, st.Ino)
				if seen[key] {
					continue
				}
				seen[key] = true
				ef := externalFile{Key: key, Path: link, Flags: flags & (unix.O_ACCMODE | unix.O_APPEND)}
				var sfs unix.Statfs_t
				if unix.Statfs(of.Path, &sfs) == nil && (sfs.Type == unix.CGROUP_SUPER_MAGIC || sfs.Type == unix.CGROUP2_SUPER_MAGIC) {
					return nil, nil, &checkpoint.UnsupportedError{Problems: []checkpoint.Problem{{Pid: pid, FD: fd, What: "cgroup file " + link,
						Why: "a host cgroup file open in the container cannot be given back on restore (another container's cgroup)"}}}
				}
				meta.Files = append(meta.Files, ef)
				external = append(external, key)
				if pid == root && fd <= 2 {
					meta.Stdio = append(meta.Stdio, stdioFile{FD: fd, Key: key, Shared: "vessel-stdio-" + strconv.Itoa(fd)})
				}
			}
		}
	}
	// The network namespace is the one the restoring init makes (or
	// joins): never dumped, so that its links (a bridge's veth, whose
	// peer is on the host) and addresses are vessel's to set up again.
	var own, their unix.Stat_t
	if unix.Stat("/proc/self/ns/net", &own) == nil && unix.Stat(fmt.Sprintf("/proc/%d/ns/net", root), &their) == nil && own.Ino != their.Ino {
		meta.NetnsKey = "vessel-netns"
		external = append(external, checkpoint.ExternalNetns(their.Ino, meta.NetnsKey))
	}
	return meta, external, nil
}

// bindsAt reports whether the container's config binds something at p.
func (c *Container) bindsAt(p string) bool {
	for _, b := range c.cfg.Mounts {
		if b.Type == rootfs.TypeBind && filepath.Clean(b.Destination) == p {
			return true
		}
	}
	return false
}

// isTTYMajor reports whether a character device major is a terminal's
// (pty slaves 136-143, virtual consoles and serial lines 4 and 5).
func isTTYMajor(major uint32) bool {
	return (major >= 136 && major <= 143) || major == 4 || major == 5
}

// LoadCheckpoint returns the id and a copy of the configuration of the
// container checkpointed in dir, for a restore that changes some of it
// (another rootfs directory, other bind sources, another network
// namespace).
func LoadCheckpoint(dir string) (id string, cfg *Config, err error) {
	meta, err := readCheckpointMeta(dir)
	if err != nil {
		return "", nil, err
	}
	return meta.ID, meta.Config.clone(), nil
}

func readCheckpointMeta(dir string) (*checkpointMeta, error) {
	data, err := os.ReadFile(filepath.Join(dir, checkpointMetaFile))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &ConfigError{Field: "dir", Reason: fmt.Sprintf("%s holds no vessel checkpoint (no %s)", dir, checkpointMetaFile)}
		}
		return nil, &ConfigError{Field: "dir", Reason: err.Error()}
	}
	var meta checkpointMeta
	if err := json.Unmarshal(data, &meta); err != nil {
		return nil, &ConfigError{Field: "dir", Reason: fmt.Sprintf("%s: damaged: %v", checkpointMetaFile, err)}
	}
	if meta.Version < 1 || meta.Version > 2 || meta.Config == nil {
		return nil, &ConfigError{Field: "dir", Reason: fmt.Sprintf("%s: unsupported version %d", checkpointMetaFile, meta.Version)}
	}
	return &meta, nil
}

// RestoreOptions configures Restore.
type RestoreOptions struct {
	// CriuPath is the criu binary (see checkpoint.Options.CriuPath).
	CriuPath string
	// Stdin, Stdout and Stderr replace the container's standard streams
	// when the checkpointed ones were pipes to the starting program (nil:
	// /dev/null).
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Detached and ControlSocket are the restored container's
	// Container.Detached and Container.ControlSocket: a restored
	// container that outlives the program restoring it (the OCI CLI's
	// restore) and that other programs reach through its socket.
	Detached      bool
	ControlSocket string
}

// Restore brings back the container saved in dir by Checkpoint and
// returns it running, under id (empty: the saved id). cfg (nil: the saved
// configuration) says where it goes: rootfs.Dir is the root directory to
// restore into (a copy of the original's, possibly elsewhere), its bind
// mounts give the sources of the saved bind mounts (by destination), its
// network.Netns path the network namespace for a container that had
// joined one, its cgroup placement and limits the new cgroup. Wait, Kill,
// Exec and Destroy work on the result as on a started container. On
// error nothing of the container is left running.
func Restore(ctx context.Context, dir string, cfg *Config, id string, opts *RestoreOptions) (*Container, error) {
	if opts == nil {
		opts = &RestoreOptions{}
	}
	meta, err := readCheckpointMeta(dir)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		cfg = meta.Config
	}
	if id == "" {
		id = meta.ID
	}
	if err := restorableRoot(cfg.Rootfs); err != nil || cfg.Rootfs.Kind == rootfs.KindDir && cfg.Rootfs.Path == "" {
		why := "a directory root without a path"
		if err != nil {
			why = strings.TrimPrefix(err.Error(), "its ")
		}
		return nil, &ConfigError{Field: "rootfs", Reason: "restore needs a root filesystem directory (rootfs.Dir), the host's files (rootfs.Host) or an overlay or image root with a persistent layer, not " + why}
	}
	if (cfg.Rootfs.Kind == rootfs.KindHost) != (meta.Config.Rootfs.Kind == rootfs.KindHost) {
		return nil, &ConfigError{Field: "rootfs", Reason: fmt.Sprintf("the checkpoint's root was %s, the restore config's is %s: both must be the host's files or neither", meta.Config.Rootfs.Kind, cfg.Rootfs.Kind)}
	}
	c, err := New(id, cfg)
	if err != nil {
		return nil, err
	}
	if err := reclaimStaleCgroup(id, cfg.Cgroup); err != nil {
		return nil, err
	}
	c.Detached, c.ControlSocket = opts.Detached, opts.ControlSocket
	if err := c.restore(ctx, dir, meta, opts); err != nil {
		c.mu.Lock()
		c.status = Destroyed
		c.mu.Unlock()
		return nil, err
	}
	return c, nil
}

// reclaimStaleCgroup removes the cgroup a container named id left when
// its program was killed before Destroy (kill -9 of a checkpoint,
// restore or migration): an existing cgroup with no process in it. One
// that holds processes belongs to a running container: an error.
func reclaimStaleCgroup(id string, cc CgroupConfig) error {
	if cc.Disabled {
		return nil
	}
	m, err := cgroups.Load(cgroupOptions(id, cc, nil))
	if err != nil {
		return nil // none (or none readable: creating it will say)
	}
	// A container whose program was just killed takes a moment to go
	// (its init sees its control socket close and kills the rest).
	var pids []int
	for deadline := time.Now().Add(2 * time.Second); ; {
		if pids, err = m.Pids(); err != nil {
			return nil
		}
		if len(pids) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(pids) > 0 {
		return &ConfigError{Field: "id", Reason: fmt.Sprintf("a container named %q is running (its cgroup holds %d processes)", id, len(pids))}
	}
	if err := m.Destroy(); err != nil {
		return &SetupError{Step: "restore: remove the stale cgroup of " + id, Err: err}
	}
	return nil
}

// The phases of a restore, around the start of an init that runs criu
// (phases.go).
const (
	// phaseImages: the checkpoint's format.
	phaseImages phase = "images"
	// phaseRoot: the root directory criu restores into, with the
	// mountpoints it lacks. A root made for the host's files is removed
	// by the cleanup it registers.
	phaseRoot phase = "root"
	// phaseMounts: the sources of the external mounts.
	phaseMounts phase = "mounts"
	// phaseStdio: the standard streams, as criu inherits them.
	phaseStdio phase = "stdio"
	// phaseFiles: the other files opened outside the container.
	phaseFiles phase = "files"
	// phaseNetwork: the network namespace the tree comes back in.
	phaseNetwork phase = "network"
	// phaseCriu: the init started with criu as its main process, criu's
	// restore, a paused checkpoint frozen before it resumes. Undone by
	// Destroy (the init, and what its start registered).
	phaseCriu phase = "criu"
	// phaseResume: the streams' copiers; a checkpoint taken paused is
	// a paused container.
	phaseResume phase = "resume"
)

// restoreRun is one restore as it goes through its phases, and what they
// hand on to each other.
type restoreRun struct {
	c    *Container
	ctx  context.Context
	dir  string
	meta *checkpointMeta
	opts *RestoreOptions
	ph   *phases

	runDir  string
	closers []io.Closer
	root    string
	// overlay: the root is an overlay the fresh init mounts on root
	// (child.RestoreRoot).
	overlay bool
	co      *checkpoint.Options
	// genSrc: the host file criu mounts for each generated file.
	genSrc map[string]string
	// stdioDone: the stdio keys handed over (a file of the same key is
	// not reopened).
	stdioDone map[string]bool
	copiers   []func()
	spec      *child.RestoreSpec
}

func (c *Container) restore(ctx context.Context, dir string, meta *checkpointMeta, opts *RestoreOptions) error {
	r := &restoreRun{c: c, ctx: ctx, dir: dir, meta: meta, opts: opts, ph: c.newPhases("restore")}
	defer r.finish()
	return r.ph.run(
		phaseStep{phaseImages, r.images},
		phaseStep{phaseRoot, r.rootDir},
		phaseStep{phaseMounts, r.mounts},
		phaseStep{phaseStdio, r.stdio},
		phaseStep{phaseFiles, r.files},
		phaseStep{phaseNetwork, r.network},
		phaseStep{phaseCgroup, r.cgroup},
		phaseStep{phaseCriu, r.criu},
		phaseStep{phaseResume, r.resume},
	)
}

// finish removes what only the restore itself needed.
func (r *restoreRun) finish() {
	r.c.restoreFiles = nil
	for _, cl := range r.closers {
		cl.Close()
	}
	if r.runDir != "" {
		os.RemoveAll(r.runDir)
	}
}

// inherit hands f to criu under key; the restore closes it when done.
func (r *restoreRun) inherit(key string, f *os.File) {
	r.co.InheritFDs = append(r.co.InheritFDs, checkpoint.InheritFD{Key: key, File: f})
	r.closers = append(r.closers, f)
}

// images: a format this vessel restores, and the directory the
// generated files' sources live in while CRIU mounts them.
func (r *restoreRun) images() error {
	if r.meta.Version < 2 {
		return &ConfigError{Field: "dir", Reason: fmt.Sprintf("%s was written by a vessel whose dump held the init (format %d); this vessel restores only format 2 (the workload alone)", r.dir, r.meta.Version)}
	}
	runDir, err := checkpoint.MkdirTemp("vessel-restore-")
	if err != nil {
		return &SetupError{Step: "restore: runtime directory", Err: err}
	}
	r.runDir = runDir
	return nil
}

// rootDir: the root criu restores into, with every mountpoint.
func (r *restoreRun) rootDir() error {
	c, opts := r.c, r.opts
	root := c.cfg.Rootfs.Path
	// overlay: the root is mounted by the fresh init, in its own mount
	// namespace, on an empty directory (child.RestoreRoot), and already
	// holds its mountpoints (made at start, in the writable layer).
	overlay := c.cfg.Rootfs.Kind == rootfs.KindOverlay || c.cfg.Rootfs.Kind == rootfs.KindImage
	r.overlay = overlay
	if overlay {
		root = filepath.Join(r.runDir, "root")
		if err := os.Mkdir(root, 0o755); err != nil {
			return &SetupError{Step: "restore: root mountpoint", Err: err}
		}
	}
	if c.cfg.Rootfs.Kind == rootfs.KindHost {
		// The host's files were mounted, directory by directory, on a
		// root of the container's own: a fresh one (removed with the
		// container) gets the host root's symlinks and the mountpoints;
		// the directories come back as external mounts of the same
		// host paths.
		var err error
		if root, err = hostRestoreRoot(); err != nil {
			return &SetupError{Step: "restore: root for the host's files", Err: err}
		}
		hostRoot := root
		c.addCleanup(func() error { return os.RemoveAll(hostRoot) })
		r.ph.undo(func() { _ = c.runCleanups() })
	}
	r.root = root
	r.co = &checkpoint.Options{
		CriuPath:       opts.CriuPath,
		ImagesDir:      r.dir,
		Root:           root,
		ShellJob:       true,
		FileLocks:      true,
		TCPEstablished: true,
		NetworkLock:    checkpoint.LockNftables,
		RestoreSibling: true,
		Cgroups:        checkpoint.CgroupSoft,
	}
	// Mountpoints a fresh root directory lacks.
	if !overlay {
		if err := makeMountpoints(root, r.meta.Mountpoints); err != nil {
			return &SetupError{Step: "restore: create mountpoints", Path: root, Err: err}
		}
	}
	return nil
}

// mounts: the host source of each external mount: a written copy of a
// generated file, the restore config's bind, or the host's own path.
func (r *restoreRun) mounts() error {
	c := r.c
	gen := map[string][]byte{}
	for _, f := range c.generatedFiles() {
		gen[f.Path] = f.Data
	}
	r.genSrc = map[string]string{}
	for i, m := range r.meta.Mounts {
		var src string
		switch {
		case m.Generated:
			src = filepath.Join(r.runDir, "file-"+strconv.Itoa(i))
			if err := os.WriteFile(src, gen[m.Mountpoint], 0o644); err != nil {
				return &SetupError{Step: "restore: write " + m.Mountpoint, Err: err}
			}
			r.genSrc[m.Mountpoint] = src
		default:
			for _, b := range c.cfg.Mounts {
				if b.Type == rootfs.TypeBind && filepath.Clean(b.Destination) == m.Mountpoint {
					src = b.Source
				}
			}
			if src == "" && c.cfg.Rootfs.Kind == rootfs.KindHost {
				// One of the host's own directories (or device nodes).
				src = m.Mountpoint
			}
			if src == "" {
				return &ConfigError{Field: "mounts", Reason: fmt.Sprintf("the checkpoint has a mount from the host at %s; the restore config binds nothing there", m.Mountpoint)}
			}
		}
		r.co.External = append(r.co.External, checkpoint.ExternalMountSource(m.Key, src))
	}
	return nil
}

// stdio: the standard streams. A caller's *os.File is handed over as it
// is; other readers and writers get a pipe and a copier. Streams that
// were pipes or regular files outside the container (fixImages) take
// whatever is given now.
func (r *restoreRun) stdio() error {
	meta, opts := r.meta, r.opts
	stdioDone := map[string]bool{}
	r.stdioDone = stdioDone
	isFileKey := map[string]bool{}
	for _, ef := range meta.Files {
		isFileKey[ef.Key] = true
	}
	for _, s := range meta.Stdio {
		if stdioDone[s.Key] {
			continue
		}
		var rd io.Reader
		var w io.Writer
		switch s.FD {
		case 0:
			rd = opts.Stdin
		case 1:
			w = opts.Stdout
		case 2:
			w = opts.Stderr
		}
		var stream any = w
		if rd != nil {
			stream = rd
		}
		key := s.Key
		if s.Shared != "" {
			key = s.Shared
		} else if isFileKey[s.Key] {
			continue
		}
		stdioDone[s.Key] = true
		if f, ok := stream.(*os.File); ok && f != nil {
			dup, err := dupFile(f)
			if err != nil {
				return err
			}
			r.inherit(key, dup)
			continue
		}
		switch {
		case rd != nil:
			pr, pw, err := os.Pipe()
			if err != nil {
				return err
			}
			r.inherit(key, pr)
			r.copiers = append(r.copiers, func() { _, _ = io.Copy(pw, rd); pw.Close() })
		case w != nil:
			pr, pw, err := os.Pipe()
			if err != nil {
				return err
			}
			r.inherit(key, pw)
			r.copiers = append(r.copiers, func() { _, _ = io.Copy(w, pr); pr.Close() })
		default:
			mode := os.O_WRONLY
			if s.FD == 0 {
				mode = os.O_RDONLY
			}
			f, err := os.OpenFile(os.DevNull, mode, 0)
			if err != nil {
				return err
			}
			r.inherit(key, f)
		}
	}
	return nil
}

// files: the other files open outside the container's mounts.
func (r *restoreRun) files() error {
	for _, ef := range r.meta.Files {
		if r.stdioDone[ef.Key] {
			continue
		}
		f, err := os.OpenFile(ef.Path, ef.Flags&unix.O_ACCMODE|unix.O_CLOEXEC, 0)
		if err != nil {
			return &SetupError{Step: "restore: reopen " + ef.Path, Path: ef.Path, Err: err}
		}
		r.inherit(ef.Key, f)
	}
	return nil
}

// network: the network namespace, the fresh init's (made, or joined by
// path), handed to criu by the init after the files above.
func (r *restoreRun) network() error {
	c, meta := r.c, r.meta
	r.spec = &child.RestoreSpec{}
	if r.overlay {
		// The layers are filled in by start, once storage.Prepare has
		// found them.
		r.spec.Root = &child.RestoreRoot{Target: r.root}
	}
	if meta.NetnsKey != "" {
		r.spec.NetnsFD = true
		r.co.InheritLaunched = []string{meta.NetnsKey}
	}
	if !c.cfg.Namespaces.Has(namespaces.Net) && meta.NetnsKey != "" || c.cfg.network().Mode == network.ModeHost && meta.NetnsKey != "" {
		return &ConfigError{Field: "network", Reason: "the checkpoint had a network namespace apart from the host's; the restore config shares the host's"}
	}
	return nil
}

// cgroup: the new container's, as the root of the restored tree's (the
// directories are created when the init starts, before criu runs).
func (r *restoreRun) cgroup() error {
	c := r.c
	if c.cfg.Cgroup.Disabled {
		return nil
	}
	m, err := cgroups.New(c.cgroupOptions())
	if err != nil {
		return &ConfigError{Field: "cgroup", Reason: err.Error()}
	}
	roots, err := cgroupRoots(m.State().Dirs)
	if err != nil {
		return &SetupError{Step: "restore: cgroup paths", Err: err}
	}
	r.co.CgroupRoots = roots
	return nil
}

// criu: the init, started with criu as its main process, and criu's
// restore.
func (r *restoreRun) criu() error {
	c, ctx, co, meta, opts, spec := r.c, r.ctx, r.co, r.meta, r.opts, r.spec
	// A checkpoint taken paused restores paused: the tree is frozen
	// before CRIU lets it run (criu itself is not in the container's
	// freezer cgroup: not in the v1 one, and on v2 the init it runs under
	// has left the container's cgroup).
	if meta.Paused {
		co.Notify = func(event string, _ int) error {
			if event != "pre-resume" {
				return nil
			}
			c.mu.Lock()
			cg := c.cg
			c.mu.Unlock()
			if cg == nil {
				return errors.New("no cgroup to keep the restored container paused in")
			}
			return cg.Freeze()
		}
	}

	// criu runs as the fresh init's main process: the restored tree,
	// restored as criu's sibling, becomes the init's child, as a started
	// workload is (see child.RestoreSpec).
	args := c.cfg.Process.Args
	if len(args) == 0 {
		args = []string{"(restored)"}
	}
	co.LaunchCriu = func(cmd *exec.Cmd) (func() error, func(), error) {
		spec.Args = append([]string{cmd.Path}, cmd.Args[1:]...)
		spec.Env = cmd.Environ()
		c.mu.Lock()
		c.restoreSpec = spec
		c.ExtraFiles = cmd.ExtraFiles
		c.mu.Unlock()
		started := make(chan error, 1)
		go func() { started <- c.Start(ctx, args...) }()
		var startErr error
		done := false
		wait := func() error {
			if !done {
				startErr, done = <-started, true
			}
			c.mu.Lock()
			c.restoreSpec, c.ExtraFiles = nil, nil
			c.mu.Unlock()
			return startErr
		}
		// The caller closes its copy of criu's descriptors once this
		// returns: the init must hold them by then.
		for {
			c.mu.Lock()
			forked := c.initPid != 0
			c.mu.Unlock()
			if forked {
				break
			}
			select {
			case startErr = <-started:
				done = true
				if startErr == nil {
					startErr = errors.New("restore: the init started without criu")
				}
				return nil, nil, startErr
			case <-time.After(time.Millisecond):
			}
		}
		kill := func() {
			c.mu.Lock()
			cmd := c.cmd
			c.mu.Unlock()
			if cmd != nil && cmd.Process != nil {
				_ = cmd.Process.Kill()
			}
		}
		return wait, kill, nil
	}
	// The network's own files (a bridge's /etc/hosts with the address)
	// are known once the init's network is set up, before criu runs.
	c.restoreFiles = func(files []rootfs.File) error {
		for _, f := range files {
			if src, ok := r.genSrc[f.Path]; ok {
				if err := os.WriteFile(src, f.Data, 0o644); err != nil {
					return &SetupError{Step: "restore: write " + f.Path, Err: err}
				}
			}
		}
		return nil
	}
	c.Stdin, c.Stdout, c.Stderr = nil, nil, nil
	if c.cfg.Process.TTY {
		// The container's terminal: criu makes a new pair where the old
		// one was and gives the master here; start copies it to and from
		// the caller's streams, as for a started container.
		c.Stdin, c.Stdout = opts.Stdin, opts.Stdout
		co.PTSMaster = func(master *os.File) {
			c.mu.Lock()
			if c.pty != nil {
				c.pty.Close()
			}
			c.pty = master
			c.mu.Unlock()
		}
	}
	// Start cleans up after itself if it fails; if it got as far as a
	// running init, that goes too.
	r.ph.undo(func() { _ = c.Destroy() })
	_, _, err := checkpoint.Restore(ctx, co)
	return err
}

// resume: the streams' copiers start, and a checkpoint taken paused
// makes a paused container.
func (r *restoreRun) resume() error {
	c := r.c
	for _, cl := range r.closers {
		cl.Close()
	}
	r.closers = nil
	for _, f := range r.copiers {
		go f()
	}
	if r.meta.Paused {
		c.mu.Lock()
		c.paused = c.cg != nil
		c.mu.Unlock()
	}
	return nil
}

// hostRestoreRoot makes the directory a container on the host's files is
// restored on: the symlinks of the host's root (/bin -> usr/bin, ...).
func hostRestoreRoot() (string, error) {
	dir, err := checkpoint.MkdirTemp("vessel-restore-root-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	ents, err := os.ReadDir("/")
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	for _, e := range ents {
		if e.Type()&os.ModeSymlink == 0 {
			continue
		}
		target, err := os.Readlink("/" + e.Name())
		if err != nil {
			continue
		}
		if err := os.Symlink(target, filepath.Join(dir, e.Name())); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

// cgroupRoots maps each hierarchy's controllers to the cgroup path (as
// /proc/self/cgroup shows it) of a directory in it.
func cgroupRoots(dirs map[string]string) (map[string]string, error) {
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for key, dir := range dirs {
		var best *mountinfo.Info
		for _, m := range mounts {
			if (dir == m.Mountpoint || strings.HasPrefix(dir, m.Mountpoint+"/")) && (best == nil || len(m.Mountpoint) > len(best.Mountpoint)) {
				best = m
			}
		}
		if best == nil {
			return nil, fmt.Errorf("no cgroup mount holds %s", dir)
		}
		p := filepath.Join(best.Root, strings.TrimPrefix(dir, best.Mountpoint))
		ctrl := key
		if best.FSType == "cgroup2" {
			ctrl = ""
		}
		out[ctrl] = p
	}
	return out, nil
}

// MigrationSource adapts the container to checkpoint.Migrate: each round
// is a DumpRound with opts.
func (c *Container) MigrationSource(opts *CheckpointOptions) checkpoint.Source {
	return migrationSource{c: c, opts: opts}
}

type migrationSource struct {
	c    *Container
	opts *CheckpointOptions
}

func (s migrationSource) DumpRound(ctx context.Context, dir, parent string, final bool) (*checkpoint.Stats, error) {
	if !final && !checkpoint.MemoryTracking(ctx, s.optsOrZero().CriuPath) {
		return nil, checkpoint.ErrNoMemoryTracking
	}
	return s.c.DumpRound(ctx, dir, parent, final, s.opts)
}

// FinalDump implements checkpoint.HandoffSource: a receiver that fails to
// restore leaves the container running here.
func (s migrationSource) FinalDump(ctx context.Context, dir, parent string, handoff func() error) (*checkpoint.Stats, error) {
	return s.c.dumpRound(ctx, dir, parent, true, s.opts, checkpoint.RoundOptions{Handoff: handoff})
}

// Round implements checkpoint.RoundSource: memory pages through the
// receiver's page server.
func (s migrationSource) Round(ctx context.Context, dir, parent string, final bool, ro checkpoint.RoundOptions) (*checkpoint.Stats, error) {
	if !final && !s.MemoryTracking(ctx) {
		return nil, checkpoint.ErrNoMemoryTracking
	}
	return s.c.dumpRound(ctx, dir, parent, final, s.opts, ro)
}

// MemoryTracking implements checkpoint.RoundSource.
func (s migrationSource) MemoryTracking(ctx context.Context) bool {
	return checkpoint.MemoryTracking(ctx, s.optsOrZero().CriuPath)
}

func (s migrationSource) optsOrZero() *CheckpointOptions {
	if s.opts == nil {
		return &CheckpointOptions{}
	}
	return s.opts
}

// makeMountpoints creates the missing mountpoints under root. Those
// inside another mount (/proc/acpi in /proc) belong to that mount.
func makeMountpoints(root string, points []string) error {
	mounted := map[string]bool{}
	for _, mp := range points {
		mounted[filepath.Clean(mp)] = true
	}
	nested := func(p string) bool {
		for d := filepath.Dir(p); d != "/" && d != "."; d = filepath.Dir(d) {
			if mounted[d] {
				return true
			}
		}
		return false
	}
	for _, mp := range points {
		if nested(filepath.Clean(mp)) {
			continue
		}
		dir := strings.HasSuffix(mp, "/")
		rel := strings.TrimPrefix(filepath.Clean("/"+mp), "/")
		if rel == "" {
			continue
		}
		p := filepath.Join(root, rel)
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		parent := filepath.Dir(p)
		if fi, err := os.Lstat(parent); err != nil || !fi.IsDir() {
			continue
		}
		if dir {
			if err := os.Mkdir(p, 0o755); err != nil && !os.IsExist(err) {
				return err
			}
			continue
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o644)
		if err != nil && !os.IsExist(err) {
			return err
		}
		if f != nil {
			f.Close()
		}
	}
	return nil
}

// dupFile returns a new descriptor for f's open file.
func dupFile(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}
