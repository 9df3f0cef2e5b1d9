package network

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Names of the base chains vessel keeps in its table.
const (
	chainPrerouting  = "vessel-prerouting"
	chainOutput      = "vessel-output"
	chainPostrouting = "vessel-postrouting"
	chainForward     = "vessel-forward"
	chainInput       = "vessel-input"
	tagPrefix        = "vessel "
)

// nft edits one table (family ip or ip6) through google/nftables.
type nft struct {
	table *nftables.Table
}

func newNft(name string) *nft {
	return &nft{table: &nftables.Table{Name: name, Family: nftables.TableFamilyIPv4}}
}

func newNft6(name string) *nft {
	return &nft{table: &nftables.Table{Name: name, Family: nftables.TableFamilyIPv6}}
}

func (n *nft) baseChains() []*nftables.Chain {
	accept := nftables.ChainPolicyAccept
	return []*nftables.Chain{
		{Name: chainPrerouting, Table: n.table, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest},
		{Name: chainOutput, Table: n.table, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest},
		{Name: chainPostrouting, Table: n.table, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource},
		{Name: chainForward, Table: n.table, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept},
		{Name: chainInput, Table: n.table, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept},
	}
}

func (n *nft) chain(name string) *nftables.Chain {
	return &nftables.Chain{Name: name, Table: n.table}
}

func conn() (*nftables.Conn, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("network: nftables: %w", err)
	}
	return c, nil
}

// ensureBase creates the table and its base chains when missing.
func (n *nft) ensureBase(c *nftables.Conn) {
	c.AddTable(n.table)
	for _, ch := range n.baseChains() {
		c.AddChain(ch)
	}
}

func tag(owner string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, tagPrefix+owner)
}

func ruleTag(r *nftables.Rule) string {
	s, ok := userdata.GetString(r.UserData, userdata.TypeComment)
	if !ok || !strings.HasPrefix(s, tagPrefix) {
		return ""
	}
	return strings.TrimPrefix(s, tagPrefix)
}

func bridgeTag(name string) string { return "bridge=" + name }
func endpointTag(id string) string { return "id=" + id }

// --- expression builders ---

func ifname(name string) []byte {
	b := make([]byte, 16)
	copy(b, name)
	return b
}

func matchOifname(op expr.CmpOp, name string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: ifname(name)},
	}
}

func matchIifname(name string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(name)},
	}
}

// matchSrc and matchDst match the source or destination address of the
// packet against p (IPv4 or IPv6, as the table's family).
func matchSrc(p netip.Prefix) []expr.Any { return matchPrefix(true, p) }
func matchDst(p netip.Prefix) []expr.Any { return matchPrefix(false, p) }

func matchPrefix(src bool, p netip.Prefix) []expr.Any {
	p = p.Masked()
	addr := p.Addr().AsSlice()
	var offset uint32
	switch {
	case p.Addr().Is4() && src:
		offset = 12
	case p.Addr().Is4():
		offset = 16
	case src:
		offset = 8
	default:
		offset = 24
	}
	n := uint32(len(addr))
	e := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: n}}
	if p.Bits() < int(n)*8 {
		e = append(e, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: prefixMask(p.Bits(), int(n)), Xor: make([]byte, n)})
	}
	return append(e, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr})
}

func prefixMask(bits, n int) []byte {
	m := make([]byte, n)
	for i := 0; i < bits; i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

func protoNumber(proto string) byte {
	if proto == "udp" {
		return unix.IPPROTO_UDP
	}
	return unix.IPPROTO_TCP
}

func matchL4(proto string, dport uint16) []expr.Any {
	e := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{protoNumber(proto)}},
	}
	if dport != 0 {
		e = append(e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(dport)},
		)
	}
	return e
}

func matchLocalDaddr() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

func matchCtStatus(bit uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATUS, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(bit), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

func matchCtState(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

func concat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// ipsStatusDstNat is IPS_DST_NAT from linux/netfilter/nf_conntrack_common.h.
const ipsStatusDstNat = 1 << 5

// addBridge adds the NAT rules of one bridge:
//   - masquerade the subnet when it leaves through another interface;
//   - masquerade DNATed traffic going back into the bridge (hairpin: a
//     container reaching a published port, its own or a peer's), so replies
//     return through the host and get un-NATed;
//   - masquerade 127.0.0.0/8 sources going into the bridge (the host
//     reaching 127.0.0.1:PORT; needs route_localnet on the bridge).
func (n *nft) addBridge(name string, subnet netip.Prefix) error {
	c, err := conn()
	if err != nil {
		return err
	}
	n.ensureBase(c)
	post := n.chain(chainPostrouting)
	t := tag(bridgeTag(name))
	rules := [][]expr.Any{
		concat(matchSrc(subnet), matchOifname(expr.CmpOpNeq, name), []expr.Any{&expr.Masq{}}),
		concat(matchOifname(expr.CmpOpEq, name), matchCtStatus(ipsStatusDstNat), matchSrc(subnet), []expr.Any{&expr.Masq{}}),
	}
	if subnet.Addr().Is4() {
		rules = append(rules, concat(matchOifname(expr.CmpOpEq, name), matchSrc(netip.MustParsePrefix("127.0.0.0/8")), []expr.Any{&expr.Masq{}}))
	}
	for _, r := range rules {
		c.AddRule(&nftables.Rule{Table: n.table, Chain: post, Exprs: r, UserData: t})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("network: nftables rules for bridge %s: %w", name, err)
	}
	return nil
}

// addPorts adds DNAT rules for published ports, in prerouting (traffic from
// outside and from containers) and output (traffic from the host itself).
func (n *nft) addPorts(id string, addr netip.Addr, ports []Port) error {
	if len(ports) == 0 {
		return nil
	}
	c, err := conn()
	if err != nil {
		return err
	}
	n.ensureBase(c)
	t := tag(endpointTag(id))
	a4 := addr.As4()
	for _, p := range ports {
		var dst []expr.Any
		if p.HostIP != "" {
			dst = matchDst(netip.PrefixFrom(netip.MustParseAddr(p.HostIP), 32))
		} else {
			dst = matchLocalDaddr()
		}
		dnat := []expr.Any{
			&expr.Immediate{Register: 1, Data: a4[:]},
			&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(p.ContainerPort)},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
		}
		exprs := concat(dst, matchL4(p.proto(), p.HostPort), dnat)
		for _, ch := range []string{chainPrerouting, chainOutput} {
			c.AddRule(&nftables.Rule{Table: n.table, Chain: n.chain(ch), Exprs: exprs, UserData: t})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("network: nftables rules for published ports: %w", err)
	}
	return nil
}

// addFirewall creates the container's chain and jumps to it for traffic the
// container sends through the host (forwarded or to the host itself).
func (n *nft) addFirewall(id, chainName, bridge string, addr netip.Addr, rules []Rule, def Action) error {
	c, err := conn()
	if err != nil {
		return err
	}
	n.ensureBase(c)
	ch := c.AddChain(&nftables.Chain{Name: chainName, Table: n.table})
	verdict := func(a Action) *expr.Verdict {
		if a == Deny {
			return &expr.Verdict{Kind: expr.VerdictDrop}
		}
		return &expr.Verdict{Kind: expr.VerdictAccept}
	}
	t := tag(endpointTag(id))
	c.AddRule(&nftables.Rule{Table: n.table, Chain: ch, UserData: t, Exprs: concat(
		matchCtState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED),
		[]expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}})})
	for _, r := range rules {
		cidr := netip.MustParsePrefix(r.CIDR)
		if cidr.Addr().Is4() != addr.Is4() {
			continue // a rule of the other family; its table has it
		}
		e := matchDst(cidr)
		if r.Protocol != "" {
			e = append(e, matchL4(r.Protocol, r.Port)...)
		}
		c.AddRule(&nftables.Rule{Table: n.table, Chain: ch, UserData: t, Exprs: append(e, verdict(r.Action))})
	}
	c.AddRule(&nftables.Rule{Table: n.table, Chain: ch, UserData: t, Exprs: []expr.Any{verdict(def)}})
	jump := concat(matchIifname(bridge), matchSrc(netip.PrefixFrom(addr, addr.BitLen())),
		[]expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chainName}})
	for _, base := range []string{chainForward, chainInput} {
		c.AddRule(&nftables.Rule{Table: n.table, Chain: n.chain(base), Exprs: jump, UserData: t})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("network: nftables firewall: %w", err)
	}
	return nil
}

// remove deletes every rule tagged owner from the base chains (the only
// chains shared between owners), then the owner's own chain if named.
// A missing table or chain is not an error.
func (n *nft) remove(owner, ownChain string) error {
	c, err := conn()
	if err != nil {
		return err
	}
	chains, err := c.ListChainsOfTableFamily(n.table.Family)
	if err != nil {
		return fmt.Errorf("network: list nftables chains: %w", err)
	}
	base := map[string]bool{}
	for _, ch := range n.baseChains() {
		base[ch.Name] = true
	}
	dirty := false
	var own *nftables.Chain
	for _, ch := range chains {
		if ch.Table.Name != n.table.Name {
			continue
		}
		if ownChain != "" && ch.Name == ownChain {
			own = ch
			continue
		}
		if !base[ch.Name] {
			continue
		}
		rules, err := c.GetRules(n.table, ch)
		if err != nil {
			return fmt.Errorf("network: list rules of %s: %w", ch.Name, err)
		}
		for _, r := range rules {
			if ruleTag(r) == owner {
				if err := c.DelRule(r); err != nil {
					return err
				}
				dirty = true
			}
		}
	}
	if own != nil {
		// After the jumps to it are gone (same batch, in order).
		c.FlushChain(own)
		c.DelChain(own)
		dirty = true
	}
	if !dirty {
		return nil
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("network: delete nftables rules of %s: %w", owner, err)
	}
	return nil
}

// deleteTable removes the whole table; a missing table is not an error.
func (n *nft) deleteTable() error {
	c, err := conn()
	if err != nil {
		return err
	}
	c.DelTable(n.table)
	if err := c.Flush(); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("network: delete nftables table %s: %w", n.table.Name, err)
	}
	return nil
}

// exists reports whether the table exists.
func (n *nft) exists() (bool, error) {
	c, err := conn()
	if err != nil {
		return false, err
	}
	tables, err := c.ListTablesOfFamily(n.table.Family)
	if err != nil {
		return false, err
	}
	for _, t := range tables {
		if t.Name == n.table.Name {
			return true, nil
		}
	}
	return false, nil
}
