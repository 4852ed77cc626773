package loader

import (
	"net/netip"
	"testing"
)

// validPackets are well-formed frames of every shape the parser knows, none
// with Ethernet padding (so every strict prefix is truncated).
func validPackets() map[string]pktSpec {
	icmp4 := pktSpec{src: netip.MustParseAddr("198.18.5.5"), dst: netip.MustParseAddr("198.18.0.99"), proto: 1, payload: []byte("ping payload, long enough")}
	icmp6 := pktSpec{src: netip.MustParseAddr("2001:db8:5::5"), dst: netip.MustParseAddr("2001:db8::99"), proto: 58, payload: []byte("ping payload")}
	opts := tcp("198.18.5.6", "198.18.0.10", 40001, 443)
	opts.ipOptions = true
	ext := tcp("2001:db8:5::6", "2001:db8::10", 40001, 443)
	ext.v6Ext = true
	vlan := tcp("198.18.5.8", "198.18.0.10", 40002, 443)
	vlan.vlans = []uint16{7}
	qinq := udp("2001:db8:5::8", "2001:db8::99", 40003, 53)
	qinq.vlans = []uint16{100, 7}
	frag4 := udp("198.18.5.9", "198.18.0.99", 40004, 53)
	frag4.frag = 1
	frag6 := udp("2001:db8:5::9", "2001:db8::99", 40004, 53)
	frag6.frag = 1
	return map[string]pktSpec{
		"tcp4 to VIP": tcp("198.18.5.5", "198.18.0.10", 40000, 443),
		"udp4 to VIP": udp("198.18.5.7", "198.18.0.11", 5353, 53),
		"tcp4 stack":  tcp("198.18.5.5", "198.18.0.99", 40000, 22),
		"icmp4":       icmp4,
		"tcp4 opts":   opts,
		"tcp6 to VIP": tcp("2001:db8:5::5", "2001:db8::10", 40000, 443),
		"udp6 stack":  udp("2001:db8:5::7", "2001:db8::99", 5353, 53),
		"icmp6":       icmp6,
		"tcp6 ext":    ext,
		"vlan tcp4":   vlan,
		"qinq udp6":   qinq,
		"frag4 first": frag4,
		"frag6 first": frag6,
	}
}

// Every strict prefix of every valid packet is dropped and counted as
// malformed; below the Ethernet header length the kernel refuses the run.
func TestTruncatedPacketsDropped(t *testing.T) {
	b := newBalancer(t, testConfig())
	standardSetup(t, b)
	prog := b.Program()
	for name, spec := range validPackets() {
		pkt := spec.build(t)
		if len(pkt) < 60 {
			t.Fatalf("%s: %d bytes, would be padded", name, len(pkt))
		}
		ret, _ := run(t, prog, pkt)
		if ret != xdpTx && ret != xdpPass {
			t.Fatalf("%s: full packet verdict %d", name, ret)
		}
		for n := 0; n < len(pkt); n++ {
			cut := append([]byte(nil), pkt[:n]...)
			if n < 14 {
				out := make([]byte, 512)
				if _, err := prog.Run(runOpts(cut, out)); err == nil {
					t.Fatalf("%s: %d-byte frame accepted by the kernel", name, n)
				}
				continue
			}
			before := stats(t, b)
			ret, _ := run(t, prog, cut)
			after := stats(t, b)
			if ret != xdpDrop {
				t.Fatalf("%s cut to %d of %d bytes: verdict %d, want XDP_DROP", name, n, len(pkt), ret)
			}
			if d := after[StatDropMalformed] - before[StatDropMalformed]; d != 1 {
				t.Fatalf("%s cut to %d: drop_malformed moved by %d", name, n, d)
			}
		}
	}
}

func TestMalformedHeaders(t *testing.T) {
	b := newBalancer(t, testConfig())
	standardSetup(t, b)
	base := tcp("198.18.5.5", "198.18.0.10", 40000, 443).build(t)
	mut := func(f func(p []byte)) []byte { p := append([]byte(nil), base...); f(p); return p }
	cases := map[string]struct {
		pkt    []byte
		reason Stat
	}{
		"ihl 4":           {mut(func(p []byte) { p[14] = 0x44 }), StatDropMalformed},
		"version 6 in 4":  {mut(func(p []byte) { p[14] = 0x65 }), StatDropMalformed},
		"tot_len < ihl":   {mut(func(p []byte) { p[16], p[17] = 0, 10 }), StatDropMalformed},
		"tot_len > frame": {mut(func(p []byte) { p[16], p[17] = 0x05, 0xdc }), StatDropMalformed},
		"tcp doff 4":      {mut(func(p []byte) { p[46] = 0x40 }), StatDropMalformed},
		"tcp doff 15":     {mut(func(p []byte) { p[46] = 0xf0 }), StatDropMalformed},
		"three tags": {func() []byte {
			s := tcp("198.18.5.5", "198.18.0.10", 40000, 443)
			s.vlans = []uint16{1, 2, 3}
			return s.build(t)
		}(), StatDropVLANDepth},
	}
	for name, c := range cases {
		before := stats(t, b)
		ret, _ := run(t, b.Program(), c.pkt)
		if ret != xdpDrop {
			t.Errorf("%s: verdict %d", name, ret)
			continue
		}
		if d := stats(t, b)[c.reason] - before[c.reason]; d != 1 {
			t.Errorf("%s: %s moved by %d", name, c.reason, d)
		}
	}
	// IPv4 options: a well-formed TLV passes, broken ones are malformed.
	withOpts := func(opts ...byte) []byte {
		s := tcp("198.18.5.5", "198.18.0.10", 40010, 443)
		p := s.build(t)
		out := append(append(append([]byte(nil), p[:34]...), opts...), p[34:]...)
		out[14] = 0x45 + byte(len(opts)/4)
		tl := int(out[16])<<8 | int(out[17]) + len(opts)
		out[16], out[17] = byte(tl>>8), byte(tl)
		return out
	}
	for name, c := range map[string]struct {
		pkt  []byte
		want uint32
	}{
		"router alert":        {withOpts(148, 4, 0, 0), xdpTx},
		"nop nop eol":         {withOpts(1, 1, 0, 0), xdpTx},
		"option length 0":     {withOpts(148, 0, 0, 0), xdpDrop},
		"option length 1":     {withOpts(7, 1, 0, 0), xdpDrop},
		"option past header":  {withOpts(1, 1, 148, 4), xdpDrop},
		"no room for length":  {withOpts(1, 1, 1, 148), xdpDrop},
		"eol then garbage ok": {withOpts(0, 7, 7, 7), xdpTx},
	} {
		if ret, _ := run(t, b.Program(), c.pkt); ret != c.want {
			t.Errorf("IPv4 options %s: verdict %d, want %d", name, ret, c.want)
		}
	}
	// IPv6 destination options: PadN / Pad1 pass, an overrunning TLV is malformed.
	with6 := func(opt []byte) []byte {
		s := tcp("2001:db8:5::5", "2001:db8::10", 40011, 443)
		p := s.build(t)
		hdr := append([]byte{6, 0}, opt...)
		out := append(append(append([]byte(nil), p[:54]...), hdr...), p[54:]...)
		out[20] = 60
		pl := int(out[18])<<8 | int(out[19]) + len(hdr)
		out[18], out[19] = byte(pl>>8), byte(pl)
		return out
	}
	for name, c := range map[string]struct {
		pkt  []byte
		want uint32
	}{
		"padn":       {with6([]byte{1, 4, 0, 0, 0, 0}), xdpTx},
		"pad1s":      {with6([]byte{0, 0, 0, 0, 0, 0}), xdpTx},
		"overrun":    {with6([]byte{1, 5, 0, 0, 0, 0}), xdpDrop},
		"cut length": {with6([]byte{0, 0, 0, 0, 0, 7}), xdpDrop},
	} {
		if ret, _ := run(t, b.Program(), c.pkt); ret != c.want {
			t.Errorf("IPv6 options %s: verdict %d, want %d", name, ret, c.want)
		}
	}
	// Seven IPv6 extension headers exceed the bound.
	s := tcp("2001:db8:5::5", "2001:db8::10", 40000, 443)
	pkt := s.build(t)
	var chain []byte
	for i := 0; i < 7; i++ {
		next := byte(60)
		if i == 6 {
			next = 6
		}
		chain = append(chain, v6Opt(next)...)
	}
	long := append(append(append([]byte(nil), pkt[:54]...), chain...), pkt[54:]...)
	long[20] = 60
	pl := int(long[18])<<8 | int(long[19]) + len(chain)
	long[18], long[19] = byte(pl>>8), byte(pl)
	if ret, _ := run(t, b.Program(), long); ret != xdpDrop {
		t.Fatalf("7 extension headers: verdict %d", ret)
	}
	if st := stats(t, b); st[StatDropExtDepth] != 1 {
		t.Fatalf("drop_ext_depth %d", st[StatDropExtDepth])
	}
}

// Fragments: the firewall applies by address and protocol (port rules never
// match a later fragment, which has no ports); fragments to a VIP address are
// dropped; others pass to the stack.
func TestFragments(t *testing.T) {
	b := newBalancer(t, testConfig())
	standardSetup(t, b)
	if err := b.SetRules([]Rule{
		{Deny: true, Prefixes: pfx("198.18.60.0/24"), Ports: []uint16{53}, Protocol: 17},
		{Deny: true, Prefixes: pfx("198.18.61.0/24"), Protocol: 17},
		{Deny: true, Prefixes: pfx("198.18.62.1/32")},
	}, false); err != nil {
		t.Fatal(err)
	}
	f := func(src, dst string, frag int) pktSpec {
		p := udp(src, dst, 1000, 53)
		p.frag = frag
		return p
	}
	cases := []struct {
		name   string
		pkt    pktSpec
		want   uint32
		reason Stat
	}{
		{"v4 first to VIP", f("198.18.5.5", "198.18.0.11", 1), xdpDrop, StatDropFragmentToVIP},
		{"v4 later to VIP address", f("198.18.5.5", "198.18.0.11", 2), xdpDrop, StatDropFragmentToVIP},
		{"v4 later to other VIP's address", f("198.18.5.5", "198.18.0.10", 2), xdpDrop, StatDropFragmentToVIP},
		{"v4 later to stack", f("198.18.5.5", "198.18.0.99", 2), xdpPass, StatPassStack},
		{"v4 first to stack", f("198.18.5.5", "198.18.0.99", 1), xdpPass, StatPassStack},
		{"port rule first fragment", f("198.18.60.1", "198.18.0.99", 1), xdpDrop, StatDropFirewallRule},
		{"port rule later fragment", f("198.18.60.1", "198.18.0.99", 2), xdpPass, StatPassStack},
		{"protocol rule later fragment", f("198.18.61.1", "198.18.0.99", 2), xdpDrop, StatDropFirewallRule},
		{"address rule later fragment", f("198.18.62.1", "198.18.0.99", 2), xdpDrop, StatDropFirewallRule},
		{"v6 later to VIP address", f("2001:db8:5::5", "2001:db8::10", 2), xdpDrop, StatDropFragmentToVIP},
		{"v6 first to stack", f("2001:db8:5::5", "2001:db8::99", 1), xdpPass, StatPassStack},
		{"v6 later to stack", f("2001:db8:5::5", "2001:db8::99", 2), xdpPass, StatPassStack},
	}
	for _, c := range cases {
		before := stats(t, b)
		ret, _ := run(t, b.Program(), c.pkt.build(t))
		after := stats(t, b)
		if ret != c.want {
			t.Errorf("%s: verdict %d, want %d", c.name, ret, c.want)
			continue
		}
		if after[c.reason]-before[c.reason] != 1 || after[StatFragment]-before[StatFragment] != 1 {
			t.Errorf("%s: %s moved by %d, fragment by %d", c.name, c.reason, after[c.reason]-before[c.reason], after[StatFragment]-before[StatFragment])
		}
	}
}
