package network

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/openvessel/vessel/internal/procfs"
)

// Usage is what a network namespace holds and has moved: its sockets by
// kind, its firewall rules, its interfaces' traffic and what its traffic
// shaping held back. Read by ReadUsage from the host, without running
// anything inside.
type Usage struct {
	// Sockets is every socket of the namespace ("sockets: used").
	Sockets uint64 `json:"sockets"`
	// TCP counts TCP sockets in use (IPv4 and IPv6), TCPTimeWait those in
	// TIME-WAIT.
	TCP         uint64 `json:"tcp"`
	TCPTimeWait uint64 `json:"tcpTimeWait"`
	// UDP counts UDP and UDP-Lite sockets (IPv4 and IPv6).
	UDP uint64 `json:"udp"`
	// Raw counts raw IP sockets (IPv4 and IPv6).
	Raw uint64 `json:"raw"`
	// Unix counts unix-domain sockets bound or created in the namespace.
	Unix uint64 `json:"unix"`
	// Other counts the sockets not in the kinds above (netlink, packet...).
	Other uint64 `json:"other"`
	// FirewallRules counts nftables rules in the namespace, every family
	// and table.
	FirewallRules uint64 `json:"firewallRules"`
	// Traffic of every interface but loopback.
	RxBytes   uint64 `json:"rxBytes"`
	TxBytes   uint64 `json:"txBytes"`
	RxPackets uint64 `json:"rxPackets"`
	TxPackets uint64 `json:"txPackets"`
	// EgressOverlimits counts the packets the namespace's own qdiscs (the
	// egress rate limit) held back because they were over the rate, and
	// EgressDrops those they dropped. IngressOverlimits and IngressDrops
	// are the same for the host interfaces given to ReadUsage (the ingress
	// rate limit on the host end of a veth).
	EgressOverlimits  uint64 `json:"egressOverlimits"`
	EgressDrops       uint64 `json:"egressDrops"`
	IngressOverlimits uint64 `json:"ingressOverlimits"`
	IngressDrops      uint64 `json:"ingressDrops"`
}

// ReadUsage reads the usage of the network namespace that process pid is
// in (/proc/PID/net/* and netlink and nftables handles on /proc/PID/ns/net).
// hostLinks are host interfaces whose qdisc statistics count as the
// namespace's too (the host end of a veth, shaped for ingress).
func ReadUsage(pid int, hostLinks ...string) (*Usage, error) {
	u := &Usage{}
	proc := fmt.Sprintf("/proc/%d/net/", pid)
	kv, err := readSockstat(proc + "sockstat")
	if err != nil {
		return nil, fmt.Errorf("network: usage: %w", err)
	}
	kv6, err := readSockstat(proc + "sockstat6")
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("network: usage: %w", err)
	}
	u.Sockets = kv["sockets used"]
	u.TCP = kv["TCP inuse"] + kv6["TCP6 inuse"]
	u.TCPTimeWait = kv["TCP tw"]
	u.UDP = kv["UDP inuse"] + kv["UDPLITE inuse"] + kv6["UDP6 inuse"] + kv6["UDPLITE6 inuse"]
	u.Raw = kv["RAW inuse"] + kv6["RAW6 inuse"]
	if n, err := countLines(proc + "unix"); err == nil && n > 0 {
		u.Unix = n - 1 // header
	}
	if known := u.TCP + u.UDP + u.Raw + u.Unix; u.Sockets > known {
		u.Other = u.Sockets - known
	}
	if err := readNetDev(proc+"dev", u); err != nil {
		return nil, fmt.Errorf("network: usage: %w", err)
	}

	ns, err := netns.GetFromPath(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return nil, fmt.Errorf("network: usage: %w", err)
	}
	defer ns.Close()
	if u.FirewallRules, err = countRules(int(ns)); err != nil {
		return nil, fmt.Errorf("network: usage: nftables: %w", err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("network: usage: netlink: %w", err)
	}
	defer h.Close()
	if err := addShaping(h, nil, &u.EgressOverlimits, &u.EgressDrops); err != nil {
		return nil, fmt.Errorf("network: usage: qdiscs: %w", err)
	}
	if len(hostLinks) > 0 {
		host, err := netlink.NewHandle()
		if err != nil {
			return nil, fmt.Errorf("network: usage: netlink: %w", err)
		}
		defer host.Close()
		if err := addShaping(host, hostLinks, &u.IngressOverlimits, &u.IngressDrops); err != nil {
			return nil, fmt.Errorf("network: usage: qdiscs: %w", err)
		}
	}
	return u, nil
}

// readSockstat parses /proc/net/sockstat lines such as
// "TCP: inuse 3 orphan 0 tw 0 alloc 5 mem 1" into "TCP inuse" -> 3.
func readSockstat(file string) (map[string]uint64, error) {
	out := map[string]uint64{}
	err := procfs.Fields(file, func(kind, rest string) bool {
		f := strings.Fields(rest)
		for i := 0; i+1 < len(f); i += 2 {
			if n, err := strconv.ParseUint(f[i+1], 10, 64); err == nil {
				out[kind+" "+f[i]] = n
			}
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func countLines(file string) (uint64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var n uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
	}
	return n, sc.Err()
}

// readNetDev sums /proc/net/dev over every interface but lo:
//
//	eth0: RXbytes packets errs drop fifo frame compressed multicast TXbytes packets ...
func readNetDev(file string, u *Usage) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 10 {
			continue
		}
		n := func(i int) uint64 { v, _ := strconv.ParseUint(f[i], 10, 64); return v }
		u.RxBytes += n(0)
		u.RxPackets += n(1)
		u.TxBytes += n(8)
		u.TxPackets += n(9)
	}
	return nil
}

// countRules counts the nftables rules of the namespace whose file
// descriptor is fd.
func countRules(fd int) (uint64, error) {
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		return 0, err
	}
	chains, err := c.ListChains()
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, ch := range chains {
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			return 0, err
		}
		n += uint64(len(rules))
	}
	return n, nil
}

// addShaping adds the statistics of the qdiscs of links (every link but
// loopback when nil) seen through h.
func addShaping(h *netlink.Handle, names []string, overlimits, drops *uint64) error {
	var links []netlink.Link
	if names == nil {
		all, err := h.LinkList()
		if err != nil {
			return err
		}
		for _, l := range all {
			if l.Attrs().Flags&net.FlagLoopback == 0 {
				links = append(links, l)
			}
		}
	} else {
		for _, name := range names {
			l, err := h.LinkByName(name)
			if err != nil {
				continue // gone with its container
			}
			links = append(links, l)
		}
	}
	for _, l := range links {
		qs, err := h.QdiscList(l)
		if err != nil {
			return err
		}
		for _, q := range qs {
			a := q.Attrs()
			if a.Statistics == nil || a.Statistics.Queue == nil {
				continue
			}
			*overlimits += uint64(a.Statistics.Queue.Overlimits)
			*drops += uint64(a.Statistics.Queue.Drops)
		}
	}
	return nil
}
