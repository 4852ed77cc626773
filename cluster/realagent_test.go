package cluster

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/infergate/infergate/agent"
	"github.com/infergate/infergate/internal/privtest"
	"github.com/infergate/infergate/loader"
	"github.com/infergate/infergate/policy/store"
)

// staticResolver answers for a node whose one interface, eth0, reaches
// every backend on-link: the cluster tests check what reaches the maps, not
// routing, which the agent's own tests cover.
type staticResolver struct{}

func (staticResolver) Interface(name string) (int, error) {
	if name != "eth0" {
		return 0, &net.AddrError{Err: "no such interface", Addr: name}
	}
	return 1, nil
}

func (staticResolver) NextHop(_ context.Context, a netip.Addr) (agent.Hop, error) {
	src := netip.MustParseAddr("198.18.0.1")
	if a.Is6() {
		src = netip.MustParseAddr("2001:db8::1")
	}
	return agent.Hop{Ifindex: 1, Ifname: "eth0", SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1},
		MAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, Source: src, OnLink: true}, nil
}

// realAgent is a balancer agent over the real XDP objects' maps (loaded,
// not attached; returned to read back), with its store in a temporary directory: what the cluster
// source applies goes through the agent's Apply into kernel maps.
func realAgent(t testing.TB, maxBackends uint32) (*agent.Agent, *loader.Balancer) {
	t.Helper()
	privtest.Root(t)
	cfg := loader.Config{MaxBackends: maxBackends, MaxVIPs: 512}
	b, err := loader.LoadBalancer(cfg, "")
	if err != nil {
		t.Fatalf("load the balancer's BPF objects: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a, err := agent.New(agent.Options{Role: agent.RoleBalancer, Dataplane: agent.NewBalancerDataplane(b, cfg, ""),
		Resolver: staticResolver{}, Store: agent.FileStore{S: st},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := a.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	return a, b
}
