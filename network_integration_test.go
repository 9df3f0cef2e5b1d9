package vessel_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"

	"github.com/openvessel/vessel"
	"github.com/openvessel/vessel/internal/probe"
	"github.com/openvessel/vessel/internal/testutil"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/network"
	"github.com/openvessel/vessel/rootfs"
)

// testBridge returns a bridge-mode config on a bridge and a 10.213.X.0/24
// subnet of the test's own, so tests never meet the system's containers.
func testBridge(t testing.TB) *network.Config {
	t.Helper()
	used := map[int]bool{}
	ifaces, _ := net.InterfaceAddrs()
	for _, a := range ifaces {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
			b := p.Addr().As4()
			if b[0] == 10 && b[1] == 213 {
				used[int(b[2])] = true
			}
		}
	}
	x := 1 + rand.IntN(250)
	for used[x] {
		x = 1 + rand.IntN(250)
	}
	return &network.Config{
		Mode:   network.ModeBridge,
		Bridge: fmt.Sprintf("vt%08x", rand.Uint32()),
		Subnet: fmt.Sprintf("10.213.%d.0/24", x),
		// A failed lookup must not send queries to the host's nameservers.
		DNS: []string{"127.0.0.1"},
	}
}

// netLinks returns the names in /sys/class/net.
func netLinks(t testing.TB) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range ents {
		out[e.Name()] = true
	}
	return out
}

// netState is the default network manager's shared state as far as the
// tests look at it.
type netState struct {
	Bridges   map[string]json.RawMessage `json:"bridges"`
	Endpoints map[string]json.RawMessage `json:"endpoints"`
}

func readNetState(t testing.TB) netState {
	t.Helper()
	var st netState
	b, err := os.ReadFile(filepath.Join(network.DefaultStateDir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return st
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("state.json: %v\n%s", err, b)
	}
	return st
}

// nftTables returns the nftables tables as "family/name".
func nftTables(t testing.TB) map[string]bool {
	t.Helper()
	conn, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := conn.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, tb := range tables {
		out[fmt.Sprintf("%d/%s", tb.Family, tb.Name)] = true
	}
	return out
}

// nftRulesTagged counts the rules of the default manager's tables whose
// comment names one of the container ids or the bridge.
func nftRulesTagged(t testing.TB, bridge string, ids ...string) int {
	t.Helper()
	conn, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	chains, err := conn.ListChains()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"vessel bridge=" + bridge: true}
	for _, id := range ids {
		want["vessel id="+id] = true
	}
	n := 0
	for _, ch := range chains {
		if ch.Table.Name != "vessel" {
			continue
		}
		rules, err := conn.GetRules(ch.Table, ch)
		if err != nil {
			continue // removed meanwhile
		}
		for _, r := range rules {
			if s, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok && want[s] {
				n++
			}
		}
	}
	return n
}

// netBaseline is what a network test compares after Destroy. Links are
// compared by name only for the test's own bridge and veths: other
// programs' tests (the network package's, run in parallel by go test ./...)
// create and delete links of their own meanwhile.
type netBaseline struct {
	host    hostSnapshot
	tables  map[string]bool
	forward string
}

func takeNetBaseline(t testing.TB) netBaseline {
	t.Helper()
	// The first container of a program makes lasting state (the sealed
	// executable copy): make it before measuring.
	if out, err := run(t, newConfig(), "/bin/true"); err != nil {
		t.Fatalf("warm-up: %v %s", err, out)
	}
	fw, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	return netBaseline{host: snapshot(t), tables: nftTables(t), forward: string(fw)}
}

// assertNetClean checks that nothing of the containers ids on bridge is
// left: links, nftables rules and tables, allocations, ip_forward, cgroups,
// and the test process's mounts, descriptors and children.
func (b netBaseline) assertNetClean(t testing.TB, bridge string, ids []string, veths []string) {
	t.Helper()
	b.host.assertUnchanged(t, snapshot(t))
	now := netLinks(t)
	for _, l := range append([]string{bridge}, veths...) {
		if now[l] {
			t.Errorf("link %s left after Destroy", l)
		}
	}
	if n := nftRulesTagged(t, bridge, ids...); n > 0 {
		t.Errorf("%d nftables rules of the test containers left", n)
	}
	tables := nftTables(t)
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		k := fmt.Sprintf("%d/%s", fam, network.DefaultTable)
		if tables[k] && !b.tables[k] && len(readNetState(t).Endpoints) == 0 {
			t.Errorf("nftables table %s left with no container using it", k)
		}
	}
	st := readNetState(t)
	for _, id := range ids {
		if _, ok := st.Endpoints[id]; ok {
			t.Errorf("address allocation of %s left in %s", id, network.DefaultStateDir)
		}
		if !cgroupGone(t, id) {
			t.Errorf("cgroup of %s left", id)
		}
	}
	if _, ok := st.Bridges[bridge]; ok {
		t.Errorf("bridge %s still recorded in the state", bridge)
	}
	if fw, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); string(fw) != b.forward && len(st.Bridges) == 0 {
		t.Errorf("ip_forward is %q, was %q", fw, b.forward)
	}
}

func ifaceNames(r *probe.Report) []string {
	var out []string
	for _, i := range r.Interfaces {
		out = append(out, i.Name)
	}
	return out
}

func TestNetworkNone(t *testing.T) {
	r := report(t, newConfig().WithNetwork(network.None()))
	if len(r.Interfaces) != 1 || r.Interfaces[0].Name != "lo" || r.Interfaces[0].Up {
		t.Fatalf("interfaces %+v, want only lo, down", r.Interfaces)
	}
	if r.Namespaces["net"] == hostNS(t, "net") {
		t.Fatal("none mode shares the host's network namespace")
	}
	// With lo down, 127.0.0.1 is unreachable.
	testutil.AssertDenied(t, try(t, newConfig().WithNetwork(network.None()), "connect", "127.0.0.1:9", "1s"), syscall.ENETUNREACH)
}

func TestNetworkLoopback(t *testing.T) {
	for name, cfg := range map[string]*vessel.Config{
		"default":  newConfig(),
		"explicit": newConfig().WithNetwork(network.Loopback()),
	} {
		r := report(t, cfg)
		lo, ok := r.Interface("lo")
		if len(r.Interfaces) != 1 || !ok || !lo.Up {
			t.Errorf("%s: interfaces %+v, want only lo, up", name, r.Interfaces)
		}
		if r.Namespaces["net"] == hostNS(t, "net") {
			t.Errorf("%s: loopback mode shares the host's network namespace", name)
		}
	}
	// Loopback works inside: 127.0.0.1 can be bound, and a connection to
	// a closed port is refused (not unreachable).
	testutil.AssertAllowed(t, try(t, newConfig().WithNetwork(network.Loopback()), "bind", "7777", "127.0.0.1"))
	testutil.AssertDenied(t, try(t, newConfig().WithNetwork(network.Loopback()), "connect", "127.0.0.1:9", "1s"), syscall.ECONNREFUSED)
}

func TestNetworkHost(t *testing.T) {
	r := report(t, newConfig().WithNetwork(network.Host()))
	if r.Namespaces["net"] != hostNS(t, "net") {
		t.Fatalf("host mode: net ns %d, host %d", r.Namespaces["net"], hostNS(t, "net"))
	}
	// The host's own interfaces are there (others may come and go).
	hostIfs, _ := net.Interfaces()
	for _, hi := range hostIfs {
		if hi.Name == "lo" || strings.HasPrefix(hi.Name, "eth") {
			if _, ok := r.Interface(hi.Name); !ok {
				t.Errorf("host mode lacks the host's %s: sees %v", hi.Name, ifaceNames(r))
			}
		}
	}
	// A listener on the host is reachable from inside through 127.0.0.1.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	testutil.AssertAllowed(t, try(t, newConfig().WithNetwork(network.Host()), "connect", l.Addr().String()))
	// Host mode and a network namespace of the container's own conflict.
	var ce *vessel.ConfigError
	cfg := newConfig().WithNetwork(network.Host()).WithNamespace(namespaces.Net, "")
	if _, err := vessel.New("bad", cfg); !errors.As(err, &ce) || ce.Field != "network.mode" {
		t.Errorf("host mode with a new net namespace: %v", err)
	}
}

func TestBridgeContainersTalk(t *testing.T) {
	base := takeNetBaseline(t)
	nc := testBridge(t)
	www := t.TempDir()
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("hello from alpha\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	alphaCfg := newConfig().WithRootfs(rootfs.Dir(testutil.BusyboxRootfsCopy(t))).
		WithHostname("alpha").WithNetwork(nc).WithBind(www, "/www", true)
	alpha, alphaOut := start(t, alphaCfg, "httpd", "-f", "-p", "8080", "-h", "/www")
	betaNC := *nc
	betaCfg := newConfig().WithRootfs(rootfs.Dir(testutil.BusyboxRootfsCopy(t))).
		WithHostname("beta").WithNetwork(&betaNC)
	beta, _ := start(t, betaCfg, "sleep", "30")

	if alpha.Network() == nil || beta.Network() == nil {
		t.Fatal("bridge containers have no network attachment")
	}
	subnet := netip.MustParsePrefix(nc.Subnet)
	addrA, addrB := alpha.Network().Addresses(), beta.Network().Addresses()
	if len(addrA) == 0 || len(addrB) == 0 {
		t.Fatalf("addresses %v %v", addrA, addrB)
	}
	ipA, ipB := addrA[0].Addr(), addrB[0].Addr()
	if ipA == ipB || !subnet.Contains(ipA) || !subnet.Contains(ipB) {
		t.Fatalf("addresses %s %s in %s", ipA, ipB, subnet)
	}
	if alpha.Network().Bridge() != nc.Bridge {
		t.Errorf("bridge %q, want %q", alpha.Network().Bridge(), nc.Bridge)
	}
	veths := []string{alpha.Network().HostInterface(), beta.Network().HostInterface()}
	ids := []string{alpha.ID(), beta.ID()}
	// What assertNetClean looks for is there while the containers run.
	links := netLinks(t)
	for _, l := range append([]string{nc.Bridge}, veths...) {
		if !links[l] {
			t.Errorf("link %s missing while the containers run", l)
		}
	}
	if st := readNetState(t); st.Endpoints[ids[0]] == nil || st.Endpoints[ids[1]] == nil || st.Bridges[nc.Bridge] == nil {
		t.Errorf("state does not record the containers and bridge: %+v", st)
	}
	if n := nftRulesTagged(t, nc.Bridge, ids...); n == 0 {
		t.Error("no nftables rule tagged with the bridge or the containers")
	}

	connect := func(target string) *probe.TryResult {
		out, _, _ := execOut(t, beta, vessel.Command(testutil.RootfsProbePath, "try", "connect", target, "1s"))
		return testutil.MustParseTry(t, []byte(out))
	}
	// By address (waiting for httpd to listen).
	byAddr := net.JoinHostPort(ipA.String(), "8080")
	deadline := time.Now().Add(5 * time.Second)
	tr := connect(byAddr)
	for !tr.OK && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		tr = connect(byAddr)
	}
	testutil.AssertAllowed(t, tr)
	// By name.
	testutil.AssertAllowed(t, connect("alpha:8080"))
	// Real traffic: beta fetches alpha's page.
	out, errOut, err := execOut(t, beta, vessel.Command("wget", "-q", "-O", "-", "http://"+byAddr+"/index.html"))
	if err != nil || out != "hello from alpha\n" {
		t.Errorf("wget from beta: %q %q %v (alpha: %s)", out, errOut, err, alphaOut.String())
	}
	// Each container's view: eth0 with its address, /etc/hosts naming itself
	// (and, for beta, alpha, which was there first).
	rb := execReport(t, beta, testutil.RootfsProbePath)
	eth0, ok := rb.Interface("eth0")
	if !ok || !eth0.Up || len(eth0.Addrs) == 0 || eth0.Addrs[0] != addrB[0].String() {
		t.Errorf("beta's eth0 %+v, want up with %s", eth0, addrB[0])
	}
	if !hostsHas(rb.EtcHosts, ipB.String(), "beta") || !hostsHas(rb.EtcHosts, ipA.String(), "alpha") {
		t.Errorf("beta's /etc/hosts:\n%s", rb.EtcHosts)
	}
	if !strings.Contains(rb.EtcResolvConf, "nameserver 127.0.0.1") {
		t.Errorf("beta's resolv.conf does not use the configured DNS:\n%s", rb.EtcResolvConf)
	}
	ra := execReport(t, alpha, testutil.RootfsProbePath)
	if !hostsHas(ra.EtcHosts, ipA.String(), "alpha") {
		t.Errorf("alpha's /etc/hosts lacks its own address %s:\n%s", ipA, ra.EtcHosts)
	}
	if len(ra.Interfaces) != 2 {
		t.Errorf("alpha's interfaces %v, want lo and eth0", ifaceNames(ra))
	}
	if peers, err := alpha.Network().Peers(); err != nil || len(peers) != 1 || peers[0].Address != ipB {
		t.Errorf("alpha's peers %+v %v", peers, err)
	}

	if err := alpha.Destroy(); err != nil {
		t.Fatal(err)
	}
	if err := beta.Destroy(); err != nil {
		t.Fatal(err)
	}
	base.assertNetClean(t, nc.Bridge, ids, veths)
}

// hostsHas reports whether an /etc/hosts text maps name to addr.
func hostsHas(hosts, addr, name string) bool {
	for _, l := range strings.Split(hosts, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != addr {
			continue
		}
		for _, n := range f[1:] {
			if n == name {
				return true
			}
		}
	}
	return false
}

func freeTCPPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestPublishedPort(t *testing.T) {
	base := takeNetBaseline(t)
	nc := testBridge(t)
	port := freeTCPPort(t)
	p, err := network.ParsePort(fmt.Sprintf("127.0.0.1:%d:80", port))
	if err != nil {
		t.Fatal(err)
	}
	nc.Publish = []network.Port{p}
	www := t.TempDir()
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("published page\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := newConfig().WithRootfs(rootfs.Dir(testutil.BusyboxRootfsCopy(t))).
		WithNetwork(nc).WithBind(www, "/www", true)
	c, out := start(t, cfg, "httpd", "-f", "-p", "80", "-h", "/www")
	if ports := c.Network().Ports(); len(ports) != 1 || ports[0].HostPort != uint16(port) {
		t.Errorf("Ports() %+v", ports)
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: time.Second}
	url := fmt.Sprintf("http://127.0.0.1:%d/index.html", port)
	var body string
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v %q (container: %s)", url, err, body, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if body != "published page\n" {
		t.Fatalf("GET %s: %q", url, body)
	}
	id, veth := c.ID(), c.Network().HostInterface()
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Get(url); err == nil {
		t.Error("published port still answers after Destroy")
	}
	base.assertNetClean(t, nc.Bridge, []string{id}, []string{veth})
}

func TestBadNetworkConfig(t *testing.T) {
	base := takeNetBaseline(t)
	// Caught by New, before anything exists.
	var ce *vessel.ConfigError
	for _, tc := range []struct {
		name, field string
		nc          *network.Config
	}{
		{"bad cidr", "network.subnet", &network.Config{Mode: network.ModeBridge, Bridge: "vtbad", Subnet: "10.213.0.0/33"}},
		{"host bits", "network.subnet", &network.Config{Mode: network.ModeBridge, Bridge: "vtbad", Subnet: "10.213.0.1/24"}},
		{"not a cidr", "network.subnet", &network.Config{Mode: network.ModeBridge, Bridge: "vtbad", Subnet: "banana"}},
		{"macvlan without address", "network.address", network.Macvlan("eth0", "", "")},
		{"publish without bridge", "network.publish", &network.Config{Mode: network.ModeLoopback, Publish: []network.Port{{HostPort: 8080, ContainerPort: 80}}}},
	} {
		_, err := vessel.New("bad", newConfig().WithNetwork(tc.nc))
		if !errors.As(err, &ce) {
			t.Errorf("%s: got %v, want a ConfigError", tc.name, err)
			continue
		}
		if !strings.EqualFold(ce.Field, tc.field) {
			t.Errorf("%s: ConfigError field %q (reason %q), want %q", tc.name, ce.Field, ce.Reason, tc.field)
		}
	}
	// Caught at Start, which must fail cleanly.
	c, err := vessel.New(newID(t), newConfig().WithNetwork(network.Macvlan("nosuchif0", "10.213.250.2/24", "")))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	err = c.Start(context.Background(), "/bin/true")
	var se *vessel.SetupError
	if !errors.As(err, &se) || se.Step != "network" || !strings.Contains(err.Error(), "nosuchif0") || !strings.Contains(strings.ToLower(err.Error()), "parent") {
		t.Errorf("macvlan on a missing parent: %v", err)
	}
	if st := c.State(); st.Status != vessel.Created {
		t.Errorf("status after a failed Start: %v", st.Status)
	}
	c.Destroy()
	// A published port a host program holds is taken.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	nc := testBridge(t)
	nc.Publish = []network.Port{{HostPort: uint16(l.Addr().(*net.TCPAddr).Port), ContainerPort: 80}}
	c2, err := vessel.New(newID(t), newConfig().WithNetwork(nc))
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Start(context.Background(), "/bin/true"); err == nil || !strings.Contains(err.Error(), "port taken") {
		t.Errorf("publishing a port a host listener holds: %v", err)
	}
	c2.Destroy()
	l.Close()
	base.assertNetClean(t, nc.Bridge, []string{c.ID(), c2.ID()}, nil)
}

// TestBridgeNamesBothWays: containers on one bridge reach each other by
// name whichever started first.
func TestBridgeNamesBothWays(t *testing.T) {
	nc := testBridge(t)
	first, _ := start(t, withProbe(t, newConfig().WithHostname("first").WithNetwork(nc)), "/probe", "sleep", "30")
	second, _ := start(t, withProbe(t, newConfig().WithHostname("second").WithNetwork(nc)), "/probe", "sleep", "30")
	// A closed port answers with a reset: ECONNREFUSED proves the name
	// resolved and the peer was reached.
	for _, tc := range []struct {
		from *vessel.Container
		to   string
	}{{second, "first"}, {first, "second"}} {
		out, _, _ := execOut(t, tc.from, vessel.Command("/probe", "try", "connect", tc.to+":9", "2s"))
		tr := testutil.MustParseTry(t, []byte(out))
		if tr.ErrnoName != "ECONNREFUSED" {
			hosts, _, _ := execOut(t, tc.from, vessel.Command("cat", "/etc/hosts"))
			t.Errorf("connect to %q by name: %s %s; /etc/hosts there:\n%s", tc.to, tr.ErrnoName, tr.Detail, hosts)
		}
	}
}

// TestBridgeConcurrentContainers starts and destroys containers on one new
// bridge at the same time: the bridge is created once, addresses never
// collide, and everything goes away.
func TestBridgeConcurrentContainers(t *testing.T) {
	base := takeNetBaseline(t)
	nc := testBridge(t)
	const n = 8
	ids := make([]string, n)
	for i := range ids {
		ids[i] = newID(t)
	}
	cs := make([]*vessel.Container, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cfg := *nc
			c, err := vessel.New(ids[i], newConfig().WithNetwork(&cfg))
			if err != nil {
				errs[i] = err
				return
			}
			cs[i] = c
			errs[i] = c.Start(context.Background(), "sleep", "30")
		}(i)
	}
	wg.Wait()
	defer func() {
		for _, c := range cs {
			if c != nil {
				c.Destroy()
			}
		}
	}()
	seen := map[netip.Addr]string{}
	var veths []string
	for i, c := range cs {
		if errs[i] != nil {
			t.Errorf("container %d: %v", i, errs[i])
			continue
		}
		a := c.Network()
		if a == nil || len(a.Addresses()) == 0 {
			t.Errorf("container %d has no address", i)
			continue
		}
		ip := a.Addresses()[0].Addr()
		if other, dup := seen[ip]; dup {
			t.Errorf("%s and %s both got %s", other, c.ID(), ip)
		}
		seen[ip] = c.ID()
		veths = append(veths, a.HostInterface())
	}
	if t.Failed() {
		return
	}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = cs[i].Destroy()
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Destroy %d: %v", i, err)
		}
	}
	base.assertNetClean(t, nc.Bridge, ids, veths)
}
