package network

import (
	"fmt"

	"github.com/vishvananda/netlink"
)

// limitRate puts a token bucket (tbf) as the root qdisc of the named link:
// traffic the link sends is shaped to bitsPerSec.
//
// Ingress to a container is shaped on the host end of its veth (what the
// host sends into the container). Egress from a container is shaped on the
// container's eth0, configured from the host through a netlink handle on the
// container's namespace: a tbf queues (TCP backs off smoothly) where a
// policer on the host end would drop. A container that keeps CAP_NET_ADMIN
// could remove its own egress qdisc; vessel's default security profile
// drops that capability.
func limitRate(h *netlink.Handle, name string, bitsPerSec uint64) error {
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, linkErr(err))
	}
	rate := bitsPerSec / 8 // bytes per second
	// Burst: 20 ms worth of traffic, at least 32 KiB so full-size frames and
	// small GSO bursts pass without being split into tiny pieces.
	burst := rate / 50
	if burst < 32<<10 {
		burst = 32 << 10
	}
	// Queue: 50 ms of traffic on top of the burst.
	limit := rate/20 + burst
	if limit > 1<<31 {
		limit = 1 << 31
	}
	// The kernel takes the bucket size as transmission time in psched ticks
	// (64 ns each).
	bufferTicks := burst * 1e9 / rate / 64
	if bufferTicks > 1<<32-1 {
		bufferTicks = 1<<32 - 1
	}
	q := &netlink.Tbf{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: link.Attrs().Index,
			Handle:    netlink.MakeHandle(1, 0),
			Parent:    netlink.HANDLE_ROOT,
		},
		Rate:   rate,
		Limit:  uint32(limit),
		Buffer: uint32(bufferTicks),
	}
	if err := h.QdiscReplace(q); err != nil {
		return fmt.Errorf("tbf on %s: %w", name, err)
	}
	return nil
}
