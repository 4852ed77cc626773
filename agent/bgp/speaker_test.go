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

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
)

// The tests peer the speaker with real BGP routers: gobgp servers of their
// own in the test process, on loopback.

const (
	localASN  = 64512
	routerASN = 64500
	waitFor   = 15 * time.Second
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// router is a BGP router that accepts one speaker's session passively.
type router struct {
	srv  *server.BgpServer
	addr netip.AddrPort
}

func freePort(t *testing.T, host string) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// newRouter listens on host and expects the speaker from neighbour.
func newRouter(t *testing.T, host, neighbour string) *router {
	t.Helper()
	port := freePort(t, host)
	srv := server.NewBgpServer(server.LoggerOption(slogger{quiet}))
	go srv.Serve()
	t.Cleanup(srv.Stop)
	ctx := context.Background()
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: routerASN, RouterId: "198.18.1.254",
		ListenPort: int32(port), ListenAddresses: []string{host}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.StopBgp(context.Background(), &api.StopBgpRequest{}) })
	fam := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	if netip.MustParseAddr(neighbour).Is6() {
		fam = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	}
	if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: neighbour, PeerAsn: localASN},
		Transport: &api.Transport{PassiveMode: true},
		AfiSafis:  []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: fam, Enabled: true}}},
	}}); err != nil {
		t.Fatal(err)
	}
	return &router{srv: srv, addr: netip.AddrPortFrom(netip.MustParseAddr(host), port)}
}

// routes lists the prefixes the router learnt, with their next hops.
func (r *router) routes(t *testing.T) map[netip.Prefix]string {
	t.Helper()
	out := map[netip.Prefix]string{}
	for _, afi := range []api.Family_Afi{api.Family_AFI_IP, api.Family_AFI_IP6} {
		err := r.srv.ListPath(context.Background(), &api.ListPathRequest{TableType: api.TableType_GLOBAL,
			Family: &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST}}, func(d *api.Destination) {
			for _, p := range d.Paths {
				if p.IsWithdraw {
					continue
				}
				pfx := netip.MustParsePrefix(d.Prefix)
				out[pfx] = nextHop(p)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func nextHop(p *api.Path) string {
	for _, a := range p.Pattrs {
		var nh api.NextHopAttribute
		if a.UnmarshalTo(&nh) == nil {
			return nh.NextHop
		}
		var mp api.MpReachNLRIAttribute
		if a.UnmarshalTo(&mp) == nil && len(mp.NextHops) > 0 {
			return mp.NextHops[0]
		}
	}
	return ""
}

func (r *router) peer(addr netip.AddrPort) Peer {
	return Peer{Address: addr.Addr(), ASN: routerASN, Port: addr.Port(), HoldTime: 9 * time.Second}
}

// wait polls cond until it holds.
func wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func hasExactly(got map[netip.Prefix]string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		if _, ok := got[netip.MustParsePrefix(w)]; !ok {
			return false
		}
	}
	return true
}

func established(s *Speaker, addr netip.Addr) bool {
	for _, p := range s.Peers(context.Background()) {
		if p.Address == addr.String() && p.State == "established" {
			return true
		}
	}
	return false
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
	r4 := newRouter(t, "127.0.0.2", "127.0.0.1")
	r6 := newRouter(t, "::1", "::1")
	s := New(quiet)
	defer s.Close()
	ctx := context.Background()
	cfg := Config{ASN: localASN, RouterID: netip.MustParseAddr("198.18.1.1"),
		Peers: []Peer{r4.peer(r4.addr), r6.peer(r6.addr)}, Prefixes: []netip.Prefix{vip4, vip6}}
	if err := s.Apply(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	wait(t, "the IPv4 router learns the IPv4 VIP only", func() bool { return hasExactly(r4.routes(t), "198.18.0.100/32") })
	wait(t, "the IPv6 router learns the IPv6 VIP only", func() bool { return hasExactly(r6.routes(t), "2001:db8::100/128") })
	if nh := r4.routes(t)[vip4]; nh != "127.0.0.1" {
		t.Errorf("IPv4 next hop %q, want the node's session address 127.0.0.1", nh)
	}
	if nh := r6.routes(t)[vip6]; nh != "::1" {
		t.Errorf("IPv6 next hop %q, want ::1", nh)
	}

	if err := s.SetAnnounce(ctx, "draining"); err != nil {
		t.Fatal(err)
	}
	wait(t, "both routers lose the routes", func() bool { return len(r4.routes(t)) == 0 && len(r6.routes(t)) == 0 })
	if !established(s, r4.addr.Addr()) || !established(s, r6.addr.Addr()) {
		t.Fatalf("a withdrawal closed a session: %+v", s.Peers(ctx))
	}
	if got := s.Announced(); len(got) != 0 {
		t.Fatalf("still announced: %v", got)
	}
	if err := s.SetAnnounce(ctx, ""); err != nil {
		t.Fatal(err)
	}
	wait(t, "the routes come back", func() bool {
		return hasExactly(r4.routes(t), "198.18.0.100/32") && hasExactly(r6.routes(t), "2001:db8::100/128")
	})

	// Close withdraws before it closes: the router keeps nothing.
	s.Close()
	wait(t, "the router drops the routes on close", func() bool { return len(r4.routes(t)) == 0 })
}

// TestApplyFollowsPolicy: a new configuration adds and removes routes and
// peers in place (the remaining session is not reset), a change of ASN
// starts afresh, and the zero configuration stops everything.
func TestApplyFollowsPolicy(t *testing.T) {
	ra := newRouter(t, "127.0.0.2", "127.0.0.1")
	rb := newRouter(t, "127.0.0.3", "127.0.0.1")
	s := New(quiet)
	defer s.Close()
	ctx := context.Background()
	other := netip.MustParsePrefix("198.18.0.0/24")
	cfg := Config{ASN: localASN, RouterID: netip.MustParseAddr("198.18.1.1"),
		Peers: []Peer{ra.peer(ra.addr)}, Prefixes: []netip.Prefix{vip4}}
	if err := s.Apply(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	wait(t, "router a learns the VIP", func() bool { return hasExactly(ra.routes(t), "198.18.0.100/32") })
	uptime := func() time.Time {
		var at time.Time
		_ = ra.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
			if p.Timers != nil && p.Timers.State != nil && p.Timers.State.Uptime != nil {
				at = p.Timers.State.Uptime.AsTime()
			}
		})
		return at
	}
	up := uptime()

	cfg.Peers = append(slices.Clone(cfg.Peers), rb.peer(rb.addr))
	cfg.Prefixes = []netip.Prefix{other}
	if err := s.Apply(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	wait(t, "both routers have the new prefix only", func() bool {
		return hasExactly(ra.routes(t), "198.18.0.0/24") && hasExactly(rb.routes(t), "198.18.0.0/24")
	})
	if got := uptime(); !got.Equal(up) {
		t.Errorf("router a's session was reset by an in-place change (up since %v, now %v)", up, got)
	}

	cfg.Peers = []Peer{rb.peer(rb.addr)}
	if err := s.Apply(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	wait(t, "a removed peer's router loses the routes", func() bool { return len(ra.routes(t)) == 0 })
	if len(s.Peers(ctx)) != 1 {
		t.Fatalf("peers %+v, want b only", s.Peers(ctx))
	}

	cfg.ASN = localASN + 1 // router b expects 64512: the session must not come up
	if err := s.Apply(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	wait(t, "router b drops the routes of the restarted speaker", func() bool { return len(rb.routes(t)) == 0 })

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
	r := newRouter(t, "127.0.0.2", "127.0.0.1")
	s := New(quiet)
	defer s.Close()
	ctx := context.Background()
	port := freePort(t, "127.0.0.1")
	cfg := Config{ASN: localASN, RouterID: netip.MustParseAddr("198.18.1.1"), Peers: []Peer{r.peer(r.addr)}, Prefixes: []netip.Prefix{vip4}}
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
	wait(t, "the route is announced", func() bool { return len(r.routes(t)) == 1 })
	for _, a := range []string{"127.0.0.1:179", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port).String()} {
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
	wait(t, "the route is announced again after the failed apply", func() bool { return len(r.routes(t)) == 1 })
}
