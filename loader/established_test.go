package loader

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestIdleFlowsKeepBackendAcrossTableChanges: idle keep-alive flows keep
// their backend through many weight changes (each a new Maglev table) while
// floods of new flows churn the LRU connection table far past its size:
// the handshake's ACK moved them to the established table, which the
// kernel never evicts. A fresh balancer with the final table sends some of
// them elsewhere, so a flow that lost its entry would have been re-steered
// (and reset by its new backend).
func TestIdleFlowsKeepBackendAcrossTableChanges(t *testing.T) {
	const (
		idle       = 64
		rounds     = 40
		churn      = 2500 // new flows per round: more than two LRU tables' worth
		lruEntries = 1024
	)
	cfg := testConfig()
	cfg.MaxFlows, cfg.MaxEstablishedFlows = lruEntries, 4096
	b := newBalancer(t, cfg)
	standardSetup(t, b)
	tmpl := tcp("198.19.0.0", "198.18.0.10", 0, 443).build(t)
	// Idle flows come from 198.19.128.0/17 (i >= 1<<21), the churn below it.
	first := make([]uint32, idle)
	for i := range first {
		for _, syn := range []bool{true, false} {
			ret, out := run(t, b.Program(), flowPacket(tmpl, 1<<21+i, syn))
			if ret != xdpTx {
				t.Fatalf("idle flow %d: verdict %d", i, ret)
			}
			first[i] = outerDst(t, out)
		}
	}
	if s := stats(t, b); s[StatConntrackPromote] != idle {
		t.Fatalf("conntrack_promote %d, want %d", s[StatConntrackPromote], idle)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var table []uint32
	next := 0
	for r := 0; r < rounds; r++ {
		w := []uint32{1 + rng.Uint32N(100), 1 + rng.Uint32N(100), 1 + rng.Uint32N(100), 1 + rng.Uint32N(100)}
		table = buildTable(t, ids(0, 4), w)
		if err := b.UpsertVIP(vip4, table); err != nil {
			t.Fatal(err)
		}
		// Each churn flow's SYN is retransmitted: its entry is used
		// twice, as the idle flows' were, so the LRU does not spare the
		// idle flows for having been used more.
		for j := 0; j < churn; j++ {
			for range 2 {
				if ret, _ := run(t, b.Program(), flowPacket(tmpl, next, true)); ret != xdpTx {
					t.Fatalf("churn flow %d: verdict %d", next, ret)
				}
			}
			next++
		}
	}
	moved := 0
	for i := range first {
		ret, out := run(t, b.Program(), flowPacket(tmpl, 1<<21+i, false))
		if ret != xdpTx {
			t.Fatalf("idle flow %d: verdict %d after the churn", i, ret)
		}
		if got := outerDst(t, out); got != first[i] {
			moved++
			t.Errorf("idle flow %d moved from backend %d to %d", i, first[i], got)
		}
	}
	if moved > 0 {
		t.Fatalf("%d of %d idle flows re-steered", moved, idle)
	}
	// The test means something: on the final table, some idle flows hash
	// elsewhere.
	fresh := newBalancer(t, cfg)
	standardSetup(t, fresh)
	if err := fresh.UpsertVIP(vip4, table); err != nil {
		t.Fatal(err)
	}
	elsewhere := 0
	for i := range first {
		_, out := run(t, fresh.Program(), flowPacket(tmpl, 1<<21+i, true))
		if outerDst(t, out) != first[i] {
			elsewhere++
		}
	}
	if elsewhere == 0 {
		t.Fatal("the final table sends every idle flow to its first backend: the test proves nothing")
	}
	f, err := b.Fill()
	if err != nil || f.EstablishedFlows != idle || f.Flows > lruEntries {
		t.Fatalf("fill %+v %v: want %d established flows", f, err, idle)
	}
	t.Logf("%d idle flows kept their backend over %d table changes and %d new flows; %d would hash elsewhere now", idle, rounds, next, elsewhere)
}

// Established flows: a FIN moves the flow back to the LRU table (its last
// packets still reach its backend); Go expires flows idle for longer than
// asked; IPv6 flows have their own table.
func TestEstablishedFlowLifecycle(t *testing.T) {
	b := newBalancer(t, testConfig())
	standardSetup(t, b)
	const T = xdpTx
	syn := tcp("198.18.80.1", "198.18.0.10", 3000, 443)
	ack := syn
	ack.syn, ack.ack = false, true
	fin := ack
	fin.payload = nil
	syn6 := tcp("2001:db8:80::1", "2001:db8::10", 3000, 443)
	ack6 := syn6
	ack6.syn, ack6.ack = false, true
	wantVerdicts(t, "handshakes", verdicts(t, b, syn, ack, ack, syn6, ack6), T, T, T, T, T)
	f, err := b.Fill()
	if err != nil || f.EstablishedFlows != 1 || f.EstablishedFlows6 != 1 || f.Flows != 0 {
		t.Fatalf("fill %+v %v: want one established flow per family, none in the LRU tables", f, err)
	}
	// Expiry: nothing is idle for an hour; an entry stamped two hours ago is.
	if n, err := b.ExpireIdleFlows(time.Hour); err != nil || n != 0 {
		t.Fatalf("expire(1h) = %d, %v", n, err)
	}
	var k balancerFlowKey
	var v balancerCtVal
	it := b.objs.CtEst6.Iterate()
	if !it.Next(&k, &v) {
		t.Fatalf("no IPv6 established flow: %v", it.Err())
	}
	v.Seen -= uint32(uint64(2*time.Hour) >> ctSeenShift)
	if err := b.objs.CtEst6.Put(k, v); err != nil {
		t.Fatal(err)
	}
	if n, err := b.ExpireIdleFlows(time.Hour); err != nil || n != 1 {
		t.Fatalf("expire(1h) after ageing one flow = %d, %v", n, err)
	}
	// FIN: back to the LRU table.
	finPkt := fin.build(t)
	finPkt[47] = 0x11 // FIN|ACK
	if ret, _ := run(t, b.Program(), finPkt); ret != T {
		t.Fatalf("FIN verdict %d", ret)
	}
	f, err = b.Fill()
	if err != nil || f.EstablishedFlows != 0 || f.Flows != 1 {
		t.Fatalf("fill after FIN %+v %v: want the flow back in the LRU table", f, err)
	}
	if s := stats(t, b); s[StatConntrackDemote] != 1 || s[StatConntrackPromote] != 2 {
		t.Fatalf("conntrack_demote %d promote %d", s[StatConntrackDemote], s[StatConntrackPromote])
	}
}
