package main

import (
	"errors"
	"fmt"
	"github.com/spf13/pflag"
	"strings"
	"time"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/limits"
)

// accountFlags are `run`'s flags for system containers: --boot, and the
// limits of the resources `vessel beancounters` reports that have no
// Docker flag (ptys, shared memory, TCP buffers, inodes) and usage
// sampling. Open files, locked memory and pending signals are --ulimit
// nofile=, memlock=, sigpending=.
type accountFlags struct {
	boot          bool
	ptys          int64
	shmSize       string
	sysvShm       string
	socketBuffers string
	diskInodes    int64
	usageSampling time.Duration
}

// flagAdder is what register needs of a flag set: the standard library's
// and pflag's both have these methods.
type flagAdder interface {
	BoolVar(p *bool, name string, value bool, usage string)
	Int64Var(p *int64, name string, value int64, usage string)
	StringVar(p *string, name string, value string, usage string)
	DurationVar(p *time.Duration, name string, value time.Duration, usage string)
}

var _ flagAdder = (*pflag.FlagSet)(nil)

func (f *accountFlags) register(fs flagAdder) {
	fs.BoolVar(&f.boot, "boot", false, "boot the image's own init (CMD, default /sbin/init) as a system container; SIGTERM and SIGINT halt it")
	fs.Int64Var(&f.ptys, "ptys", 0, "most pseudo-terminals the container may open (devpts max=)")
	fs.StringVar(&f.shmSize, "shm-size", "", "size of /dev/shm (e.g. 64M)")
	fs.StringVar(&f.sysvShm, "sysv-shm", "", "TOTAL[:SEGMENT] System V shared memory limits (kernel.shmall, kernel.shmmax; e.g. 256M:64M)")
	fs.StringVar(&f.socketBuffers, "socket-buffers", "", "limit of the TCP socket buffers' memory (cgroup v1 and hybrid hosts; e.g. 16M)")
	fs.Int64Var(&f.diskInodes, "disk-inodes", 0, "most files the container may create in its writable layer (with --disk-quota)")
	fs.DurationVar(&f.usageSampling, "usage-sampling", 0, "sample the container's usage this often to keep peaks the kernel does not keep")
}

// apply adds the flags' limits to cfg, after its root filesystem is set;
// quota says whether --disk-quota was given.
func (f *accountFlags) apply(cfg *vessel.Config, quota bool, argv []string) error {
	if f.boot {
		cfg.WithBoot(argv...)
	}
	if f.ptys != 0 {
		cfg.WithPtys(f.ptys)
	}
	if f.shmSize != "" {
		n, err := limits.ParseSize(f.shmSize)
		if err != nil {
			return fmt.Errorf("--shm-size: %v", err)
		}
		cfg.WithShmSize(n)
	}
	if f.sysvShm != "" {
		total, seg, _ := strings.Cut(f.sysvShm, ":")
		t, err := limits.ParseSize(total)
		if err != nil {
			return fmt.Errorf("--sysv-shm: total: %v", err)
		}
		var s int64
		if seg != "" {
			if s, err = limits.ParseSize(seg); err != nil {
				return fmt.Errorf("--sysv-shm: segment: %v", err)
			}
		}
		cfg.WithSysVShm(t, s)
	}
	if f.socketBuffers != "" {
		n, err := limits.ParseSize(f.socketBuffers)
		if err != nil {
			return fmt.Errorf("--socket-buffers: %v", err)
		}
		cfg.WithSocketBufferLimit(n)
	}
	if f.diskInodes != 0 {
		if !quota {
			return errors.New("--disk-inodes needs --disk-quota")
		}
		cfg.WithRootfs(cfg.Rootfs.WithInodeQuota(f.diskInodes))
	}
	cfg.UsageSampling = f.usageSampling
	return nil
}
