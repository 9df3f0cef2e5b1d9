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
	"github.com/openvessel/vessel/internal/initproto"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/network"
	"github.com/openvessel/vessel/rootfs"
)

// How a container maps onto CRIU (see also package checkpoint):
//
//   - The dumped tree is rooted at the container's init (PID 1 of its pid
//     namespace); the user's processes are its descendants. The init's
//     session lies outside the tree, so dumps are "shell jobs".
//   - The init's control socket (descriptor 3) has its peer in the
//     program that started the container, outside the tree. It is dumped
//     as an external unix socket; Restore makes a fresh socket pair and
//     hands one end to CRIU with --inherit-fd, so the restored init talks
//     to the restoring program exactly as it talked to the original one
//     (its reader goroutine's recvmsg simply restarts on the new socket).
//   - The init's standard streams (pipes to the starting program, or the
//     host's /dev/null) are external too: Restore gives new ones, wired to
//     RestoreOptions.Stdin/Stdout/Stderr. So are files the init holds
//     open outside the container's mounts (the Go runtime keeps the cgroup
//     CPU quota files open): they are reopened on the restoring host, in
//     the restored container's own cgroup.
//   - The root mount becomes CRIU's --root (the restore config's rootfs
//     directory). Bind mounts from the host are external mounts, keyed
//     by their mountpoint and resolved at restore from the restore
//     config's binds (so they may move). /etc/hostname, /etc/hosts and
//     /etc/resolv.conf are regenerated. proc, sysfs, devpts, mqueue and
//     the container's own tmpfs mounts are recreated by CRIU.
//   - A network namespace joined by path (network.Netns) is external: the
//     restore config's namespace path replaces it, which is how a
//     container moves to another "host". A namespace of the container's
//     own is dumped and recreated by CRIU (loopback, addresses, routes).
//   - The cgroup is the restore config's: created as Start creates it, and
//     CRIU is told to use it as the root of the restored tree's cgroups.
//   - The restored init is restored as a sibling of criu, i.e. a child of
//     this program (on the thread that forks containers), so Wait, Kill,
//     Exec and Destroy work as for a started container.

// checkpointMetaFile is vessel's own description of a checkpoint, next to
// CRIU's images.
const checkpointMetaFile = "vessel.json"

// exeKey names the init's executable among a checkpoint's external files.
const exeKey = "vessel-exe"

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
type checkpointMeta struct {
	Version   int            `json:"version"`
	ID        string         `json:"id"`
	Config    *Config        `json:"config"`
	MainNSPid int            `json:"mainNSPid"`
	Paused    bool           `json:"paused,omitempty"`
	CtlKey    string         `json:"ctlKey"`
	Stdio     []stdioFile    `json:"stdio,omitempty"`
	Files     []externalFile `json:"files,omitempty"`
	Mounts    []externalMnt  `json:"mounts,omitempty"`
	// Mountpoints are every mount's target below the root (files end
	// without a slash, directories with one): Restore creates those a
	// new root directory lacks, as Start does.
	Mountpoints []string `json:"mountpoints,omitempty"`
	NetnsKey    string   `json:"netnsKey,omitempty"`
	// ExeKey is the external key of the init's executable when it ran
	// from a read-only bind of the program (see selfExe): restore hands
	// this program's binary under that key. Empty for a memfd copy, whose
	// link checkpoint.ExternalExe rewrites to exeKey instead.
	ExeKey  string    `json:"exeKey,omitempty"`
	Created time.Time `json:"created"`
}

// stdioFile is one of the init's standard streams.
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
	// Path is the file's host path; Cgroup means it is relative to the
	// container's cgroup directory.
	Path   string `json:"path"`
	Cgroup bool   `json:"cgroup,omitempty"`
	Flags  int    `json:"flags"`
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
		return nil, &ConfigError{Field: "PreDumps", Reason: fmt.Sprintf("%d is outside 0..64", opts.PreDumps)}
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

// DumpRound runs one CRIU round on the container into dir: a pre-dump
// (final false: memory only, the container keeps running) or the final
// dump. parent, when not empty, is the directory of the previous pre-dump;
// only memory changed since it is written. It is the building block of
// Checkpoint and of live migration (checkpoint.Migrate).
func (c *Container) DumpRound(ctx context.Context, dir, parent string, final bool, opts *CheckpointOptions) (*checkpoint.Stats, error) {
	return c.dumpRound(ctx, dir, parent, final, opts, nil)
}

// dumpRound is DumpRound; handoff, for a final dump, runs while the
// container is frozen with complete images (checkpoint.Options.Handoff).
func (c *Container) dumpRound(ctx context.Context, dir, parent string, final bool, opts *CheckpointOptions, handoff func() error) (*checkpoint.Stats, error) {
	if opts == nil {
		opts = &CheckpointOptions{}
	}
	c.mu.Lock()
	running := c.status == Running && c.initPid > 0
	initPid, paused, cg := c.initPid, c.paused, c.cg
	c.mu.Unlock()
	if !running {
		return nil, ErrNotRunning
	}
	if !c.cfg.Namespaces.IsNew(namespaces.PID) || !c.cfg.Namespaces.IsNew(namespaces.Mount) {
		return nil, &ConfigError{Field: "namespaces", Reason: "checkpoint needs the container's own pid and mount namespaces"}
	}
	// What CRIU would refuse is refused here, before anything is frozen.
	if err := checkpoint.Check(initPid); err != nil {
		return nil, err
	}
	meta, external, err := c.describeForDump(initPid)
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
	}
	if !final {
		co.LeaveRunning = true
	}
	if cg != nil {
		// The freezer Pause uses: CRIU must thaw what Pause froze.
		if d, ok := cg.Path("unified"); ok && fileExists(filepath.Join(d, "cgroup.freeze")) {
			co.FreezeCgroup = d
		} else if d, ok := cg.Path("freezer"); ok {
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
		st, err := checkpoint.Dump(ctx, initPid, co)
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
	return checkpoint.PreDump(ctx, initPid, co)
}

// fixImages rewrites what CRIU would restore badly: a memfd executable
// (checkpoint.ExternalExe), and standard streams that were regular files
// outside the container (checkpoint.ShareExternalFile: at restore they
// become whatever the restoring program gives, file, pipe or terminal).
// Idempotent.
func fixImages(dir string, meta *checkpointMeta) error {
	if _, err := checkpoint.ExternalExe(dir, exeKey); err != nil {
		return &SetupError{Step: "checkpoint: rewrite executable link", Err: err}
	}
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

// describeForDump inspects the running container and returns what a
// restore needs to know, and CRIU's --external list for it.
func (c *Container) describeForDump(initPid int) (*checkpointMeta, []string, error) {
	meta := &checkpointMeta{Version: 1, ID: c.id, Config: c.cfg.clone(), Created: time.Now()}
	c.mu.Lock()
	mainPid := c.mainPid
	c.mu.Unlock()
	if mainPid > 0 {
		if n, err := nsPid(mainPid); err == nil {
			meta.MainNSPid = n
		}
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", initPid))
	if err != nil {
		return nil, nil, err
	}
	mounts, err := mountinfo.GetMountsFromReader(f, nil)
	f.Close()
	if err != nil {
		return nil, nil, err
	}
	var external []string
	if key, err := exeExternalKey(initPid); err != nil {
		return nil, nil, err
	} else if key != "" {
		meta.ExeKey = key
		external = append(external, key)
	}
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
		if fi, err := os.Stat(fmt.Sprintf("/proc/%d/root%s", initPid, m.Mountpoint)); err == nil && !fi.IsDir() {
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
		em := externalMnt{Key: key, Mountpoint: m.Mountpoint, Generated: generatedFilePaths[m.Mountpoint] && m.FSType == "tmpfs"}
		if fi, err := os.Stat(fmt.Sprintf("/proc/%d/root%s", initPid, m.Mountpoint)); err == nil && !fi.IsDir() {
			em.File = true
		}
		meta.Mounts = append(meta.Mounts, em)
		external = append(external, checkpoint.ExternalMount(m.Mountpoint, key))
	}
	seen := map[string]bool{}
	for _, pid := range treePids(initPid) {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			link, err := os.Readlink(filepath.Join(dir, e.Name()))
			if err != nil {
				continue
			}
			fd, _ := strconv.Atoi(e.Name())
			switch {
			case pid == initPid && fd == child.ControlFD && strings.HasPrefix(link, "socket:["):
				ino, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
				meta.CtlKey = link
				external = append(external, checkpoint.ExternalUnix(ino))
			case pid == initPid && fd <= 2 && strings.HasPrefix(link, "pipe:["):
				meta.Stdio = append(meta.Stdio, stdioFile{FD: fd, Key: link})
			case strings.HasPrefix(link, "/"):
				mnt, flags, err := fdInfo(pid, e.Name())
				if err != nil || inNS[mnt] {
					continue
				}
				var st unix.Stat_t
				if err := unix.Stat(filepath.Join(dir, e.Name()), &st); err != nil {
					continue
				}
				key := checkpoint.ExternalFile(mnt, st.Ino)
				if seen[key] {
					continue
				}
				seen[key] = true
				ef := externalFile{Key: key, Path: link, Flags: flags & (unix.O_ACCMODE | unix.O_APPEND)}
				var sfs unix.Statfs_t
				if unix.Statfs(filepath.Join(dir, e.Name()), &sfs) == nil && (sfs.Type == unix.CGROUP_SUPER_MAGIC || sfs.Type == unix.CGROUP2_SUPER_MAGIC) {
					ef.Cgroup = true
				}
				meta.Files = append(meta.Files, ef)
				external = append(external, key)
				if pid == initPid && fd <= 2 {
					meta.Stdio = append(meta.Stdio, stdioFile{FD: fd, Key: key, Shared: "vessel-stdio-" + strconv.Itoa(fd)})
				}
			}
		}
	}
	if meta.CtlKey == "" {
		return nil, nil, errors.New("the init's control socket is not at descriptor 3")
	}
	if n, ok := c.cfg.Namespaces.Get(namespaces.Net); ok && n.Path != "" {
		var st unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", initPid), &st); err != nil {
			return nil, nil, err
		}
		meta.NetnsKey = "vessel-netns"
		external = append(external, checkpoint.ExternalNetns(st.Ino, meta.NetnsKey))
	}
	return meta, external, nil
}

// exeExternalKey returns the CRIU external key of pid's executable when it
// is not a memfd: a read-only bind of the program lives on a detached
// mount CRIU cannot find, so it is named as an external file instead.
func exeExternalKey(pid int) (string, error) {
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(link, "/memfd:") {
		return "", nil
	}
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/exe", pid), unix.O_PATH, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", err
	}
	mnt, _, err := fdInfo(os.Getpid(), strconv.Itoa(int(f.Fd())))
	if err != nil {
		return "", err
	}
	return checkpoint.ExternalFile(mnt, st.Ino), nil
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
	if meta.Version != 1 || meta.Config == nil {
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
	if cfg.Rootfs.Kind != rootfs.KindDir || cfg.Rootfs.Path == "" {
		return nil, &ConfigError{Field: "rootfs", Reason: "restore needs a root filesystem directory (rootfs.Dir)"}
	}
	c, err := New(id, cfg)
	if err != nil {
		return nil, err
	}
	c.Stdin, c.Stdout, c.Stderr = opts.Stdin, opts.Stdout, opts.Stderr
	if err := reclaimStaleCgroup(id, cfg.Cgroup); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.status = Running
	c.mu.Unlock()
	if err := c.restore(ctx, dir, meta, opts); err != nil {
		c.mu.Lock()
		c.status = Created
		c.mu.Unlock()
		c.runCleanups()
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

func (c *Container) restore(ctx context.Context, dir string, meta *checkpointMeta, opts *RestoreOptions) error {
	if err := c.setupCgroup(); err != nil {
		return err
	}
	// The generated files' sources are needed only while CRIU mounts
	// them; the directory goes as soon as the restore returns.
	runDir, err := checkpoint.MkdirTemp("vessel-restore-")
	if err != nil {
		return &SetupError{Step: "restore: runtime directory", Err: err}
	}
	defer os.RemoveAll(runDir)
	var closers []io.Closer
	defer func() {
		for _, cl := range closers {
			cl.Close()
		}
	}()
	co := &checkpoint.Options{
		CriuPath:       opts.CriuPath,
		ImagesDir:      dir,
		Root:           c.cfg.Rootfs.Path,
		ShellJob:       true,
		FileLocks:      true,
		TCPEstablished: true,
		NetworkLock:    checkpoint.LockNftables,
		RestoreSibling: true,
		Cgroups:        checkpoint.CgroupSoft,
		StartCriu: func(cmd *exec.Cmd) error {
			var err error
			onForkThread(func() { err = cmd.Start() })
			return err
		},
	}
	inherit := func(key string, f *os.File) {
		co.InheritFDs = append(co.InheritFDs, checkpoint.InheritFD{Key: key, File: f})
		closers = append(closers, f)
	}

	// Mountpoints a fresh root directory lacks.
	if err := makeMountpoints(c.cfg.Rootfs.Path, meta.Mountpoints); err != nil {
		return &SetupError{Step: "restore: create mountpoints", Path: c.cfg.Rootfs.Path, Err: err}
	}

	// Mounts.
	gen := map[string][]byte{}
	for _, f := range c.generatedFiles() {
		gen[f.Path] = f.Data
	}
	for i, m := range meta.Mounts {
		var src string
		switch {
		case m.Generated:
			src = filepath.Join(runDir, "file-"+strconv.Itoa(i))
			if err := os.WriteFile(src, gen[m.Mountpoint], 0o644); err != nil {
				return &SetupError{Step: "restore: write " + m.Mountpoint, Err: err}
			}
		default:
			for _, b := range c.cfg.Mounts {
				if b.Type == rootfs.TypeBind && filepath.Clean(b.Destination) == m.Mountpoint {
					src = b.Source
				}
			}
			if src == "" {
				return &ConfigError{Field: "mounts", Reason: fmt.Sprintf("the checkpoint has a mount from the host at %s; the restore config binds nothing there", m.Mountpoint)}
			}
		}
		co.External = append(co.External, checkpoint.ExternalMountSource(m.Key, src))
	}

	// The control socket.
	ctl, childSock, err := initproto.ParentPair()
	if err != nil {
		return &SetupError{Step: "socketpair", Err: err}
	}
	inherit(meta.CtlKey, childSock)
	ctlOK := false
	defer func() {
		if !ctlOK {
			ctl.Close()
		}
	}()

	// Standard streams. A caller's *os.File is handed over as it is; other
	// readers and writers get a pipe and a copier, for streams that were
	// pipes. Streams that were files (the host's /dev/null, a terminal)
	// and have no *os.File replacement are reopened by path below, since
	// CRIU restores their position.
	var copiers []func()
	stdioDone := map[string]bool{}
	isFileKey := map[string]bool{}
	for _, ef := range meta.Files {
		isFileKey[ef.Key] = true
	}
	for _, s := range meta.Stdio {
		if stdioDone[s.Key] {
			continue
		}
		var r io.Reader
		var w io.Writer
		switch s.FD {
		case 0:
			r = c.Stdin
		case 1:
			w = c.Stdout
		case 2:
			w = c.Stderr
		}
		// A file is handed over as it is (a copy of its descriptor).
		var stream any = w
		if r != nil {
			stream = r
		}
		key := s.Key
		if s.Shared != "" {
			// A regular file at dump, shared with whatever this program
			// gives now (fixImages): handled like a pipe.
			key = s.Shared
			stdioDone[s.Key] = true
		} else if isFileKey[s.Key] {
			// Older images: reopened by path below.
			continue
		}
		if f, ok := stream.(*os.File); ok && f != nil {
			dup, err := dupFile(f)
			if err != nil {
				return err
			}
			inherit(key, dup)
			stdioDone[s.Key] = true
			continue
		}
		stdioDone[s.Key] = true
		switch {
		case r != nil:
			pr, pw, err := os.Pipe()
			if err != nil {
				return err
			}
			inherit(key, pr)
			copiers = append(copiers, func() { _, _ = io.Copy(pw, r); pw.Close() })
		case w != nil:
			pr, pw, err := os.Pipe()
			if err != nil {
				return err
			}
			inherit(key, pw)
			copiers = append(copiers, func() { _, _ = io.Copy(w, pr); pr.Close() })
		default:
			mode := os.O_WRONLY
			if s.FD == 0 {
				mode = os.O_RDONLY
			}
			f, err := os.OpenFile(os.DevNull, mode, 0)
			if err != nil {
				return err
			}
			inherit(key, f)
		}
	}

	// The init's executable link (and its mappings of the binary): the
	// restored init points at this program, through its read-only bind
	// when it has one. A memfd copy was rewritten into an external file
	// at dump (checkpoint.ExternalExe; again here for older images).
	key := meta.ExeKey
	if key == "" {
		key = exeKey
		if _, err := checkpoint.ExternalExe(dir, exeKey); err != nil {
			return &SetupError{Step: "restore: rewrite executable link", Err: err}
		}
	}
	exePath := "/proc/self/exe"
	if p, err := selfExe(); err == nil {
		exePath = p
	}
	exe, err := os.Open(exePath)
	if err != nil {
		return &SetupError{Step: "restore: open executable", Path: exePath, Err: err}
	}
	inherit(key, exe)

	// Files open outside the container's mounts.
	for _, ef := range meta.Files {
		if stdioDone[ef.Key] {
			continue
		}
		p := ef.Path
		if ef.Cgroup {
			p = c.cgroupFile(filepath.Base(ef.Path))
			if p == "" {
				p = os.DevNull
			}
		}
		f, err := os.OpenFile(p, ef.Flags&unix.O_ACCMODE|unix.O_CLOEXEC, 0)
		if err != nil {
			return &SetupError{Step: "restore: reopen " + ef.Path, Path: p, Err: err}
		}
		inherit(ef.Key, f)
	}

	// The network namespace.
	if meta.NetnsKey != "" {
		n, ok := c.cfg.Namespaces.Get(namespaces.Net)
		if !ok || n.Path == "" {
			return &ConfigError{Field: "network", Reason: "the checkpoint joined a network namespace; restore needs one too (network.Netns(path))"}
		}
		f, err := os.Open(n.Path)
		if err != nil {
			return &ConfigError{Field: "network.netnsPath", Reason: err.Error()}
		}
		inherit(meta.NetnsKey, f)
	} else if c.cfg.network().Mode == network.ModeNetns {
		return &ConfigError{Field: "network", Reason: "the checkpoint has a network namespace of its own; it cannot be restored into a joined one"}
	}

	// The cgroup: the new container's, as the root of the restored tree's.
	if c.cg != nil {
		roots, err := cgroupRoots(c.cg.State().Dirs)
		if err != nil {
			return &SetupError{Step: "restore: cgroup paths", Err: err}
		}
		co.CgroupRoots = roots
	}

	if meta.Paused && c.cg != nil {
		// Freeze the restored tree before CRIU lets it run.
		co.Notify = func(event string, _ int) error {
			if event == "pre-resume" {
				return c.cg.Freeze()
			}
			return nil
		}
	}
	pid, _, err := checkpoint.Restore(ctx, co)
	if err != nil {
		return err
	}
	for _, cl := range closers {
		cl.Close()
	}
	closers = nil
	proc, err := os.FindProcess(pid)
	if err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		return err
	}
	ctlOK = true
	for _, f := range copiers {
		go f()
	}
	c.adoptRestored(ctx, proc, ctl, meta)
	return nil
}

// cgroupFile returns the path of a control file in the container's cgroup.
func (c *Container) cgroupFile(name string) string {
	if c.cg == nil {
		return ""
	}
	for _, d := range c.cg.State().Dirs {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
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

// adoptRestored makes c the running container whose init was just
// restored (a child of this program).
func (c *Container) adoptRestored(ctx context.Context, proc *os.Process, ctl *initproto.Conn, meta *checkpointMeta) {
	mainPid := 0
	for _, p := range treePids(proc.Pid)[1:] {
		if n, err := nsPid(p); err == nil && n == meta.MainNSPid {
			mainPid = p
			break
		}
	}
	c.mu.Lock()
	c.cmd = &exec.Cmd{Path: "vessel-init", Process: proc}
	c.ctl = ctl
	c.initPid = proc.Pid
	c.mainPid = mainPid
	c.startedAt = time.Now()
	c.status = Running
	c.ctlDone = make(chan struct{})
	c.sess = newSession(ctl)
	c.mu.Unlock()
	c.follow(ctx)
	if meta.Paused && c.cg != nil {
		c.mu.Lock()
		c.paused = true
		c.mu.Unlock()
	}
	c.afterStart(ctx)
}

// swapControl takes the new control socket from the init's child.TypeControl
// message; the old one is closed.
func swapControl(old *initproto.Conn, r *initproto.Received) (*initproto.Conn, bool) {
	if len(r.Files) != 1 {
		initproto.CloseFiles(r.Files)
		return old, false
	}
	n, err := initproto.Polled(r.Files[0])
	if err != nil {
		return old, false
	}
	old.Close()
	return n, true
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
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
	return s.c.dumpRound(ctx, dir, parent, true, s.opts, handoff)
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
