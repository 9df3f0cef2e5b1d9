package storage

import (
	"context"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/rootfs"
)

// Project quotas (XFS and ext4) through quotactl_fd(2) and the fsxattr
// ioctls; x/sys has neither the structs nor the constants.
const (
	fsIocFsGetXattr    = 0x801c581f // _IOR('X', 31, struct fsxattr)
	fsIocFsSetXattr    = 0x401c5820 // _IOW('X', 32, struct fsxattr)
	fsXflagProjInherit = 0x00000200

	qXSetQLim   = 0x5804 // XQM_CMD(4)
	qXGetQStat  = 0x5805 // XQM_CMD(5)
	prjQuota    = 2
	fsProjQuota = 2 // fs_disk_quota.d_flags
	fsDqBSoft   = 1 << 2
	fsDqBHard   = 1 << 3
	fsDqIHard   = 1 << 1
	fsDqISoft   = 1 << 0
	fsQuotaPEnf = 1 << 5 // FS_QUOTA_PDQ_ENFD in fs_quota_stat.qs_flags
)

type fsxattr struct {
	Xflags     uint32
	Extsize    uint32
	Nextents   uint32
	Projid     uint32
	Cowextsize uint32
	Pad        [8]byte
}

type fsDiskQuota struct {
	Version      int8
	Flags        int8
	Fieldmask    uint16
	ID           uint32
	BlkHardlimit uint64
	BlkSoftlimit uint64
	InoHardlimit uint64
	InoSoftlimit uint64
	Bcount       uint64
	Icount       uint64
	Itimer       int32
	Btimer       int32
	Iwarns       uint16
	Bwarns       uint16
	ItimerHi     int8
	BtimerHi     int8
	RtbtimerHi   int8
	Padding2     int8
	RtbHardlimit uint64
	RtbSoftlimit uint64
	Rtbcount     uint64
	Rtbtimer     int32
	Rtbwarns     uint16
	Padding3     int16
	Padding4     [8]byte
}

func quotactlFd(fd int, cmd, id uint32, addr unsafe.Pointer) error {
	_, _, e := unix.Syscall6(unix.SYS_QUOTACTL_FD, uintptr(fd), uintptr(cmd), uintptr(id), uintptr(addr), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// projectQuotaMethod reports whether dir's filesystem enforces project
// quotas, and which kind ("xfs-project" or "ext4-project").
func projectQuotaMethod(dir string) (string, bool) {
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil {
		return "", false
	}
	var method string
	switch sfs.Type {
	case unix.XFS_SUPER_MAGIC:
		method = rootfs.QuotaXFSProject
	case unix.EXT4_SUPER_MAGIC:
		method = rootfs.QuotaExt4Project
	default:
		return "", false
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", false
	}
	defer unix.Close(fd)
	var stat [128]byte // struct fs_quota_stat; qs_flags is the u16 at offset 2
	if err := quotactlFd(fd, qXGetQStat<<8|prjQuota, 0, unsafe.Pointer(&stat[0])); err != nil {
		return "", false
	}
	flags := uint16(stat[2]) | uint16(stat[3])<<8
	return method, flags&fsQuotaPEnf != 0
}

// projectID is the project of dir: the one it already has, or one derived
// from its path.
func projectID(fd int, dir string) (uint32, error) {
	var x fsxattr
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), fsIocFsGetXattr, uintptr(unsafe.Pointer(&x))); e != 0 {
		return 0, fmt.Errorf("FS_IOC_FSGETXATTR %s: %w", dir, e)
	}
	if x.Projid != 0 {
		return x.Projid, nil
	}
	h := fnv.New32a()
	h.Write([]byte(dir))
	return 1<<30 | h.Sum32()&(1<<30-1), nil
}

func setProjid(fd int, id uint32) error {
	var x fsxattr
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), fsIocFsGetXattr, uintptr(unsafe.Pointer(&x))); e != 0 {
		return e
	}
	x.Projid = id
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		x.Xflags |= fsXflagProjInherit
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), fsIocFsSetXattr, uintptr(unsafe.Pointer(&x))); e != 0 {
		return e
	}
	return nil
}

// setProjectQuota tags dir and everything in it with a project and limits
// the project to bytes (0 removes the limit).
func setProjectQuota(dir string, bytes, inodes int64) (uint32, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	id, err := projectID(fd, dir)
	if err != nil {
		return 0, err
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil // the ioctl needs an open file; links and nodes take no blocks
		}
		f, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return err
		}
		defer unix.Close(f)
		if err := setProjid(f, id); err != nil {
			return fmt.Errorf("set project of %s: %w", p, err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	q := fsDiskQuota{
		Version:      1,
		Flags:        fsProjQuota,
		Fieldmask:    fsDqBSoft | fsDqBHard,
		ID:           id,
		BlkHardlimit: uint64(bytes) / 512,
		BlkSoftlimit: uint64(bytes) / 512,
	}
	if inodes > 0 {
		q.Fieldmask |= fsDqIHard
		q.InoHardlimit = uint64(inodes)
	}
	if err := quotactlFd(fd, qXSetQLim<<8|prjQuota, id, unsafe.Pointer(&q)); err != nil {
		return 0, fmt.Errorf("set project quota %d on %s: %w", id, dir, err)
	}
	return id, nil
}

// makeExt4Image creates a sparse file of size bytes at path holding an
// ext4 filesystem with the given empty directories at its root.
func makeExt4Image(ctx context.Context, path string, size, inodes int64, dirs ...string) error {
	seed, err := os.MkdirTemp(filepath.Dir(path), ".seed-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(seed)
	for _, d := range dirs {
		if err := os.Mkdir(filepath.Join(seed, d), 0o755); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("mkfs.ext4 not found (install Debian's e2fsprogs): %w", err)
	}
	// -m 0: no blocks reserved for root, the quota is the container's.
	args := []string{"-q", "-F", "-m", "0", "-E", "root_owner=0:0,nodiscard", "-d", seed}
	if inodes > 0 {
		// At least ext4's own reserved inodes and the seed's entries.
		args = append(args, "-N", strconv.FormatInt(max(inodes, 16), 10))
	}
	cmd := exec.CommandContext(ctx, mkfs, append(args, path)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(path)
		return fmt.Errorf("mkfs.ext4 %s: %v: %s", path, err, out)
	}
	return nil
}
