package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"google.golang.org/protobuf/types/known/anypb"
)

// Timers the policy does not set.
const (
	// connectRetry is how soon a session that could not connect is tried
	// again (gobgp's default is 120s: a router that comes up late would
	// leave the node unannounced for two minutes).
	connectRetry = 5 * time.Second
	// idleHoldAfterReset is how long a reset session stays idle.
	idleHoldAfterReset = 5 * time.Second
)

// Config is what the speaker runs; the zero Config runs nothing.
type Config struct {
	ASN      uint32
	RouterID netip.Addr
	// Listen accepts sessions the peers open; unset listens on nothing.
	Listen   netip.AddrPort
	Peers    []Peer
	Prefixes []netip.Prefix
}

// Peer is one router.
type Peer struct {
	Address  netip.Addr
	ASN      uint32
	Port     uint16
	Password string
	HoldTime time.Duration
}

// On reports whether cfg runs a speaker.
func (c Config) On() bool { return c.ASN != 0 }

func (c Config) sameGlobal(o Config) bool {
	return c.ASN == o.ASN && c.RouterID == o.RouterID && c.Listen == o.Listen
}

// PeerState is one session as the local API shows it.
type PeerState struct {
	Address string `json:"address"`
	ASN     uint32 `json:"asn"`
	State   string `json:"state"`
}

// Speaker announces prefixes to BGP peers through an in-process gobgp
// server. It announces only while allowed (SetAnnounce): a draining or
// unhealthy node withdraws its routes but keeps its sessions, so routers
// move clients away while the node still forwards what reaches it.
type Speaker struct {
	log *slog.Logger

	mu  sync.Mutex
	srv *server.BgpServer
	cfg Config
	// withdrawn names why routes are withdrawn ("" announces).
	withdrawn string
	announced map[netip.Prefix]*api.Path
	stopWatch context.CancelFunc
}

// New returns a speaker that runs nothing until Apply.
func New(log *slog.Logger) *Speaker {
	if log == nil {
		log = slog.Default()
	}
	return &Speaker{log: log, announced: map[netip.Prefix]*api.Path{}}
}

// Apply makes cfg the running configuration: peers and routes are added
// and removed to match, and a change of ASN, router ID or listener starts
// a new server. On error the previous configuration is back in force.
func (s *Speaker) Apply(ctx context.Context, cfg Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.cfg
	if err := s.apply(ctx, cfg); err != nil {
		if rerr := s.restart(context.Background(), prev); rerr != nil {
			s.log.Error("BGP: restoring the previous configuration failed", "err", rerr)
		}
		return err
	}
	return nil
}

func (s *Speaker) apply(ctx context.Context, cfg Config) error {
	if !cfg.On() || s.srv == nil || !cfg.sameGlobal(s.cfg) {
		return s.restart(ctx, cfg)
	}
	old := peersByAddr(s.cfg.Peers)
	want := peersByAddr(cfg.Peers)
	for a, p := range old {
		if q, ok := want[a]; !ok || q != p {
			if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: a.String()}); err != nil {
				return fmt.Errorf("BGP: remove peer %s: %w", a, err)
			}
			s.log.Info("BGP peer removed", "peer", a)
		}
	}
	for a, p := range want {
		if q, ok := old[a]; !ok || q != p {
			if err := s.addPeer(ctx, p); err != nil {
				return err
			}
		}
	}
	s.cfg = cfg
	return s.syncPaths(ctx)
}

// restart stops the running server and starts one for cfg (nothing when
// cfg is off).
func (s *Speaker) restart(ctx context.Context, cfg Config) error {
	s.stop()
	s.cfg = Config{}
	if !cfg.On() {
		return nil
	}
	srv := server.NewBgpServer(server.LoggerOption(slogger{s.log}))
	go srv.Serve()
	g := &api.Global{Asn: cfg.ASN, RouterId: cfg.RouterID.String(), ListenPort: -1}
	if cfg.Listen.IsValid() {
		g.ListenPort = int32(cfg.Listen.Port())
		g.ListenAddresses = []string{cfg.Listen.Addr().String()}
	}
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: g}); err != nil {
		srv.Stop()
		return fmt.Errorf("BGP: start (AS %d, router ID %s, listen %v): %w", cfg.ASN, cfg.RouterID, cfg.Listen, err)
	}
	s.srv = srv
	wctx, cancel := context.WithCancel(context.Background())
	s.stopWatch = cancel
	if err := srv.WatchEvent(wctx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, s.peerEvent); err != nil {
		s.stop()
		return fmt.Errorf("BGP: watch peers: %w", err)
	}
	for _, p := range cfg.Peers {
		if err := s.addPeer(ctx, p); err != nil {
			s.stop()
			return err
		}
	}
	s.cfg = cfg
	s.log.Info("BGP speaker started", "asn", cfg.ASN, "router_id", cfg.RouterID, "listen", listenString(cfg.Listen), "peers", len(cfg.Peers))
	return s.syncPaths(ctx)
}

func listenString(a netip.AddrPort) string {
	if !a.IsValid() {
		return "none"
	}
	return a.String()
}

func (s *Speaker) peerEvent(r *api.WatchEventResponse) {
	p := r.GetPeer()
	if p == nil || p.Type != api.WatchEventResponse_PeerEvent_STATE || p.Peer == nil || p.Peer.State == nil {
		return
	}
	st := p.Peer.State
	s.log.Info("BGP session", "peer", st.NeighborAddress, "asn", st.PeerAsn, "state", sessionState(st.SessionState))
}

func sessionState(st api.PeerState_SessionState) string {
	switch st {
	case api.PeerState_ESTABLISHED:
		return "established"
	case api.PeerState_IDLE:
		return "idle"
	case api.PeerState_CONNECT:
		return "connect"
	case api.PeerState_ACTIVE:
		return "active"
	case api.PeerState_OPENSENT:
		return "opensent"
	case api.PeerState_OPENCONFIRM:
		return "openconfirm"
	}
	return "unknown"
}

func (s *Speaker) addPeer(ctx context.Context, p Peer) error {
	fam := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	if p.Address.Is6() {
		fam = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	}
	hold := uint64(p.HoldTime / time.Second)
	if hold == 0 {
		hold = 90
	}
	req := &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: p.Address.String(), PeerAsn: p.ASN, AuthPassword: p.Password},
		Transport: &api.Transport{RemotePort: uint32(p.Port), PassiveMode: false},
		Timers: &api.Timers{Config: &api.TimersConfig{HoldTime: hold, KeepaliveInterval: max(hold/3, 1),
			ConnectRetry: uint64(connectRetry / time.Second), IdleHoldTimeAfterReset: uint64(idleHoldAfterReset / time.Second)}},
		// Each peer carries the routes of its own family only: an IPv4
		// session has no IPv6 next hop to give.
		AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: fam, Enabled: true}}},
	}}
	if err := s.srv.AddPeer(ctx, req); err != nil {
		return fmt.Errorf("BGP: add peer %s (AS %d): %w", p.Address, p.ASN, err)
	}
	s.log.Info("BGP peer added", "peer", p.Address, "asn", p.ASN, "port", p.Port)
	return nil
}

// syncPaths makes the announced routes what cfg and the announce switch
// say.
func (s *Speaker) syncPaths(ctx context.Context) error {
	want := map[netip.Prefix]bool{}
	if s.withdrawn == "" && s.srv != nil {
		for _, p := range s.cfg.Prefixes {
			want[p] = true
		}
	}
	var errs []error
	for _, p := range slices.SortedFunc(maps.Keys(s.announced), netip.Prefix.Compare) {
		if want[p] {
			continue
		}
		if err := s.srv.DeletePath(ctx, &api.DeletePathRequest{Family: s.announced[p].Family, Path: s.announced[p]}); err != nil {
			errs = append(errs, fmt.Errorf("BGP: withdraw %s: %w", p, err))
			continue
		}
		delete(s.announced, p)
		s.log.Info("BGP route withdrawn", "prefix", p)
	}
	for _, p := range slices.SortedFunc(maps.Keys(want), netip.Prefix.Compare) {
		if _, ok := s.announced[p]; ok {
			continue
		}
		path, err := pathFor(p)
		if err != nil {
			return err
		}
		if _, err := s.srv.AddPath(ctx, &api.AddPathRequest{Path: path}); err != nil {
			return fmt.Errorf("BGP: announce %s: %w", p, err)
		}
		s.announced[p] = path
		s.log.Info("BGP route announced", "prefix", p)
	}
	return errors.Join(errs...)
}

// pathFor builds the route of one prefix, next hop left unspecified so
// that gobgp puts this node's address of each session there.
func pathFor(p netip.Prefix) (*api.Path, error) {
	nlri, err := anypb.New(&api.IPAddressPrefix{Prefix: p.Addr().String(), PrefixLen: uint32(p.Bits())})
	if err != nil {
		return nil, fmt.Errorf("BGP: encode %s: %w", p, err)
	}
	origin, err := anypb.New(&api.OriginAttribute{Origin: 0}) // IGP
	if err != nil {
		return nil, fmt.Errorf("BGP: encode origin: %w", err)
	}
	if p.Addr().Is4() {
		nh, err := anypb.New(&api.NextHopAttribute{NextHop: "0.0.0.0"})
		if err != nil {
			return nil, fmt.Errorf("BGP: encode next hop: %w", err)
		}
		return &api.Path{Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST},
			Nlri: nlri, Pattrs: []*anypb.Any{origin, nh}}, nil
	}
	fam := &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	mp, err := anypb.New(&api.MpReachNLRIAttribute{Family: fam, NextHops: []string{"::"}, Nlris: []*anypb.Any{nlri}})
	if err != nil {
		return nil, fmt.Errorf("BGP: encode next hop: %w", err)
	}
	return &api.Path{Family: fam, Nlri: nlri, Pattrs: []*anypb.Any{origin, mp}}, nil
}

// SetAnnounce announces the configured routes (reason "") or withdraws
// them all, keeping the sessions up, and says why in the log.
func (s *Speaker) SetAnnounce(ctx context.Context, withdrawReason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.withdrawn == withdrawReason {
		return nil
	}
	was := s.withdrawn
	s.withdrawn = withdrawReason
	switch {
	case withdrawReason == "":
		s.log.Info("BGP: announcing again", "was_withdrawn_because", was)
	case was == "":
		s.log.Warn("BGP: withdrawing every route", "reason", withdrawReason)
	}
	if s.srv == nil {
		return nil
	}
	return s.syncPaths(ctx)
}

// Announced lists the prefixes announced now.
func (s *Speaker) Announced() []netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.SortedFunc(maps.Keys(s.announced), netip.Prefix.Compare)
}

// Withdrawn says why routes are withdrawn ("" while announcing).
func (s *Speaker) Withdrawn() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.withdrawn
}

// Peers reports every configured session's state.
func (s *Speaker) Peers(ctx context.Context) []PeerState {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	out := []PeerState{}
	if srv == nil {
		return out
	}
	_ = srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.State == nil {
			return
		}
		out = append(out, PeerState{Address: p.State.NeighborAddress, ASN: p.State.PeerAsn, State: sessionState(p.State.SessionState)})
	})
	slices.SortFunc(out, func(a, b PeerState) int {
		if a.Address < b.Address {
			return -1
		}
		if a.Address > b.Address {
			return 1
		}
		return 0
	})
	return out
}

// Close withdraws every route and closes the sessions (a Cease
// notification: the routers drop this node's routes at once).
func (s *Speaker) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.withdrawn = "stopping"
		if err := s.syncPaths(context.Background()); err != nil {
			s.log.Warn("BGP: withdraw on stop", "err", err)
		}
	}
	s.stop()
	s.cfg = Config{}
}

// stop stops the running server, if any; mu is held.
func (s *Speaker) stop() {
	if s.srv == nil {
		return
	}
	if s.stopWatch != nil {
		s.stopWatch()
		s.stopWatch = nil
	}
	if err := s.srv.StopBgp(context.Background(), &api.StopBgpRequest{}); err != nil {
		s.log.Warn("BGP: stop", "err", err)
	}
	s.srv.Stop()
	s.srv = nil
	clear(s.announced)
	s.log.Info("BGP speaker stopped")
}

func peersByAddr(ps []Peer) map[netip.Addr]Peer {
	m := make(map[netip.Addr]Peer, len(ps))
	for _, p := range ps {
		m[p.Address] = p
	}
	return m
}
