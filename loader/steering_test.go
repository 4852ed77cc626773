package loader

import (
	"encoding/binary"
	"math"
	"net/netip"
	"testing"
)

// flowPacket patches a template TCP/IPv4 frame (no VLAN) with a source
// address and port; checksums are stale, which XDP does not check.
func flowPacket(tmpl []byte, i int, syn bool) []byte {
	p := append([]byte(nil), tmpl...)
	binary.BigEndian.PutUint32(p[26:], 0xc6130000|uint32(i>>14)) // 198.19.x.x
	binary.BigEndian.PutUint16(p[34:], uint16(1024+i&0x3fff))
	if !syn {
		p[47] = 0x10 // ACK
	}
	return p
}

func outerDst(t *testing.T, out []byte) uint32 {
	t.Helper()
	a, _ := netip.AddrFromSlice(out[30:34])
	for id := uint32(0); id < 4; id++ {
		if backendAddr(id) == a {
			return id
		}
	}
	t.Fatalf("outer destination %s is no backend", a)
	return 0
}

func TestMaglevWeightsAndTableSwap(t *testing.T) {
	const flows = 100_000
	cfg := testConfig()
	cfg.MaxFlows = 1 << 18
	b := newBalancer(t, cfg)
	standardSetup(t, b)
	weights := []uint32{1, 2, 3, 4}
	if err := b.UpsertVIP(vip4, buildTable(t, ids(0, 4), weights)); err != nil {
		t.Fatal(err)
	}
	tmpl := tcp("198.19.0.0", "198.18.0.10", 0, 443).build(t)
	got := make([]uint32, flows)
	var count [4]int
	for i := 0; i < flows; i++ {
		ret, out := run(t, b.Program(), flowPacket(tmpl, i, true))
		if ret != xdpTx {
			t.Fatalf("flow %d: verdict %d", i, ret)
		}
		got[i] = outerDst(t, out)
		count[got[i]]++
	}
	for id, w := range weights {
		want := float64(flows) * float64(w) / 10
		if dev := math.Abs(float64(count[id])-want) / want; dev > 0.03 {
			t.Errorf("backend %d (weight %d): %d flows, want %.0f ±3%% (off by %.1f%%)", id, w, count[id], want, dev*100)
		}
		st, err := b.BackendStats(uint32(id))
		if err != nil || st.NewFlows != uint64(count[id]) || st.Packets != uint64(count[id]) {
			t.Errorf("backend %d stats %+v (err %v), want %d new flows", id, st, err, count[id])
		}
	}
	t.Logf("shares for weights %v: %v", weights, count)
	if f, err := b.Fill(); err != nil || f.Flows != flows {
		t.Fatalf("fill %+v %v, want %d flows", f, err, flows)
	}

	// Reverse the weights and swap the table: established flows stay put.
	newWeights := []uint32{4, 3, 2, 1}
	if err := b.UpsertVIP(vip4, buildTable(t, ids(0, 4), newWeights)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < flows; i += 10 {
		ret, out := run(t, b.Program(), flowPacket(tmpl, i, false))
		if ret != xdpTx || outerDst(t, out) != got[i] {
			t.Fatalf("established flow %d moved from backend %d after the table swap", i, got[i])
		}
	}
	// New flows follow the new table.
	var fresh [4]int
	for i := flows; i < flows+20_000; i++ {
		_, out := run(t, b.Program(), flowPacket(tmpl, i, true))
		fresh[outerDst(t, out)]++
	}
	if !(fresh[0] > fresh[1] && fresh[1] > fresh[2] && fresh[2] > fresh[3]) {
		t.Fatalf("new flows after the swap %v do not follow weights %v", fresh, newWeights)
	}
}

// flowsThenDrain opens that many new flows on a standard balancer, then
// drains backend 1 (its table slots left in place on purpose: the data
// plane must not give it new flows even with a stale table). It returns
// the balancer, the packet template and each flow's first backend.
func flowsThenDrain(t *testing.T, flows int) (*Balancer, []byte, []uint32) {
	t.Helper()
	b := newBalancer(t, testConfig())
	standardSetup(t, b)
	tmpl := tcp("198.19.0.0", "198.18.0.10", 0, 443).build(t)
	first := make([]uint32, flows)
	for i := range first {
		_, out := run(t, b.Program(), flowPacket(tmpl, i, true))
		first[i] = outerDst(t, out)
	}
	if err := b.SetBackend(1, Backend{Addr: backendAddr(1), Draining: true}); err != nil {
		t.Fatal(err)
	}
	return b, tmpl, first
}

func TestDrainingAndRemovedBackends(t *testing.T) {
	const flows = 2000
	b, tmpl, first := flowsThenDrain(t, flows)
	kept := 0
	for i := range first {
		_, out := run(t, b.Program(), flowPacket(tmpl, i, false))
		if got := outerDst(t, out); got != first[i] {
			t.Fatalf("flow %d moved from %d to %d while %d drains", i, first[i], got, 1)
		} else if got == 1 {
			kept++
		}
	}
	if kept == 0 {
		t.Fatal("no flow was on backend 1")
	}
	for i := flows; i < flows+2000; i++ {
		_, out := run(t, b.Program(), flowPacket(tmpl, i, true))
		if outerDst(t, out) == 1 {
			t.Fatalf("new flow %d went to the draining backend", i)
		}
	}
	// A removed backend loses its flows to the others.
	if err := b.DeleteBackend(2); err != nil {
		t.Fatal(err)
	}
	for i := range first {
		ret, out := run(t, b.Program(), flowPacket(tmpl, i, false))
		if ret != xdpTx {
			t.Fatalf("flow %d: verdict %d", i, ret)
		}
		if got := outerDst(t, out); got == 2 || (first[i] != 2 && got != first[i]) {
			t.Fatalf("flow %d: backend %d -> %d after removing 2", i, first[i], got)
		}
	}
	// Only draining/removed backends left: no backend, dropped and counted.
	if err := b.UpsertVIP(vip4, []uint32{1, 2}); err != nil {
		t.Fatal(err)
	}
	before := stats(t, b)
	if ret, _ := run(t, b.Program(), flowPacket(tmpl, 99999, true)); ret != xdpDrop {
		t.Fatalf("verdict %d with no usable backend", ret)
	}
	if s := stats(t, b); s[StatDropNoBackend]-before[StatDropNoBackend] != 1 {
		t.Fatal("drop_no_backend not counted")
	}
	// Deleting the VIP: its traffic goes to the stack.
	if err := b.DeleteVIP(vip4); err != nil {
		t.Fatal(err)
	}
	if ret, _ := run(t, b.Program(), flowPacket(tmpl, 5, true)); ret != xdpPass {
		t.Fatalf("verdict %d after deleting the VIP", ret)
	}
	if st, err := b.VIPStats(vip4.ID); err != nil || st.NewFlows < flows {
		t.Fatalf("VIP stats %+v %v", st, err)
	}
}

// A client that reuses the ports of a closed flow sends a bare SYN whose
// 5-tuple is still in the connection table. When that flow's backend is
// draining (or was drained by health checks), the SYN is a new connection
// and must go to a backend that takes new connections; packets of live
// flows to the draining backend keep going there.
func TestReusedTupleSYNAvoidsDrainingBackend(t *testing.T) {
	b, tmpl, first := flowsThenDrain(t, 600)
	onDraining, moved := 0, 0
	for i := range first {
		if first[i] != 1 {
			// A retransmitted SYN of a flow on an active backend stays.
			if _, out := run(t, b.Program(), flowPacket(tmpl, i, true)); outerDst(t, out) != first[i] {
				t.Fatalf("flow %d on active backend %d moved on a repeated SYN", i, first[i])
			}
			continue
		}
		onDraining++
		// The established flow still reaches the draining backend...
		if _, out := run(t, b.Program(), flowPacket(tmpl, i, false)); outerDst(t, out) != 1 {
			t.Fatalf("established flow %d left the draining backend", i)
		}
		// ...but a new connection on the same ports does not.
		_, out := run(t, b.Program(), flowPacket(tmpl, i, true))
		got := outerDst(t, out)
		if got == 1 {
			t.Fatalf("bare SYN reusing flow %d's ports went to the draining backend", i)
		}
		// The table now follows the new connection.
		if _, out := run(t, b.Program(), flowPacket(tmpl, i, false)); outerDst(t, out) != got {
			t.Fatalf("flow %d: new connection's next packet left backend %d", i, got)
		}
		moved++
	}
	if onDraining == 0 || moved != onDraining {
		t.Fatalf("%d flows on the draining backend, %d steered afresh", onDraining, moved)
	}
}
