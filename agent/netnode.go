package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/infergate/infergate/agent/xdpattach"
)

// Neighbour resolution bounds.
const (
	// DefaultNeighbourWait bounds how long NextHop waits for a neighbour
	// to answer after it triggered resolution.
	DefaultNeighbourWait = time.Second
	// neighbourPoll is how often the neighbour table is re-read meanwhile.
	neighbourPoll = 20 * time.Millisecond
	// discardPort receives the packet that makes the kernel resolve a
	// neighbour (RFC 863 discard); whatever answers does not matter.
	discardPort = 9
)

// NetlinkResolver resolves interfaces, routes and neighbours through the
// kernel's routing netlink.
type NetlinkResolver struct {
	// NeighbourWait bounds the wait for an unresolved neighbour; zero
	// means DefaultNeighbourWait.
	NeighbourWait time.Duration
}

// Interface returns the ifindex of a named link.
func (NetlinkResolver) Interface(name string) (int, error) { return xdpattach.LinkIndex(name) }

// NextHop looks up the route to addr and the MAC of its next hop. When the
// neighbour table has no usable entry it sends one datagram towards the
// next hop, which makes the kernel resolve it, and re-reads the table until
// NeighbourWait passes. A Hop with a nil MAC is returned when nobody
// answered: the caller decides what an unreachable neighbour means.
func (r NetlinkResolver) NextHop(ctx context.Context, addr netip.Addr) (Hop, error) {
	routes, err := netlink.RouteGet(net.IP(addr.AsSlice()))
	if err != nil {
		return Hop{}, fmt.Errorf("%w to %s: %v", ErrNoRoute, addr, err)
	}
	if len(routes) == 0 {
		return Hop{}, fmt.Errorf("%w to %s", ErrNoRoute, addr)
	}
	rt := routes[0]
	switch rt.Type {
	case unix.RTN_UNREACHABLE, unix.RTN_BLACKHOLE, unix.RTN_PROHIBIT, unix.RTN_THROW:
		return Hop{}, fmt.Errorf("%w to %s: route type %d", ErrNoRoute, addr, rt.Type)
	case unix.RTN_LOCAL:
		return Hop{}, fmt.Errorf("%w to %s: it is an address of this node", ErrNoRoute, addr)
	}
	link, err := netlink.LinkByIndex(rt.LinkIndex)
	if err != nil {
		return Hop{}, fmt.Errorf("%w to %s: egress link %d: %v", ErrNoRoute, addr, rt.LinkIndex, err)
	}
	attrs := link.Attrs()
	if attrs.Flags&net.FlagLoopback != 0 || len(attrs.HardwareAddr) != 6 {
		return Hop{}, fmt.Errorf("%w to %s: egress %s is not an Ethernet link", ErrNoRoute, addr, attrs.Name)
	}
	h := Hop{Ifindex: attrs.Index, Ifname: attrs.Name, SrcMAC: attrs.HardwareAddr, OnLink: true}
	if src, ok := netip.AddrFromSlice(rt.Src); ok {
		h.Source = src.Unmap()
	} else {
		h.Source = linkAddress(link, addr.Is4())
	}
	nh := addr
	if gw, ok := netip.AddrFromSlice(rt.Gw); ok && rt.Gw != nil {
		nh = gw.Unmap()
		h.OnLink = false
	} else if len(rt.MultiPath) > 0 {
		return Hop{}, fmt.Errorf("%w to %s: multipath routes are not supported", ErrNoRoute, addr)
	}
	if mac := neighbourMAC(attrs.Index, nh); mac != nil {
		h.MAC = mac
		return h, nil
	}
	triggerResolution(attrs.Name, nh)
	wait := r.NeighbourWait
	if wait == 0 {
		wait = DefaultNeighbourWait
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(neighbourPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return h, nil
		case <-deadline.C:
			return h, nil
		case <-tick.C:
			if mac := neighbourMAC(attrs.Index, nh); mac != nil {
				h.MAC = mac
				return h, nil
			}
		}
	}
}

// linkAddress is the first global address of the family on a link, the
// source when a route names none.
func linkAddress(l netlink.Link, v4 bool) netip.Addr {
	fam := netlink.FAMILY_V6
	if v4 {
		fam = netlink.FAMILY_V4
	}
	as, err := netlink.AddrList(l, fam)
	if err != nil {
		return netip.Addr{}
	}
	for _, a := range as {
		ip, ok := netip.AddrFromSlice(a.IP)
		if ok && ip.Unmap().IsGlobalUnicast() {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

// usableNeigh are the states whose link-layer address may be used.
const usableNeigh = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY |
	netlink.NUD_PROBE | netlink.NUD_PERMANENT | netlink.NUD_NOARP

func neighbourMAC(ifindex int, a netip.Addr) net.HardwareAddr {
	fam := netlink.FAMILY_V4
	if a.Is6() {
		fam = netlink.FAMILY_V6
	}
	ns, err := netlink.NeighList(ifindex, fam)
	if err != nil {
		return nil
	}
	for _, n := range ns {
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || ip.Unmap() != a || n.State&usableNeigh == 0 || len(n.HardwareAddr) != 6 {
			continue
		}
		return n.HardwareAddr
	}
	return nil
}

// triggerResolution sends one datagram to the discard port of a, bound to
// the egress device, so the kernel starts ARP or neighbour discovery.
func triggerResolution(ifname string, a netip.Addr) {
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname)
		})
		return errors.Join(err, serr)
	}}
	target := net.JoinHostPort(a.String(), strconv.Itoa(discardPort))
	if a.Is6() && a.IsLinkLocalUnicast() {
		target = net.JoinHostPort(a.String()+"%"+ifname, strconv.Itoa(discardPort))
	}
	c, err := d.Dial("udp", target)
	if err != nil {
		return
	}
	_, _ = c.Write([]byte{0})
	_ = c.Close()
}

// LinkEvent says a watched interface appeared (with its current index) or
// went away.
type LinkEvent struct {
	Name    string
	Index   int
	Present bool
	Up      bool
}

// WatchLinks reports changes of the named interfaces (all when names is
// empty) until ctx ends. The
// current state of each is reported first, so no change between listing
// and subscribing is missed.
func WatchLinks(ctx context.Context, names []string, events chan<- LinkEvent) error {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	errc := make(chan error, 1)
	err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		ListExisting: true,
		ErrorCallback: func(err error) {
			select {
			case errc <- err:
			default:
			}
		},
	})
	if err != nil {
		return fmt.Errorf("subscribe to link updates: %w", err)
	}
	go func() {
		defer close(done)
		last := map[string]LinkEvent{}
		for {
			select {
			case <-ctx.Done():
				return
			case u, ok := <-updates:
				if !ok {
					return
				}
				a := u.Link.Attrs()
				if len(want) > 0 && !want[a.Name] {
					continue
				}
				ev := LinkEvent{Name: a.Name, Index: a.Index, Present: u.Header.Type != unix.RTM_DELLINK,
					Up: a.Flags&net.FlagUp != 0}
				if last[a.Name] == ev {
					continue
				}
				last[a.Name] = ev
				select {
				case events <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return nil
}
