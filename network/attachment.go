package network

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Attachment is the network of one container as Setup wired it.
type Attachment struct {
	m   *Manager
	id  string
	cfg Config
	ep  endpoint // copy of the recorded endpoint (empty when nothing is recorded)
	pid int

	mu   sync.Mutex
	ns   netns.NsHandle // container namespace kept open until Teardown; -1 when none
	done bool
}

// Peer is another container on the same bridge.
type Peer struct {
	// ID is the container id.
	ID string
	// Hostname is its name (may be empty).
	Hostname string
	// Address is its address on the bridge.
	Address netip.Addr
	// Address6 is its IPv6 address on the bridge (invalid when it has none).
	Address6 netip.Addr
}

// ID returns the container id.
func (a *Attachment) ID() string { return a.id }

// Mode returns the network mode.
func (a *Attachment) Mode() Mode { return a.cfg.Mode }

// Addresses returns the container's addresses with their prefix lengths,
// IPv4 first (bridge, macvlan and ipvlan modes); nil otherwise.
func (a *Attachment) Addresses() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{a.ep.Address, a.ep.Address6} {
		if s != "" {
			out = append(out, netip.MustParsePrefix(s))
		}
	}
	return out
}

// Gateway returns the container's default gateway, if any.
func (a *Attachment) Gateway() (netip.Addr, bool) {
	g, err := netip.ParseAddr(a.ep.Gateway)
	return g, err == nil
}

// Gateway6 returns the container's IPv6 default gateway, if any.
func (a *Attachment) Gateway6() (netip.Addr, bool) {
	g, err := netip.ParseAddr(a.ep.Gateway6)
	return g, err == nil
}

// HostInterface returns the host end of the container's veth (bridge mode).
func (a *Attachment) HostInterface() string { return a.ep.HostVeth }

// Bridge returns the bridge the container is attached to (bridge mode).
func (a *Attachment) Bridge() string { return a.ep.Bridge }

// Ports returns the published ports.
func (a *Attachment) Ports() []Port { return append([]Port(nil), a.ep.Ports...) }

// Peers returns the other containers currently on the same bridge, read
// from the shared state, sorted by address.
func (a *Attachment) Peers() ([]Peer, error) {
	if a.ep.Bridge == "" {
		return nil, nil
	}
	lk, err := lockState(a.m.stateDir(), false)
	if err != nil {
		return nil, err
	}
	defer lk.unlock()
	st, err := lk.load()
	if err != nil {
		return nil, err
	}
	var peers []Peer
	for _, ep := range st.Endpoints {
		if ep.ID == a.id || ep.Bridge != a.ep.Bridge || ep.Address == "" || ep.stale() {
			continue
		}
		p := Peer{ID: ep.ID, Hostname: ep.Hostname, Address: netip.MustParsePrefix(ep.Address).Addr()}
		if ep.Address6 != "" {
			p.Address6 = netip.MustParsePrefix(ep.Address6).Addr()
		}
		peers = append(peers, p)
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].Address.Less(peers[j].Address) })
	return peers, nil
}

// Hosts returns the content of the container's /etc/hosts: localhost, the
// container's own name and the names and addresses of the other containers
// on its bridge at the time of the call (call again to refresh).
func (a *Attachment) Hosts() []byte {
	var b bytes.Buffer
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	name := a.cfg.Hostname
	if a.cfg.Mode == ModeHost {
		if h, err := os.Hostname(); err == nil {
			name = h
		}
	}
	if n := names(name, a.id); n != "" {
		if addrs := a.Addresses(); len(addrs) > 0 {
			for _, ad := range addrs {
				fmt.Fprintf(&b, "%s\t%s\n", ad.Addr(), n)
			}
		} else {
			fmt.Fprintf(&b, "127.0.1.1\t%s\n", n)
		}
	}
	peers, _ := a.Peers()
	for _, p := range peers {
		if n := names(p.Hostname, p.ID); n != "" {
			fmt.Fprintf(&b, "%s\t%s\n", p.Address, n)
			if p.Address6.IsValid() {
				fmt.Fprintf(&b, "%s\t%s\n", p.Address6, n)
			}
		}
	}
	return b.Bytes()
}

// names lists a container's host name and, when different and usable as a
// name, its id.
func names(hostname, id string) string {
	idOK := checkHostname(id) == nil
	switch {
	case hostname == "" && idOK:
		return id
	case hostname != "" && idOK && id != hostname:
		return hostname + " " + id
	}
	return hostname
}

// ResolvConf returns the content of the container's /etc/resolv.conf: the
// DNS field when set, else the host's nameservers except loopback ones
// (which do not answer inside a container's namespace). Host mode gets the
// host's file unchanged.
func (a *Attachment) ResolvConf() []byte {
	return resolvConf(a.cfg, "/etc/resolv.conf")
}

func resolvConf(cfg Config, hostFile string) []byte {
	hostData, _ := os.ReadFile(hostFile)
	if cfg.Mode == ModeHost || cfg.Mode == ModeNetns && len(cfg.DNS) == 0 {
		return hostData
	}
	var servers, search, options []string
	sc := bufio.NewScanner(bytes.NewReader(hostData))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if ip, err := netip.ParseAddr(f[1]); err == nil && !ip.IsLoopback() {
				servers = append(servers, ip.String())
			}
		case "search", "domain":
			search = f[1:]
		case "options":
			options = append(options, f[1:]...)
		}
	}
	if len(cfg.DNS) > 0 {
		servers = cfg.DNS
	}
	if len(cfg.DNSSearch) > 0 {
		search = cfg.DNSSearch
	}
	var b bytes.Buffer
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
	}
	return b.Bytes()
}

// Teardown undoes Setup: gives moved interfaces back to the host, deletes
// the veth or macvlan/ipvlan link, the published ports, the firewall chain
// and the address allocation, and the bridge and nftables table when no
// other container uses them. It is idempotent and safe after the container
// exited or after Cleanup already reclaimed the resources.
func (a *Attachment) Teardown() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return nil
	}
	defer func() {
		if a.ns >= 0 {
			a.ns.Close()
			a.ns = -1
		}
	}()
	if a.ep.ID == "" {
		a.done = true
		return nil
	}
	lk, err := lockState(a.m.stateDir(), true)
	if err != nil {
		return err
	}
	defer lk.unlock()
	st, err := lk.load()
	if err != nil {
		return err
	}
	ep, ok := st.Endpoints[a.id]
	if !ok || ep.Pid != a.ep.Pid || ep.PidStart != a.ep.PidStart {
		a.done = true // already reclaimed (and maybe the id reused since)
		return nil
	}
	host, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("network: netlink: %w", err)
	}
	defer host.Close()
	errRelease := a.m.release(host, st, ep, a.ns)
	errGC := a.m.gcShared(host, st, "")
	errSave := lk.save(st)
	a.done = true
	if errRelease != nil || errGC != nil || errSave != nil {
		return fmt.Errorf("network: teardown %s: %w", a.id, errors.Join(errRelease, errGC, errSave))
	}
	return nil
}
