package probe

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// command is one probe subcommand.
type command struct {
	usage string
	run   func(args []string) error
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"report":   {"print one JSON Report about this process", cmdReport},
		"try":      {"ACTION [ARGS]  attempt one action, print one JSON TryResult (see probe help try)", cmdTry},
		"sleep":    {"SECONDS  sleep", cmdSleep},
		"spawn":    {"N SECONDS  start N children that sleep SECONDS, print {\"pid\":P,\"pids\":[...]}, sleep SECONDS, reap them", cmdSpawn},
		"exit":     {"CODE  exit with CODE", cmdExit},
		"signal":   {"SIG  kill itself with SIG (default action restored first)", cmdSignal},
		"echo":     {"copy stdin to stdout until EOF", cmdEcho},
		"write":    {"FILE CONTENT  write CONTENT to FILE (created 0644, truncated)", cmdWrite},
		"cat":      {"FILE  copy FILE to stdout", cmdCat},
		"count":    {"FILE  every 10 ms rewrite FILE with the next counter value, forever (continues from FILE's value)", cmdCount},
		"ticker":   {"every 10 ms print the next number, from 1, on stdout, forever (the count lives only in memory)", cmdTicker},
		"listen":   {"ADDR  listen on TCP ADDR with Go's defaults (MPTCP where the kernel has it, unless GODEBUG=multipathtcp=0), print {\"listening\":ADDR}, echo each connection", cmdListen},
		"alloc":    {"MB [SECONDS]  allocate and touch MB MiB, print {\"allocated_mb\":MB}, then sleep (forever)", cmdAlloc},
		"forkbomb": {"[MAX]  start sleeping children until fork fails or MAX (1000), print {\"started\":N,...}, then hold them", cmdForkbomb},
		"spin":     {"SECONDS [THREADS]  busy-loop on THREADS (1) threads, print {\"user_sec\":..,\"system_sec\":..}", cmdSpin},
		"ls":       {"DIR  print DIR's entries as a JSON array of DirEntry", cmdLs},
		"tty-size": {"print {\"rows\":R,\"cols\":C} of the terminal on stdin (else stdout)", cmdTTYSize},
		"trap":     {"SIG...  print \"ready\", wait for one of the signals, print its name, exit 0", cmdTrap},
		"stderr":   {"TEXT  write TEXT and a newline to stderr", cmdStderr},
		"exec":     {"PATH [ARGS...]  execve PATH, replacing the probe", cmdExec},
		"hold":     {"KIND=N...  take N of each resource (files, ptys, flocks, mlock, sysvshm, devshm, disk, inodes, signals, tcp, udp, unix, tcpbuf, threads, memory, sockets; udpflood=ADDR:PORT,COUNT), print {KIND: HoldResult}, hold them", cmdHold},
		"help":     {"[try]  print this text", cmdHelp},
	}
}

// startFDs is the descriptor table as the process was started, read in Main
// before anything else opens a descriptor.
var startFDs map[int]string

// Main runs the probe command line (os.Args) and exits. Usage errors exit
// with status 2, failures of workload commands with status 1; "report" and
// "try" exit 0 whenever they could print their JSON.
func Main() {
	startFDs, _ = InheritedFDs()
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, Usage())
		os.Exit(2)
	}
	c, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "probe: unknown command %q\n%s", os.Args[1], Usage())
		os.Exit(2)
	}
	if err := c.run(os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		var ue *UsageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
	os.Exit(0)
}

// Usage returns the probe's command list.
func Usage() string {
	var b strings.Builder
	b.WriteString("usage: probe COMMAND [ARGS]\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "  %-9s %s\n", n, commands[n].usage)
	}
	return b.String()
}

// TryUsage returns the list of "probe try" actions with their arguments.
func TryUsage() string {
	var b strings.Builder
	b.WriteString("usage: probe try ACTION [ARGS]\n")
	for _, n := range TryActions() {
		fmt.Fprintf(&b, "  %s %s\n", n, tryActions[n].usage)
	}
	return b.String()
}

func printJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = os.Stdout.Write(b)
	return err
}

func cmdHelp(args []string) error {
	if len(args) > 0 && args[0] == "try" {
		fmt.Print(TryUsage())
		return nil
	}
	fmt.Print(Usage())
	return nil
}

func cmdReport(_ []string) error {
	return printJSON(Collect(startFDs))
}

func cmdTry(args []string) error {
	if len(args) < 1 {
		return usagef("try", "ACTION is required\n%s", TryUsage())
	}
	r, err := Try(args[0], args[1:])
	if err != nil {
		return err
	}
	return printJSON(r)
}

func needArgs(cmd string, args []string, n int, what string) error {
	if len(args) < n {
		return usagef(cmd, "%s required", what)
	}
	return nil
}

func cmdSleep(args []string) error {
	if err := needArgs("sleep", args, 1, "SECONDS is"); err != nil {
		return err
	}
	d, err := parseDuration(args[0])
	if err != nil {
		return usagef("sleep", "SECONDS %q: %v", args[0], err)
	}
	time.Sleep(d)
	return nil
}

// childCmd prepares "probe ARGS..." as a child with a small Go runtime.
func childCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(selfExe(), args...)
	cmd.Args[0] = "probe"
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	return cmd
}

func cmdSpawn(args []string) error {
	if err := needArgs("spawn", args, 2, "N and SECONDS are"); err != nil {
		return err
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 0 {
		return usagef("spawn", "N %q: want a non-negative integer", args[0])
	}
	d, err := parseDuration(args[1])
	if err != nil {
		return usagef("spawn", "SECONDS %q: %v", args[1], err)
	}
	var kids []*exec.Cmd
	pids := []int{}
	for i := 0; i < n; i++ {
		c := childCmd("sleep", args[1])
		if err := c.Start(); err != nil {
			return fmt.Errorf("probe spawn: child %d: %w", i, err)
		}
		kids = append(kids, c)
		pids = append(pids, c.Process.Pid)
	}
	if err := printJSON(map[string]any{"pid": os.Getpid(), "pids": pids}); err != nil {
		return err
	}
	time.Sleep(d)
	for _, c := range kids {
		_ = c.Wait()
	}
	return nil
}

func cmdExit(args []string) error {
	code, err := strconv.Atoi(arg(args, 0, "0"))
	if err != nil || code < 0 || code > 255 {
		return usagef("exit", "CODE %q: want 0-255", arg(args, 0, "0"))
	}
	os.Exit(code)
	return nil
}

// kernelSigaction is struct sigaction as the rt_sigaction system call takes
// it on amd64 and arm64.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

func cmdSignal(args []string) error {
	if err := needArgs("signal", args, 1, "SIG is"); err != nil {
		return err
	}
	sig, err := ParseSignal(args[0])
	if err != nil || sig == 0 {
		return usagef("signal", "SIG %q: want a signal name or number", args[0])
	}
	// Go's runtime handles SIGSEGV, SIGABRT, SIGQUIT... itself and would
	// turn them into an exit status of 2: restore the default action.
	sa := kernelSigaction{} // SIG_DFL
	if _, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&sa)), 0, 8, 0, 0); errno != 0 && sig != unix.SIGKILL && sig != unix.SIGSTOP {
		return fmt.Errorf("probe signal: rt_sigaction(%d): %w", sig, errno)
	}
	var set unix.Sigset_t
	set.Val[0] = 1 << (uint(sig) - 1)
	_ = unix.PthreadSigmask(unix.SIG_UNBLOCK, &set, nil)
	if sig == unix.SIGSEGV {
		// A real fault, which kills even the PID 1 of a pid namespace
		// (a sent SIGSEGV is ignored there, as by any init).
		var nilp *int
		*nilp = 1
	}
	if err := unix.Tgkill(os.Getpid(), unix.Gettid(), sig); err != nil {
		return fmt.Errorf("probe signal: tgkill: %w", err)
	}
	time.Sleep(3 * time.Second)
	if sig == unix.SIGSTOP || sig == unix.SIGTSTP || sig == unix.SIGTTIN || sig == unix.SIGTTOU {
		return nil // stopped and continued
	}
	return fmt.Errorf("probe signal: still alive 3s after %s", unix.SignalName(sig))
}

func cmdEcho(_ []string) error {
	_, err := io.Copy(os.Stdout, os.Stdin)
	return err
}

func cmdTicker(_ []string) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for n := 1; ; n++ {
		<-tick.C
		if _, err := fmt.Printf("%d\n", n); err != nil {
			return err
		}
	}
}

func cmdListen(args []string) error {
	if err := needArgs("listen", args, 1, "ADDR is"); err != nil {
		return err
	}
	l, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	defer l.Close()
	out, _ := json.Marshal(map[string]string{"listening": l.Addr().String()})
	fmt.Println(string(out))
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}

func cmdWrite(args []string) error {
	if err := needArgs("write", args, 2, "FILE and CONTENT are"); err != nil {
		return err
	}
	return os.WriteFile(args[0], []byte(args[1]), 0o644)
}

func cmdCat(args []string) error {
	if err := needArgs("cat", args, 1, "FILE is"); err != nil {
		return err
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(os.Stdout, f)
	return err
}

// CounterWidth is the width of the zero-padded decimal number "probe count"
// keeps in its file (followed by a newline).
const CounterWidth = 20

func cmdCount(args []string) error {
	if err := needArgs("count", args, 1, "FILE is"); err != nil {
		return err
	}
	f, err := os.OpenFile(args[0], os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	var n int64
	buf := make([]byte, 64)
	if k, _ := f.ReadAt(buf, 0); k > 0 {
		n, _ = strconv.ParseInt(strings.TrimSpace(string(buf[:k])), 10, 64)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		n++
		// One pwrite of a fixed-width record keeps the file's length and
		// position constant, which suits checkpoint/restore.
		if _, err := f.WriteAt([]byte(fmt.Sprintf("%0*d\n", CounterWidth, n)), 0); err != nil {
			return err
		}
	}
	return nil
}

func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}

func cmdAlloc(args []string) error {
	if err := needArgs("alloc", args, 1, "MB is"); err != nil {
		return err
	}
	mb, err := strconv.Atoi(args[0])
	if err != nil || mb < 0 {
		return usagef("alloc", "MB %q: want a non-negative integer", args[0])
	}
	var d time.Duration = -1
	if len(args) > 1 {
		if d, err = parseDuration(args[1]); err != nil {
			return usagef("alloc", "SECONDS %q: %v", args[1], err)
		}
	}
	if mb > 0 {
		mem, err := unix.Mmap(-1, 0, mb<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return fmt.Errorf("probe alloc: mmap %d MiB: %w", mb, err)
		}
		page := os.Getpagesize()
		for i := 0; i < len(mem); i += page {
			mem[i] = 1
		}
		defer runtime.KeepAlive(mem)
	}
	if err := printJSON(map[string]int{"allocated_mb": mb}); err != nil {
		return err
	}
	if d < 0 {
		sleepForever()
	}
	time.Sleep(d)
	return nil
}

func cmdForkbomb(args []string) error {
	max, err := strconv.Atoi(arg(args, 0, "1000"))
	if err != nil || max < 0 {
		return usagef("forkbomb", "MAX %q: want a non-negative integer", arg(args, 0, "1000"))
	}
	// Keep this process from needing new threads of its own once the
	// task limit is reached.
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(-1)
	out := map[string]any{"started": 0, "errno": 0, "errnoName": "", "error": ""}
	started := 0
	for started < max {
		c := childCmd("sleep", "3600")
		if err := c.Start(); err != nil {
			out["error"] = err.Error()
			if e, ok := errnoOf(err); ok {
				out["errno"], out["errnoName"] = int(e), unix.ErrnoName(e)
			}
			break
		}
		started++
	}
	out["started"] = started
	if err := printJSON(out); err != nil {
		return err
	}
	sleepForever()
	return nil
}

func cmdSpin(args []string) error {
	if err := needArgs("spin", args, 1, "SECONDS is"); err != nil {
		return err
	}
	d, err := parseDuration(args[0])
	if err != nil {
		return usagef("spin", "SECONDS %q: %v", args[0], err)
	}
	threads, err := strconv.Atoi(arg(args, 1, "1"))
	if err != nil || threads < 1 {
		return usagef("spin", "THREADS %q: want a positive integer", arg(args, 1, "1"))
	}
	if runtime.GOMAXPROCS(0) < threads {
		runtime.GOMAXPROCS(threads)
	}
	deadline := time.Now().Add(d)
	done := make(chan uint64)
	for i := 0; i < threads; i++ {
		go func() {
			var n uint64
			for time.Now().Before(deadline) {
				for j := 0; j < 10000; j++ {
					n++
				}
			}
			done <- n
		}()
	}
	var total uint64
	for i := 0; i < threads; i++ {
		total += <-done
	}
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return printJSON(map[string]any{
		"iterations": total,
		"user_sec":   float64(ru.Utime.Nano()) / 1e9,
		"system_sec": float64(ru.Stime.Nano()) / 1e9,
	})
}

// ListDir returns the entries of dir as "probe ls" prints them.
func ListDir(dir string) ([]DirEntry, error) {
	names, err := func() ([]string, error) {
		f, err := os.Open(dir)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return f.Readdirnames(-1)
	}()
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]DirEntry, 0, len(names))
	for _, n := range names {
		p := dir + "/" + n
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			out = append(out, DirEntry{Name: n, Type: "unknown"})
			continue
		}
		e := DirEntry{
			Name: n, UID: int(st.Uid), GID: int(st.Gid), Size: st.Size,
			Mode: fmt.Sprintf("%04o", st.Mode&0o7777),
		}
		kind := fileKind(st.Mode, st.Rdev)
		e.Type = kind
		if k, dev, ok := strings.Cut(kind, " "); ok {
			e.Type, e.Dev = k, dev
		}
		if e.Type == "regular" {
			e.Type = "file"
		}
		if e.Type == "symlink" {
			e.Target, _ = os.Readlink(p)
		}
		out = append(out, e)
	}
	return out, nil
}

func cmdLs(args []string) error {
	if err := needArgs("ls", args, 1, "DIR is"); err != nil {
		return err
	}
	entries, err := ListDir(args[0])
	if err != nil {
		return err
	}
	return printJSON(entries)
}

func cmdTTYSize(_ []string) error {
	var lastErr error
	for _, fd := range []int{0, 1} {
		ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ)
		if err == nil {
			return printJSON(WinSize{Rows: int(ws.Row), Cols: int(ws.Col)})
		}
		lastErr = err
	}
	return fmt.Errorf("probe tty-size: TIOCGWINSZ on stdin and stdout: %w", lastErr)
}

func cmdTrap(args []string) error {
	if err := needArgs("trap", args, 1, "at least one SIG is"); err != nil {
		return err
	}
	var sigs []os.Signal
	for _, a := range args {
		s, err := ParseSignal(a)
		if err != nil || s == 0 {
			return usagef("trap", "SIG %q: want a signal name or number", a)
		}
		sigs = append(sigs, s)
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(w, "ready")
	if err := w.Flush(); err != nil {
		return err
	}
	got := <-ch
	fmt.Fprintln(w, unix.SignalName(got.(syscall.Signal)))
	return w.Flush()
}

func cmdStderr(args []string) error {
	_, err := fmt.Fprintln(os.Stderr, strings.Join(args, " "))
	return err
}

func cmdExec(args []string) error {
	if err := needArgs("exec", args, 1, "PATH is"); err != nil {
		return err
	}
	path := args[0]
	if !strings.Contains(path, "/") {
		if p, err := exec.LookPath(path); err == nil {
			path = p
		}
	}
	return fmt.Errorf("probe exec %s: %w", path, unix.Exec(path, args, os.Environ()))
}
