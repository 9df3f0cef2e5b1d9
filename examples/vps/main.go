// Command vps runs long-lived "virtual private servers": containers that
// each have their own hostname, an address on a private bridge, a port
// published on the host's loopback, a size-limited writable disk, a share
// of CPU and memory, and a web server (busybox httpd) inside.
//
// One server process owns the containers; the other commands talk to it
// over a unix socket in the state directory:
//
//	vps start -n 2          start a server in the background with 2 VPSes
//	vps list                id, hostname, address, published port, pid, status
//	vps stats               CPU, memory, processes and disk use of each
//	vps beancounters        every finite resource of each: held, maxheld, limit, failcnt
//	vps stop                stop every VPS and the server, removing everything
//	vps serve -n 2          run the server in the foreground instead
//	vps start -boot DIR     boot DIR's own init (systemd) in each VPS instead of httpd
//
// See README.md.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/limits"
	"github.com/openvessel/vessel/network"
	"github.com/openvessel/vessel/rootfs"
)

const usage = `usage: vps COMMAND [flags]

commands:
  start   start the server in the background with -n VPSes
  serve   run the server in the foreground
  list    list the VPSes
  stats   show each VPS's resource use
  beancounters
          show each VPS's finite resources as OpenVZ's user_beancounters
  stop    stop the VPSes and the server

run "vps COMMAND -h" for the flags of a command.`

// serverOptions configure the server and its VPSes.
type serverOptions struct {
	state    string
	n        int
	prefix   string
	basePort int
	bridge   string
	subnet   string
	quota    int64
	mem      int64
	cpus     float64
	cgroup   string
	netTable string
	// boot is a root filesystem with its own init (a Debian tree made by
	// debootstrap): the VPSes boot it as system containers instead of
	// running busybox httpd.
	boot string
}

func main() {
	vessel.Init() // in a container child this sets up and never returns
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "serve":
		err = serveCommand(args)
	case "start":
		err = startCommand(args)
	case "list", "stats", "beancounters", "stop":
		err = clientCommand(cmd, args)
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vps:", err)
		os.Exit(1)
	}
}

func serverFlags(name string, args []string) (*serverOptions, error) {
	fs := flag.NewFlagSet("vps "+name, flag.ContinueOnError)
	o := &serverOptions{}
	var quota, mem, cpus string
	fs.StringVar(&o.state, "state", "/run/vessel-vps", "state directory (socket, root filesystem, log)")
	fs.IntVar(&o.n, "n", 2, "number of VPSes")
	fs.StringVar(&o.prefix, "prefix", "vps", "VPS ids and hostnames are PREFIX-1, PREFIX-2, ...")
	fs.IntVar(&o.basePort, "port", 8080, "VPS i is published on 127.0.0.1:PORT+i-1")
	fs.StringVar(&o.bridge, "bridge", "vps0", "host bridge the VPSes share (created and removed by the server)")
	fs.StringVar(&o.subnet, "subnet", "10.213.0.0/24", "the bridge's IPv4 subnet")
	fs.StringVar(&quota, "disk", "32M", "disk quota of each VPS's writable root")
	fs.StringVar(&mem, "mem", "64M", "memory limit of each VPS")
	fs.StringVar(&cpus, "cpus", "0.5", "CPU quota of each VPS, in cores")
	fs.StringVar(&o.cgroup, "cgroup", "", "cgroup group the VPSes go under (default $VESSEL_CGROUP_GROUP, else vessel)")
	fs.StringVar(&o.boot, "boot", "", "root filesystem DIR with its own init (e.g. debootstrap with systemd and openssh-server): boot it in each VPS, port PORT+i-1 going to its sshd, instead of busybox httpd")
	fs.StringVar(&o.netTable, "nft-table", "vessel_vps", "nftables table (and network state) of the server's own, apart from other vessel programs")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if o.quota, err = limits.ParseSize(quota); err != nil || o.quota <= 0 {
		return nil, fmt.Errorf("-disk %q: want a size such as 32M", quota)
	}
	if o.mem, err = limits.ParseSize(mem); err != nil || o.mem <= 0 {
		return nil, fmt.Errorf("-mem %q: want a size such as 64M", mem)
	}
	if o.cpus, err = limits.ParseCPUs(cpus); err != nil {
		return nil, fmt.Errorf("-cpus: %w", err)
	}
	if o.n < 1 || o.n > 64 {
		return nil, fmt.Errorf("-n %d: want 1 to 64", o.n)
	}
	if o.basePort < 1 || o.basePort+o.n-1 > 65535 {
		return nil, fmt.Errorf("-port %d: the ports must fit in 1-65535", o.basePort)
	}
	if p, err := netip.ParsePrefix(o.subnet); err != nil || !p.Addr().Is4() || p.Bits() > 30 {
		return nil, fmt.Errorf("-subnet %q: want an IPv4 CIDR such as 10.213.0.0/24", o.subnet)
	}
	if o.state, err = filepath.Abs(o.state); err != nil {
		return nil, err
	}
	if o.boot != "" {
		if o.boot, err = filepath.Abs(o.boot); err != nil {
			return nil, err
		}
		if _, err := os.Stat(filepath.Join(o.boot, "sbin", "init")); err != nil {
			return nil, fmt.Errorf("-boot %s: no /sbin/init in it: %w", o.boot, err)
		}
	}
	return o, nil
}

func socketPath(state string) string { return filepath.Join(state, "vps.sock") }

// startCommand starts "vps serve" with the same flags as a background
// process of its own session and returns once it answers.
func startCommand(args []string) error {
	o, err := serverFlags("start", args)
	if err != nil {
		return err
	}
	if _, err := request(o.state, "list"); err == nil {
		return fmt.Errorf("a server already runs with state %s (vps stop first)", o.state)
	}
	if err := os.MkdirAll(o.state, 0o700); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logPath := filepath.Join(o.state, "serve.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(self, append([]string{"serve"}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case err := <-exited:
			// The server released what it made; its log is all that is left.
			log, _ := os.ReadFile(logPath)
			_ = os.RemoveAll(o.state)
			return fmt.Errorf("the server exited (%v):\n%s", err, log)
		case <-deadline:
			_ = cmd.Process.Kill()
			return fmt.Errorf("the server did not answer within 60s; see %s", logPath)
		case <-time.After(100 * time.Millisecond):
		}
		if resp, err := request(o.state, "list"); err == nil {
			fmt.Printf("server pid %d started %d VPSes (log %s)\n", cmd.Process.Pid, len(resp.VPS), logPath)
			printList(os.Stdout, resp.VPS)
			return nil
		}
	}
}

// VPSInfo is one VPS as list reports it.
type VPSInfo struct {
	ID          string `json:"id"`
	Hostname    string `json:"hostname"`
	Address     string `json:"address"`
	Port        string `json:"port"`
	Pid         int    `json:"pid"`
	Status      string `json:"status"`
	QuotaMethod string `json:"quotaMethod,omitempty"`
	// HostInterface is the host end of the VPS's veth pair.
	HostInterface string `json:"hostInterface,omitempty"`
}

// VPSStats is one VPS's resource use as stats reports it.
type VPSStats struct {
	ID          string        `json:"id"`
	CPU         time.Duration `json:"cpu"`
	CPULimit    float64       `json:"cpuLimit"`
	Memory      uint64        `json:"memory"`
	MemoryPeak  uint64        `json:"memoryPeak"`
	MemoryLimit uint64        `json:"memoryLimit"`
	Pids        uint64        `json:"pids"`
	DiskUsed    uint64        `json:"diskUsed"`
	DiskSize    uint64        `json:"diskSize"`
	Error       string        `json:"error,omitempty"`
}

// Response is the server's answer to one request.
type Response struct {
	ServerPid int        `json:"serverPid"`
	VPS       []VPSInfo  `json:"vps,omitempty"`
	Stats     []VPSStats `json:"stats,omitempty"`
	// Beancounters is each VPS's vessel.Usage.
	Beancounters []VPSUsage `json:"beancounters,omitempty"`
	Stopped      []string   `json:"stopped,omitempty"`
	Error        string     `json:"error,omitempty"`
}

// request sends one command to the server and returns its answer.
func request(state, cmd string) (*Response, error) {
	conn, err := net.DialTimeout("unix", socketPath(state), 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("no server at %s: %w", socketPath(state), err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Minute))
	if _, err := fmt.Fprintln(conn, cmd); err != nil {
		return nil, err
	}
	var r Response
	if err := json.NewDecoder(conn).Decode(&r); err != nil {
		return nil, fmt.Errorf("reading the server's answer: %w", err)
	}
	if r.Error != "" {
		return &r, errors.New(r.Error)
	}
	return &r, nil
}

func clientCommand(cmd string, args []string) error {
	fs := flag.NewFlagSet("vps "+cmd, flag.ContinueOnError)
	state := fs.String("state", "/run/vessel-vps", "state directory of the server")
	asJSON := fs.Bool("json", false, "print the server's answer as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r, err := request(*state, cmd)
	if err != nil {
		return err
	}
	if cmd == "stop" {
		// The answer comes once everything is released; wait for the
		// server process itself to be gone too.
		for i := 0; i < 100 && syscall.Kill(r.ServerPid, 0) == nil; i++ {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(r)
	}
	switch cmd {
	case "list":
		printList(os.Stdout, r.VPS)
	case "stats":
		printStats(os.Stdout, r.Stats)
	case "beancounters":
		for i, b := range r.Beancounters {
			if i > 0 {
				fmt.Println()
			}
			if b.Error != "" {
				fmt.Printf("%s: error: %s\n", b.ID, b.Error)
				continue
			}
			if err := b.Usage.WriteTable(os.Stdout, b.ID); err != nil {
				return err
			}
		}
	case "stop":
		fmt.Printf("stopped %s and the server (pid %d)\n", strings.Join(r.Stopped, ", "), r.ServerPid)
	}
	return nil
}

func printList(w io.Writer, vps []VPSInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tHOSTNAME\tADDRESS\tPORT\tPID\tSTATUS\tDISK QUOTA")
	for _, v := range vps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", v.ID, v.Hostname, v.Address, v.Port, v.Pid, v.Status, v.QuotaMethod)
	}
	tw.Flush()
}

func printStats(w io.Writer, stats []VPSStats) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCPU TIME\tCPU LIMIT\tMEMORY\tPEAK\tMEM LIMIT\tPIDS\tDISK USED\tDISK SIZE")
	for _, s := range stats {
		if s.Error != "" {
			fmt.Fprintf(tw, "%s\terror: %s\n", s.ID, s.Error)
			continue
		}
		fmt.Fprintf(tw, "%s\t%v\t%.2f\t%s\t%s\t%s\t%d\t%s\t%s\n", s.ID, s.CPU.Round(time.Millisecond), s.CPULimit,
			human(s.Memory), human(s.MemoryPeak), human(s.MemoryLimit), s.Pids, human(s.DiskUsed), human(s.DiskSize))
	}
	tw.Flush()
}

func human(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fK", float64(n)/(1<<10))
	}
	return strconv.FormatUint(n, 10)
}

// server owns the VPS containers.
type server struct {
	o       *serverOptions
	rootfs  string
	mu      sync.Mutex
	vps     []*instance
	stopped chan struct{}
}

// instance is one VPS.
type instance struct {
	id   string
	port int
	c    *vessel.Container
}

// serveCommand runs the server until "vps stop", SIGINT or SIGTERM.
func serveCommand(args []string) error {
	o, err := serverFlags("serve", args)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.state, 0o700); err != nil {
		return err
	}
	// A network manager of the server's own: its bridge, nftables table
	// and address bookkeeping never meet other vessel programs'.
	network.DefaultManager = &network.Manager{StateDir: filepath.Join(o.state, "network"), Table: o.netTable}
	s := &server{o: o, rootfs: filepath.Join(o.state, "rootfs"), stopped: make(chan struct{})}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := s.startAll(ctx); err != nil {
		return errors.Join(err, s.stopAll(true))
	}
	l, err := net.Listen("unix", socketPath(o.state))
	if err != nil {
		return errors.Join(err, s.stopAll(true))
	}
	fmt.Printf("serving %d VPSes on %s\n", len(s.vps), socketPath(o.state))
	go func() {
		select {
		case <-ctx.Done():
			l.Close()
		case <-s.stopped:
		}
	}()
	for {
		conn, err := l.Accept()
		if err != nil {
			break
		}
		if s.handle(conn) {
			l.Close()
			break
		}
	}
	select {
	case <-s.stopped:
		return nil // handle stopped everything and answered
	default:
		fmt.Println("signalled: stopping")
		return s.stopAll(false)
	}
}

// startAll builds the shared root filesystem and starts the VPSes.
func (s *server) startAll(ctx context.Context) error {
	if s.o.boot != "" {
		s.rootfs = s.o.boot // shared read-only under each VPS's own layer
	} else if err := buildBusyboxRoot(s.rootfs); err != nil {
		return fmt.Errorf("build the VPS root filesystem: %w", err)
	}
	for i := 1; i <= s.o.n; i++ {
		inst := &instance{id: fmt.Sprintf("%s-%d", s.o.prefix, i), port: s.o.basePort + i - 1}
		c, err := s.startVPS(ctx, inst)
		if err != nil {
			return fmt.Errorf("start %s: %w", inst.id, err)
		}
		inst.c = c
		s.mu.Lock()
		s.vps = append(s.vps, inst)
		s.mu.Unlock()
	}
	return nil
}

// webServer is each VPS's main process: it writes a page naming the VPS
// into its own writable root, then becomes the web server.
const webServer = `mkdir -p /www && printf '<h1>hello from %s</h1>\n' "$(hostname)" > /www/index.html && exec httpd -f -p 80 -h /www`

func (s *server) startVPS(ctx context.Context, inst *instance) (*vessel.Container, error) {
	nc := network.Bridge(s.o.bridge)
	nc.Subnet = s.o.subnet
	inner := uint16(80)
	if s.o.boot != "" {
		inner = 22 // the booted system's sshd
	}
	nc.Publish = []network.Port{{HostIP: "127.0.0.1", HostPort: uint16(inst.port), ContainerPort: inner}}
	cfg := vessel.NewConfig().
		WithRootfs(rootfs.EphemeralOverlay(s.rootfs).WithQuota(s.o.quota)).
		WithHostname(inst.id).
		WithNetwork(nc).
		WithMemoryLimit(s.o.mem).
		WithCPUs(s.o.cpus).
		WithPids(128).
		// The limits of a hosting plan beyond CPU, memory and disk (see
		// "vps beancounters"): ptys, /dev/shm, System V shared memory,
		// open files per process, files on the disk.
		WithPtys(16).WithShmSize(16<<20).WithSysVShm(32<<20, 16<<20).
		WithOpenFiles(4096)
	cfg.Rootfs = cfg.Rootfs.WithInodeQuota(4096)
	// Peaks of what the kernel keeps no peak of, sampled every second.
	cfg.UsageSampling = time.Second
	args := []string{"/bin/sh", "-c", webServer}
	if s.o.boot != "" {
		cfg.WithBoot() // /sbin/init as PID 1, halted by SIGRTMIN+3 at stop
		args = nil
	}
	if s.o.cgroup != "" {
		cfg.Cgroup.Group = s.o.cgroup
	}
	c, err := vessel.New(inst.id, cfg)
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(s.o.state, inst.id+".log"))
	if err != nil {
		return nil, err
	}
	c.Stdout, c.Stderr = logf, logf
	// The VPS lives until stop: ctx only bounds the start.
	if err := c.Start(context.WithoutCancel(ctx), args...); err != nil {
		logf.Close()
		c.Destroy()
		return nil, err
	}
	go func() {
		<-c.Done()
		logf.Close()
	}()
	return c, nil
}

// handle answers one request; it reports whether the server must stop.
func (s *server) handle(conn net.Conn) bool {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Minute))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return false
	}
	r := Response{ServerPid: os.Getpid()}
	stop := false
	switch cmd := strings.TrimSpace(line); cmd {
	case "list":
		r.VPS = s.list()
	case "stats":
		r.Stats = s.stats()
	case "beancounters":
		r.Beancounters = s.beancounters()
	case "stop":
		for _, v := range s.list() {
			r.Stopped = append(r.Stopped, v.ID)
		}
		if err := s.stopAll(false); err != nil {
			r.Error = err.Error()
		}
		stop = true
		close(s.stopped)
	default:
		r.Error = fmt.Sprintf("unknown command %q", cmd)
	}
	_ = json.NewEncoder(conn).Encode(&r)
	return stop
}

func (s *server) list() []VPSInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []VPSInfo
	for _, v := range s.vps {
		st := v.c.State()
		info := VPSInfo{ID: v.id, Hostname: v.id, Port: fmt.Sprintf("127.0.0.1:%d", v.port), Pid: st.Pid, Status: string(st.Status)}
		if st.Exit != nil {
			info.Status += " (" + st.Exit.String() + ")"
		}
		if a := v.c.Network(); a != nil && len(a.Addresses()) > 0 {
			info.Address = a.Addresses()[0].String()
			info.HostInterface = a.HostInterface()
		}
		if p := v.c.Storage(); p != nil {
			info.QuotaMethod = p.QuotaMethod
		}
		out = append(out, info)
	}
	return out
}

func (s *server) stats() []VPSStats {
	s.mu.Lock()
	vps := append([]*instance(nil), s.vps...)
	s.mu.Unlock()
	var out []VPSStats
	for _, v := range vps {
		vs := VPSStats{ID: v.id, CPULimit: s.o.cpus}
		st, err := v.c.Stats()
		if err != nil {
			vs.Error = err.Error()
			out = append(out, vs)
			continue
		}
		vs.CPU = st.CPU.Total
		vs.Memory, vs.MemoryPeak, vs.MemoryLimit = st.Memory.Current, st.Memory.Peak, st.Memory.Limit
		vs.Pids = st.Pids.Current
		if used, size, err := diskUse(v.c); err == nil {
			vs.DiskUsed, vs.DiskSize = used, size
		} else {
			vs.Error = err.Error()
		}
		out = append(out, vs)
	}
	return out
}

// VPSUsage is one VPS's beancounters.
type VPSUsage struct {
	ID    string        `json:"id"`
	Usage *vessel.Usage `json:"usage,omitempty"`
	Error string        `json:"error,omitempty"`
}

func (s *server) beancounters() []VPSUsage {
	s.mu.Lock()
	vps := append([]*instance(nil), s.vps...)
	s.mu.Unlock()
	var out []VPSUsage
	for _, v := range vps {
		u, err := v.c.Usage()
		vu := VPSUsage{ID: v.id, Usage: u}
		if err != nil {
			vu.Error = err.Error()
		}
		out = append(out, vu)
	}
	return out
}

// diskUse asks df inside the VPS how full its root is (an overlay reports
// its writable layer, the size-limited part).
func diskUse(c *vessel.Container) (used, size uint64, err error) {
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := vessel.Command("df", "-k", "/")
	cmd.Stdout = &out
	p, err := c.Exec(ctx, cmd)
	if err != nil {
		return 0, 0, err
	}
	if err := p.Wait(); err != nil {
		return 0, 0, fmt.Errorf("df: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) < 4 {
		return 0, 0, fmt.Errorf("df printed %q", out.String())
	}
	sizeK, err1 := strconv.ParseUint(f[1], 10, 64)
	usedK, err2 := strconv.ParseUint(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("df printed %q", out.String())
	}
	return usedK << 10, sizeK << 10, nil
}

// stopAll destroys every VPS (which removes its cgroup, network and
// storage; the last one takes the bridge and nftables table with it) and
// the server's files, its log too unless keepLog.
func (s *server) stopAll(keepLog bool) error {
	s.mu.Lock()
	vps := s.vps
	s.vps = nil
	s.mu.Unlock()
	var errs []error
	for _, v := range vps {
		// A booted system shuts its services down first (its stop
		// signal); httpd just goes.
		if s.o.boot != "" {
			_ = v.c.Stop(context.Background(), 10*time.Second)
		}
		if err := v.c.Destroy(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", v.id, err))
		}
	}
	// Everything but the server's own log, which "vps start" shows when
	// the server fails; the state directory goes when nothing else is in it.
	entries, _ := os.ReadDir(s.o.state)
	for _, e := range entries {
		if e.Name() != "serve.log" {
			errs = append(errs, os.RemoveAll(filepath.Join(s.o.state, e.Name())))
		}
	}
	if err := errors.Join(errs...); err != nil || keepLog {
		return err
	}
	_ = os.Remove(filepath.Join(s.o.state, "serve.log"))
	_ = os.Remove(s.o.state)
	return nil
}

// buildBusyboxRoot makes a minimal root filesystem from the host's static
// busybox: the binary and a link for each of its applets.
func buildBusyboxRoot(dir string) error {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("needs a static busybox on the host (Debian: busybox-static): %w", err)
	}
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "www", "root"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return err
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), data, 0o755); err != nil {
		return err
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", applet)); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	etc := map[string]string{
		"passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
		"group":  "root:x:0:\nnogroup:x:65534:\n",
	}
	for name, content := range etc {
		if err := os.WriteFile(filepath.Join(dir, "etc", name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}
