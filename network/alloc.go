package network

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/fielderr"
)

// bridgeFor returns the record of the bridge cfg names, planning a new one
// (created=true) when this state does not know it yet.
func (m *Manager) bridgeFor(host *netlink.Handle, st *state, cfg *Config) (*bridgeRecord, bool, error) {
	if br, ok := st.Bridges[cfg.Bridge]; ok {
		if cfg.Subnet != "" && cfg.Subnet != br.Subnet {
			return nil, false, fielderr.New("subnet", "bridge %s already uses %s, not %s", cfg.Bridge, br.Subnet, cfg.Subnet)
		}
		if cfg.IPv6 && br.Subnet6 == "" {
			return nil, false, fielderr.New("ipv6", "bridge %s was created without IPv6 (by a container that did not ask for it)", cfg.Bridge)
		}
		return br, false, nil
	}
	if _, err := host.LinkByName(cfg.Bridge); err == nil {
		return nil, false, fielderr.New("bridge", "interface %s exists but is not a bridge of this vessel state (%s)", cfg.Bridge, m.stateDir())
	}
	used, err := usedNetworks(host, st)
	if err != nil {
		return nil, false, err
	}
	var subnet netip.Prefix
	if cfg.Subnet != "" {
		subnet = netip.MustParsePrefix(cfg.Subnet)
		for _, u := range used {
			if u.p.Overlaps(subnet) {
				return nil, false, fielderr.New("subnet", "%s overlaps %s %s", subnet, u.what, u.p)
			}
		}
	} else {
		pool, bits, err := m.pool()
		if err != nil {
			return nil, false, err
		}
		subnet, err = carve(pool, bits, used)
		if err != nil {
			return nil, false, err
		}
	}
	rec := &bridgeRecord{Name: cfg.Bridge, Subnet: subnet.String(), Gateway: subnet.Addr().Next().String()}
	if cfg.IPv6 {
		s6, err := m.ula(cfg.Bridge, used)
		if err != nil {
			return nil, false, err
		}
		rec.Subnet6, rec.Gateway6 = s6.String(), s6.Addr().Next().String()
	}
	return rec, true, nil
}

// ula picks the IPv6 /64 of a new bridge: a unique-local prefix whose
// global id derives from the state directory and the bridge name, with
// the first subnet id no host route or address overlaps.
func (m *Manager) ula(bridge string, used []usedNetwork) (netip.Prefix, error) {
	sum := sha256.Sum256([]byte(m.stateDir() + "\x00" + bridge))
	var a [16]byte
	a[0] = 0xfd
	copy(a[1:6], sum[:5])
next:
	for i := 0; i < 256; i++ {
		a[7] = byte(i)
		p := netip.PrefixFrom(netip.AddrFrom16(a), 64)
		for _, u := range used {
			if u.p.Overlaps(p) {
				continue next
			}
		}
		return p, nil
	}
	return netip.Prefix{}, fielderr.New("ipv6", "no free unique-local /64 for bridge %s", bridge)
}

// allocate6 derives the container's IPv6 address from its IPv4 one: the
// same host number in the bridge's /64, so it is as unique as the IPv4.
func allocate6(br *bridgeRecord, addr netip.Prefix) netip.Prefix {
	subnet := netip.MustParsePrefix(br.Subnet).Masked().Addr().As4()
	a4 := addr.Addr().As4()
	host := (uint32(a4[0])<<24 | uint32(a4[1])<<16 | uint32(a4[2])<<8 | uint32(a4[3])) -
		(uint32(subnet[0])<<24 | uint32(subnet[1])<<16 | uint32(subnet[2])<<8 | uint32(subnet[3]))
	a6 := netip.MustParsePrefix(br.Subnet6).Addr().As16()
	a6[12], a6[13], a6[14], a6[15] = byte(host>>24), byte(host>>16), byte(host>>8), byte(host)
	return netip.PrefixFrom(netip.AddrFrom16(a6), 64)
}

type usedNetwork struct {
	p    netip.Prefix
	what string
}

// usedNetworks lists the networks a new bridge subnet must not overlap:
// host routes of every table (but default routes) and host addresses, and
// the subnets of this state's bridges.
func usedNetworks(host *netlink.Handle, st *state) ([]usedNetwork, error) {
	var used []usedNetwork
	for _, br := range st.Bridges {
		used = append(used, usedNetwork{netip.MustParsePrefix(br.Subnet), "the subnet of vessel bridge " + br.Name})
		if br.Subnet6 != "" {
			used = append(used, usedNetwork{netip.MustParsePrefix(br.Subnet6), "the subnet of vessel bridge " + br.Name})
		}
	}
	routes, err := host.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("network: list host routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		p, ok := prefixOf(r.Dst)
		if !ok || p.Bits() == 0 {
			continue
		}
		what := "host route to"
		if l, err := host.LinkByIndex(r.LinkIndex); err == nil {
			what = "host route on " + l.Attrs().Name + " to"
		}
		used = append(used, usedNetwork{p, what})
	}
	addrs, err := host.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("network: list host addresses: %w", err)
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok {
			used = append(used, usedNetwork{p.Masked(), "host address " + a.IPNet.String() + " in"})
		}
	}
	return used, nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

func carve(pool netip.Prefix, bits int, used []usedNetwork) (netip.Prefix, error) {
	step := uint32(1) << (32 - bits)
	base := pool.Addr().As4()
	start := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	count := uint32(1) << (bits - pool.Bits())
next:
	for i := uint32(0); i < count; i++ {
		v := start + i*step
		cand := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), bits)
		for _, u := range used {
			if u.p.Overlaps(cand) {
				continue next
			}
		}
		return cand, nil
	}
	return netip.Prefix{}, fielderr.New("subnet", "no free /%d left in the pool %s", bits, pool)
}

// allocate picks the container's address in the bridge subnet: want when
// given (and free), else the lowest free one.
func allocate(st *state, br *bridgeRecord, want string) (netip.Prefix, error) {
	subnet := netip.MustParsePrefix(br.Subnet)
	gw := netip.MustParseAddr(br.Gateway)
	taken := map[netip.Addr]string{gw: "the bridge gateway"}
	for _, ep := range st.Endpoints {
		if ep.Bridge == br.Name && ep.Address != "" {
			taken[netip.MustParsePrefix(ep.Address).Addr()] = "container " + ep.ID
		}
	}
	last := broadcast(subnet)
	if want != "" {
		p, _ := parseAddress(want)
		a := p.Addr()
		if !subnet.Contains(a) || a == subnet.Addr() || a == last {
			return netip.Prefix{}, fielderr.New("address", "%s is not a host address of the bridge subnet %s", a, subnet)
		}
		if who, ok := taken[a]; ok {
			return netip.Prefix{}, fielderr.New("address", "%s is taken by %s", a, who)
		}
		return netip.PrefixFrom(a, subnet.Bits()), nil
	}
	for a := subnet.Addr().Next(); a.IsValid() && a != last; a = a.Next() {
		if _, ok := taken[a]; !ok {
			return netip.PrefixFrom(a, subnet.Bits()), nil
		}
	}
	return netip.Prefix{}, fielderr.New("address", "the bridge subnet %s of %s is full", subnet, br.Name)
}

func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= (uint32(1) << (32 - p.Bits())) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// checkPorts refuses ports another container publishes or a host socket
// holds.
func checkPorts(st *state, ports []Port) error {
	for i, p := range ports {
		for _, ep := range st.Endpoints {
			for _, q := range ep.Ports {
				if q.proto() == p.proto() && q.HostPort == p.HostPort && (q.HostIP == "" || p.HostIP == "" || q.HostIP == p.HostIP) {
					return fielderr.New(fmt.Sprintf("publish[%d]", i), "port taken: %s is already published by container %s", p, ep.ID)
				}
			}
		}
		hostIP := p.HostIP
		if hostIP == "" {
			hostIP = "0.0.0.0"
		}
		addr := net.JoinHostPort(hostIP, strconv.Itoa(int(p.HostPort)))
		var err error
		if p.proto() == "udp" {
			var c net.PacketConn
			if c, err = net.ListenPacket("udp4", addr); err == nil {
				c.Close()
			}
		} else {
			var l net.Listener
			if l, err = net.Listen("tcp4", addr); err == nil {
				l.Close()
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, unix.EADDRINUSE):
			return fielderr.New(fmt.Sprintf("publish[%d]", i), "port taken: %s is bound by a host program", p)
		case errors.Is(err, unix.EADDRNOTAVAIL):
			return fielderr.New(fmt.Sprintf("publish[%d]", i), "host address %s is not an address of this host", p.HostIP)
		default:
			return &fielderr.Error{Field: fmt.Sprintf("publish[%d]", i), Reason: fmt.Sprintf("check %s: %v", p, err), Err: err}
		}
	}
	return nil
}
