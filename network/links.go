package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/fielderr"
)

func createBridge(host *netlink.Handle, br *bridgeRecord, mtu int) error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = br.Name
	// A fixed address: otherwise the bridge takes the lowest address of its
	// ports and changes it as containers come and go, which invalidates the
	// containers' ARP entries for the gateway.
	attrs.HardwareAddr = randomMAC()
	if mtu != 0 {
		attrs.MTU = mtu
	}
	if err := host.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		return &fielderr.Error{Field: "bridge", Reason: fmt.Sprintf("create %s: %v", br.Name, err), Err: err}
	}
	link, err := host.LinkByName(br.Name)
	if err != nil {
		return &fielderr.Error{Field: "bridge", Reason: fmt.Sprintf("%s: %v", br.Name, err), Err: err}
	}
	subnet := netip.MustParsePrefix(br.Subnet)
	gw := netip.MustParseAddr(br.Gateway)
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: gw.AsSlice(), Mask: net.CIDRMask(subnet.Bits(), 32)}}
	if err := host.AddrAdd(link, addr); err != nil {
		return &fielderr.Error{Field: "bridge", Reason: fmt.Sprintf("address %s on %s: %v", addr, br.Name, err), Err: err}
	}
	if br.Subnet6 != "" {
		s6 := netip.MustParsePrefix(br.Subnet6)
		gw6 := netip.MustParseAddr(br.Gateway6)
		addr6 := &netlink.Addr{IPNet: &net.IPNet{IP: gw6.AsSlice(), Mask: net.CIDRMask(s6.Bits(), 128)}, Flags: unix.IFA_F_NODAD}
		if err := host.AddrAdd(link, addr6); err != nil {
			return &fielderr.Error{Field: "bridge", Reason: fmt.Sprintf("address %s on %s: %v", addr6, br.Name, err), Err: err}
		}
	}
	// The host reaching 127.0.0.1:PORT of a published port is DNATed to the
	// container with source 127.0.0.1; the kernel routes such packets out of
	// the bridge only with route_localnet (a masquerade rule then rewrites
	// the source). The setting belongs to the bridge and dies with it.
	if err := writeSysctl("/proc/sys/net/ipv4/conf/"+br.Name+"/route_localnet", "1"); err != nil {
		return &fielderr.Error{Field: "bridge", Reason: fmt.Sprintf("route_localnet on %s: %v", br.Name, err), Err: err}
	}
	if err := host.LinkSetUp(link); err != nil {
		return &fielderr.Error{Field: "bridge", Reason: fmt.Sprintf("set %s up: %v", br.Name, err), Err: err}
	}
	return nil
}

// randomMAC returns a random unicast, locally administered MAC address.
func randomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	// getrandom(2) directly: crypto/rand would pull math/big into every
	// vessel program's start.
	_, _ = unix.Getrandom(mac, 0)
	mac[0] = mac[0]&0xfe | 0x02
	return mac
}

func createVeth(host, inner *netlink.Handle, ns netns.NsHandle, ep *endpoint, mtu int) error {
	br, err := host.LinkByName(ep.Bridge)
	if err != nil {
		return &fielderr.Error{Field: "bridge", Reason: fmt.Sprintf("%s: %v", ep.Bridge, linkErr(err)), Err: linkErr(err)}
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = ep.HostVeth
	if mtu != 0 {
		attrs.MTU = mtu
	}
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: "eth0", PeerNamespace: netlink.NsFd(ns)}
	if err := host.LinkAdd(veth); err != nil {
		return fmt.Errorf("network: create veth %s: %w", ep.HostVeth, err)
	}
	hl, err := host.LinkByName(ep.HostVeth)
	if err != nil {
		return fmt.Errorf("network: veth %s: %w", ep.HostVeth, err)
	}
	if err := host.LinkSetMaster(hl, br); err != nil {
		return fmt.Errorf("network: attach %s to %s: %w", ep.HostVeth, ep.Bridge, err)
	}
	// With br_netfilter, a container reaching its own published port is
	// DNATed back at bridge level and leaves through the port it came in by.
	if err := host.LinkSetHairpin(hl, true); err != nil {
		return fmt.Errorf("network: hairpin mode on %s: %w", ep.HostVeth, err)
	}
	if err := host.LinkSetUp(hl); err != nil {
		return fmt.Errorf("network: set %s up: %w", ep.HostVeth, err)
	}
	if err := configureInner(inner, ep.Address, ep.Gateway); err != nil {
		return err
	}
	if ep.Address6 != "" {
		return configureInner6(inner, ep.Address6, ep.Gateway6)
	}
	return nil
}

func createVlan(host, inner *netlink.Handle, ns netns.NsHandle, cfg *Config, hash string) error {
	parent, err := host.LinkByName(cfg.Parent)
	if err != nil {
		return &fielderr.Error{Field: "parent", Reason: fmt.Sprintf("host interface %q: %v", cfg.Parent, linkErr(err)), Err: linkErr(err)}
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "vm" + hash // created directly in the container, renamed there
	attrs.ParentIndex = parent.Attrs().Index
	attrs.Namespace = netlink.NsFd(ns)
	if cfg.MTU != 0 {
		attrs.MTU = cfg.MTU
	}
	var link netlink.Link
	if cfg.Mode == ModeMacvlan {
		link = &netlink.Macvlan{LinkAttrs: attrs, Mode: netlink.MACVLAN_MODE_BRIDGE}
	} else {
		link = &netlink.IPVlan{LinkAttrs: attrs, Mode: netlink.IPVLAN_MODE_L2}
	}
	if err := host.LinkAdd(link); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			return &fielderr.Error{Field: "mode", Reason: fmt.Sprintf("this kernel does not support %s links: %v", cfg.Mode, err), Err: err}
		}
		return &fielderr.Error{Field: "parent", Reason: fmt.Sprintf("create %s link on %s: %v", cfg.Mode, cfg.Parent, err), Err: err}
	}
	l, err := inner.LinkByName(attrs.Name)
	if err == nil {
		err = inner.LinkSetName(l, "eth0")
	}
	if err != nil {
		return fmt.Errorf("network: rename %s link to eth0: %w", cfg.Mode, err)
	}
	return configureInner(inner, cfg.Address, cfg.Gateway)
}

// configureInner6 adds the container's IPv6 address (without duplicate
// address detection: the allocation is unique) and default route.
func configureInner6(inner *netlink.Handle, address, gateway string) error {
	eth0, err := inner.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("network: eth0 in container: %w", err)
	}
	addr, err := netlink.ParseAddr(address)
	if err != nil {
		return fmt.Errorf("network: IPv6 address: %w", err)
	}
	addr.Flags = unix.IFA_F_NODAD
	if err := inner.AddrAdd(eth0, addr); err != nil {
		return fmt.Errorf("network: IPv6 address %s on eth0: %w", address, err)
	}
	gw := net.ParseIP(gateway)
	if err := inner.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: gw}); err != nil {
		return fmt.Errorf("network: IPv6 default route via %s: %w", gateway, err)
	}
	return nil
}

// defaultMTU is the MTU for a new veth on bridge: the bridge's when it
// exists, else that of the host's IPv4 default route interface when it is
// below 1500 (so masqueraded traffic fits the uplink), else 1500.
func defaultMTU(host *netlink.Handle, bridge string) int {
	if l, err := host.LinkByName(bridge); err == nil {
		return l.Attrs().MTU
	}
	mtu := 1500
	routes, err := host.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return mtu
	}
	for _, r := range routes {
		if r.Dst != nil && r.Dst.IP.To4() != nil && !r.Dst.IP.Equal(net.IPv4zero) {
			continue
		}
		if l, err := host.LinkByIndex(r.LinkIndex); err == nil && l.Attrs().MTU >= 576 && l.Attrs().MTU < mtu {
			mtu = l.Attrs().MTU
		}
	}
	return mtu
}

// configureInner sets the address of the container's eth0, brings it up
// and adds the default route.
func configureInner(inner *netlink.Handle, address, gateway string) error {
	eth0, err := inner.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("network: eth0 in container: %w", err)
	}
	addr, err := netlink.ParseAddr(address)
	if err != nil {
		return &fielderr.Error{Field: "address", Reason: fmt.Sprintf("%v", err), Err: err}
	}
	if err := inner.AddrAdd(eth0, addr); err != nil {
		return fmt.Errorf("network: Address %s on eth0: %w", address, err)
	}
	if err := inner.LinkSetUp(eth0); err != nil {
		return fmt.Errorf("network: set eth0 up: %w", err)
	}
	if gateway != "" {
		gw := net.ParseIP(gateway)
		if err := inner.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: gw}); err != nil {
			return fmt.Errorf("network: default route via %s: %w", gateway, err)
		}
	}
	return nil
}
