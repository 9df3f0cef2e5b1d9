package vessel

import (
	"context"
	"strings"

	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/network"
	"github.com/openvessel/vessel/rootfs"
)

// WithNetwork sets the container's network mode: network.None(),
// network.Loopback() (the default), network.Host(), network.Bridge(name),
// network.Macvlan(...), network.Ipvlan(...) or network.Netns(path). It also
// adjusts the namespace set: host and netns modes share or join rather than
// create a network namespace.
func (c *Config) WithNetwork(n *network.Config) *Config {
	if n == nil {
		return c.fail("network", "nil network config")
	}
	c.Network = n
	switch n.Mode {
	case network.ModeHost:
		c.Namespaces = c.Namespaces.Without(namespaces.Net)
	case network.ModeNetns:
		c.Namespaces = c.Namespaces.With(namespaces.Net, n.NetnsPath)
	default:
		c.Namespaces = c.Namespaces.With(namespaces.Net, "")
	}
	return c
}

// network returns the effective network config.
func (c *Config) network() *network.Config {
	if c.Network != nil {
		return c.Network
	}
	switch {
	case !c.Namespaces.Has(namespaces.Net):
		return network.Host()
	case c.Namespaces.IsJoined(namespaces.Net):
		n, _ := c.Namespaces.Get(namespaces.Net)
		return network.Netns(n.Path)
	}
	return network.Loopback()
}

// validateNetwork checks the mode against the namespace set.
func (c *Config) validateNetwork() error {
	if c.Network == nil {
		return nil
	}
	n := *c.Network
	if err := n.Validate(); err != nil {
		// The network package names its own fields ("Subnet: ..."); say
		// where they sit in a Config.
		msg := strings.TrimPrefix(err.Error(), "network: ")
		f, r, ok := strings.Cut(msg, ": ")
		switch {
		case !ok || strings.ContainsAny(f, " \t"):
			f, r = "network", msg
		case strings.HasPrefix(f, "network"):
		default:
			f = "network." + strings.ToLower(f[:1]) + f[1:]
		}
		return &ConfigError{Field: f, Reason: r}
	}
	switch {
	case n.Mode == network.ModeHost && c.Namespaces.Has(namespaces.Net):
		return &ConfigError{Field: "network.mode", Reason: "host mode with a network namespace of the container's own"}
	case n.Mode != network.ModeHost && !c.Namespaces.Has(namespaces.Net):
		return &ConfigError{Field: "network.mode", Reason: string(n.Mode) + " mode needs a network namespace (the net namespace is shared with the host)"}
	}
	return nil
}

// needsNetworkSetup reports whether the parent wires the container's
// network namespace from outside (links, addresses, routes, rules).
func (c *Config) needsNetworkSetup() bool {
	n := c.network()
	switch n.Mode {
	case network.ModeBridge, network.ModeMacvlan, network.ModeIpvlan:
		return true
	}
	return len(n.Interfaces) > 0
}

// setupNetwork runs in the parent while the child waits, and returns the
// files (/etc/hosts, /etc/resolv.conf) that describe the result.
func (c *Container) setupNetwork(ctx context.Context, pid int) ([]rootfs.File, error) {
	n := *c.cfg.network()
	if n.Hostname == "" {
		n.Hostname = c.hostname()
	}
	if ctx == nil {
		ctx = context.Background()
	}
	att, err := network.Setup(ctx, c.id, &n, pid)
	if err != nil {
		return nil, &SetupError{Step: "network", Err: err}
	}
	c.mu.Lock()
	c.net = att
	c.mu.Unlock()
	c.addCleanup(func() error {
		err := att.Teardown()
		c.mu.Lock()
		c.net = nil
		c.mu.Unlock()
		return err
	})
	return []rootfs.File{
		{Path: "/etc/hosts", Data: att.Hosts()},
		{Path: "/etc/resolv.conf", Data: att.ResolvConf()},
	}, nil
}

// Network returns the container's network attachment (nil unless the
// mode wires one: bridge, macvlan, ipvlan, moved interfaces).
func (c *Container) Network() *network.Attachment {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.net
}
