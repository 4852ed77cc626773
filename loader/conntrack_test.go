package loader

import (
	"runtime"
	"testing"

	"github.com/infergate/infergate/internal/privtest"
)

// A flow tracked on one CPU is a connection hit on another: the connection
// table is shared, so a flow whose packets change CPU (RSS rehash, IRQ
// moves) keeps its backend even after the Maglev table changed.
func TestFlowTrackedAcrossCPUs(t *testing.T) {
	if runtime.NumCPU() < 2 {
		privtest.Skip(t, "needs 2 CPUs")
	}
	b := newBalancer(t, testConfig())
	standardSetup(t, b)
	tmpl := tcp("198.19.0.0", "198.18.0.10", 0, 443).build(t)
	const flows = 200
	first := make([]uint32, flows)
	for i := range first {
		_, out := run(t, b.Program(), flowPacket(tmpl, i, true))
		first[i] = outerDst(t, out)
	}
	// A new table that sends every flow to backend 3.
	if err := b.UpsertVIP(vip4, []uint32{3}); err != nil {
		t.Fatal(err)
	}
	pinTo(t, 1) // this test's thread, locked by newBalancer, moves to CPU 1
	before := stats(t, b)
	for i := range first {
		_, out := run(t, b.Program(), flowPacket(tmpl, i, false))
		if got := outerDst(t, out); got != first[i] {
			t.Fatalf("flow %d: backend %d on CPU 0, %d on CPU 1", i, first[i], got)
		}
	}
	s := stats(t, b)
	if hits := s[StatConntrackHit] - before[StatConntrackHit]; hits != flows {
		t.Errorf("connection hits on CPU 1: %d, want %d", hits, flows)
	}
	if ins := s[StatConntrackInsert] - before[StatConntrackInsert]; ins != 0 {
		t.Errorf("inserts on CPU 1: %d, want 0", ins)
	}
}

// IPv4 flows are tracked in conntrack under their 16-byte key, IPv6 flows in
// conntrack6 (sized apart: MaxFlows, MaxFlows6); both keep their backend after a Maglev table change, and Fill
// counts both tables.
func TestConntrackPerFamily(t *testing.T) {
	cfg := testConfig()
	cfg.MaxFlows, cfg.MaxFlows6 = 8192, 1024
	b := newBalancer(t, cfg)
	standardSetup(t, b)
	if n, m := b.objs.Conntrack.MaxEntries(), b.objs.Conntrack6.MaxEntries(); n != 8192 || m != 1024 {
		t.Fatalf("table sizes %d / %d, want 8192 / 1024", n, m)
	}
	p4 := tcp("198.18.5.5", "198.18.0.10", 40000, 443)
	p6 := tcp("2001:db8:5::5", vip6.Addr.String(), 40000, 443)
	first := map[string][]byte{}
	for name, p := range map[string]pktSpec{"v4": p4, "v6": p6} {
		ret, out := run(t, b.Program(), p.build(t))
		if ret != xdpTx {
			t.Fatalf("%s SYN: verdict %d", name, ret)
		}
		first[name] = append([]byte(nil), out[14:54]...) // outer header (IPv4 20 / IPv6 40 bytes)
	}
	k4 := balancerFlowKey4{Src: addrWords(p4.src)[0], Dst: addrWords(p4.dst)[0], Sport: htons(40000), Dport: htons(443), Proto: 6}
	var v balancerCtVal
	if err := b.objs.Conntrack.Lookup(k4, &v); err != nil {
		t.Fatalf("IPv4 flow not in conntrack: %v", err)
	}
	k6 := balancerFlowKey{Src: addrWords(p6.src), Dst: addrWords(p6.dst), Sport: htons(40000), Dport: htons(443), Proto: 6, Family: familyV6}
	if err := b.objs.Conntrack6.Lookup(k6, &v); err != nil {
		t.Fatalf("IPv6 flow not in conntrack6: %v", err)
	}
	if f, err := b.Fill(); err != nil || f.Flows != 2 || f.Flows6 != 1 {
		t.Fatalf("fill %+v %v, want 2 flows, 1 IPv6", f, err)
	}
	// New tables for both VIPs: tracked flows keep their backends.
	if err := b.UpsertVIP(vip4, []uint32{3}); err != nil {
		t.Fatal(err)
	}
	if err := b.UpsertVIP(vip6, []uint32{3}); err != nil {
		t.Fatal(err)
	}
	before := stats(t, b)
	for name, p := range map[string]pktSpec{"v4": p4, "v6": p6} {
		p.syn, p.ack = false, true
		ret, out := run(t, b.Program(), p.build(t))
		if ret != xdpTx {
			t.Fatalf("%s ACK: verdict %d", name, ret)
		}
		mustEqual(t, name+" outer header", out[14:54], first[name])
	}
	if hits := stats(t, b)[StatConntrackHit] - before[StatConntrackHit]; hits != 2 {
		t.Fatalf("connection hits %d, want 2", hits)
	}
}
