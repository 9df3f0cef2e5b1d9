package vessel

import "github.com/openvessel/vessel/internal/procfs"

// The /proc readings checkpoint and restore use (internal/procfs).

// treePids returns pid and its descendants.
func treePids(pid int) []int { return procfs.Descendants(pid) }

// openFiles lists the open descriptors of pid.
func openFiles(pid int) ([]procfs.OpenFile, error) { return procfs.OpenFiles(pid) }

// fdInfo reads mnt_id and flags of an open descriptor.
func fdInfo(pid int, fd string) (mnt int, flags int, err error) { return procfs.FDInfo(pid, fd) }
