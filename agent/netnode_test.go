package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/privtest"
)

// vethPeer is a test topology: a veth pair whose near end stays in this
// namespace and whose far end lives in a namespace the test created.
type vethPeer struct {
	ns, near, far string
	nearAddr      netip.Addr
	farAddr       netip.Addr
	farMAC        net.HardwareAddr
	subnet        int // third octet of 198.19.<subnet>.0/24
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func randSuffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// newVethPeer builds the pair with 198.19.<n>.1/24 near and .2 far.
func newVethPeer(t *testing.T) *vethPeer {
	t.Helper()
	privtest.Root(t)
	privtest.Tools(t, "ip")
	sfx := randSuffix(t)
	n, err := rand.Int(rand.Reader, big.NewInt(200))
	if err != nil {
		t.Fatal(err)
	}
	v := &vethPeer{ns: "igag" + sfx, near: "igan" + sfx, far: "igaf" + sfx, subnet: 20 + int(n.Int64())}
	v.nearAddr = netip.MustParseAddr(fmt.Sprintf("198.19.%d.1", v.subnet))
	v.farAddr = netip.MustParseAddr(fmt.Sprintf("198.19.%d.2", v.subnet))
	ipCmd(t, "netns", "add", v.ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", v.ns).Run() })
	ipCmd(t, "link", "add", v.near, "type", "veth", "peer", "name", v.far)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", v.near).Run() })
	ipCmd(t, "link", "set", v.far, "netns", v.ns)
	ipCmd(t, "addr", "add", v.nearAddr.String()+"/24", "dev", v.near)
	ipCmd(t, "link", "set", v.near, "up")
	ipCmd(t, "-n", v.ns, "addr", "add", v.farAddr.String()+"/24", "dev", v.far)
	ipCmd(t, "-n", v.ns, "link", "set", v.far, "up")
	ipCmd(t, "-n", v.ns, "link", "set", "lo", "up")
	out, err := exec.Command("ip", "-n", v.ns, "-br", "link", "show", v.far).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(out)) {
		if mac, err := net.ParseMAC(f); err == nil && len(mac) == 6 {
			v.farMAC = mac
		}
	}
	if v.farMAC == nil {
		t.Fatalf("no MAC in %q", out)
	}
	return v
}

func TestNetlinkResolver(t *testing.T) {
	v := newVethPeer(t)
	r := NetlinkResolver{NeighbourWait: 2 * time.Second}
	ctx := context.Background()

	idx, err := r.Interface(v.near)
	if err != nil || idx == 0 {
		t.Fatalf("Interface(%s) = %d, %v", v.near, idx, err)
	}
	if _, err := r.Interface("igano" + randSuffix(t)); err == nil {
		t.Fatal("missing interface resolved")
	}

	// On-link: the neighbour table is empty at first, so this proves the
	// resolution trigger works.
	h, err := r.NextHop(ctx, v.farAddr)
	if err != nil {
		t.Fatal(err)
	}
	if !h.OnLink || h.Ifindex != idx || h.MAC.String() != v.farMAC.String() || h.Source != v.nearAddr {
		t.Fatalf("on-link hop = %+v, want MAC %s via %d from %s", h, v.farMAC, idx, v.nearAddr)
	}

	// Routed through the far end as a gateway.
	routed := fmt.Sprintf("198.19.%d.0/24", v.subnet+1)
	ipCmd(t, "route", "add", routed, "via", v.farAddr.String(), "dev", v.near)
	t.Cleanup(func() { _ = exec.Command("ip", "route", "del", routed).Run() })
	h, err = r.NextHop(ctx, netip.MustParseAddr(fmt.Sprintf("198.19.%d.7", v.subnet+1)))
	if err != nil {
		t.Fatal(err)
	}
	if h.OnLink || h.MAC.String() != v.farMAC.String() {
		t.Fatalf("routed hop = %+v", h)
	}

	// An unreachable route is no route.
	unreach := fmt.Sprintf("198.19.%d.0/24", v.subnet+2)
	ipCmd(t, "route", "add", "unreachable", unreach)
	t.Cleanup(func() { _ = exec.Command("ip", "route", "del", "unreachable", unreach).Run() })
	if _, err = r.NextHop(ctx, netip.MustParseAddr(fmt.Sprintf("198.19.%d.1", v.subnet+2))); !errors.Is(err, ErrNoRoute) {
		t.Fatalf("unreachable: err = %v", err)
	}

	// A neighbour that never answers yields a hop without a MAC, in
	// bounded time.
	silent := netip.MustParseAddr(fmt.Sprintf("198.19.%d.99", v.subnet))
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
	v := newVethPeer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan LinkEvent, 16)
	if err := WatchLinks(ctx, []string{v.near}, events); err != nil {
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
	ipCmd(t, "link", "del", v.near)
	next(func(e LinkEvent) bool { return !e.Present }, "link removed")
	ipCmd(t, "link", "add", v.near, "type", "veth", "peer", "name", v.far+"x")
	ipCmd(t, "link", "set", v.near, "up")
	ev := next(func(e LinkEvent) bool { return e.Present && e.Up }, "link back")
	if ev.Index == first.Index {
		t.Fatalf("re-created link kept index %d", ev.Index)
	}
}
