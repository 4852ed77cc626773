package loader

import (
	"bytes"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// FuzzBalancer feeds arbitrary frames to the balancer. Invariants: exactly
// one verdict counter moves, and it agrees with the verdict; a passed frame
// is untouched; a transmitted frame is an L2 rewrite of the input or an
// outer IPv4/IPv6 header that parses (valid checksum, lengths that fit)
// around an inner IP packet that parses.
func FuzzBalancer(f *testing.F) {
	for _, s := range validPackets() {
		f.Add(s.build(f))
		s.syn, s.ack = false, true
		f.Add(s.build(f))
	}
	b := newBalancer(f, testConfig())
	standardSetup(f, b)
	if err := b.SetRules([]Rule{
		{Deny: true, Prefixes: pfx("198.18.9.0/24", "2001:db8:9::/48")},
		{Deny: true, Prefixes: pfx("198.18.5.7/32"), Ports: []uint16{53}, Protocol: 17},
	}, false); err != nil {
		f.Fatal(err)
	}
	if err := b.SetClasses(Limits{PacketsPerSecond: 1e6, PacketBurst: 1e6, NewConnsPerSecond: 1e6, NewConnBurst: 1e6},
		[]Class{{Prefixes: pfx("198.18.77.0/24"), Limits: Limits{PacketsPerSecond: 1, PacketBurst: 2}}}); err != nil {
		f.Fatal(err)
	}
	if err := b.SetBackend(30, Backend{Addr: backendAddr(0), MAC: []byte{2, 0, 0, 0, 0xbe, 1}}); err != nil {
		f.Fatal(err)
	}
	if err := b.UpsertVIP(VIP{ID: 6, Addr: vip4.Addr, Port: 8443, Protocol: 6, L2: true}, []uint32{30}); err != nil {
		f.Fatal(err)
	}
	prog := b.Program()
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if len(pkt) < 14 || len(pkt) > 2048 {
			return // the kernel refuses frames below ETH_HLEN; bound the input
		}
		before := stats(t, b)
		ret, out := run(t, prog, pkt)
		after := stats(t, b)
		var moved uint64
		var which Stat
		for s := Stat(0); s < StatVerdictMax; s++ {
			if d := after[s] - before[s]; d != 0 {
				moved += d
				which = s
			}
		}
		if moved != 1 {
			t.Fatalf("%d verdict counters moved (verdict %d)", moved, ret)
		}
		want := map[string]uint32{"pass": xdpPass, "tx": xdpTx, "drop": xdpDrop}[which.Verdict()]
		if ret != want {
			t.Fatalf("verdict %d but counter %s", ret, which)
		}
		switch {
		case ret == xdpPass:
			if !bytes.Equal(out, pkt) {
				t.Fatalf("passed frame modified")
			}
		case which == StatTxL2:
			if !bytes.Equal(out[12:], pkt[12:]) {
				t.Fatalf("L2 DSR changed more than the MACs")
			}
		case which == StatTxIPIP:
			checkOuter(t, out)
		}
	})
}

func checkOuter(t *testing.T, out []byte) {
	t.Helper()
	o := l3(out)
	if len(o) < 1 {
		t.Fatal("no outer header")
	}
	var inner []byte
	switch o[0] >> 4 {
	case 4:
		ip := &layers.IPv4{}
		if err := ip.DecodeFromBytes(o, gopacket.NilDecodeFeedback); err != nil {
			t.Fatalf("outer IPv4: %v", err)
		}
		if ip.IHL != 5 || int(ip.Length) > len(o) || ipv4Checksum(o[:20]) != 0 || ip.TTL != 64 {
			t.Fatalf("outer IPv4 invalid: %+v", ip)
		}
		inner = o[20:ip.Length]
	case 6:
		ip := &layers.IPv6{}
		if err := ip.DecodeFromBytes(o, gopacket.NilDecodeFeedback); err != nil {
			t.Fatalf("outer IPv6: %v", err)
		}
		if 40+int(ip.Length) > len(o) {
			t.Fatalf("outer IPv6 length %d exceeds frame", ip.Length)
		}
		inner = o[40 : 40+int(ip.Length)]
	default:
		t.Fatalf("outer version %d", o[0]>>4)
	}
	// The inner packet: the fixed header must be consistent with what was
	// forwarded. (Options are checked by Linux's rules in the unit tests;
	// gopacket's option decoder is stricter than Linux, e.g. it refuses
	// two-byte options, so it is not the oracle here.)
	switch inner[0] >> 4 {
	case 4:
		ihl := int(inner[0]&0xf) * 4
		tot := int(inner[2])<<8 | int(inner[3])
		if len(inner) < 20 || ihl < 20 || tot < ihl || tot > len(inner) {
			t.Fatalf("inner IPv4 header inconsistent: ihl %d total %d, %d bytes", ihl, tot, len(inner))
		}
	case 6:
		if len(inner) < 40 || 40+(int(inner[4])<<8|int(inner[5])) > len(inner) {
			t.Fatalf("inner IPv6 header inconsistent")
		}
	default:
		t.Fatalf("inner version %d", inner[0]>>4)
	}
}
