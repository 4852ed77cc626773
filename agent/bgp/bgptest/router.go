// Package bgptest runs BGP routers for tests: gobgp servers in the test
// process that accept one speaker's session on loopback and show what they
// learnt.
package bgptest

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/server"
)

// ASN is the routers' AS number.
const ASN = 64500

// Router is a BGP router that accepts one speaker's session passively.
type Router struct {
	Srv  *server.BgpServer
	Addr netip.AddrPort
}

// FreePort returns a TCP port free on host a moment ago.
func FreePort(t testing.TB, host string) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// New starts a router listening on host that expects a speaker of AS
// speakerASN from neighbour; it stops with the test.
func New(t testing.TB, host, neighbour string, speakerASN uint32) *Router {
	t.Helper()
	port := FreePort(t, host)
	srv := server.NewBgpServer(server.LoggerOption(quiet{}))
	go srv.Serve()
	t.Cleanup(srv.Stop)
	ctx := context.Background()
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: ASN, RouterId: "198.18.1.254",
		ListenPort: int32(port), ListenAddresses: []string{host}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.StopBgp(context.Background(), &api.StopBgpRequest{}) })
	fam := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	if netip.MustParseAddr(neighbour).Is6() {
		fam = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	}
	if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: neighbour, PeerAsn: speakerASN},
		Transport: &api.Transport{PassiveMode: true},
		AfiSafis:  []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: fam, Enabled: true}}},
	}}); err != nil {
		t.Fatal(err)
	}
	return &Router{Srv: srv, Addr: netip.AddrPortFrom(netip.MustParseAddr(host), port)}
}

// Routes lists the prefixes the router learnt, with their next hops.
func (r *Router) Routes(t testing.TB) map[netip.Prefix]string {
	t.Helper()
	out := map[netip.Prefix]string{}
	for _, afi := range []api.Family_Afi{api.Family_AFI_IP, api.Family_AFI_IP6} {
		err := r.Srv.ListPath(context.Background(), &api.ListPathRequest{TableType: api.TableType_GLOBAL,
			Family: &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST}}, func(d *api.Destination) {
			for _, p := range d.Paths {
				if !p.IsWithdraw {
					out[netip.MustParsePrefix(d.Prefix)] = nextHop(p)
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// Established reports whether the speaker's session is up.
func (r *Router) Established(t testing.TB) bool {
	t.Helper()
	up := false
	_ = r.Srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
		up = up || (p.State != nil && p.State.SessionState == api.PeerState_ESTABLISHED)
	})
	return up
}

// Uptime is when the speaker's session came up (zero when down).
func (r *Router) Uptime(t testing.TB) time.Time {
	t.Helper()
	var at time.Time
	_ = r.Srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.Timers != nil && p.Timers.State != nil && p.Timers.State.Uptime != nil {
			at = p.Timers.State.Uptime.AsTime()
		}
	})
	return at
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

// HasExactly reports whether got holds exactly the prefixes want.
func HasExactly(got map[netip.Prefix]string, want ...string) bool {
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

// Wait polls cond until it holds, for up to 15 seconds.
func Wait(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// quiet drops gobgp's log lines.
type quiet struct{}

func (quiet) Panic(string, gobgplog.Fields) {}
func (quiet) Fatal(string, gobgplog.Fields) {}
func (quiet) Error(string, gobgplog.Fields) {}
func (quiet) Warn(string, gobgplog.Fields)  {}
func (quiet) Info(string, gobgplog.Fields)  {}
func (quiet) Debug(string, gobgplog.Fields) {}
func (quiet) SetLevel(gobgplog.LogLevel)    {}
func (quiet) GetLevel() gobgplog.LogLevel   { return gobgplog.PanicLevel }
