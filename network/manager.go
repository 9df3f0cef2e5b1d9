package network

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/openvessel/vessel/fielderr"
)

// Defaults of a zero Manager.
const (
	DefaultStateDir   = "/run/vessel/network"
	DefaultTable      = "vessel"
	DefaultPool       = "10.88.0.0/16"
	DefaultPoolPrefix = 24
)

// Manager owns one set of shared network resources: a state directory, an
// nftables table and a subnet pool. The zero value uses the defaults; tests
// and tools that must not meet the system's containers use their own.
// A Manager is safe for concurrent use, also by several programs sharing
// the same StateDir.
type Manager struct {
	// StateDir holds the allocation state and its lock (DefaultStateDir).
	StateDir string
	// Table is the name of the nftables table (family ip) (DefaultTable).
	Table string
	// Pool is the IPv4 network bridge subnets are carved from (DefaultPool).
	Pool string
	// PoolPrefix is the prefix length of carved subnets (DefaultPoolPrefix).
	PoolPrefix int
	// Logger receives warnings about best-effort cleanup; nil is silent.
	Logger *slog.Logger
}

// DefaultManager is used by the package-level Setup and Cleanup.
var DefaultManager = &Manager{}

// Setup wires the network of container id whose process is pid, using
// DefaultManager. See Manager.Setup.
func Setup(ctx context.Context, id string, c *Config, pid int) (*Attachment, error) {
	return DefaultManager.Setup(ctx, id, c, pid)
}

// Cleanup reclaims the resources of dead containers, using DefaultManager.
// See Manager.Cleanup.
func Cleanup(ctx context.Context) error { return DefaultManager.Cleanup(ctx) }

func (m *Manager) stateDir() string {
	if m.StateDir == "" {
		return DefaultStateDir
	}
	return m.StateDir
}

func (m *Manager) table() string {
	if m.Table == "" {
		return DefaultTable
	}
	return m.Table
}

func (m *Manager) nft() *nft  { return newNft(m.table()) }
func (m *Manager) nft6() *nft { return newNft6(m.table()) }

func (m *Manager) pool() (netip.Prefix, int, error) {
	pool, bits := m.Pool, m.PoolPrefix
	if pool == "" {
		pool = DefaultPool
	}
	if bits == 0 {
		bits = DefaultPoolPrefix
	}
	p, err := netip.ParsePrefix(pool)
	if err != nil || !p.Addr().Is4() || bits < p.Bits() || bits > 30 {
		return p, 0, fmt.Errorf("network: Manager.Pool %q / PoolPrefix %d: not an IPv4 network that can hold /%d subnets", pool, bits, bits)
	}
	return p.Masked(), bits, nil
}

func (m *Manager) warn(msg string, args ...any) {
	if m.Logger != nil {
		m.Logger.Warn(msg, args...)
	}
}

// shortHash names kernel objects (links, chains) after a container id in a
// way that fits IFNAMSIZ and differs between managers.
func (m *Manager) shortHash(id string) string {
	sum := sha256.Sum256([]byte(m.stateDir() + "\x00" + id))
	return hex.EncodeToString(sum[:])[:10]
}

// Setup wires the network of container id, whose first process is pid, as
// c describes. It must be called from the host side after the process was
// created (with CLONE_NEWNET when c.NewNamespace()) and before it relies on
// its network. Nothing runs inside the container: its namespace is edited
// through netlink handles opened on /proc/PID/ns/net.
//
// For host and netns modes Setup only validates (pid may be 0). On failure
// Setup leaves nothing behind. The returned Attachment keeps the container's
// namespace open until Teardown, so interfaces can be given back even after
// the container exited.
func (m *Manager) Setup(ctx context.Context, id string, c *Config, pid int) (*Attachment, error) {
	if id == "" {
		return nil, errors.New("network: id: must not be empty")
	}
	if c == nil {
		c = None()
	}
	cfg := *c
	cfg.Interfaces = append([]string(nil), c.Interfaces...)
	cfg.Publish = append([]Port(nil), c.Publish...)
	cfg.Firewall = append([]Rule(nil), c.Firewall...)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a := &Attachment{m: m, id: id, cfg: cfg, ns: -1}
	if cfg.Hostname == "" {
		a.cfg.Hostname = hostnameFromID(id)
	}
	if !cfg.NewNamespace() {
		return a, nil
	}
	if pid <= 0 {
		return nil, fmt.Errorf("network: pid: %d is not a process id", pid)
	}
	ns, err := openContainerNetns(pid)
	if err != nil {
		return nil, err
	}
	a.ns = ns
	a.pid = pid
	if err := m.setup(ctx, a); err != nil {
		ns.Close()
		return nil, err
	}
	return a, nil
}

// openContainerNetns opens the netns of pid and refuses the host's own.
func openContainerNetns(pid int) (netns.NsHandle, error) {
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		return -1, fmt.Errorf("network: pid: open network namespace of %d: %w", pid, err)
	}
	host, err := netns.GetFromPid(os.Getpid())
	if err != nil {
		ns.Close()
		return -1, fmt.Errorf("network: open own network namespace: %w", err)
	}
	defer host.Close()
	if ns.Equal(host) {
		ns.Close()
		return -1, fmt.Errorf("network: pid: process %d shares the host's network namespace (was it cloned with CLONE_NEWNET?)", pid)
	}
	return ns, nil
}

func hostnameFromID(id string) string {
	if checkHostname(id) == nil && len(id) <= 63 {
		return id
	}
	return ""
}

func (m *Manager) setup(ctx context.Context, a *Attachment) error {
	cfg := &a.cfg
	needState := cfg.Mode == ModeBridge || cfg.Mode == ModeMacvlan || cfg.Mode == ModeIpvlan || len(cfg.Interfaces) > 0
	if !needState {
		if cfg.Mode == ModeLoopback {
			return inNetns(a.ns, func(h *netlink.Handle) error { return loUp(h) })
		}
		return nil
	}
	lk, err := lockState(m.stateDir(), true)
	if err != nil {
		return err
	}
	defer lk.unlock()
	st, err := lk.load()
	if err != nil {
		return err
	}
	m.reap(st, cfg.Bridge)
	if _, dup := st.Endpoints[a.id]; dup {
		lk.save(st)
		return fmt.Errorf("network: id: %q already has a network attachment", a.id)
	}
	ep := &endpoint{
		ID: a.id, Mode: cfg.Mode, Hostname: cfg.Hostname, DNS: cfg.DNS, DNSSearch: cfg.DNSSearch,
		Pid: a.pid, PidStart: processStart(a.pid),
		Owner: os.Getpid(), OwnerStart: processStart(os.Getpid()),
	}
	if ep.PidStart == 0 {
		lk.save(st)
		return fmt.Errorf("network: pid: process %d is not running", a.pid)
	}
	host, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("network: netlink: %w", err)
	}
	defer host.Close()

	// Plan and record everything before creating anything; the shared state is
	// changed only after every check passed.
	for i, name := range cfg.Interfaces {
		link, err := host.LinkByName(name)
		if err != nil {
			lk.save(st)
			return &fielderr.Error{Field: fmt.Sprintf("interfaces[%d]", i), Reason: fmt.Sprintf("host interface %q: %v", name, linkErr(err)), Err: linkErr(err)}
		}
		mi := movedInterface{Name: name, Up: link.Attrs().Flags&net.FlagUp != 0}
		addrs, _ := host.AddrList(link, netlink.FAMILY_ALL)
		for _, ad := range addrs {
			if ad.IP.IsLinkLocalUnicast() {
				continue
			}
			mi.Addrs = append(mi.Addrs, ad.IPNet.String())
		}
		ep.Interfaces = append(ep.Interfaces, mi)
	}
	var newBridge *bridgeRecord
	switch cfg.Mode {
	case ModeBridge:
		br, created, err := m.bridgeFor(host, st, cfg)
		if err != nil {
			lk.save(st)
			return err
		}
		if created {
			newBridge = br
		}
		addr, err := allocate(st, br, cfg.Address)
		if err != nil {
			lk.save(st)
			return err
		}
		if err := checkPorts(st, cfg.Publish); err != nil {
			lk.save(st)
			return err
		}
		ep.Bridge, ep.Address, ep.Gateway = br.Name, addr.String(), br.Gateway
		if cfg.IPv6 {
			ep.Address6, ep.Gateway6 = allocate6(br, addr).String(), br.Gateway6
		}
		if cfg.MTU == 0 {
			cfg.MTU = defaultMTU(host, br.Name)
		}
		ep.HostVeth = "vx" + m.shortHash(a.id)
		ep.Ports = cfg.Publish
		if len(cfg.Firewall) > 0 || cfg.FirewallDefault == Deny {
			ep.Chain = "vessel-fw-" + m.shortHash(a.id)
		}
		if newBridge != nil {
			st.Bridges[br.Name] = br
		}
		st.Table, st.Forward = true, true
		if br.Subnet6 != "" {
			st.Table6, st.Forward6 = true, true
		}
	case ModeMacvlan, ModeIpvlan:
		if _, err := host.LinkByName(cfg.Parent); err != nil {
			lk.save(st)
			return &fielderr.Error{Field: "parent", Reason: fmt.Sprintf("host interface %q: %v", cfg.Parent, linkErr(err)), Err: linkErr(err)}
		}
		ep.Address, ep.Gateway, ep.Inner = cfg.Address, cfg.Gateway, "eth0"
	}
	st.Endpoints[a.id] = ep
	if err := lk.save(st); err != nil {
		delete(st.Endpoints, a.id)
		return err
	}
	err = m.wire(ctx, host, st, a, ep, newBridge)
	if err != nil {
		m.release(host, st, ep, a.ns)
		m.gcShared(host, st, "")
		lk.save(st)
		return err
	}
	if err := lk.save(st); err != nil {
		m.release(host, st, ep, a.ns)
		m.gcShared(host, st, "")
		return err
	}
	a.ep = *ep
	return nil
}

func linkErr(err error) error {
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return errors.New("no such interface")
	}
	return err
}

// wire creates what ep records.
func (m *Manager) wire(ctx context.Context, host *netlink.Handle, st *state, a *Attachment, ep *endpoint, newBridge *bridgeRecord) error {
	cfg := &a.cfg
	inner, err := netlink.NewHandleAt(a.ns)
	if err != nil {
		return fmt.Errorf("network: netlink handle in container: %w", err)
	}
	defer inner.Close()
	if err := loUp(inner); err != nil {
		return err
	}
	switch cfg.Mode {
	case ModeBridge:
		br := st.Bridges[ep.Bridge]
		if newBridge != nil {
			if err := createBridge(host, br, cfg.MTU); err != nil {
				delete(st.Bridges, br.Name) // never delete what we did not create
				return err
			}
			if err := m.nft().addBridge(br.Name, netip.MustParsePrefix(br.Subnet)); err != nil {
				return err
			}
			if br.Subnet6 != "" {
				if err := m.nft6().addBridge(br.Name, netip.MustParsePrefix(br.Subnet6)); err != nil {
					return err
				}
			}
		}
		if err := acquireForward(forwardIPv4, m.shortHash("")); err != nil {
			return err
		}
		if br.Subnet6 != "" {
			if err := acquireForward(forwardIPv6, m.shortHash("")); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := createVeth(host, inner, a.ns, ep, cfg.MTU); err != nil {
			return err
		}
		if cfg.IngressRate != 0 {
			if err := limitRate(host, ep.HostVeth, cfg.IngressRate); err != nil {
				return &fielderr.Error{Field: "ingressRate", Reason: fmt.Sprintf("%v", err), Err: err}
			}
		}
		addr := netip.MustParsePrefix(ep.Address).Addr()
		if err := m.nft().addPorts(a.id, addr, ep.Ports); err != nil {
			return err
		}
		if ep.Chain != "" {
			if err := m.nft().addFirewall(a.id, ep.Chain, ep.Bridge, addr, cfg.Firewall, cfg.FirewallDefault); err != nil {
				return err
			}
			if ep.Address6 != "" {
				addr6 := netip.MustParsePrefix(ep.Address6).Addr()
				if err := m.nft6().addFirewall(a.id, ep.Chain, ep.Bridge, addr6, cfg.Firewall, cfg.FirewallDefault); err != nil {
					return err
				}
			}
		}
	case ModeMacvlan, ModeIpvlan:
		if err := createVlan(host, inner, a.ns, cfg, m.shortHash(a.id)); err != nil {
			return err
		}
	}
	if cfg.EgressRate != 0 {
		if err := limitRate(inner, "eth0", cfg.EgressRate); err != nil {
			return &fielderr.Error{Field: "egressRate", Reason: fmt.Sprintf("%v", err), Err: err}
		}
	}
	for i, mi := range ep.Interfaces {
		link, err := host.LinkByName(mi.Name)
		if err != nil {
			return fielderr.Wrap(fmt.Sprintf("interfaces[%d]", i), linkErr(err))
		}
		if err := host.LinkSetNsFd(link, int(a.ns)); err != nil {
			return &fielderr.Error{Field: fmt.Sprintf("interfaces[%d]", i), Reason: fmt.Sprintf("move %s into the container: %v", mi.Name, err), Err: err}
		}
		if link, err = inner.LinkByName(mi.Name); err == nil {
			err = inner.LinkSetUp(link)
		}
		if err != nil {
			return &fielderr.Error{Field: fmt.Sprintf("interfaces[%d]", i), Reason: fmt.Sprintf("set %s up in the container: %v", mi.Name, err), Err: err}
		}
	}
	return nil
}

func loUp(h *netlink.Handle) error {
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("network: set lo up in the container: %w", err)
	}
	return nil
}

func inNetns(ns netns.NsHandle, fn func(h *netlink.Handle) error) error {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("network: netlink handle in container: %w", err)
	}
	defer h.Close()
	return fn(h)
}

// reap releases the endpoints of dead owners; bridges other than keep that
// are left unused are deleted too.
func (m *Manager) reap(st *state, keep string) {
	host, err := netlink.NewHandle()
	if err != nil {
		m.warn("network: netlink", "err", err)
		return
	}
	defer host.Close()
	for _, ep := range st.Endpoints {
		if ep.stale() {
			m.release(host, st, ep, -1)
		}
	}
	m.gcShared(host, st, keep)
}

// release undoes everything ep records and forgets it. ns is the
// container's namespace when still reachable (-1 otherwise). Errors are
// returned after every step was tried; the endpoint is forgotten anyway
// only when the kernel objects are gone.
func (m *Manager) release(host *netlink.Handle, st *state, ep *endpoint, ns netns.NsHandle) error {
	var errs []error
	if ns < 0 && alive(ep.Pid, ep.PidStart) {
		if h, err := netns.GetFromPid(ep.Pid); err == nil {
			defer h.Close()
			ns = h
		}
	}
	if ns >= 0 && (len(ep.Interfaces) > 0 || ep.Inner != "") {
		if err := m.giveBack(host, ep, ns); err != nil {
			errs = append(errs, err)
		}
	}
	if ep.HostVeth != "" {
		if link, err := host.LinkByName(ep.HostVeth); err == nil {
			// ENODEV: the veth went with its peer's network namespace
			// meanwhile (a container whose processes just ended).
			if err := host.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
				errs = append(errs, fmt.Errorf("network: delete %s: %w", ep.HostVeth, err))
			}
		}
	}
	if ep.Bridge != "" {
		if err := m.nft().remove(endpointTag(ep.ID), ep.Chain); err != nil {
			errs = append(errs, err)
		}
	}
	if ep.Address6 != "" {
		if err := m.nft6().remove(endpointTag(ep.ID), ep.Chain); err != nil {
			errs = append(errs, err)
		}
	}
	delete(st.Endpoints, ep.ID)
	return errors.Join(errs...)
}

// giveBack moves the interfaces listed in ep back to the host and deletes
// the inner macvlan/ipvlan link.
func (m *Manager) giveBack(host *netlink.Handle, ep *endpoint, ns netns.NsHandle) error {
	inner, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("network: netlink handle in container: %w", err)
	}
	defer inner.Close()
	var errs []error
	if ep.Inner != "" {
		if link, err := inner.LinkByName(ep.Inner); err == nil {
			if err := inner.LinkDel(link); err != nil {
				errs = append(errs, fmt.Errorf("network: delete %s in container: %w", ep.Inner, err))
			}
		}
	}
	hostNs, err := netns.GetFromPid(os.Getpid())
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	defer hostNs.Close()
	for _, mi := range ep.Interfaces {
		link, err := inner.LinkByName(mi.Name)
		if err != nil {
			continue // gone with the namespace or already returned
		}
		inner.LinkSetDown(link)
		if err := inner.LinkSetNsFd(link, int(hostNs)); err != nil {
			errs = append(errs, fmt.Errorf("network: give %s back to the host: %w", mi.Name, err))
			continue
		}
		hl, err := host.LinkByName(mi.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("network: find %s after giving it back: %w", mi.Name, err))
			continue
		}
		for _, s := range mi.Addrs {
			if ad, err := netlink.ParseAddr(s); err == nil {
				if err := host.AddrAdd(hl, ad); err != nil && !errors.Is(err, unix.EEXIST) {
					errs = append(errs, fmt.Errorf("network: restore address %s on %s: %w", s, mi.Name, err))
				}
			}
		}
		if mi.Up {
			if err := host.LinkSetUp(hl); err != nil {
				errs = append(errs, fmt.Errorf("network: set %s up: %w", mi.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// gcShared deletes bridges no endpoint uses (except keep), the table when no
// bridge is left, and restores ip_forward.
func (m *Manager) gcShared(host *netlink.Handle, st *state, keep string) error {
	used := map[string]bool{keep: true}
	for _, ep := range st.Endpoints {
		if ep.Bridge != "" {
			used[ep.Bridge] = true
		}
	}
	var errs []error
	for name := range st.Bridges {
		if used[name] {
			continue
		}
		if link, err := host.LinkByName(name); err == nil {
			if err := host.LinkDel(link); err != nil {
				errs = append(errs, fmt.Errorf("network: delete bridge %s: %w", name, err))
				continue
			}
		}
		if err := m.nft().remove(bridgeTag(name), ""); err != nil {
			errs = append(errs, err)
			continue
		}
		if st.Bridges[name].Subnet6 != "" {
			if err := m.nft6().remove(bridgeTag(name), ""); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		delete(st.Bridges, name)
	}
	if len(st.Bridges) == 0 && keep == "" {
		bridgeUsers := false
		for _, ep := range st.Endpoints {
			bridgeUsers = bridgeUsers || ep.Bridge != ""
		}
		if !bridgeUsers {
			if st.Table {
				if err := m.nft().deleteTable(); err != nil {
					errs = append(errs, err)
				} else {
					st.Table = false
				}
			}
			if st.Table6 {
				if err := m.nft6().deleteTable(); err != nil {
					errs = append(errs, err)
				} else {
					st.Table6 = false
				}
			}
			if st.Forward {
				if err := releaseForward(forwardIPv4, m.shortHash("")); err != nil {
					errs = append(errs, err)
				} else {
					st.Forward = false
				}
			}
			if st.Forward6 {
				if err := releaseForward(forwardIPv6, m.shortHash("")); err != nil {
					errs = append(errs, err)
				} else {
					st.Forward6 = false
				}
			}
		}
	}
	return errors.Join(errs...)
}

// Cleanup reclaims the addresses, links, rules and chains of containers
// whose process and controlling program are both gone (for example after
// the controller was killed with SIGKILL), then deletes bridges and the
// nftables table nothing uses any more. It is what `vessel gc` runs.
func (m *Manager) Cleanup(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	lk, err := lockState(m.stateDir(), true)
	if err != nil {
		return err
	}
	defer lk.unlock()
	st, err := lk.load()
	if err != nil {
		return err
	}
	host, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("network: netlink: %w", err)
	}
	defer host.Close()
	var errs []error
	for _, ep := range st.Endpoints {
		if ep.stale() {
			if err := m.release(host, st, ep, -1); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := m.gcShared(host, st, ""); err != nil {
		errs = append(errs, err)
	}
	if err := lk.save(st); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Attachment returns the attachment of container id recorded in the state
// directory, for a program other than the one that called Setup (a CLI
// tearing down a detached container). It fails when id has none.
func (m *Manager) Attachment(id string) (*Attachment, error) {
	lk, err := lockState(m.stateDir(), false)
	if err != nil {
		return nil, err
	}
	defer lk.unlock()
	st, err := lk.load()
	if err != nil {
		return nil, err
	}
	ep, ok := st.Endpoints[id]
	if !ok {
		return nil, fmt.Errorf("network: no attachment recorded for %q", id)
	}
	a := &Attachment{m: m, id: id, ep: *ep, pid: ep.Pid, ns: -1}
	a.cfg = Config{Mode: ep.Mode, Bridge: ep.Bridge, Hostname: ep.Hostname, Publish: ep.Ports, DNS: ep.DNS, DNSSearch: ep.DNSSearch}
	return a, nil
}
