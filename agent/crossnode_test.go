package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
)

// Balancer nodes behind one ECMP router: a flow the router moves from one
// node to another must find the same backend on the second node, which has
// no connection entry for it. These tests run two independent agents (each
// with its own data plane and backend-ID history) and compare what their
// Maglev tables send each slot to.

// crossNodePolicy steers one VIP to the named backends (198.18.1.<n>).
func crossNodePolicy(hosts ...int) []byte {
	var b strings.Builder
	for _, h := range hosts {
		fmt.Fprintf(&b, "        - {name: gpu%d, address: 198.18.1.%d, port: 8000}\n", h, h)
	}
	return []byte(`apiVersion: infergate.dev/v1alpha1
kind: Policy
metadata: {name: fleet}
spec:
  dataplane:
    interfaces: [eth0]
    vips:
      - {name: llm, address: 198.18.100.1, port: 80, pool: gpus}
  pools:
    - name: gpus
      backends:
` + b.String())
}

func crossNodeAgent(t *testing.T, docs ...[]byte) *fakeDataplane {
	t.Helper()
	dp := newFakeDataplane()
	a, err := New(Options{Role: RoleBalancer, Dataplane: dp,
		Resolver: onLinkResolver("198.18.1.1", "198.18.1.2", "198.18.1.3", "198.18.1.4", "198.18.1.9"),
		Store:    newMemStore(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := a.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if _, err := a.Apply(ctx, d, false); err != nil {
			t.Fatal(err)
		}
	}
	return dp
}

// slotAddrs is a node's table for the VIP as backend addresses.
func slotAddrs(t *testing.T, dp *fakeDataplane) ([]netip.Addr, []uint32) {
	t.Helper()
	dp.mu.Lock()
	defer dp.mu.Unlock()
	ids := dp.tables[VIPKey{netip.MustParseAddr("198.18.100.1"), 80, 6}]
	if len(ids) == 0 {
		t.Fatal("no table for the VIP")
	}
	out := make([]netip.Addr, len(ids))
	for i, id := range ids {
		out[i] = dp.backends[id].Address
	}
	return out, ids
}

// TestNodesBuildSameTable: two nodes given the same policy send every slot
// to the same backend address, although their histories gave the backends
// different IDs (Maglev keys each backend by its address, not its ID).
func TestNodesBuildSameTable(t *testing.T) {
	a := crossNodeAgent(t, crossNodePolicy(9, 3), crossNodePolicy(1, 2, 3))
	b := crossNodeAgent(t, crossNodePolicy(1, 2, 3))
	ta, ida := slotAddrs(t, a)
	tb, idb := slotAddrs(t, b)
	if len(ta) != len(tb) {
		t.Fatalf("table sizes %d and %d", len(ta), len(tb))
	}
	idsDiffer := false
	for i := range ta {
		if ta[i] != tb[i] {
			t.Fatalf("slot %d: node a sends it to %s, node b to %s", i, ta[i], tb[i])
		}
		idsDiffer = idsDiffer || ida[i] != idb[i]
	}
	if !idsDiffer {
		t.Fatal("the nodes' backend IDs are the same: the test shows nothing about independent histories")
	}
}

// TestMovedFlowWhenBackendSetChanged: what holds a flow that moves to a
// node whose backend set changed since the flow began (a backend was
// added there) is Maglev's minimal disruption: its slot keeps its backend
// unless the slot went to the new backend. At most the new backend's share
// of slots (1/4 here) and a small extra moved; the flows on those slots
// reach a backend without their connection and are reset.
func TestMovedFlowWhenBackendSetChanged(t *testing.T) {
	before := crossNodeAgent(t, crossNodePolicy(1, 2, 3))
	after := crossNodeAgent(t, crossNodePolicy(1, 2, 3, 4))
	ta, _ := slotAddrs(t, before)
	tb, _ := slotAddrs(t, after)
	if len(ta) != len(tb) {
		t.Fatalf("table sizes %d and %d", len(ta), len(tb))
	}
	newcomer := netip.MustParseAddr("198.18.1.4")
	moved, toOld := 0, 0
	for i := range ta {
		if ta[i] != tb[i] {
			moved++
			if tb[i] != newcomer {
				toOld++
			}
		}
	}
	frac := float64(moved) / float64(len(ta))
	extra := float64(toOld) / float64(len(ta))
	t.Logf("moved %.4f of slots, %.4f between old backends", frac, extra)
	if frac > 0.25+0.01 || extra > 0.01 {
		t.Fatalf("%.4f of slots moved (%.4f between backends that were there before): more than the new backend's share", frac, extra)
	}
	if moved == 0 {
		t.Fatal("no slot moved to the new backend")
	}
}
