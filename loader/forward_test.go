package loader

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// checkIPIPv4 decodes a transmitted IPIP frame and checks every outer field;
// it returns the backend address and the inner bytes.
func checkIPIPv4(t *testing.T, in, out []byte) netip.Addr {
	t.Helper()
	p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if eth == nil {
		t.Fatalf("output is not Ethernet: %v", p)
	}
	if eth.DstMAC.String() != gwMAC.String() || eth.SrcMAC.String() != srcMAC.String() {
		t.Fatalf("MACs %s -> %s, want %s -> %s", eth.SrcMAC, eth.DstMAC, srcMAC, gwMAC)
	}
	o := l3(out)
	inner := l3(in)
	mustEqual(t, "L2 tags", out[12:len(out)-len(o)-2], in[12:len(in)-len(inner)-2])
	if et := binary.BigEndian.Uint16(out[len(out)-len(o)-2:]); et != 0x0800 {
		t.Fatalf("ethertype before outer header %#x, want IPv4", et)
	}
	if len(o) != len(inner)+20 {
		t.Fatalf("output L3 %d bytes, want %d", len(o), len(inner)+20)
	}
	ip := &layers.IPv4{}
	if err := ip.DecodeFromBytes(o, gopacket.NilDecodeFeedback); err != nil {
		t.Fatalf("outer IPv4: %v", err)
	}
	if ip.Version != 4 || ip.IHL != 5 || int(ip.Length) != len(o) || ip.Id != 0 || ip.Flags != 0 ||
		ip.FragOffset != 0 || ip.TTL != 64 {
		t.Fatalf("outer IPv4 header fields: %+v", ip)
	}
	if ipv4Checksum(o[:20]) != 0 {
		t.Fatalf("outer IPv4 checksum %#04x invalid", ip.Checksum)
	}
	innerV4 := inner[0]>>4 == 4
	wantProto := layers.IPProtocolIPv4
	if !innerV4 {
		wantProto = layers.IPProtocolIPv6
	} else if ip.TOS != inner[1] {
		t.Fatalf("outer TOS %#x, inner %#x", ip.TOS, inner[1])
	}
	if ip.Protocol != wantProto {
		t.Fatalf("outer protocol %v, want %v", ip.Protocol, wantProto)
	}
	src, _ := netip.AddrFromSlice(ip.SrcIP)
	if !encap4.Contains(src) {
		t.Fatalf("outer source %s outside %s", src, encap4)
	}
	mustEqual(t, "inner packet", o[20:], inner)
	dst, _ := netip.AddrFromSlice(ip.DstIP)
	return dst
}

func checkIPIPv6(t *testing.T, in, out []byte) netip.Addr {
	t.Helper()
	o := l3(out)
	inner := l3(in)
	if et := binary.BigEndian.Uint16(out[len(out)-len(o)-2:]); et != 0x86dd {
		t.Fatalf("ethertype before outer header %#x, want IPv6", et)
	}
	if len(o) != len(inner)+40 {
		t.Fatalf("output L3 %d bytes, want %d", len(o), len(inner)+40)
	}
	ip := &layers.IPv6{}
	if err := ip.DecodeFromBytes(o, gopacket.NilDecodeFeedback); err != nil {
		t.Fatalf("outer IPv6: %v", err)
	}
	wantNext := layers.IPProtocolIPv6
	if inner[0]>>4 == 4 {
		wantNext = layers.IPProtocolIPv4
	}
	if ip.Version != 6 || ip.HopLimit != 64 || int(ip.Length) != len(inner) || ip.NextHeader != wantNext {
		t.Fatalf("outer IPv6 header fields: %+v", ip)
	}
	if inner[0]>>4 == 6 {
		innerTC := inner[0]<<4 | inner[1]>>4
		if ip.TrafficClass != innerTC {
			t.Fatalf("outer traffic class %#x, inner %#x", ip.TrafficClass, innerTC)
		}
	}
	src, _ := netip.AddrFromSlice(ip.SrcIP)
	if !encap6.Contains(src) {
		t.Fatalf("outer source %s outside %s", src, encap6)
	}
	mustEqual(t, "inner packet", o[40:], inner)
	dst, _ := netip.AddrFromSlice(ip.DstIP)
	return dst
}

func TestForwardIPIP(t *testing.T) {
	b := newBalancer(t, testConfig())
	standardSetup(t, b)
	prog := b.Program()

	cases := []struct {
		name string
		pkt  pktSpec
		v6   bool
	}{
		{"tcp4", tcp("198.18.5.5", "198.18.0.10", 40000, 443), false},
		{"tcp4 options tos", func() pktSpec {
			p := tcp("198.18.5.6", "198.18.0.10", 40001, 443)
			p.ipOptions = true
			p.tos = 0xb8
			return p
		}(), false},
		{"udp4", udp("198.18.5.7", "198.18.0.11", 5353, 53), false},
		{"vlan tcp4", func() pktSpec { p := tcp("198.18.5.8", "198.18.0.10", 40002, 443); p.vlans = []uint16{7}; return p }(), false},
		{"qinq tcp4", func() pktSpec {
			p := tcp("198.18.5.9", "198.18.0.10", 40003, 443)
			p.vlans = []uint16{100, 7}
			return p
		}(), false},
		{"tcp6", tcp("2001:db8:5::5", "2001:db8::10", 40000, 443), true},
		{"tcp6 ext tc", func() pktSpec {
			p := tcp("2001:db8:5::6", "2001:db8::10", 40001, 443)
			p.v6Ext = true
			p.tos = 0x2c
			return p
		}(), true},
		{"vlan tcp6", func() pktSpec { p := tcp("2001:db8:5::7", "2001:db8::10", 40002, 443); p.vlans = []uint16{9}; return p }(), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pinCPU(t)
			in := c.pkt.build(t)
			before := stats(t, b)
			ret, out := run(t, prog, in)
			if ret != xdpTx {
				t.Fatalf("verdict %d, want XDP_TX; stats %v", ret, stats(t, b))
			}
			var dst netip.Addr
			if c.v6 {
				dst = checkIPIPv6(t, in, out)
			} else {
				dst = checkIPIPv4(t, in, out)
			}
			found := false
			for _, id := range append(ids(0, 4), ids(10, 4)...) {
				found = found || backendAddr(id) == dst
			}
			if !found {
				t.Fatalf("outer destination %s is no backend", dst)
			}
			after := stats(t, b)
			if after[StatTxIPIP]-before[StatTxIPIP] != 1 || after[StatConntrackInsert]-before[StatConntrackInsert] != 1 {
				t.Fatalf("counters: tx %d insert %d", after[StatTxIPIP]-before[StatTxIPIP], after[StatConntrackInsert]-before[StatConntrackInsert])
			}
			// The same flow again: connection hit, same backend, same bytes.
			ret, out2 := run(t, prog, in)
			if ret != xdpTx {
				t.Fatalf("second packet verdict %d", ret)
			}
			mustEqual(t, "second packet output", out2, out)
			if s := stats(t, b); s[StatConntrackHit]-after[StatConntrackHit] != 1 {
				t.Fatal("second packet did not hit the connection table")
			}
		})
	}
}

// IPv4 clients to a VIP served by IPv6 backends: IPv4-in-IPv6 (next header 4).
func TestForwardV4InV6(t *testing.T) {
	b := newBalancer(t, testConfig())
	standardSetup(t, b)
	v := VIP{ID: 5, Addr: netip.MustParseAddr("198.18.0.20"), Port: 80, Protocol: 6}
	if err := b.UpsertVIP(v, buildTable(t, ids(10, 4), nil)); err != nil {
		t.Fatal(err)
	}
	in := tcp("198.18.5.5", "198.18.0.20", 40000, 80).build(t)
	ret, out := run(t, b.Program(), in)
	if ret != xdpTx {
		t.Fatalf("verdict %d", ret)
	}
	checkIPIPv6(t, in, out)
}

func TestForwardL2(t *testing.T) {
	b := newBalancer(t, testConfig())
	beMAC := []byte{0x02, 0, 0, 0, 0xbe, 0x01}
	if err := b.SetBackend(0, Backend{Addr: backendAddr(0), MAC: beMAC}); err != nil {
		t.Fatal(err)
	}
	v := vip4
	v.L2 = true
	if err := b.UpsertVIP(v, buildTable(t, []uint32{0}, nil)); err != nil {
		t.Fatal(err)
	}
	in := tcp("198.18.5.5", "198.18.0.10", 40000, 443).build(t)
	ret, out := run(t, b.Program(), in)
	if ret != xdpTx {
		t.Fatalf("verdict %d", ret)
	}
	want := append([]byte(nil), in...)
	copy(want[0:6], beMAC)
	copy(want[6:12], srcMAC)
	mustEqual(t, "L2 DSR frame", out, want)
	if s := stats(t, b); s[StatTxL2] != 1 {
		t.Fatalf("tx_l2 = %d", s[StatTxL2])
	}
	// A backend without a MAC cannot be reached by L2 DSR: dropped, counted.
	if err := b.SetBackend(0, Backend{Addr: backendAddr(0)}); err != nil {
		t.Fatal(err)
	}
	if ret, _ := run(t, b.Program(), in); ret != xdpDrop {
		t.Fatalf("verdict %d for L2 backend without MAC", ret)
	}
	if s := stats(t, b); s[StatDropEncapFail] != 1 {
		t.Fatalf("drop_encap_fail = %d", s[StatDropEncapFail])
	}
}

func TestPassToStack(t *testing.T) {
	b := newBalancer(t, testConfig())
	standardSetup(t, b)
	for _, p := range []pktSpec{
		tcp("198.18.5.5", "198.18.0.99", 40000, 443), // no VIP at that address
		tcp("198.18.5.5", "198.18.0.10", 40000, 444), // VIP address, other port
		udp("198.18.5.5", "198.18.0.10", 40000, 443), // VIP address and port, other protocol
		{src: netip.MustParseAddr("198.18.5.5"), dst: netip.MustParseAddr("198.18.0.10"), proto: 1},
		{src: netip.MustParseAddr("2001:db8:5::5"), dst: netip.MustParseAddr("2001:db8::10"), proto: 58},
	} {
		in := p.build(t)
		ret, out := run(t, b.Program(), in)
		if ret != xdpPass {
			t.Fatalf("%+v: verdict %d, want XDP_PASS", p, ret)
		}
		mustEqual(t, "passed frame", out, in)
	}
	// ARP is not IP: passed untouched.
	arp := make([]byte, 42)
	copy(arp, nicMAC)
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	if ret, _ := run(t, b.Program(), arp); ret != xdpPass {
		t.Fatalf("ARP verdict %d", ret)
	}
	s := stats(t, b)
	if s[StatPassStack] != 5 || s[StatPassNotIP] != 1 {
		t.Fatalf("pass_stack %d pass_not_ip %d", s[StatPassStack], s[StatPassNotIP])
	}
}

func TestReconfigure(t *testing.T) {
	b := newBalancer(t, testConfig())
	standardSetup(t, b)
	cfg := testConfig()
	cfg.EncapSourceV4 = netip.MustParsePrefix("198.19.77.0/28")
	cfg.SourceMAC = nil
	if err := b.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	in := tcp("198.18.5.5", "198.18.0.10", 40000, 443).build(t)
	ret, out := run(t, b.Program(), in)
	if ret != xdpTx {
		t.Fatalf("verdict %d", ret)
	}
	src, _ := netip.AddrFromSlice(out[14+12 : 14+16])
	if !cfg.EncapSourceV4.Contains(src) {
		t.Fatalf("outer source %s outside %s", src, cfg.EncapSourceV4)
	}
	mustEqual(t, "source MAC (the frame's destination)", out[6:12], in[0:6])
	// Without an encapsulation source, IPIP to v4 backends is refused and counted.
	cfg.EncapSourceV4 = netip.Prefix{}
	if err := b.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	in2 := tcp("198.18.5.6", "198.18.0.10", 40000, 443).build(t)
	if ret, _ := run(t, b.Program(), in2); ret != xdpDrop {
		t.Fatalf("verdict %d without encap source", ret)
	}
	if s := stats(t, b); s[StatDropNoEncapSource] != 1 {
		t.Fatalf("drop_no_encap_source %d", s[StatDropNoEncapSource])
	}
}
