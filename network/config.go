package network

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/openvessel/vessel/fielderr"
)

// Mode is a network mode of a container.
type Mode string

// The network modes.
const (
	// ModeNone gives the container a new namespace with only a loopback
	// interface, left down.
	ModeNone Mode = "none"
	// ModeLoopback gives the container a new namespace with the loopback
	// interface up.
	ModeLoopback Mode = "loopback"
	// ModeHost shares the host's network namespace.
	ModeHost Mode = "host"
	// ModeBridge gives the container a veth pair attached to a host bridge,
	// an address from the bridge's subnet, a default route and NAT.
	ModeBridge Mode = "bridge"
	// ModeMacvlan gives the container a macvlan (bridge mode) link on a
	// parent host interface, with a static address.
	ModeMacvlan Mode = "macvlan"
	// ModeIpvlan gives the container an ipvlan (L2 mode) link on a parent
	// host interface, with a static address.
	ModeIpvlan Mode = "ipvlan"
	// ModeNetns makes the container join an existing network namespace file.
	ModeNetns Mode = "netns"
)

// DefaultBridge is the bridge name used by bridge mode when none is given.
const DefaultBridge = "vessel0"

// Port is a published port: traffic to HostIP:HostPort on the host is
// forwarded to ContainerPort in the container.
type Port struct {
	// HostIP restricts the published port to one host address; empty means
	// every local address of the host, 127.0.0.1 included.
	HostIP string `json:"hostIP,omitempty"`
	// HostPort is the port on the host.
	HostPort uint16 `json:"hostPort"`
	// ContainerPort is the port inside the container.
	ContainerPort uint16 `json:"containerPort"`
	// Protocol is "tcp" (the default) or "udp".
	Protocol string `json:"protocol,omitempty"`
}

// String returns the port in the --publish syntax.
func (p Port) String() string {
	s := fmt.Sprintf("%d:%d/%s", p.HostPort, p.ContainerPort, p.proto())
	if p.HostIP != "" {
		s = p.HostIP + ":" + s
	}
	return s
}

func (p Port) proto() string {
	if p.Protocol == "" {
		return "tcp"
	}
	return p.Protocol
}

// Action is the verdict of a firewall rule.
type Action string

// Firewall actions.
const (
	Allow Action = "allow"
	Deny  Action = "deny"
)

// Rule is one egress firewall rule of a container. Rules are evaluated in
// order; the first whose destination matches decides.
type Rule struct {
	// Action is Allow or Deny.
	Action Action `json:"action"`
	// CIDR is the destination network, e.g. "10.0.0.0/8" or "1.2.3.4/32".
	CIDR string `json:"cidr"`
	// Protocol is "tcp", "udp" or empty for any protocol.
	Protocol string `json:"protocol,omitempty"`
	// Port is the destination port; 0 means any. A port needs a protocol.
	Port uint16 `json:"port,omitempty"`
}

// String returns the rule in the syntax of ParseRule.
func (r Rule) String() string {
	s := string(r.Action) + ":" + r.CIDR
	if r.Port != 0 {
		s += ":" + strconv.Itoa(int(r.Port))
	}
	if r.Protocol != "" {
		s += "/" + r.Protocol
	}
	return s
}

// Config describes the network of one container. The zero value is
// ModeNone after Validate. Fields that do not apply to the mode must be empty.
type Config struct {
	// Mode is the network mode; empty means ModeNone.
	Mode Mode `json:"mode"`
	// Bridge is the host bridge of bridge mode (default DefaultBridge). It is
	// created on first use and deleted when its last container goes away.
	Bridge string `json:"bridge,omitempty"`
	// Subnet is the IPv4 subnet (CIDR) of the bridge. Empty means: the
	// subnet the bridge already has, or the first free one carved from the
	// manager's pool (10.88.0.0/16 in /24 pieces by default).
	Subnet string `json:"subnet,omitempty"`
	// IPv6 also gives a bridge-mode container an IPv6 address from a
	// unique-local /64 of the bridge (chosen when the bridge is created), an
	// IPv6 default route and NAT66 to the outside. Published ports and
	// firewall rules with CIDRs stay IPv4; FirewallDefault applies to IPv6.
	IPv6 bool `json:"ipv6,omitempty"`
	// Address is the container's address in CIDR form. Required for
	// macvlan and ipvlan; optional in bridge mode (a fixed address inside
	// the bridge subnet, given without or with the subnet's prefix length).
	Address string `json:"address,omitempty"`
	// Gateway is the default gateway of macvlan and ipvlan modes (optional).
	Gateway string `json:"gateway,omitempty"`
	// Parent is the host interface of macvlan and ipvlan modes.
	Parent string `json:"parent,omitempty"`
	// NetnsPath is the namespace file joined in netns mode.
	NetnsPath string `json:"netnsPath,omitempty"`
	// Interfaces are host interfaces moved into the container (any mode with
	// a new namespace) and given back to the host on Teardown.
	Interfaces []string `json:"interfaces,omitempty"`
	// Publish lists published ports (bridge mode).
	Publish []Port `json:"publish,omitempty"`
	// Firewall lists egress rules (bridge mode), evaluated in order after
	// replies of established connections are let through. They apply to what
	// the container sends through the host: to the outside and to the host
	// itself (matched on the bridge and the container's source address).
	// Traffic to other containers on the same bridge is switched, not
	// routed, and is filtered only when the host has br_netfilter enabled.
	Firewall []Rule `json:"firewall,omitempty"`
	// FirewallDefault is the verdict when no rule matched; empty means Allow.
	FirewallDefault Action `json:"firewallDefault,omitempty"`
	// EgressRate limits traffic leaving the container, in bits per second
	// (bridge, macvlan, ipvlan); 0 means unlimited.
	EgressRate uint64 `json:"egressRate,omitempty"`
	// IngressRate limits traffic to the container, in bits per second
	// (bridge mode); 0 means unlimited.
	IngressRate uint64 `json:"ingressRate,omitempty"`
	// MTU of the container interface; 0 means the default (1500 for veth,
	// the parent's for macvlan/ipvlan).
	MTU int `json:"mtu,omitempty"`
	// Hostname is the container's name in /etc/hosts and the name other
	// containers on the same bridge reach it by; empty means the id.
	Hostname string `json:"hostname,omitempty"`
	// DNS lists nameservers for resolv.conf; empty means the host's
	// non-loopback nameservers.
	DNS []string `json:"dns,omitempty"`
	// DNSSearch lists search domains for resolv.conf; empty means the host's.
	DNSSearch []string `json:"dnsSearch,omitempty"`
}

// None returns a Config for ModeNone.
func None() *Config { return &Config{Mode: ModeNone} }

// Loopback returns a Config for ModeLoopback.
func Loopback() *Config { return &Config{Mode: ModeLoopback} }

// Host returns a Config for ModeHost.
func Host() *Config { return &Config{Mode: ModeHost} }

// Bridge returns a Config for ModeBridge on the named bridge ("" for
// DefaultBridge).
func Bridge(name string) *Config { return &Config{Mode: ModeBridge, Bridge: name} }

// Macvlan returns a Config for ModeMacvlan on parent with a static address
// (CIDR) and an optional gateway.
func Macvlan(parent, address, gateway string) *Config {
	return &Config{Mode: ModeMacvlan, Parent: parent, Address: address, Gateway: gateway}
}

// Ipvlan returns a Config for ModeIpvlan on parent with a static address
// (CIDR) and an optional gateway.
func Ipvlan(parent, address, gateway string) *Config {
	return &Config{Mode: ModeIpvlan, Parent: parent, Address: address, Gateway: gateway}
}

// Netns returns a Config for ModeNetns joining the namespace file at path.
func Netns(path string) *Config { return &Config{Mode: ModeNetns, NetnsPath: path} }

// Parse parses the value of the CLI's --net flag:
// none | loopback | host | bridge[=NAME] | macvlan=PARENT | ipvlan=PARENT |
// netns=PATH. The result still needs the other fields (addresses for
// macvlan/ipvlan) and Validate.
func Parse(s string) (Config, error) {
	name, arg, hasArg := strings.Cut(s, "=")
	mode := Mode(name)
	switch mode {
	case ModeNone, ModeLoopback, ModeHost:
		if hasArg {
			return Config{}, fmt.Errorf("network: --net %q: mode %s takes no argument", s, mode)
		}
		return Config{Mode: mode}, nil
	case ModeBridge:
		if hasArg && arg == "" {
			return Config{}, fmt.Errorf("network: --net %q: empty bridge name", s)
		}
		return Config{Mode: mode, Bridge: arg}, nil
	case ModeMacvlan, ModeIpvlan:
		if arg == "" {
			return Config{}, fmt.Errorf("network: --net %q: mode %s needs a parent interface (%s=PARENT)", s, mode, mode)
		}
		return Config{Mode: mode, Parent: arg}, nil
	case ModeNetns:
		if arg == "" {
			return Config{}, fmt.Errorf("network: --net %q: mode netns needs a path (netns=PATH)", s)
		}
		return Config{Mode: mode, NetnsPath: arg}, nil
	}
	return Config{}, fmt.Errorf("network: --net %q: unknown mode %q (want none, loopback, host, bridge[=NAME], macvlan=PARENT, ipvlan=PARENT or netns=PATH)", s, name)
}

// ParsePort parses a --publish value: [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp].
func ParsePort(s string) (Port, error) {
	var p Port
	spec, proto, hasProto := strings.Cut(s, "/")
	if hasProto {
		if proto != "tcp" && proto != "udp" {
			return p, fmt.Errorf("network: publish %q: protocol %q is not tcp or udp", s, proto)
		}
		p.Protocol = proto
	} else {
		p.Protocol = "tcp"
	}
	parts := strings.Split(spec, ":")
	switch len(parts) {
	case 2:
	case 3:
		ip, err := netip.ParseAddr(parts[0])
		if err != nil || !ip.Is4() {
			return p, fmt.Errorf("network: publish %q: host address %q is not an IPv4 address", s, parts[0])
		}
		p.HostIP = ip.String()
		parts = parts[1:]
	default:
		return p, fmt.Errorf("network: publish %q: want [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]", s)
	}
	hp, err := parsePortNumber(parts[0])
	if err != nil {
		return p, fmt.Errorf("network: publish %q: host port: %v", s, err)
	}
	cp, err := parsePortNumber(parts[1])
	if err != nil {
		return p, fmt.Errorf("network: publish %q: container port: %v", s, err)
	}
	p.HostPort, p.ContainerPort = hp, cp
	return p, nil
}

// ParseRule parses a firewall rule: ACTION:CIDR[:PORT][/tcp|udp], for
// example "deny:10.0.0.0/8", "allow:0.0.0.0/0:443/tcp" or "allow:1.1.1.1/32/udp".
func ParseRule(s string) (Rule, error) {
	var r Rule
	action, rest, ok := strings.Cut(s, ":")
	if !ok {
		return r, fmt.Errorf("network: firewall rule %q: want ACTION:CIDR[:PORT][/tcp|udp]", s)
	}
	r.Action = Action(action)
	if r.Action != Allow && r.Action != Deny {
		return r, fmt.Errorf("network: firewall rule %q: action %q is not allow or deny", s, action)
	}
	// The CIDR itself contains one '/', an optional protocol adds another.
	if i := strings.LastIndex(rest, "/"); i >= 0 && (rest[i+1:] == "tcp" || rest[i+1:] == "udp") {
		r.Protocol = rest[i+1:]
		rest = rest[:i]
	}
	cidr, port, hasPort := strings.Cut(rest, ":")
	if _, err := netip.ParsePrefix(cidr); err != nil {
		return r, fmt.Errorf("network: firewall rule %q: bad CIDR %q: %v", s, cidr, err)
	}
	r.CIDR = cidr
	if hasPort {
		n, err := parsePortNumber(port)
		if err != nil {
			return r, fmt.Errorf("network: firewall rule %q: %v", s, err)
		}
		r.Port = n
		if r.Protocol == "" {
			return r, fmt.Errorf("network: firewall rule %q: a port needs a protocol (/tcp or /udp)", s)
		}
	}
	return r, nil
}

func parsePortNumber(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("port %q is not a number in 1-65535", s)
	}
	return uint16(n), nil
}

// NewNamespace reports whether the container needs a new network namespace
// (CLONE_NEWNET). It is false for host and netns modes: in netns mode the
// child must setns(2) into NetnsPath itself.
func (c *Config) NewNamespace() bool {
	return c.Mode != ModeHost && c.Mode != ModeNetns
}

// Validate checks the configuration and fills in defaults (Mode, Bridge,
// protocols, FirewallDefault). Errors name the field and the reason.
func (c *Config) Validate() error {
	if c.Mode == "" {
		c.Mode = ModeNone
	}
	fail := func(field, format string, args ...any) error {
		return fielderr.New(field, format, args...)
	}
	switch c.Mode {
	case ModeNone, ModeLoopback, ModeHost, ModeBridge, ModeMacvlan, ModeIpvlan, ModeNetns:
	default:
		return fail("mode", "unknown mode %q", c.Mode)
	}
	bridge, vlan := c.Mode == ModeBridge, c.Mode == ModeMacvlan || c.Mode == ModeIpvlan
	if bridge {
		if c.Bridge == "" {
			c.Bridge = DefaultBridge
		}
		if err := checkIfName(c.Bridge); err != nil {
			return fail("bridge", "%v", err)
		}
	} else if c.Bridge != "" {
		return fail("bridge", "only used in bridge mode, not %s", c.Mode)
	}
	if c.Subnet != "" {
		if !bridge {
			return fail("subnet", "only used in bridge mode, not %s", c.Mode)
		}
		p, err := netip.ParsePrefix(c.Subnet)
		if err != nil {
			return fail("subnet", "bad CIDR %q: %v", c.Subnet, err)
		}
		if !p.Addr().Is4() || p.Bits() > 30 || p.Bits() < 8 {
			return fail("subnet", "%q must be an IPv4 network with a prefix length between 8 and 30", c.Subnet)
		}
		if p.Masked() != p {
			return fail("subnet", "%q has host bits set (did you mean %s?)", c.Subnet, p.Masked())
		}
	}
	if c.IPv6 && !bridge {
		return fail("ipv6", "only supported in bridge mode, not %s", c.Mode)
	}
	if c.Address != "" {
		if !bridge && !vlan {
			return fail("address", "only used in bridge, macvlan and ipvlan modes, not %s", c.Mode)
		}
		if _, err := parseAddress(c.Address); err != nil {
			return fail("address", "%v", err)
		}
	} else if vlan {
		return fail("address", "%s mode needs a static address in CIDR form (DHCP is not supported)", c.Mode)
	}
	if c.Gateway != "" {
		if !vlan {
			return fail("gateway", "only used in macvlan and ipvlan modes (bridge mode uses the bridge address)")
		}
		gw, err := netip.ParseAddr(c.Gateway)
		if err != nil || !gw.Is4() {
			return fail("gateway", "%q is not an IPv4 address", c.Gateway)
		}
		addr, _ := parseAddress(c.Address)
		if !addr.Contains(gw) {
			return fail("gateway", "%s is not inside the address's network %s", gw, addr.Masked())
		}
	}
	if vlan {
		if c.Parent == "" {
			return fail("parent", "%s mode needs a parent interface", c.Mode)
		}
		if err := checkIfName(c.Parent); err != nil {
			return fail("parent", "%v", err)
		}
	} else if c.Parent != "" {
		return fail("parent", "only used in macvlan and ipvlan modes, not %s", c.Mode)
	}
	if c.Mode == ModeNetns {
		if c.NetnsPath == "" {
			return fail("netnsPath", "netns mode needs the path of a network namespace file")
		}
		if err := CheckNetnsPath(c.NetnsPath); err != nil {
			return fail("netnsPath", "%v", err)
		}
	} else if c.NetnsPath != "" {
		return fail("netnsPath", "only used in netns mode, not %s", c.Mode)
	}
	if len(c.Interfaces) > 0 && !c.NewNamespace() {
		return fail("interfaces", "cannot move interfaces in %s mode (no new namespace)", c.Mode)
	}
	seen := map[string]bool{}
	for i, name := range c.Interfaces {
		if err := checkIfName(name); err != nil {
			return fail(fmt.Sprintf("interfaces[%d]", i), "%v", err)
		}
		if name == "lo" || (name == "eth0" && (bridge || vlan)) {
			return fail(fmt.Sprintf("interfaces[%d]", i), "%q is reserved", name)
		}
		if seen[name] {
			return fail(fmt.Sprintf("interfaces[%d]", i), "%q listed twice", name)
		}
		seen[name] = true
	}
	if len(c.Publish) > 0 && !bridge {
		return fail("publish", "published ports need bridge mode, not %s", c.Mode)
	}
	type key struct {
		proto string
		port  uint16
	}
	published := map[key]bool{}
	for i := range c.Publish {
		p := &c.Publish[i]
		field := fmt.Sprintf("publish[%d]", i)
		if p.Protocol == "" {
			p.Protocol = "tcp"
		}
		if p.Protocol != "tcp" && p.Protocol != "udp" {
			return fail(field, "protocol %q is not tcp or udp", p.Protocol)
		}
		if p.HostPort == 0 || p.ContainerPort == 0 {
			return fail(field, "host and container ports must be in 1-65535")
		}
		if p.HostIP != "" {
			ip, err := netip.ParseAddr(p.HostIP)
			if err != nil || !ip.Is4() {
				return fail(field, "host address %q is not an IPv4 address", p.HostIP)
			}
		}
		k := key{p.Protocol, p.HostPort}
		if published[k] {
			return fail(field, "port taken: %d/%s is published twice", p.HostPort, p.Protocol)
		}
		published[k] = true
	}
	if (len(c.Firewall) > 0 || c.FirewallDefault != "") && !bridge {
		return fail("firewall", "the firewall needs bridge mode, not %s", c.Mode)
	}
	if c.FirewallDefault == "" {
		c.FirewallDefault = Allow
	}
	if c.FirewallDefault != Allow && c.FirewallDefault != Deny {
		return fail("firewallDefault", "%q is not allow or deny", c.FirewallDefault)
	}
	for i, r := range c.Firewall {
		field := fmt.Sprintf("firewall[%d]", i)
		if r.Action != Allow && r.Action != Deny {
			return fail(field, "action %q is not allow or deny", r.Action)
		}
		p, err := netip.ParsePrefix(r.CIDR)
		if err != nil || !p.Addr().Is4() {
			return fail(field, "bad IPv4 CIDR %q", r.CIDR)
		}
		if r.Protocol != "" && r.Protocol != "tcp" && r.Protocol != "udp" {
			return fail(field, "protocol %q is not tcp, udp or empty", r.Protocol)
		}
		if r.Port != 0 && r.Protocol == "" {
			return fail(field, "a port needs a protocol")
		}
	}
	if c.EgressRate != 0 && !bridge && !vlan {
		return fail("egressRate", "needs bridge, macvlan or ipvlan mode, not %s", c.Mode)
	}
	if c.IngressRate != 0 && !bridge {
		return fail("ingressRate", "needs bridge mode, not %s", c.Mode)
	}
	for _, r := range []struct {
		name string
		v    uint64
	}{{"egressRate", c.EgressRate}, {"ingressRate", c.IngressRate}} {
		if r.v != 0 && r.v < 8000 {
			return fail(r.name, "%d bit/s is below the minimum of 8000", r.v)
		}
	}
	if c.MTU != 0 && (c.MTU < 576 || c.MTU > 65535) {
		return fail("mtu", "%d is not in 576-65535", c.MTU)
	}
	if c.MTU != 0 && !bridge && !vlan {
		return fail("mtu", "only used in bridge, macvlan and ipvlan modes")
	}
	if c.Hostname != "" {
		if err := checkHostname(c.Hostname); err != nil {
			return fail("hostname", "%v", err)
		}
	}
	for i, d := range c.DNS {
		if _, err := netip.ParseAddr(d); err != nil {
			return fail(fmt.Sprintf("dns[%d]", i), "%q is not an IP address", d)
		}
	}
	for i, d := range c.DNSSearch {
		if d == "" || strings.ContainsAny(d, " \t\n") {
			return fail(fmt.Sprintf("dnsSearch[%d]", i), "%q is not a domain", d)
		}
	}
	return nil
}

// parseAddress parses an IPv4 address with or without a prefix length
// (a bare address gets /32 here; bridge mode then uses the subnet's length).
func parseAddress(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 address or CIDR", s)
		}
		return netip.PrefixFrom(a, 32), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("bad CIDR %q: %v", s, err)
	}
	if !p.Addr().Is4() {
		return p, fmt.Errorf("%q is not IPv4", s)
	}
	return p, nil
}

func checkIfName(name string) error {
	if name == "" || len(name) > 15 || name == "." || name == ".." {
		return fmt.Errorf("interface name %q must have 1 to 15 characters", name)
	}
	if strings.ContainsAny(name, "/: \t\n") {
		return fmt.Errorf("interface name %q contains '/', ':' or white space", name)
	}
	return nil
}

func checkHostname(h string) error {
	if len(h) > 253 {
		return fmt.Errorf("%q is longer than 253 characters", h)
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("%q has an empty or too long label", h)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("%q contains %q", h, r)
			}
		}
	}
	return nil
}
