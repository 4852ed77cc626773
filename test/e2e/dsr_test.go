package e2e

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/test/e2e/lab"
)

// TestDSR: real HTTP requests from a client namespace to each VIP (IPIP and
// L2 forwarding, IPv4 and IPv6) are answered by a GPU host that accepted
// the connection on the VIP itself and saw the client's own address: the
// balancer steered the packets without NAT, and the answer went straight
// back (the balancer has no route or forwarding for it).
func TestDSR(t *testing.T) {
	l := sharedLab(t)
	for _, tc := range []struct {
		name, vipName string
		vip           netip.Addr
	}{
		{"ipip-v4", "inference-v4", lab.VIP4}, {"ipip-v6", "inference-v6", lab.VIP6},
		{"l2-v4", "inference-v4-l2", lab.VIP4L2}, {"l2-v6", "inference-v6-l2", lab.VIP6L2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := l.Clients[0]
			d, err := lab.NewDialer(cl.NS)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			hc := d.HTTPClient(false, 5*time.Second)
			seen := map[string]int{}
			const requests = 30
			before := vipPackets(t, l, tc.vipName)
			for i := 0; i < requests; i++ {
				a, err := lab.Chat(ctxT(t, 10*time.Second), hc, tc.vip)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				local, err := netip.ParseAddrPort(a.LocalAddr)
				if err != nil || local.Addr().Unmap() != tc.vip {
					t.Fatalf("backend %s accepted on %q, want the VIP %s", a.Backend, a.LocalAddr, tc.vip)
				}
				remote, err := netip.ParseAddrPort(a.Remote)
				want := cl.V4
				if tc.vip.Is6() {
					want = cl.V6
				}
				if err != nil || remote.Addr().Unmap() != want {
					t.Fatalf("backend %s saw client %q, want %s", a.Backend, a.Remote, want)
				}
				if !strings.HasPrefix(a.Backend, "gpu-") {
					t.Fatalf("answer names backend %q", a.Backend)
				}
				seen[a.Backend]++
			}
			pkts := vipPackets(t, l, tc.vipName) - before
			t.Logf("%d requests to %s answered by %v; the balancer steered %d of their packets", requests, tc.vip, seen, pkts)
			// A connection sends at least SYN, ACK, request, FIN through
			// the balancer; its answers do not pass it.
			if pkts < minPacketsPerConn*requests {
				t.Fatalf("balancer steered %d packets on %s for %d connections: traffic bypassed it", pkts, tc.vipName, requests)
			}
			if len(seen) < 2 {
				t.Fatalf("all %d new connections went to %v; want them spread over the pool", requests, seen)
			}
		})
	}
}

// minPacketsPerConn is what a client sends the VIP per connection at least.
const minPacketsPerConn = 4

// vipPackets reads a VIP's packet counter from the balancer's agent.
func vipPackets(t *testing.T, l *lab.Lab, name string) uint64 {
	t.Helper()
	st, err := l.Client(l.Balancer.Name).Stats(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range st.VIPs {
		if v.Name == name {
			return v.Packets
		}
	}
	t.Fatalf("balancer has no VIP %s in %+v", name, st.VIPs)
	return 0
}
