package bgp

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/infergate/infergate/agent/bgp/bgptest"
)

// The tests peer the speaker with real BGP routers: gobgp servers of their
// own in the test process, on loopback (bgptest).

const localASN = 64512

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func established(s *Speaker, addr netip.Addr) bool {
	for _, p := range s.Peers(context.Background()) {
		if p.Address == addr.String() && p.State == "established" {
			return true
		}
	}
	return false
}

func peerOf(r *bgptest.Router) Peer {
	return Peer{Address: r.Addr.Addr(), ASN: bgptest.ASN, Port: r.Addr.Port(), HoldTime: 9 * time.Second}
}

var (
	vip4 = netip.MustParsePrefix("198.18.0.100/32")
	vip6 = netip.MustParsePrefix("2001:db8::100/128")
)

// TestAnnounceWithdrawKeepsSession: the router learns the configured
// routes with this node as next hop, IPv4 over an IPv4 session and IPv6
// over an IPv6 one; a withdrawal (what a draining or unhealthy node does)
// removes them while both sessions stay established, and announcing again
// brings them back.
func TestAnnounceWithdrawKeepsSession(t *testing.T) {
	r4 := bgptest.New(t, "127.0.0.2", "127.0.0.1", localASN)
	r6 := bgptest.New(t, "::1", "::1", localASN)
	s := New(quiet)
	defer s.Close()
	ctx := context.Background()
	cfg := Config{ASN: localASN, RouterID: netip.MustParseAddr("198.18.1.1"),
		Peers: []Peer{peerOf(r4), peerOf(r6)}, Prefixes: []netip.Prefix{vip4, vip6}}
	if err := s.Apply(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	bgptest.Wait(t, "the IPv4 router learns the IPv4 VIP only", func() bool { return bgptest.HasExactly(r4.Routes(t), "198.18.0.100/32") })
	bgptest.Wait(t, "the IPv6 router learns the IPv6 VIP only", func() bool { return bgptest.HasExactly(r6.Routes(t), "2001:db8::100/128") })
	if nh := r4.Routes(t)[vip4]; nh != "127.0.0.1" {
		t.Errorf("IPv4 next hop %q, want the node's session address 127.0.0.1", nh)
	}
	if nh := r6.Routes(t)[vip6]; nh != "::1" {
		t.Errorf("IPv6 next hop %q, want ::1", nh)
	}

	if err := s.SetAnnounce(ctx, "draining"); err != nil {
		t.Fatal(err)
	}
	bgptest.Wait(t, "both routers lose the routes", func() bool { return len(r4.Routes(t)) == 0 && len(r6.Routes(t)) == 0 })
	if !established(s, r4.Addr.Addr()) || !established(s, r6.Addr.Addr()) {
		t.Fatalf("a withdrawal closed a session: %+v", s.Peers(ctx))
	}
	if got := s.Announced(); len(got) != 0 {
		t.Fatalf("still announced: %v", got)
	}
	if err := s.SetAnnounce(ctx, ""); err != nil {
		t.Fatal(err)
	}
	bgptest.Wait(t, "the routes come back", func() bool {
		return bgptest.HasExactly(r4.Routes(t), "198.18.0.100/32") && bgptest.HasExactly(r6.Routes(t), "2001:db8::100/128")
	})

	// Close withdraws before it closes: the router keeps nothing.
	s.Close()
	bgptest.Wait(t, "the router drops the routes on close", func() bool { return len(r4.Routes(t)) == 0 })
}

// TestApplyFollowsPolicy: a new configuration adds and removes routes and
// peers in place (the remaining session is not reset), a change of ASN
// starts afresh, and the zero configuration stops everything.
func TestApplyFollowsPolicy(t *testing.T) {
	ra := bgptest.New(t, "127.0.0.2", "127.0.0.1", localASN)
	rb := bgptest.New(t, "127.0.0.3", "127.0.0.1", localASN)
	s := New(quiet)
	defer s.Close()
	ctx := context.Background()
	other := netip.MustParsePrefix("198.18.0.0/24")
	cfg := Config{ASN: localASN, RouterID: netip.MustParseAddr("198.18.1.1"),
		Peers: []Peer{peerOf(ra)}, Prefixes: []netip.Prefix{vip4}}
	if err := s.Apply(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	bgptest.Wait(t, "router a learns the VIP", func() bool { return bgptest.HasExactly(ra.Routes(t), "198.18.0.100/32") })
	up := ra.Uptime(t)

	cfg.Peers = append(slices.Clone(cfg.Peers), peerOf(rb))
	cfg.Prefixes = []netip.Prefix{other}
	if err := s.Apply(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	bgptest.Wait(t, "both routers have the new prefix only", func() bool {
		return bgptest.HasExactly(ra.Routes(t), "198.18.0.0/24") && bgptest.HasExactly(rb.Routes(t), "198.18.0.0/24")
	})
	if got := ra.Uptime(t); !got.Equal(up) {
		t.Errorf("router a's session was reset by an in-place change (up since %v, now %v)", up, got)
	}

	cfg.Peers = []Peer{peerOf(rb)}
	if err := s.Apply(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	bgptest.Wait(t, "a removed peer's router loses the routes", func() bool { return len(ra.Routes(t)) == 0 })
	if len(s.Peers(ctx)) != 1 {
		t.Fatalf("peers %+v, want b only", s.Peers(ctx))
	}

	cfg.ASN = localASN + 1 // router b expects 64512: the session must not come up
	if err := s.Apply(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	bgptest.Wait(t, "router b drops the routes of the restarted speaker", func() bool { return len(rb.Routes(t)) == 0 })

	if err := s.Apply(ctx, Config{}); err != nil {
		t.Fatal(err)
	}
	if got := s.Peers(ctx); len(got) != 0 {
		t.Fatalf("off, but peers %+v", got)
	}
}

// TestListensOnlyWhereNamed: with no listen address nothing accepts BGP
// connections; with one, exactly that address does, and a listener that
// cannot bind fails the apply, leaving the previous configuration running.
func TestListensOnlyWhereNamed(t *testing.T) {
	r := bgptest.New(t, "127.0.0.2", "127.0.0.1", localASN)
	s := New(quiet)
	defer s.Close()
	ctx := context.Background()
	port := bgptest.FreePort(t, "127.0.0.1")
	bgp179Taken := false
	if c, err := net.DialTimeout("tcp", "127.0.0.1:179", time.Second); err == nil {
		c.Close()
		bgp179Taken = true
	}
	cfg := Config{ASN: localASN, RouterID: netip.MustParseAddr("198.18.1.1"), Peers: []Peer{peerOf(r)}, Prefixes: []netip.Prefix{vip4}}
	if err := s.Apply(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	dial := func(addr string) error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
	bgptest.Wait(t, "the route is announced", func() bool { return len(r.Routes(t)) == 1 })
	// gobgp's own default is to listen on port 179; a BGP daemon of the
	// machine's may hold that port already, and then says nothing here.
	probes := []string{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port).String()}
	if !bgp179Taken {
		probes = append(probes, "127.0.0.1:179")
	}
	for _, a := range probes {
		if dial(a) == nil {
			t.Fatalf("something accepts on %s with no listen address configured", a)
		}
	}
	cfg.Listen = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	if err := s.Apply(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := dial(cfg.Listen.String()); err != nil {
		t.Fatalf("configured listener %s: %v", cfg.Listen, err)
	}
	if dial(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.3"), port).String()) == nil {
		t.Fatal("listening beyond the named address")
	}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	bad := cfg
	bad.Listen = netip.MustParseAddrPort(taken.Addr().String())
	if err := s.Apply(ctx, bad); err == nil {
		t.Fatal("a listener on a taken port was accepted")
	}
	if err := dial(cfg.Listen.String()); err != nil {
		t.Fatalf("the previous listener is gone after a failed apply: %v", err)
	}
	bgptest.Wait(t, "the route is announced again after the failed apply", func() bool { return len(r.Routes(t)) == 1 })
}
