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
	// The test balancer's encapsulation sources.
	if err := d.SetTrustedSources([]netip.Prefix{encap4, encap6}); err != nil {
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

// setOuterSource rewrites the outer IPv4 (or IPv6) source of an
// encapsulated frame with no VLAN tag; the outer IPv4 checksum is not
// checked by the decapsulator.
func setOuterSource(t *testing.T, frame []byte, src netip.Addr) []byte {
	t.Helper()
	p := append([]byte(nil), frame...)
	switch binary.BigEndian.Uint16(p[12:]) {
	case 0x0800:
		a := src.As4()
		copy(p[14+12:], a[:])
	case 0x86dd:
		a := src.As16()
		copy(p[14+8:], a[:])
	default:
		t.Fatalf("not an IP frame")
	}
	return p
}

// Encapsulated packets for a local VIP are decapsulated only from a trusted
// balancer's source prefix: an attacker who wraps a packet in IPIP or
// IPv6-in-IPv6 itself is dropped and counted, whatever the inner packet. An
// empty trusted set trusts no one.
func TestDecapTrustsOnlyBalancers(t *testing.T) {
	b := newBalancer(t, testConfig())
	standardSetup(t, b)
	v46 := VIP{ID: 5, Addr: netip.MustParseAddr("198.18.0.20"), Port: 80, Protocol: 6}
	if err := b.UpsertVIP(v46, buildTable(t, ids(10, 4), nil)); err != nil {
		t.Fatal(err)
	}
	d := newDecap(t, vip4.Addr, vip6.Addr, v46.Addr)
	frames := map[string][]byte{}
	for name, spec := range map[string]pktSpec{
		"ipip": tcp("198.18.5.5", "198.18.0.10", 40000, 443), "ip6ip6": tcp("2001:db8:5::5", "2001:db8::10", 40000, 443),
		"ipv4 in ipv6": tcp("198.18.5.5", "198.18.0.20", 40000, 80),
	} {
		ret, enc := run(t, b.Program(), spec.build(t))
		if ret != xdpTx {
			t.Fatalf("%s: balancer verdict %d", name, ret)
		}
		frames[name] = enc
	}
	attacker4, attacker6 := netip.MustParseAddr("198.18.9.66"), netip.MustParseAddr("2001:db8:9::66")
	check := func(what string, pkt []byte, wantRet uint32, stat DecapStat) {
		t.Helper()
		before, _ := d.Stats()
		ret, _ := run(t, d.Program(), pkt)
		after, _ := d.Stats()
		if ret != wantRet || after[stat]-before[stat] != 1 {
			t.Fatalf("%s: verdict %d (want %d), counter %d moved by %d", what, ret, wantRet, stat, after[stat]-before[stat])
		}
	}
	for name, enc := range frames {
		check(name+" from the balancer", enc, xdpPass, DecapPassDecapsulated)
		spoof := attacker4
		if binary.BigEndian.Uint16(enc[12:]) == 0x86dd {
			spoof = attacker6
		}
		check(name+" from an attacker", setOuterSource(t, enc, spoof), xdpDrop, DecapDropUntrustedSource)
	}
	// Another address inside the balancer's encapsulation prefix (its host
	// bits carry flow entropy) is trusted.
	other := encap4.Addr().Next()
	if !encap4.Contains(other) {
		t.Fatalf("test prefix %s too small", encap4)
	}
	check("ipip from elsewhere in the balancer's prefix", setOuterSource(t, frames["ipip"], other), xdpPass, DecapPassDecapsulated)

	// No trusted source at all: nothing is decapsulated.
	if err := d.SetTrustedSources(nil); err != nil {
		t.Fatal(err)
	}
	for name, enc := range frames {
		check(name+" with no trusted source", enc, xdpDrop, DecapDropUntrustedSource)
	}
	// Trusting an exact address (a /32) that is not the packet's source.
	if err := d.SetTrustedSources([]netip.Prefix{netip.PrefixFrom(attacker4.Next(), 32)}); err != nil {
		t.Fatal(err)
	}
	check("ipip from a near address", setOuterSource(t, frames["ipip"], attacker4), xdpDrop, DecapDropUntrustedSource)
	if err := d.SetTrustedSources([]netip.Prefix{netip.MustParsePrefix("::ffff:198.18.0.0/112")}); err == nil {
		t.Fatal("an IPv4-mapped prefix was accepted")
	}
}
