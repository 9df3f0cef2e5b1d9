package checkpoint

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/internal/procfs"
)

// Problem is one thing in a process tree that CRIU cannot dump.
type Problem struct {
	// Pid is the process holding it (host pid).
	Pid int
	// FD is the descriptor, or -1 when the problem is not a descriptor.
	FD int
	// What names it ("MPTCP socket", "io_uring instance", ...).
	What string
	// Why says why it cannot be dumped.
	Why string
	// Fix, when known, says what to do instead.
	Fix string
}

func (p Problem) String() string {
	s := fmt.Sprintf("pid %d", p.Pid)
	if p.FD >= 0 {
		s += fmt.Sprintf(" fd %d", p.FD)
	}
	s += ": " + p.What + ": " + p.Why
	if p.Fix != "" {
		s += " (" + p.Fix + ")"
	}
	return s
}

// UnsupportedError is returned by Check, and by Dump and PreDump before
// anything is frozen, when the tree holds something CRIU cannot dump.
type UnsupportedError struct {
	Problems []Problem
}

func (e *UnsupportedError) Error() string {
	var b strings.Builder
	b.WriteString("checkpoint: the process tree cannot be checkpointed (nothing was frozen or stopped): ")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// mptcpFix is the advice for an MPTCP socket: Go 1.24 and later listen
// with MPTCP by default where the kernel has it.
const mptcpFix = "CRIU cannot dump multipath TCP; a Go 1.24+ program listens with MPTCP by default: " +
	"start it with GODEBUG=multipathtcp=0 in its environment (vessel run/checkpoint/migrate --env GODEBUG=multipathtcp=0), " +
	"or make it use plain TCP"

// anonProblems are anonymous inodes CRIU 4.x has no dumper for.
var anonProblems = map[string]Problem{
	"anon_inode:[io_uring]":    {What: "io_uring instance", Why: "CRIU cannot dump io_uring"},
	"anon_inode:[perf_event]":  {What: "perf event", Why: "CRIU cannot dump perf events"},
	"anon_inode:[userfaultfd]": {What: "userfaultfd", Why: "CRIU cannot dump a userfaultfd the tree owns"},
}

// Check inspects the process tree rooted at pid, without stopping it, for
// what CRIU is known to refuse (MPTCP sockets, io_uring, perf events,
// userfaultfd), and returns an *UnsupportedError listing each, or nil.
// Dump and PreDump run it first, so that a tree CRIU would refuse is
// never frozen.
func Check(pid int) error {
	var probs []Problem
	for _, p := range TreePids(pid) {
		files, err := procfs.OpenFiles(p)
		if err != nil {
			continue
		}
		var sockets []int
		for _, f := range files {
			if strings.HasPrefix(f.Link, "socket:[") {
				sockets = append(sockets, f.FD)
				continue
			}
			if pr, ok := anonProblems[f.Link]; ok {
				pr.Pid, pr.FD = p, f.FD
				probs = append(probs, pr)
			}
		}
		for _, fd := range sockets {
			if socketProtocol(p, fd) == unix.IPPROTO_MPTCP {
				probs = append(probs, Problem{Pid: p, FD: fd, What: "MPTCP socket", Why: "protocol 262 (IPPROTO_MPTCP)", Fix: mptcpFix})
			}
		}
	}
	if len(probs) > 0 {
		return &UnsupportedError{Problems: probs}
	}
	return nil
}

// socketProtocol returns the protocol of pid's socket at fd (SO_PROTOCOL),
// or -1 when it cannot be read. The descriptor is borrowed with
// pidfd_getfd: the process is not stopped.
func socketProtocol(pid, fd int) int {
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1
	}
	defer unix.Close(pfd)
	sfd, err := unix.PidfdGetfd(pfd, fd, 0)
	if err != nil {
		return -1
	}
	defer unix.Close(sfd)
	proto, err := unix.GetsockoptInt(sfd, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if err != nil {
		return -1
	}
	return proto
}

// TreePids returns pid and its descendants (host pids), parents first.
func TreePids(pid int) []int { return procfs.Descendants(pid) }
