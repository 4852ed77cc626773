package agent

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/infergate/infergate/policy"
)

// reinstateGateway is an L7 gateway that records the backends it is told
// passed their health checks.
type reinstateGateway struct {
	mu  sync.Mutex
	got []netip.AddrPort
}

func (g *reinstateGateway) Apply(*policy.Compiled) error { return nil }

func (g *reinstateGateway) ReinstateBackend(a netip.AddrPort) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.got = append(g.got, a)
}

// A backend whose health check passes again is reinstated in the L7
// gateway (its passive failure marking ends), by the address the gateway
// sends requests to, not the health check's port; one that stays healthy
// is not.
func TestHealthyBackendReinstatedInGateway(t *testing.T) {
	addrs := []string{"127.0.0.13", "127.0.0.14"}
	lnA, err := net.Listen("tcp", addrs[0]+":0")
	if err != nil {
		t.Fatalf("loopback %s: %v", addrs[0], err)
	}
	defer lnA.Close()
	go acceptAll(lnA)
	hcPort := lnA.Addr().(*net.TCPAddr).Port
	lnB, err := net.Listen("tcp", fmt.Sprintf("%s:%d", addrs[1], hcPort))
	if err != nil {
		t.Fatal(err)
	}
	go acceptAll(lnB)

	gw := &reinstateGateway{}
	a, ctx := startHealthAgent(t, newFakeDataplane(), gw, addrs...)
	doc := fmt.Sprintf(`apiVersion: infergate.dev/v1alpha1
kind: Policy
metadata: {name: hc}
spec:
  dataplane:
    interfaces: [eth0]
    vips:
      - {name: llm, address: 198.18.100.1, port: 80, pool: gpus}
  pools:
    - name: gpus
      healthCheck: {type: tcp, port: %d, interval: 100ms, timeout: 80ms, rise: 2, fall: 2}
      backends:
        - {name: a, address: %s, port: 8000}
        - {name: b, address: %s, port: 8001}
`, hcPort, addrs[0], addrs[1])
	if _, err := a.Apply(ctx, []byte(doc), false); err != nil {
		t.Fatal(err)
	}
	unhealthy := func(name string) bool {
		for _, b := range a.Backends() {
			if b.Name == name {
				return !b.Healthy
			}
		}
		return false
	}
	lnB.Close()
	waitHealth(t, "b fails its health checks", func() bool { return unhealthy("b") })
	gw.mu.Lock()
	if len(gw.got) != 0 {
		t.Fatalf("reinstated %v before any backend came back", gw.got)
	}
	gw.mu.Unlock()
	lnB2, err := net.Listen("tcp", fmt.Sprintf("%s:%d", addrs[1], hcPort))
	if err != nil {
		t.Fatal(err)
	}
	defer lnB2.Close()
	go acceptAll(lnB2)
	want := netip.MustParseAddrPort(addrs[1] + ":8001")
	waitHealth(t, "b is reinstated in the gateway", func() bool {
		gw.mu.Lock()
		defer gw.mu.Unlock()
		return slices.Contains(gw.got, want)
	})
	gw.mu.Lock()
	defer gw.mu.Unlock()
	if len(gw.got) != 1 {
		t.Fatalf("reinstated %v, want only %v", gw.got, want)
	}
}
