package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/infergate/infergate/agent/internal/vethtest"
)

func TestNetlinkResolver(t *testing.T) {
	v := vethtest.New(t)
	r := NetlinkResolver{NeighbourWait: 2 * time.Second}
	ctx := context.Background()

	idx, err := r.Interface(v.Near)
	if err != nil || idx == 0 {
		t.Fatalf("Interface(%s) = %d, %v", v.Near, idx, err)
	}
	if _, err := r.Interface("igano" + vethtest.Suffix(t)); err == nil {
		t.Fatal("missing interface resolved")
	}

	// On-link: the neighbour table is empty at first, so this proves the
	// resolution trigger works.
	h, err := r.NextHop(ctx, v.FarAddr)
	if err != nil {
		t.Fatal(err)
	}
	if !h.OnLink || h.Ifindex != idx || h.MAC.String() != v.FarMAC.String() || h.Source != v.NearAddr {
		t.Fatalf("on-link hop = %+v, want MAC %s via %d from %s", h, v.FarMAC, idx, v.NearAddr)
	}

	// Routed through the far end as a gateway.
	routed := fmt.Sprintf("198.19.%d.0/24", v.Subnet+1)
	vethtest.IP(t, "route", "add", routed, "via", v.FarAddr.String(), "dev", v.Near)
	t.Cleanup(func() { _ = exec.Command("ip", "route", "del", routed).Run() })
	h, err = r.NextHop(ctx, netip.MustParseAddr(fmt.Sprintf("198.19.%d.7", v.Subnet+1)))
	if err != nil {
		t.Fatal(err)
	}
	if h.OnLink || h.MAC.String() != v.FarMAC.String() {
		t.Fatalf("routed hop = %+v", h)
	}

	// An unreachable route is no route.
	unreach := fmt.Sprintf("198.19.%d.0/24", v.Subnet+2)
	vethtest.IP(t, "route", "add", "unreachable", unreach)
	t.Cleanup(func() { _ = exec.Command("ip", "route", "del", "unreachable", unreach).Run() })
	if _, err = r.NextHop(ctx, netip.MustParseAddr(fmt.Sprintf("198.19.%d.1", v.Subnet+2))); !errors.Is(err, ErrNoRoute) {
		t.Fatalf("unreachable: err = %v", err)
	}

	// A neighbour that never answers yields a hop without a MAC, in
	// bounded time.
	silent := netip.MustParseAddr(fmt.Sprintf("198.19.%d.99", v.Subnet))
	r.NeighbourWait = 300 * time.Millisecond
	start := time.Now()
	h, err = r.NextHop(ctx, silent)
	if err != nil || h.MAC != nil {
		t.Fatalf("silent neighbour: %+v, %v", h, err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("silent neighbour took %v", el)
	}
}

func TestWatchLinks(t *testing.T) {
	v := vethtest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan LinkEvent, 16)
	if err := WatchLinks(ctx, []string{v.Near}, events); err != nil {
		t.Fatal(err)
	}
	next := func(want func(LinkEvent) bool, what string) LinkEvent {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case ev := <-events:
				if want(ev) {
					return ev
				}
			case <-timeout:
				t.Fatalf("no event: %s", what)
			}
		}
	}
	first := next(func(e LinkEvent) bool { return e.Present && e.Up }, "existing link listed")
	vethtest.IP(t, "link", "del", v.Near)
	next(func(e LinkEvent) bool { return !e.Present }, "link removed")
	vethtest.IP(t, "link", "add", v.Near, "type", "veth", "peer", "name", v.Far+"x")
	vethtest.IP(t, "link", "set", v.Near, "up")
	ev := next(func(e LinkEvent) bool { return e.Present && e.Up }, "link back")
	if ev.Index == first.Index {
		t.Fatalf("re-created link kept index %d", ev.Index)
	}
}
