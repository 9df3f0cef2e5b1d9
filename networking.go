package vessel

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/openvessel/vessel/fielderr"
	"github.com/openvessel/vessel/namespaces"
	"github.com/openvessel/vessel/network"
	"github.com/openvessel/vessel/rootfs"
)

// WithNetwork sets the container's network mode: network.None(),
// network.Loopback() (the default), network.Host(), network.Bridge(name),
// network.Macvlan(...), network.Ipvlan(...) or network.Netns(path). It also
// adjusts the namespace set: host and netns modes share or join rather than
// create a network namespace.
//
// nil leaves the mode to the namespace set (the default: loopback in a
// new network namespace).
func (c *Config) WithNetwork(n *network.Config) *Config {
	c.Network = n
	if n == nil {
		return c
	}
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

// WithPublish publishes container ports on the host (network.ParsePort
// reads them as docker's --publish gives them, like "8080:80" or
// "127.0.0.1:5353:53/udp"). Published ports need bridge networking: a
// container without a network config gets network.Bridge("") (the
// default bridge); one with another mode is reported by Validate.
func (c *Config) WithPublish(ports ...network.Port) *Config {
	for _, p := range ports {
		if c.Network == nil {
			c.WithNetwork(network.Bridge(""))
		}
		c.Network.Publish = append(c.Network.Publish, p)
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
		return fielderr.Prefix("network.", err)
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
	bridge := att.Bridge()
	c.addCleanup(func() error {
		err := ReleaseNetwork(att)
		c.mu.Lock()
		c.net = nil
		c.mu.Unlock()
		return err
	})
	files := []rootfs.File{
		{Path: "/etc/hosts", Data: att.Hosts()},
		{Path: "/etc/resolv.conf", Data: att.ResolvConf()},
	}
	if bridge != "" {
		// Every container on a bridge binds one hosts file that lists
		// them all, rewritten in place as they come and go, so names
		// resolve both ways whichever program started which container.
		if err := writeBridgeHosts(bridge, att, true); err != nil {
			return nil, &SetupError{Step: "network hosts file", Err: err}
		}
		files[0] = rootfs.File{Path: "/etc/hosts", Source: bridgeHostsPath(bridge)}
	}
	return files, nil
}

// ReleaseNetwork tears a container's network attachment down (also one a
// dead program left behind, found with network.DefaultManager.Attachment)
// and takes the container out of its bridge's shared hosts file, which
// goes with the bridge's last container.
func ReleaseNetwork(att *network.Attachment) error {
	bridge := att.Bridge()
	err := att.Teardown()
	if bridge != "" {
		if herr := writeBridgeHosts(bridge, att, false); herr != nil && err == nil {
			err = herr
		}
	}
	return err
}

// bridgeHostsPath is the shared hosts file of the containers on a bridge,
// in a directory of its own next to the network state (removed with the
// last container on the bridge).
func bridgeHostsPath(bridge string) string {
	dir := network.DefaultManager.StateDir
	if dir == "" {
		dir = network.DefaultStateDir
	}
	return filepath.Join(filepath.Dir(dir), "hosts", bridge, "hosts")
}

// writeBridgeHosts rewrites, in place (binds follow the inode), the shared
// hosts file of a bridge from the allocation state: every container on it,
// att's own included when self is set.
func writeBridgeHosts(bridge string, att *network.Attachment, self bool) error {
	path := bridgeHostsPath(bridge)
	unlock, err := network.LockDir(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer unlock()
	peers, err := att.Peers()
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	if self {
		for _, l := range strings.Split(string(att.Hosts()), "\n") {
			if l != "" && !strings.Contains(l, "localhost") {
				b.WriteString(l + "\n")
			}
		}
	}
	for _, p := range peers {
		name := p.Hostname
		if name == "" {
			name = p.ID
		} else if p.ID != name {
			name += " " + p.ID
		}
		fmt.Fprintf(&b, "%s\t%s\n", p.Address, name)
		if p.Address6.IsValid() {
			fmt.Fprintf(&b, "%s\t%s\n", p.Address6, name)
		}
	}
	if !self && len(peers) == 0 {
		// The last container of the bridge is gone: so is the file (and,
		// at unlock, its directory).
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err = f.WriteAt([]byte(b.String()), 0)
	return err
}

// Network returns the container's network attachment (nil unless the
// mode wires one: bridge, macvlan, ipvlan, moved interfaces).
func (c *Container) Network() *network.Attachment {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.net
}
