package probe

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// HoldResult is what "probe hold" got of one resource: how many units it
// holds and the errno of the attempt that failed (empty when it got all
// it asked for).
type HoldResult struct {
	Got   int64  `json:"got"`
	Errno string `json:"errno,omitempty"`
	Error string `json:"error,omitempty"`
}

// holdKinds are the resources "probe hold" can take, each with its unit.
var holdKinds = map[string]func(n int64) HoldResult{
	"files":    holdFiles,    // descriptors of /dev/null
	"ptys":     holdPtys,     // opens of /dev/ptmx
	"flocks":   holdFlocks,   // flock(2)ed files in /tmp
	"mlock":    holdMlock,    // bytes locked, 64 KiB at a time
	"sysvshm":  holdSysVShm,  // bytes of System V segments, 1 MiB each
	"devshm":   holdDevShm,   // bytes written to /dev/shm/probe-fill
	"disk":     holdDisk,     // bytes written to /probe-fill
	"inodes":   holdInodes,   // empty files in /probe-inodes
	"signals":  holdSignals,  // real-time signals queued to a stopped child
	"tcp":      holdTCP,      // listening TCP sockets on 127.0.0.1
	"udp":      holdUDP,      // UDP sockets on 127.0.0.1
	"unix":     holdUnix,     // unix socket pairs (2 sockets each)
	"tcpbuf":   holdTCPBuf,   // bytes written into a loopback TCP connection nobody reads
	"udpflood": nil,          // handled apart: needs an address
	"threads":  holdThreads,  // children started (processes)
	"memory":   holdMemory,   // bytes allocated and touched
	"sockets":  holdTCPConns, // established loopback TCP connections (2 sockets each)
}

// cmdHold takes KIND=N of each resource named, prints one JSON object
// mapping each KIND to a HoldResult, and holds everything until killed.
func cmdHold(args []string) error {
	if len(args) == 0 {
		return usagef("hold", "needs KIND=N arguments")
	}
	out := map[string]HoldResult{}
	for _, a := range args {
		kind, v, ok := strings.Cut(a, "=")
		if kind == "udpflood" {
			// udpflood=ADDR:PORT,COUNT
			addr, count, _ := strings.Cut(v, ",")
			n, err := strconv.ParseInt(count, 10, 64)
			if err != nil {
				return usagef("hold", "udpflood=ADDR:PORT,COUNT: %q", v)
			}
			out[kind] = holdUDPFlood(addr, n)
			continue
		}
		f, known := holdKinds[kind]
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || !known || err != nil || n < 0 {
			return usagef("hold", "%q is not KIND=N with a KIND of files, ptys, flocks, mlock, sysvshm, devshm, disk, inodes, signals, tcp, udp, unix, tcpbuf, threads, memory, sockets, udpflood", a)
		}
		out[kind] = f(n)
	}
	if err := printJSON(out); err != nil {
		return err
	}
	for {
		time.Sleep(time.Hour)
	}
}

func failed(got int64, err error) HoldResult {
	r := HoldResult{Got: got}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		r.Errno = unix.ErrnoName(errno)
	}
	if err != nil {
		r.Error = err.Error()
	}
	return r
}

// kept holds what the probe took, so the garbage collector never closes it.
var kept []any

func holdFiles(n int64) HoldResult {
	for i := int64(0); i < n; i++ {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return failed(i, err)
		}
		kept = append(kept, fd)
	}
	return HoldResult{Got: n}
}

func holdPtys(n int64) HoldResult {
	for i := int64(0); i < n; i++ {
		fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			return failed(i, err)
		}
		kept = append(kept, fd)
	}
	return HoldResult{Got: n}
}

func holdFlocks(n int64) HoldResult {
	for i := int64(0); i < n; i++ {
		fd, err := unix.Open(fmt.Sprintf("/tmp/probe-lock-%d-%d", os.Getpid(), i), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return failed(i, err)
		}
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			return failed(i, err)
		}
		kept = append(kept, fd)
	}
	return HoldResult{Got: n}
}

func holdMlock(n int64) HoldResult {
	const chunk = 64 << 10
	var got int64
	for got < n {
		b, err := unix.Mmap(-1, 0, chunk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return failed(got, err)
		}
		if err := unix.Mlock(b); err != nil {
			return failed(got, err)
		}
		kept = append(kept, b)
		got += chunk
	}
	return HoldResult{Got: got}
}

func holdSysVShm(n int64) HoldResult {
	const seg = 1 << 20
	var got int64
	for got < n {
		id, err := unix.SysvShmGet(unix.IPC_PRIVATE, seg, unix.IPC_CREAT|0o600)
		if err != nil {
			return failed(got, err)
		}
		kept = append(kept, id)
		got += seg
	}
	return HoldResult{Got: got}
}

// fill writes n bytes to file in 64 KiB writes, keeping it open.
func fill(file string, n int64) HoldResult {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return failed(0, err)
	}
	kept = append(kept, f)
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = byte(i) | 1 // not zeros: no filesystem may skip them
	}
	var got int64
	for got < n {
		k, err := f.Write(buf[:min(int64(len(buf)), n-got)])
		got += int64(k)
		if err != nil {
			return failed(got, err)
		}
	}
	if err := f.Sync(); err != nil {
		return failed(got, err)
	}
	return HoldResult{Got: got}
}

func holdDevShm(n int64) HoldResult { return fill("/dev/shm/probe-fill", n) }
func holdDisk(n int64) HoldResult   { return fill("/probe-fill", n) }

func holdInodes(n int64) HoldResult {
	if err := os.Mkdir("/probe-inodes", 0o755); err != nil && !os.IsExist(err) {
		return failed(0, err)
	}
	for i := int64(0); i < n; i++ {
		fd, err := unix.Open(fmt.Sprintf("/probe-inodes/%d", i), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return failed(i, err)
		}
		unix.Close(fd)
	}
	return HoldResult{Got: n}
}

// holdSignals starts a child, stops it, and queues it one real-time
// signal of each number from 34 up (rt_sigqueueinfo, which the kernel
// refuses with EAGAIN beyond RLIMIT_SIGPENDING) so that they stay pending.
func holdSignals(n int64) HoldResult {
	cmd := childCmd("sleep", "3600")
	if err := cmd.Start(); err != nil {
		return failed(0, err)
	}
	kept = append(kept, cmd)
	pid := cmd.Process.Pid
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		return failed(0, err)
	}
	// Wait until it is stopped, so no signal is taken before.
	for i := 0; i < 200; i++ {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if f := strings.Fields(string(b)); len(f) > 2 && f[2] == "T" {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := int64(0); i < n; i++ {
		sig := 34 + int(i)
		if sig > 64 {
			return failed(i, errors.New("no more real-time signals to queue"))
		}
		// siginfo_t: signo, errno, code, then pid and uid of the sender.
		var info [128]byte
		*(*int32)(unsafe.Pointer(&info[0])) = int32(sig)
		*(*int32)(unsafe.Pointer(&info[8])) = -1 // SI_QUEUE
		*(*int32)(unsafe.Pointer(&info[16])) = int32(os.Getpid())
		*(*uint32)(unsafe.Pointer(&info[20])) = uint32(os.Getuid())
		if _, _, e := unix.Syscall(unix.SYS_RT_SIGQUEUEINFO, uintptr(pid), uintptr(sig), uintptr(unsafe.Pointer(&info[0]))); e != 0 {
			return failed(i, e)
		}
	}
	return HoldResult{Got: n}
}

func holdTCP(n int64) HoldResult {
	for i := int64(0); i < n; i++ {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return failed(i, err)
		}
		kept = append(kept, l)
	}
	return HoldResult{Got: n}
}

func holdUDP(n int64) HoldResult {
	for i := int64(0); i < n; i++ {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return failed(i, err)
		}
		kept = append(kept, c)
	}
	return HoldResult{Got: n}
}

func holdUnix(n int64) HoldResult {
	for i := int64(0); i < n; i++ {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return failed(i, err)
		}
		kept = append(kept, fds)
	}
	return HoldResult{Got: n}
}

// holdTCPConns opens n established loopback TCP connections.
func holdTCPConns(n int64) HoldResult {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return failed(0, err)
	}
	kept = append(kept, l)
	for i := int64(0); i < n; i++ {
		c, err := net.Dial("tcp4", l.Addr().String())
		if err != nil {
			return failed(i, err)
		}
		s, err := l.Accept()
		if err != nil {
			return failed(i, err)
		}
		kept = append(kept, c, s)
	}
	return HoldResult{Got: n}
}

// holdTCPBuf writes up to n bytes into a loopback TCP connection whose
// other end never reads, so that both ends' buffers fill; it stops when a
// write makes no progress for a second.
func holdTCPBuf(n int64) HoldResult {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return failed(0, err)
	}
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		return failed(0, err)
	}
	s, err := l.Accept()
	if err != nil {
		return failed(0, err)
	}
	kept = append(kept, l, c, s)
	buf := make([]byte, 64<<10)
	var got int64
	for got < n {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		k, err := c.Write(buf[:min(int64(len(buf)), n-got)])
		got += int64(k)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return HoldResult{Got: got, Error: "buffers full"}
			}
			return failed(got, err)
		}
	}
	return HoldResult{Got: got}
}

// holdUDPFlood sends n datagrams of 1400 bytes to addr as fast as it can.
func holdUDPFlood(addr string, n int64) HoldResult {
	c, err := net.Dial("udp4", addr)
	if err != nil {
		return failed(0, err)
	}
	defer c.Close()
	buf := make([]byte, 1400)
	for i := int64(0); i < n; i++ {
		if _, err := c.Write(buf); err != nil {
			var errno syscall.Errno
			if errors.As(err, &errno) && (errno == unix.ENOBUFS || errno == unix.ECONNREFUSED) {
				continue // a full queue or an ICMP answer: keep sending
			}
			return failed(i, err)
		}
	}
	return HoldResult{Got: n}
}

func holdThreads(n int64) HoldResult {
	for i := int64(0); i < n; i++ {
		cmd := childCmd("sleep", "3600")
		if err := cmd.Start(); err != nil {
			return failed(i, err)
		}
		kept = append(kept, cmd)
	}
	return HoldResult{Got: n}
}

func holdMemory(n int64) HoldResult {
	b := make([]byte, n)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	kept = append(kept, b)
	return HoldResult{Got: n}
}
