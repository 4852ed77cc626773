package loader

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

func newDecap(t *testing.T, locals ...netip.Addr) *Decap {
	t.Helper()
	d, err := LoadDecap(DecapConfig{}, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if err := d.SetLocalVIPs(locals); err != nil {
		t.Fatal(err)
	}
	return d
}

// The balancer's output fed to the decapsulator gives back the original
// packet: the same bytes from the IP header on, the same VLAN tags, the
// balancer's MACs.
func TestEncapDecapRoundTrip(t *testing.T) {
	b := newBalancer(t, testConfig())
	standardSetup(t, b)
	v46 := VIP{ID: 5, Addr: netip.MustParseAddr("198.18.0.20"), Port: 80, Protocol: 6}
	if err := b.UpsertVIP(v46, buildTable(t, ids(10, 4), nil)); err != nil {
		t.Fatal(err)
	}
	d := newDecap(t, vip4.Addr, vip6.Addr, vip4udp.Addr, v46.Addr)
	vlan := tcp("198.18.5.8", "198.18.0.10", 40002, 443)
	vlan.vlans = []uint16{7}
	qinq := tcp("2001:db8:5::9", "2001:db8::10", 40003, 443)
	qinq.vlans = []uint16{100, 7}
	opts := tcp("198.18.5.6", "198.18.0.10", 40001, 443)
	opts.ipOptions = true
	for name, spec := range map[string]pktSpec{
		"tcp4": tcp("198.18.5.5", "198.18.0.10", 40000, 443), "udp4": udp("198.18.5.7", "198.18.0.11", 5353, 53),
		"tcp6": tcp("2001:db8:5::5", "2001:db8::10", 40000, 443), "v4 in v6": tcp("198.18.5.5", "198.18.0.20", 40000, 80),
		"vlan": vlan, "qinq v6": qinq, "ip options": opts,
	} {
		in := spec.build(t)
		ret, enc := run(t, b.Program(), in)
		if ret != xdpTx {
			t.Fatalf("%s: balancer verdict %d", name, ret)
		}
		ret, dec := run(t, d.Program(), enc)
		if ret != xdpPass {
			t.Fatalf("%s: decap verdict %d", name, ret)
		}
		want := append(append([]byte(nil), enc[:12]...), in[12:]...)
		mustEqual(t, name+": decapsulated frame", dec, want)
	}
	s, err := d.Stats()
	if err != nil || s[DecapPassDecapsulated] != 7 {
		t.Fatalf("decap stats %v %v", s, err)
	}
}

func TestDecapLeavesOthersAlone(t *testing.T) {
	b := newBalancer(t, testConfig())
	standardSetup(t, b)
	d := newDecap(t, vip6.Addr) // vip4 is not local here
	in := tcp("198.18.5.5", "198.18.0.10", 40000, 443).build(t)
	_, enc := run(t, b.Program(), in)
	for name, c := range map[string]struct {
		pkt  []byte
		stat DecapStat
	}{
		"not local": {enc, DecapPassNotLocal},
		"plain tcp": {in, DecapPassNotIPIP},
		"fragmented outer": {func() []byte {
			p := append([]byte(nil), enc...)
			binary.BigEndian.PutUint16(p[20:], 0x2000)
			return p
		}(), DecapPassNotIPIP},
	} {
		before, _ := d.Stats()
		ret, out := run(t, d.Program(), c.pkt)
		if ret != xdpPass {
			t.Fatalf("%s: verdict %d", name, ret)
		}
		mustEqual(t, name, out, c.pkt)
		after, _ := d.Stats()
		if after[c.stat]-before[c.stat] != 1 {
			t.Fatalf("%s: counter %d not moved", name, c.stat)
		}
	}
	// Truncated inner header: dropped.
	if ret, _ := run(t, d.Program(), enc[:14+20+10]); ret != xdpDrop {
		t.Fatalf("truncated inner header: verdict %d", ret)
	}
	// Removing the local VIP set.
	if err := d.SetLocalVIPs(nil); err != nil {
		t.Fatal(err)
	}
	n, err := countKeys[balancerAddrKey](d.objs.LocalVips)
	if err != nil || n != 0 {
		t.Fatalf("local VIPs left: %d %v", n, err)
	}
}
