package network

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func linkIn(t *testing.T, pid int, name string) (netlink.Link, error) {
	t.Helper()
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	return h.LinkByName(name)
}

func isUp(l netlink.Link) bool { return l.Attrs().Flags&net.FlagUp != 0 }

func TestNoneAndLoopback(t *testing.T) {
	e := newEnv(t)
	for _, mode := range []Mode{ModeNone, ModeLoopback} {
		c := startContainer(t)
		a := e.setup(t, "c-"+string(mode), &Config{Mode: mode}, c.pid)
		lo, err := linkIn(t, c.pid, "lo")
		if err != nil {
			t.Fatal(err)
		}
		if isUp(lo) != (mode == ModeLoopback) {
			t.Errorf("%s: lo up = %v", mode, isUp(lo))
		}
		if mode == ModeLoopback {
			serveTCP(t, c.pid, "127.0.0.1:7000")
			if got, err := askTCP(t, c.pid, "127.0.0.1:7000", 2*time.Second); err != nil || got != "127.0.0.1" {
				t.Errorf("loopback inside: %q %v", got, err)
			}
		}
		if !strings.Contains(string(a.Hosts()), "127.0.1.1\tc-"+string(mode)) {
			t.Errorf("hosts: %s", a.Hosts())
		}
		must(t, a.Teardown())
		must(t, a.Teardown())
	}
	// The host namespace itself is refused.
	if _, err := e.m.Setup(context.Background(), "self", Loopback(), os.Getpid()); err == nil || !strings.Contains(err.Error(), "CLONE_NEWNET") {
		t.Errorf("host namespace accepted: %v", err)
	}
	e.assertClean(t)
}

func TestHostAndNetnsModes(t *testing.T) {
	e := newEnv(t)
	a, err := e.m.Setup(context.Background(), "h", Host(), 0)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.ReadFile("/etc/resolv.conf")
	if string(a.ResolvConf()) != string(host) {
		t.Errorf("host mode resolv.conf differs from the host's")
	}
	must(t, a.Teardown())
	c := startContainer(t)
	path := "/proc/" + strconv.Itoa(c.pid) + "/ns/net"
	if _, err := e.m.Setup(context.Background(), "n", Netns(path), 0); err != nil {
		t.Errorf("netns %s: %v", path, err)
	}
	if _, err := e.m.Setup(context.Background(), "n", Netns("/proc/self/ns/pid"), 0); err == nil || !strings.Contains(err.Error(), "netnsPath") {
		t.Errorf("pid namespace accepted as netns: %v", err)
	}
	e.assertClean(t)
}

func TestBridgeContainersTalk(t *testing.T) {
	e := newEnv(t)
	ca, cb := startContainer(t), startContainer(t)
	a := e.setup(t, "alpha", e.bridgeConfig(), ca.pid)
	b := e.setup(t, "beta", e.bridgeConfig(), cb.pid)
	ipA, ipB := addrOf(t, a), addrOf(t, b)
	if ipA == ipB || !e.subnet.Contains(ipA) || !e.subnet.Contains(ipB) || ipA == e.gateway || ipB == e.gateway {
		t.Fatalf("addresses %s %s in %s", ipA, ipB, e.subnet)
	}
	if gw, ok := a.Gateway(); !ok || gw != e.gateway {
		t.Errorf("gateway %v", gw)
	}
	serveTCP(t, ca.pid, "0.0.0.0:8080")
	// By address.
	if got, err := askTCP(t, cb.pid, net.JoinHostPort(ipA.String(), "8080"), 3*time.Second); err != nil || got != ipB.String() {
		t.Errorf("beta -> alpha by address: %q %v", got, err)
	}
	// By name, through beta's hosts content.
	hosts := b.Hosts()
	ip, ok := hostsLookup(hosts, "alpha")
	if !ok || ip != ipA.String() {
		t.Fatalf("beta's hosts has no alpha:\n%s", hosts)
	}
	if self, ok := hostsLookup(hosts, "beta"); !ok || self != ipB.String() {
		t.Errorf("beta's hosts lacks itself:\n%s", hosts)
	}
	if got, err := askTCP(t, cb.pid, net.JoinHostPort(ip, "8080"), 3*time.Second); err != nil || got != ipB.String() {
		t.Errorf("beta -> alpha by name: %q %v", got, err)
	}
	peers, err := a.Peers()
	if err != nil || len(peers) != 1 || peers[0].ID != "beta" || peers[0].Address != ipB {
		t.Errorf("alpha's peers: %+v %v", peers, err)
	}
	// The container reaches the host through the gateway.
	hl := serveTCP(t, 0, net.JoinHostPort(e.gateway.String(), "0"))
	if got, err := askTCP(t, cb.pid, hl.Addr().String(), 3*time.Second); err != nil || got != ipB.String() {
		t.Errorf("beta -> host via gateway: %q %v", got, err)
	}
	veths := []string{a.HostInterface(), b.HostInterface()}
	must(t, a.Teardown())
	if peers, _ := b.Peers(); len(peers) != 0 {
		t.Errorf("alpha still a peer after teardown: %+v", peers)
	}
	if _, err := netlink.LinkByName(e.bridge); err != nil {
		t.Errorf("bridge deleted while beta uses it: %v", err)
	}
	must(t, b.Teardown())
	e.assertClean(t, veths...)
}

func TestNATToOutside(t *testing.T) {
	e := newEnv(t)
	out := newOutside(t)
	serveTCP(t, out.c.pid, out.addr.String()+":9000")
	serveUDP(t, out.c.pid, out.addr.String()+":9001")
	c := startContainer(t)
	a := e.setup(t, "natted", e.bridgeConfig(), c.pid)
	if v, _ := readSysctl(ipForwardPath); v != "1" {
		t.Errorf("ip_forward = %s with a bridge in use", v)
	}
	got, err := askTCP(t, c.pid, out.addr.String()+":9000", 3*time.Second)
	if err != nil || got != out.hostIP.String() {
		t.Errorf("outside saw %q (err %v), want the host address %s (container %s)", got, err, out.hostIP, addrOf(t, a))
	}
	got, err = askUDP(t, c.pid, out.addr.String()+":9001", 3*time.Second)
	if err != nil || got != "udp "+out.hostIP.String() {
		t.Errorf("udp: outside saw %q (err %v)", got, err)
	}
	veth := a.HostInterface()
	must(t, a.Teardown())
	e.assertClean(t, veth)
}

func TestPublishedPorts(t *testing.T) {
	e := newEnv(t)
	tcpPort, udpPort, localPort := freePort(t), freePort(t), freePort(t)
	ca, cb := startContainer(t), startContainer(t)
	cfg := e.bridgeConfig()
	cfg.Publish = []Port{
		{HostPort: tcpPort, ContainerPort: 80},
		{HostPort: udpPort, ContainerPort: 53, Protocol: "udp"},
		{HostIP: "127.0.0.1", HostPort: localPort, ContainerPort: 80},
	}
	a := e.setup(t, "web", cfg, ca.pid)
	b := e.setup(t, "client", e.bridgeConfig(), cb.pid)
	serveTCP(t, ca.pid, "0.0.0.0:80")
	serveUDP(t, ca.pid, "0.0.0.0:53")
	gw := e.gateway.String()
	for _, target := range []string{"127.0.0.1", gw} {
		addr := net.JoinHostPort(target, strconv.Itoa(int(tcpPort)))
		if got, err := askTCP(t, 0, addr, 3*time.Second); err != nil || got == "" {
			t.Errorf("host -> %s tcp: %q %v", addr, got, err)
		}
		addr = net.JoinHostPort(target, strconv.Itoa(int(udpPort)))
		if got, err := askUDP(t, 0, addr, 3*time.Second); err != nil || !strings.HasPrefix(got, "udp ") {
			t.Errorf("host -> %s udp: %q %v", addr, got, err)
		}
	}
	// Bound to 127.0.0.1 only.
	if got, err := askTCP(t, 0, "127.0.0.1:"+strconv.Itoa(int(localPort)), 3*time.Second); err != nil || got == "" {
		t.Errorf("127.0.0.1-only port from 127.0.0.1: %q %v", got, err)
	}
	if got, err := askTCP(t, 0, gw+":"+strconv.Itoa(int(localPort)), time.Second); err == nil {
		t.Errorf("127.0.0.1-only port answered on %s: %q", gw, got)
	}
	// Hairpin: another container and the publishing container itself reach
	// the published port through the host address.
	for _, from := range []*container{cb, ca} {
		addr := net.JoinHostPort(gw, strconv.Itoa(int(tcpPort)))
		if got, err := askTCP(t, from.pid, addr, 3*time.Second); err != nil || got == "" {
			t.Errorf("container %d -> %s: %q %v", from.pid, addr, got, err)
		}
		if got, err := askUDP(t, from.pid, net.JoinHostPort(gw, strconv.Itoa(int(udpPort))), 3*time.Second); err != nil {
			t.Errorf("container %d -> udp %s: %q %v", from.pid, addr, got, err)
		}
	}
	_ = b
	// A port another container publishes is taken.
	cc := startContainer(t)
	dup := e.bridgeConfig()
	dup.Publish = []Port{{HostPort: tcpPort, ContainerPort: 81}}
	if _, err := e.m.Setup(context.Background(), "dup", dup, cc.pid); err == nil || !strings.Contains(err.Error(), "port taken") {
		t.Errorf("publishing %d twice: %v", tcpPort, err)
	}
	// A port a host program listens on is taken.
	busy := freePort(t)
	l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(int(busy)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dup.Publish = []Port{{HostPort: busy, ContainerPort: 81}}
	if _, err := e.m.Setup(context.Background(), "dup", dup, cc.pid); err == nil || !strings.Contains(err.Error(), "port taken") {
		t.Errorf("publishing a port a host listener holds: %v", err)
	}
	// A host address that is not the host's.
	dup.Publish = []Port{{HostIP: "192.0.2.254", HostPort: freePort(t), ContainerPort: 81}}
	if _, err := e.m.Setup(context.Background(), "dup", dup, cc.pid); err == nil || !strings.Contains(err.Error(), "not an address of this host") {
		t.Errorf("foreign host address: %v", err)
	}
	if l, err := linkIn(t, cc.pid, "eth0"); err == nil {
		t.Errorf("failed setups left %s in the container", l.Attrs().Name)
	}
	if peers, _ := a.Peers(); len(peers) != 1 {
		t.Errorf("failed setups left allocations: %+v", peers)
	}
	_, before := tableRules(t, e.m.Table)
	veths := []string{a.HostInterface(), b.HostInterface()}
	must(t, a.Teardown())
	if _, after := tableRules(t, e.m.Table); after != before-2*len(cfg.Publish) {
		t.Errorf("rules %d -> %d after tearing down 3 published ports", before, after)
	}
	if got, err := askTCP(t, 0, "127.0.0.1:"+strconv.Itoa(int(tcpPort)), time.Second); err == nil {
		t.Errorf("port still answers after teardown: %q", got)
	}
	must(t, b.Teardown())
	e.assertClean(t, veths...)
}

func TestFirewall(t *testing.T) {
	e := newEnv(t)
	out := newOutside(t)
	serveTCP(t, out.c.pid, out.addr.String()+":9100")
	serveTCP(t, out.c.pid, out.addr.String()+":9200")
	target := out.addr.String() + "/32"

	// Deny one port, allow the rest.
	c1 := startContainer(t)
	cfg := e.bridgeConfig()
	cfg.Firewall = []Rule{{Action: Deny, CIDR: target, Protocol: "tcp", Port: 9100}}
	a1 := e.setup(t, "denyone", cfg, c1.pid)
	// Allow one port, deny the rest.
	c2 := startContainer(t)
	cfg = e.bridgeConfig()
	cfg.Firewall = []Rule{{Action: Allow, CIDR: target, Protocol: "tcp", Port: 9200}}
	cfg.FirewallDefault = Deny
	a2 := e.setup(t, "allowone", cfg, c2.pid)

	check := func(c *container, port string, want bool) {
		t.Helper()
		timeout := 3 * time.Second
		if !want {
			timeout = 500 * time.Millisecond // a dropped SYN never answers
		}
		_, err := askTCP(t, c.pid, out.addr.String()+":"+port, timeout)
		if (err == nil) != want {
			t.Errorf("container %d -> port %s: err %v, want allowed=%v", c.pid, port, err, want)
		}
	}
	check(c1, "9100", false)
	check(c1, "9200", true)
	check(c2, "9100", false)
	check(c2, "9200", true)
	// The rules belong to each container: a third one without rules is free.
	c3 := startContainer(t)
	a3 := e.setup(t, "free", e.bridgeConfig(), c3.pid)
	check(c3, "9100", true)
	veths := []string{a1.HostInterface(), a2.HostInterface(), a3.HostInterface()}
	must(t, a1.Teardown())
	check(c1, "9100", false) // no route any more, still nothing gets through
	must(t, a2.Teardown())
	must(t, a3.Teardown())
	e.assertClean(t, veths...)
}

// measureRate starts send and measures the bits per second recv gets,
// after a warm-up.
func measureRate(t *testing.T, send func(), recv net.Conn) float64 {
	t.Helper()
	go send()
	var total int64
	buf := make([]byte, 64<<10)
	var start time.Time
	var startBytes int64
	deadline := time.Now().Add(3 * time.Second)
	recv.SetReadDeadline(deadline.Add(time.Second))
	warm := time.Now().Add(700 * time.Millisecond)
	for time.Now().Before(deadline) {
		n, err := recv.Read(buf)
		total += int64(n)
		if start.IsZero() && time.Now().After(warm) {
			start, startBytes = time.Now(), total
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	}
	return float64(total-startBytes) * 8 / time.Since(start).Seconds()
}

func TestRateLimits(t *testing.T) {
	const rate = 10_000_000
	e := newEnv(t)
	out := newOutside(t)
	for _, dir := range []string{"egress", "ingress"} {
		t.Run(dir, func(t *testing.T) {
			c := startContainer(t)
			cfg := e.bridgeConfig()
			if dir == "egress" {
				cfg.EgressRate = rate
			} else {
				cfg.IngressRate = rate
			}
			a := e.setup(t, "rl-"+dir, cfg, c.pid)
			var l net.Listener
			must(t, inNs(t, out.c.pid, func() (err error) { l, err = net.Listen("tcp4", out.addr.String()+":0"); return err }))
			defer l.Close()
			var client net.Conn
			must(t, inNs(t, c.pid, func() (err error) { client, err = net.Dial("tcp4", l.Addr().String()); return err }))
			defer client.Close()
			server, err := l.Accept()
			must(t, err)
			defer server.Close()
			sender, receiver := client, server
			if dir == "ingress" {
				sender, receiver = server, client
			}
			stop := make(chan struct{})
			defer close(stop)
			send := func() {
				buf := make([]byte, 32<<10)
				for {
					select {
					case <-stop:
						return
					default:
					}
					sender.SetWriteDeadline(time.Now().Add(5 * time.Second))
					if _, err := sender.Write(buf); err != nil {
						return
					}
				}
			}
			// Up to three measurements of the same stream: a busy CPU can
			// only slow it (a shaper that lets more through fails at once).
			var got float64
			for try := 0; try < 3; try++ {
				got = measureRate(t, send, receiver)
				send = func() {} // the sender goes on
				t.Logf("%s: %.2f Mbit/s (limit %d Mbit/s)", dir, got/1e6, rate/1_000_000)
				if got > rate*1.2 {
					t.Fatalf("%s rate %.2f Mbit/s, above %d Mbit/s by more than 20%%", dir, got/1e6, rate/1_000_000)
				}
				if got >= rate*0.8 {
					break
				}
			}
			if got < rate*0.8 {
				t.Errorf("%s rate %.2f Mbit/s, want %d Mbit/s within 20%%", dir, got/1e6, rate/1_000_000)
			}
			sender.Close()
			must(t, a.Teardown())
		})
	}
	e.assertClean(t)
}

func TestConcurrentSetupTeardown(t *testing.T) {
	const n = 50
	e := newEnv(t)
	cs := make([]*container, n)
	for i := range cs {
		cs[i] = startContainer(t)
	}
	atts := make([]*Attachment, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := e.bridgeConfig()
			cfg.Publish = []Port{{HostPort: uint16(40000 + i), ContainerPort: 80}}
			cfg.Firewall = []Rule{{Action: Deny, CIDR: "192.0.2.0/24"}}
			atts[i], errs[i] = e.m.Setup(context.Background(), fmt.Sprintf("c%02d", i), cfg, cs[i].pid)
		}()
	}
	wg.Wait()
	seen := map[netip.Addr]bool{}
	var veths []string
	for i, a := range atts {
		if errs[i] != nil {
			t.Fatalf("setup %d: %v", i, errs[i])
		}
		ip := addrOf(t, a)
		if seen[ip] {
			t.Errorf("address %s given twice", ip)
		}
		seen[ip] = true
		veths = append(veths, a.HostInterface())
		if l, err := linkIn(t, cs[i].pid, "eth0"); err != nil || !isUp(l) {
			t.Errorf("container %d has no eth0 up: %v", i, err)
		}
	}
	if chains, rules := tableRules(t, e.m.Table); chains != 5+n || rules != 3+n*(2+2+3) {
		t.Errorf("nftables: %d chains, %d rules; want %d and %d", chains, rules, 5+n, 3+n*7)
	}
	for i := range atts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = atts[i].Teardown()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("teardown %d: %v", i, err)
		}
	}
	e.assertClean(t, veths...)
}

// startController runs a controlling program in a child process that sets up
// a container and then waits; it returns the controller and the container
// pid.
func startController(t *testing.T, e *testEnv, id string) (*exec.Cmd, int) {
	t.Helper()
	spec, _ := jsonMarshal(controllerSpec{StateDir: e.m.StateDir, Table: e.m.Table, ID: id, Config: *e.bridgeConfig()})
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), helperEnv+"=controller", "VESSEL_NETWORK_TEST_SPEC="+spec)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, _ := cmd.StdoutPipe()
	stdin, _ := cmd.StdinPipe()
	must(t, cmd.Start())
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	// "ready PID", or "error WHY".
	line, err := bufio.NewReader(stdout).ReadString('\n')
	var pid int
	if n, _ := fmt.Sscanf(line, "ready %d", &pid); n != 1 {
		t.Fatalf("controller: %q %v", line, err)
	}
	return cmd, pid
}

func killController(t *testing.T, cmd *exec.Cmd, pid int) {
	t.Helper()
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	cmd.Wait()
	for i := 0; processStart(pid) != 0; i++ {
		if i > 500 {
			t.Fatalf("container %d still alive after its controller died", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStaleOwnerCleanup(t *testing.T) {
	e := newEnv(t)
	cmd, pid := startController(t, e, "orphan")
	veth := "vx" + e.m.shortHash("orphan")
	if _, err := netlink.LinkByName(veth); err != nil {
		t.Fatalf("controller's veth: %v", err)
	}
	// While the controller lives nothing is reclaimed.
	must(t, e.m.Cleanup(context.Background()))
	if _, err := e.m.Attachment("orphan"); err != nil {
		t.Fatalf("live attachment reclaimed: %v", err)
	}
	killController(t, cmd, pid)
	must(t, e.m.Cleanup(context.Background()))
	e.assertClean(t, veth)

	// The next Setup reclaims stale entries too, and reuses the address.
	cmd, pid = startController(t, e, "orphan2")
	old, err := e.m.Attachment("orphan2")
	must(t, err)
	killController(t, cmd, pid)
	c := startContainer(t)
	a := e.setup(t, "fresh", e.bridgeConfig(), c.pid)
	if _, err := e.m.Attachment("orphan2"); err == nil {
		t.Errorf("stale attachment survived the next Setup")
	}
	if _, err := netlink.LinkByName(old.HostInterface()); err == nil {
		t.Errorf("stale veth %s survived the next Setup", old.HostInterface())
	}
	if addrOf(t, a) != old.Addresses()[0].Addr() {
		t.Errorf("address %s not reused (stale one had %s)", addrOf(t, a), old.Addresses()[0])
	}
	must(t, old.Teardown()) // the stale handle is harmless
	must(t, a.Teardown())
	e.assertClean(t, a.HostInterface())
}

func TestBadInputLeavesNothing(t *testing.T) {
	forwardBefore, _ := readSysctl(ipForwardPath)
	e := newEnv(t)
	c := startContainer(t)
	// A subnet overlapping a host address.
	dl := hostLink(t)
	must(t, netlink.AddrAdd(dl, mustAddr(e.subnet.Addr().Next().Next().String()+"/28")))
	cases := []struct {
		cfg  *Config
		want string
	}{
		{e.bridgeConfig(), "overlaps"},
		{&Config{Mode: ModeBridge, Bridge: e.bridge, Subnet: "10.1.2.0/240"}, "subnet: bad CIDR"},
		{&Config{Mode: ModeMacvlan, Parent: randName("vn"), Address: "10.1.2.3/24"}, "parent: host interface"},
		{&Config{Mode: ModeIpvlan, Parent: randName("vn"), Address: "10.1.2.3/24"}, "no such interface"},
		{&Config{Mode: ModeLoopback, Interfaces: []string{randName("vn")}}, "interfaces[0]"},
		{&Config{Mode: ModeBridge, Bridge: e.bridge, Subnet: freeSubnet(t).String(), Interfaces: []string{randName("vn")}}, "interfaces[0]"},
		{&Config{Mode: ModeBridge, Bridge: "lo"}, "not a bridge of this vessel state"},
	}
	for _, tc := range cases {
		_, err := e.m.Setup(context.Background(), "bad", tc.cfg, c.pid)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
	// A failure at the very end of the wiring (a bridge cannot change
	// namespace) unwinds the bridge, veth, rules, allocation and ip_forward.
	local := randName("vb")
	attrs := netlink.NewLinkAttrs()
	attrs.Name = local
	must(t, netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}))
	defer func() {
		if l, err := netlink.LinkByName(local); err == nil {
			netlink.LinkDel(l)
		}
	}()
	late := e.bridgeConfig()
	late.Subnet = freeSubnet(t).String()
	late.Publish = []Port{{HostPort: freePort(t), ContainerPort: 80}}
	late.Firewall = []Rule{{Action: Deny, CIDR: "192.0.2.0/24"}}
	late.Interfaces = []string{local}
	if _, err := e.m.Setup(context.Background(), "late", late, c.pid); err == nil || !strings.Contains(err.Error(), "interfaces[0]") {
		t.Errorf("moving a bridge: %v", err)
	}
	if _, err := netlink.LinkByName(local); err != nil {
		t.Errorf("%s lost: %v", local, err)
	}
	if v, _ := readSysctl(ipForwardPath); v != forwardBefore {
		t.Errorf("ip_forward %s after a failed setup, was %s", v, forwardBefore)
	}
	if _, err := e.m.Setup(context.Background(), "bad", Loopback(), 999999999); err == nil {
		t.Errorf("nonexistent pid accepted")
	}
	if l, err := linkIn(t, c.pid, "eth0"); err == nil {
		t.Errorf("failed setups left %s", l.Attrs().Name)
	}
	e.assertClean(t)
}

func TestVlanModes(t *testing.T) {
	for _, mode := range []Mode{ModeMacvlan, ModeIpvlan} {
		t.Run(string(mode), func(t *testing.T) {
			e := newEnv(t)
			pl := hostLink(t)
			parent := pl.Attrs().Name
			must(t, netlink.LinkSetUp(pl))
			peer, err := netlink.LinkByName(parent + "p")
			must(t, err)
			must(t, netlink.LinkSetUp(peer))
			if mode == ModeIpvlan {
				probe := netlink.NewLinkAttrs()
				probe.Name, probe.ParentIndex = randName("vq"), pl.Attrs().Index
				err := netlink.LinkAdd(&netlink.IPVlan{LinkAttrs: probe, Mode: netlink.IPVLAN_MODE_L2})
				if errors.Is(err, syscall.EOPNOTSUPP) {
					// This machine's kernel is built without ipvlan; the clear error is still checked.
					c := startContainer(t)
					_, err := e.m.Setup(context.Background(), "vx", &Config{Mode: mode, Parent: parent, Address: "10.9.9.9/24"}, c.pid)
					if err == nil || !strings.Contains(err.Error(), "does not support ipvlan") {
						t.Errorf("ipvlan without kernel support: %v", err)
					}
					e.assertClean(t)
					t.Skip("kernel has no ipvlan link type")
				}
				must(t, err)
				l, _ := netlink.LinkByName(probe.Name)
				netlink.LinkDel(l)
			}
			ipA, ipB := e.subnet.Addr().Next().Next(), e.subnet.Addr().Next().Next().Next()
			ca, cb := startContainer(t), startContainer(t)
			a := e.setup(t, "va", &Config{Mode: mode, Parent: parent, Address: ipA.String() + "/24", Gateway: e.gateway.String(), EgressRate: 50e6}, ca.pid)
			b := e.setup(t, "vb", &Config{Mode: mode, Parent: parent, Address: ipB.String() + "/24"}, cb.pid)
			if addrOf(t, a) != ipA {
				t.Errorf("address %v", a.Addresses())
			}
			l, err := linkIn(t, ca.pid, "eth0")
			if err != nil || l.Type() != string(mode) || !isUp(l) {
				t.Fatalf("eth0 in container: %v %v", l, err)
			}
			serveTCP(t, ca.pid, "0.0.0.0:7070")
			if got, err := askTCP(t, cb.pid, ipA.String()+":7070", 3*time.Second); err != nil || got != ipB.String() {
				t.Errorf("vb -> va: %q %v", got, err)
			}
			must(t, a.Teardown())
			if _, err := linkIn(t, ca.pid, "eth0"); err == nil {
				t.Errorf("eth0 still in the container after teardown")
			}
			must(t, b.Teardown())
			if _, err := e.m.Setup(context.Background(), "vc", &Config{Mode: mode, Parent: parent + "x", Address: "10.9.9.9/24"}, cb.pid); err == nil || !strings.Contains(err.Error(), "parent") {
				t.Errorf("unknown parent: %v", err)
			}
			e.assertClean(t)
		})
	}
}

func TestMoveInterfaces(t *testing.T) {
	e := newEnv(t)
	l := hostLink(t)
	name := l.Attrs().Name
	addr := e.subnet.Addr().Next().String() + "/24"
	must(t, netlink.AddrAdd(l, mustAddr(addr)))
	must(t, netlink.LinkSetUp(l))
	c := startContainer(t)
	a := e.setup(t, "mover", &Config{Mode: ModeLoopback, Interfaces: []string{name}}, c.pid)
	if _, err := netlink.LinkByName(name); err == nil {
		t.Errorf("%s still on the host", name)
	}
	if l, err := linkIn(t, c.pid, name); err != nil || !isUp(l) {
		t.Errorf("%s not up in the container: %v", name, err)
	}
	// Teardown gives it back even after the container exited.
	c.stop()
	must(t, a.Teardown())
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatalf("%s not given back: %v", name, err)
	}
	if !isUp(l) {
		t.Errorf("%s given back down", name)
	}
	addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
	if len(addrs) != 1 || addrs[0].IPNet.String() != addr {
		t.Errorf("%s addresses after return: %v", name, addrs)
	}
	e.assertClean(t)
}

func TestDefaultPoolCarving(t *testing.T) {
	e := newEnv(t)
	e.m.Pool = "10.99.0.0/16"
	c := startContainer(t)
	h, _ := netlink.NewHandle()
	defer h.Close()
	used, err := usedNetworks(h, &state{})
	must(t, err)
	want, err := carve(netip.MustParsePrefix(e.m.Pool), 24, used)
	must(t, err)
	a := e.setup(t, "pooled", &Config{Mode: ModeBridge, Bridge: e.bridge}, c.pid)
	if !want.Contains(addrOf(t, a)) {
		t.Errorf("address %s not in the first free pool subnet %s", addrOf(t, a), want)
	}
	// State is persisted where the manager says.
	if _, err := os.Stat(filepath.Join(e.m.StateDir, "state.json")); err != nil {
		t.Errorf("no state file: %v", err)
	}
	must(t, a.Teardown())
	e.assertClean(t, a.HostInterface())
}

// ip_forward is host-wide: a manager finishing must not switch it off under
// another manager's containers.
func TestForwardingSharedBetweenManagers(t *testing.T) {
	before, _ := readSysctl(ipForwardPath)
	e1, e2 := newEnv(t), newEnv(t)
	c1, c2 := startContainer(t), startContainer(t)
	a1 := e1.setup(t, "one", e1.bridgeConfig(), c1.pid)
	a2 := e2.setup(t, "two", e2.bridgeConfig(), c2.pid)
	must(t, a1.Teardown())
	if v, _ := readSysctl(ipForwardPath); v != "1" {
		t.Errorf("ip_forward %s while the second manager still has a bridge", v)
	}
	must(t, a2.Teardown())
	if v, _ := readSysctl(ipForwardPath); v != before {
		t.Errorf("ip_forward %s after the last bridge, was %s", v, before)
	}
	e1.assertClean(t, a1.HostInterface())
	e2.assertClean(t, a2.HostInterface())
}

func TestIPv6(t *testing.T) {
	e, e2 := newEnv(t), newEnv(t)
	out := newOutside(t)
	serveTCP(t, out.c.pid, "["+out.addr6.String()+"]:9000")
	ca, cb, cc := startContainer(t), startContainer(t), startContainer(t)
	cfg := e.bridgeConfig()
	cfg.IPv6 = true
	a := e.setup(t, "six-a", cfg, ca.pid)
	b := e.setup(t, "six-b", cfg, cb.pid)
	if len(a.Addresses()) != 2 || len(b.Addresses()) != 2 {
		t.Fatalf("addresses %v %v", a.Addresses(), b.Addresses())
	}
	a6, b6 := a.Addresses()[1].Addr(), b.Addresses()[1].Addr()
	if !a6.Is6() || a6.As16()[0] != 0xfd || a6 == b6 {
		t.Fatalf("IPv6 addresses %s %s", a6, b6)
	}
	if gw, ok := a.Gateway6(); !ok || !a.Addresses()[1].Contains(gw) {
		t.Errorf("IPv6 gateway %v", gw)
	}
	serveTCP(t, ca.pid, "[::]:8080")
	if got, err := askTCP(t, cb.pid, net.JoinHostPort(a6.String(), "8080"), 3*time.Second); err != nil || got != b6.String() {
		t.Errorf("six-b -> six-a over IPv6: %q %v", got, err)
	}
	if !strings.Contains(string(b.Hosts()), a6.String()+"\tsix-a") {
		t.Errorf("hosts lacks six-a's IPv6 address:\n%s", b.Hosts())
	}
	// NAT66 to the outside.
	if got, err := askTCP(t, ca.pid, net.JoinHostPort(out.addr6.String(), "9000"), 3*time.Second); err != nil || got != out.hostIP6.String() {
		t.Errorf("outside saw %q (err %v), want %s", got, err, out.hostIP6)
	}
	if v, _ := readSysctl(forwardSysctl(forwardIPv6)); v != "1" {
		t.Errorf("IPv6 forwarding %s with an IPv6 bridge in use", v)
	}
	// A default-deny firewall holds for IPv6 too.
	deny := e.bridgeConfig()
	deny.IPv6 = true
	deny.FirewallDefault = Deny
	c := e.setup(t, "six-c", deny, cc.pid)
	if got, err := askTCP(t, cc.pid, net.JoinHostPort(out.addr6.String(), "9000"), 500*time.Millisecond); err == nil {
		t.Errorf("default deny let IPv6 through: %q", got)
	}
	// A bridge made without IPv6 refuses IPv6 containers clearly.
	c4 := startContainer(t)
	v4 := e2.setup(t, "four", e2.bridgeConfig(), c4.pid)
	want6 := e2.bridgeConfig()
	want6.IPv6 = true
	if _, err := e2.m.Setup(context.Background(), "six", want6, startContainer(t).pid); err == nil || !strings.Contains(err.Error(), "invalid ipv6:") {
		t.Errorf("IPv6 on a bridge without it: %v", err)
	}
	veths := []string{a.HostInterface(), b.HostInterface(), c.HostInterface()}
	must(t, a.Teardown())
	must(t, b.Teardown())
	must(t, c.Teardown())
	must(t, v4.Teardown())
	e.assertClean(t, veths...)
	e2.assertClean(t, v4.HostInterface())
}
