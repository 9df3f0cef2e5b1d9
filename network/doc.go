// Package network wires a container's network namespace from the host side.
//
// It implements the network modes of vessel: none (a new namespace with only
// a down loopback), loopback, host (share the host namespace), netns (join an
// existing namespace file), bridge (a veth pair on a host bridge with address
// allocation, NAT to the outside, published ports, a per-container egress
// firewall and bandwidth limits) and macvlan/ipvlan on a parent interface. It
// can also move existing host interfaces into a container and give them back.
//
// Everything is done by the controlling (host) process through netlink
// handles opened on the container's namespace (/proc/PID/ns/net) and through
// nftables, in pure Go: the package never runs ip, iptables or tc, and never
// needs code to run inside the container. The only thing a container child
// has to do itself is setns(2) into the namespace file in netns=PATH mode.
//
// Shared state (address allocations, published ports, owners) lives in a
// state directory guarded by flock(2), so concurrent containers and
// concurrent programs never collide, and allocations whose owners died are
// reclaimed by [Cleanup] or by the next [Setup]. Once nothing is recorded,
// the directory and its lock file are removed (see [LockDir]): nothing but
// the empty /run/vessel is left by containers that are gone.
//
// A container runtime uses it like this:
//
//	cfg.Validate()                          // at configuration time
//	flags := 0
//	if cfg.NewNamespace() { flags |= CLONE_NEWNET }
//	// clone the child; it waits on the sync channel
//	a, err := mgr.Setup(ctx, id, cfg, childPid) // host side, before releasing the child
//	// write a.Hosts() and a.ResolvConf() into the rootfs; release the child
//	...
//	a.Teardown()                            // on destroy; idempotent
//	mgr.Cleanup(ctx)                        // vessel gc
//
// A program that did not call Setup (a CLI tearing down a detached
// container) gets the Attachment back with Manager.Attachment(id).
//
// The package must not touch host interfaces, routes or nftables tables it
// did not create (its own are the table named Manager.Table, in families ip
// and ip6, with chains prefixed "vessel-", bridges, and veths named vx*),
// with two documented exceptions: it enables net.ipv4.ip_forward (and
// net.ipv6.conf.all.forwarding for IPv6 bridges) while a bridge is in use,
// restoring the previous value when the last vessel bridge of any state
// directory goes away (bookkeeping in /run/vessel/forwarding), and it moves
// the interfaces the caller names in Config.Interfaces.
package network
