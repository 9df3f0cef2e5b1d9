package network

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The test binary doubles as a "container" process (it only holds a network
// namespace until its stdin closes) and as a controlling program that can be
// killed in the middle of its life.
const helperEnv = "VESSEL_NETWORK_TEST_HELPER"

type controllerSpec struct {
	StateDir string
	Table    string
	ID       string
	Config   Config
}

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "hold":
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	case "controller":
		os.Exit(runController())
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "network tests need root (they create namespaces, links and nftables tables)")
		os.Exit(1)
	}
	_, err := os.Stat(forwardDir)
	existed := err == nil
	code := m.Run()
	if !existed {
		removeForwardDir()
	}
	os.Exit(code)
}

// runController starts a container, wires it and then waits to be killed.
func runController() int {
	var spec controllerSpec
	if err := json.Unmarshal([]byte(os.Getenv("VESSEL_NETWORK_TEST_SPEC")), &spec); err != nil {
		fmt.Println("error", err)
		return 1
	}
	runtime.LockOSThread() // Pdeathsig follows the thread that forked
	cmd := holdCommand()
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	// The held process lives until its stdin ends: with the default
	// /dev/null it exited at once, and Setup raced its exit.
	hold, err := cmd.StdinPipe()
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	defer hold.Close()
	if err := cmd.Start(); err != nil {
		fmt.Println("error", err)
		return 1
	}
	m := &Manager{StateDir: spec.StateDir, Table: spec.Table}
	if _, err := m.Setup(context.Background(), spec.ID, &spec.Config, cmd.Process.Pid); err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("ready", cmd.Process.Pid)
	io.Copy(io.Discard, os.Stdin)
	return 0
}

func holdCommand() *exec.Cmd {
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), helperEnv+"=hold")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// container is a process in its own network namespace.
type container struct {
	pid   int
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func startContainer(t testing.TB) *container {
	t.Helper()
	cmd := holdCommand()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &container{pid: cmd.Process.Pid, cmd: cmd, stdin: stdin}
	t.Cleanup(c.stop)
	return c
}

func (c *container) stop() {
	if c.cmd.ProcessState != nil {
		return
	}
	c.stdin.Close()
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

// inNs runs fn on a thread that is inside the network namespace of pid
// (0: the host's, where fn runs as it is). Sockets created by fn stay in
// that namespace after fn returns.
func inNs(t testing.TB, pid int, fn func() error) error {
	t.Helper()
	if pid == 0 {
		return fn()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := netns.GetFromPid(pid)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: it dies with its goroutine.
		t.Fatalf("cannot return to the host namespace: %v", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// serveTCP listens inside the namespace of pid (0: the host) and answers
// every connection with the remote address it sees, then closes it.
func serveTCP(t testing.TB, pid int, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	listen := func() (err error) { l, err = net.Listen("tcp", addr); return err }
	err := inNs(t, pid, listen)
	if err != nil {
		t.Fatalf("listen %s in %d: %v", addr, pid, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, c.RemoteAddr().(*net.TCPAddr).IP.String()+"\n")
			c.Close()
		}
	}()
	return l
}

// serveUDP answers every datagram with "udp " and the sender's address.
func serveUDP(t testing.TB, pid int, addr string) net.PacketConn {
	t.Helper()
	var pc net.PacketConn
	listen := func() (err error) { pc, err = net.ListenPacket("udp", addr); return err }
	err := inNs(t, pid, listen)
	if err != nil {
		t.Fatalf("listen udp %s in %d: %v", addr, pid, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte("udp "+from.(*net.UDPAddr).IP.String()), from)
		}
	}()
	return pc
}

// askTCP connects from the namespace of pid (0: the host) and returns the
// address the server saw.
func askTCP(t testing.TB, pid int, addr string, timeout time.Duration) (string, error) {
	t.Helper()
	var c net.Conn
	dial := func() (err error) { c, err = net.DialTimeout("tcp", addr, timeout); return err }
	err := inNs(t, pid, dial)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func askUDP(t testing.TB, pid int, addr string, timeout time.Duration) (string, error) {
	t.Helper()
	var c net.Conn
	dial := func() (err error) { c, err = net.Dial("udp", addr); return err }
	err := inNs(t, pid, dial)
	if err != nil {
		return "", err
	}
	defer c.Close()
	buf := make([]byte, 100)
	for try := 0; try < 3; try++ {
		c.Write([]byte("hi"))
		c.SetReadDeadline(time.Now().Add(timeout / 3))
		n, err := c.Read(buf)
		if err == nil {
			return string(buf[:n]), nil
		}
	}
	return "", fmt.Errorf("no UDP answer from %s", addr)
}

// testEnv is an isolated manager: own state dir, table, bridge and subnet.
type testEnv struct {
	m       *Manager
	bridge  string
	subnet  netip.Prefix
	gateway netip.Addr
}

func randName(prefix string) string {
	return fmt.Sprintf("%s%06x", prefix, rand.Uint32()&0xffffff)
}

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	forward, _ := readSysctl(ipForwardPath)
	forward6, _ := readSysctl(forwardSysctl(forwardIPv6))
	e := &testEnv{
		m:      &Manager{StateDir: filepath.Join(t.TempDir(), "state"), Table: randName("vt")},
		bridge: randName("vt"),
	}
	e.subnet = freeSubnet(t)
	e.gateway = e.subnet.Addr().Next()
	t.Cleanup(func() {
		// Everything must be gone; remove what is left so the machine stays
		// clean even when the test failed.
		if l, err := netlink.LinkByName(e.bridge); err == nil {
			t.Errorf("bridge %s left behind", e.bridge)
			netlink.LinkDel(l)
		}
		for _, n := range []*nft{newNft(e.m.Table), newNft6(e.m.Table)} {
			if ok, _ := n.exists(); ok {
				t.Errorf("nftables table %s left behind", e.m.Table)
				n.deleteTable()
			}
		}
		if _, err := os.Stat(filepath.Join(e.m.StateDir, "state.json")); err == nil {
			b, _ := os.ReadFile(filepath.Join(e.m.StateDir, "state.json"))
			t.Errorf("state left behind: %s", b)
		}
		if now, _ := readSysctl(ipForwardPath); now != forward {
			t.Errorf("ip_forward is %s, was %s", now, forward)
			writeSysctl(ipForwardPath, forward)
		}
		if now, _ := readSysctl(forwardSysctl(forwardIPv6)); now != forward6 {
			t.Errorf("IPv6 forwarding is %s, was %s", now, forward6)
			writeSysctl(forwardSysctl(forwardIPv6), forward6)
		}
	})
	return e
}

func (e *testEnv) bridgeConfig() *Config {
	return &Config{Mode: ModeBridge, Bridge: e.bridge, Subnet: e.subnet.String()}
}

// freeSubnet picks a random /24 in 10.160.0.0/11 that no host route or
// address overlaps.
func freeSubnet(t testing.TB) netip.Prefix {
	t.Helper()
	h, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	used, err := usedNetworks(h, &state{})
	if err != nil {
		t.Fatal(err)
	}
next:
	for i := 0; i < 100; i++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(160 + rand.IntN(32)), byte(rand.IntN(256)), 0}), 24)
		for _, u := range used {
			if u.p.Overlaps(p) {
				continue next
			}
		}
		return p
	}
	t.Fatal("no free subnet")
	return netip.Prefix{}
}

func (e *testEnv) setup(t testing.TB, id string, c *Config, pid int) *Attachment {
	t.Helper()
	a, err := e.m.Setup(context.Background(), id, c, pid)
	if err != nil {
		t.Fatalf("Setup %s: %v", id, err)
	}
	t.Cleanup(func() { a.Teardown() })
	return a
}

func addrOf(t testing.TB, a *Attachment) netip.Addr {
	t.Helper()
	addrs := a.Addresses()
	if len(addrs) != 1 {
		t.Fatalf("%s: addresses %v", a.ID(), addrs)
	}
	return addrs[0].Addr()
}

// outside is a namespace standing for the internet, reached from the host
// through a veth pair and a route.
type outside struct {
	c       *container
	addr    netip.Addr // the outside server's address
	hostIP  netip.Addr // the host end's address
	addr6   netip.Addr // the same in IPv6
	hostIP6 netip.Addr
}

func newOutside(t testing.TB) *outside {
	t.Helper()
	c := startContainer(t)
	name := randName("vo")
	base := netip.AddrFrom4([4]byte{198, 18, byte(rand.IntN(256)), byte(4 * rand.IntN(64))})
	o := &outside{c: c, hostIP: base.Next(), addr: base.Next().Next()}
	base6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(rand.IntN(256)), byte(rand.IntN(256))})
	o.hostIP6, o.addr6 = base6.Next(), base6.Next().Next()
	ns, err := netns.GetFromPid(c.pid)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "eth0", PeerNamespace: netlink.NsFd(ns)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(name); err == nil {
			netlink.LinkDel(l)
		}
	})
	hl, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	must(t, netlink.AddrAdd(hl, mustAddr(o.hostIP.String()+"/30")))
	must(t, netlink.AddrAdd(hl, nodad(mustAddr(o.hostIP6.String()+"/64"))))
	must(t, netlink.LinkSetUp(hl))
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	must(t, h.AddrAdd(eth0, mustAddr(o.addr.String()+"/30")))
	must(t, h.AddrAdd(eth0, nodad(mustAddr(o.addr6.String()+"/64"))))
	must(t, h.LinkSetUp(eth0))
	must(t, loUp(h))
	must(t, h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: net.IP(o.hostIP.AsSlice())}))
	must(t, h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: net.IP(o.hostIP6.AsSlice())}))
	return o
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func nodad(a *netlink.Addr) *netlink.Addr {
	a.Flags = unix.IFA_F_NODAD
	return a
}

func mustAddr(s string) *netlink.Addr {
	a, err := netlink.ParseAddr(s)
	if err != nil {
		panic(err)
	}
	return a
}

// freePort returns a TCP and UDP port no host socket uses right now.
func freePort(t testing.TB) uint16 {
	t.Helper()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if u, err := net.ListenPacket("udp", "0.0.0.0:"+strconv.Itoa(p)); err == nil {
			u.Close()
			return uint16(p)
		}
	}
	t.Fatal("no free port")
	return 0
}

// assertClean checks that no kernel object of env's manager is left.
func (e *testEnv) assertClean(t testing.TB, hostVeths ...string) {
	t.Helper()
	for _, v := range hostVeths {
		if _, err := netlink.LinkByName(v); err == nil {
			t.Errorf("veth %s left behind", v)
		}
	}
	if _, err := netlink.LinkByName(e.bridge); err == nil {
		t.Errorf("bridge %s left behind", e.bridge)
	}
	if ok, err := newNft(e.m.Table).exists(); err != nil || ok {
		t.Errorf("nftables table %s left behind (err %v)", e.m.Table, err)
	}
	if ok, err := newNft6(e.m.Table).exists(); err != nil || ok {
		t.Errorf("ip6 nftables table %s left behind (err %v)", e.m.Table, err)
	}
	if _, err := os.Stat(filepath.Join(e.m.StateDir, "state.json")); !errors.Is(err, os.ErrNotExist) {
		b, _ := os.ReadFile(filepath.Join(e.m.StateDir, "state.json"))
		t.Errorf("state not empty: %s", b)
	}
}

// tableRules counts the rules of every chain of the table.
func tableRules(t testing.TB, table string) (chains, rules int) {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	all, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range all {
		if ch.Table.Name != table {
			continue
		}
		chains++
		rs, err := c.GetRules(ch.Table, ch)
		if err != nil {
			t.Fatal(err)
		}
		rules += len(rs)
	}
	return chains, rules
}

// hostsLookup resolves name in hosts-file content.
func hostsLookup(hosts []byte, name string) (string, bool) {
	for _, line := range strings.Split(string(hosts), "\n") {
		f := strings.Fields(line)
		for _, n := range f[min(1, len(f)):] {
			if n == name {
				return f[0], true
			}
		}
	}
	return "", false
}

func jsonMarshal(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// hostLink creates a veth pair on the host (this kernel has no dummy links)
// and returns one end; both are deleted at the end of the test.
func hostLink(t testing.TB) netlink.Link {
	t.Helper()
	name := randName("vd")
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	must(t, netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: name + "p"}))
	t.Cleanup(func() {
		for _, n := range []string{name, name + "p"} {
			if l, err := netlink.LinkByName(n); err == nil {
				netlink.LinkDel(l)
			}
		}
	})
	l, err := netlink.LinkByName(name)
	must(t, err)
	return l
}

// removeForwardDir removes the host-wide ip_forward bookkeeping the tests
// created, when no program has a registration in it.
func removeForwardDir() {
	lk, err := lockState(forwardDir, true)
	if err != nil {
		return
	}
	defer lk.unlock()
	for _, fam := range []string{forwardIPv4, forwardIPv6} {
		if _, err := os.Stat(filepath.Join(forwardDir, fam)); err == nil {
			return
		}
	}
	os.Remove(filepath.Join(forwardDir, "lock"))
	os.Remove(forwardDir)
	os.Remove(filepath.Dir(forwardDir)) // only if empty
}
