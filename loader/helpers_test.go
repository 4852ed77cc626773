package loader

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/infergate/infergate/internal/privtest"
	"github.com/infergate/infergate/maglev"
)

// XDP verdicts.
const (
	xdpDrop = 1
	xdpPass = 2
	xdpTx   = 3
)

var (
	srcMAC    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	gwMAC     = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xfe}
	clientMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xc1}
	nicMAC    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xaa}
	encap4    = netip.MustParsePrefix("198.19.200.0/24")
	encap6    = netip.MustParsePrefix("2001:db8:ff::/64")

	vip4    = VIP{ID: 1, Addr: netip.MustParseAddr("198.18.0.10"), Port: 443, Protocol: 6}
	vip6    = VIP{ID: 2, Addr: netip.MustParseAddr("2001:db8::10"), Port: 443, Protocol: 6}
	vip4udp = VIP{ID: 3, Addr: netip.MustParseAddr("198.18.0.11"), Port: 53, Protocol: 17}
)

func testConfig() Config {
	return Config{
		MaxFlows: 4096, MaxBuckets: 4096, MaxEstablishedClients: 4096, MaxVIPs: 16, MaxBackends: 64,
		MaxRules: 64, MaxClassPrefixes: 64,
		EncapSourceV4: encap4, EncapSourceV6: encap6, SourceMAC: srcMAC, GatewayMAC: gwMAC,
	}
}

// pinCPU keeps the calling goroutine on CPU 0, as RSS keeps a flow on one
// queue (and benchmarks on one CPU's caches). The goroutine's thread is
// discarded when it exits (locked, never unlocked).
func pinCPU(t testing.TB) {
	t.Helper()
	pinTo(t, 0)
}

func pinTo(t testing.TB, cpu int) {
	t.Helper()
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		t.Fatalf("pin to CPU %d: %v", cpu, err)
	}
}

func newBalancer(t testing.TB, cfg Config) *Balancer {
	t.Helper()
	privtest.Root(t)
	pinCPU(t)
	b, err := LoadBalancer(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// v4Backends are ids 0..3, v6Backends ids 10..13.
func backendAddr(id uint32) netip.Addr {
	if id >= 10 {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 15: byte(id)})
	}
	return netip.AddrFrom4([4]byte{198, 18, 1, byte(id + 1)})
}

func ids(from, n uint32) []uint32 {
	var out []uint32
	for i := range n {
		out = append(out, from+i)
	}
	return out
}

func buildTable(t testing.TB, idList []uint32, weights []uint32) []uint32 {
	t.Helper()
	var bs []maglev.Backend
	for i, id := range idList {
		w := uint32(1)
		if weights != nil {
			w = weights[i]
		}
		bs = append(bs, maglev.Backend{ID: id, Weight: w})
	}
	tbl, err := maglev.Build(bs, maglev.SizeFor(len(bs)))
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

// standardSetup: 4 v4 backends behind vip4 and vip4udp, 4 v6 backends behind vip6.
func standardSetup(t testing.TB, b *Balancer) {
	t.Helper()
	for _, id := range append(ids(0, 4), ids(10, 4)...) {
		if err := b.SetBackend(id, Backend{Addr: backendAddr(id)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []VIP{vip4, vip4udp} {
		if err := b.UpsertVIP(v, buildTable(t, ids(0, 4), nil)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.UpsertVIP(vip6, buildTable(t, ids(10, 4), nil)); err != nil {
		t.Fatal(err)
	}
}

type pktSpec struct {
	src, dst     netip.Addr
	sport, dport uint16
	proto        uint8 // 6, 17, 1/58
	syn, ack     bool
	payload      []byte
	vlans        []uint16 // VLAN ids, outermost first; the outermost is 802.1ad when two
	tos          uint8
	ipOptions    bool
	v6Ext        bool // hop-by-hop + destination options
	frag         int  // 0 none, 1 first fragment, 2 later fragment (no L4 header)
}

func tcp(src, dst string, sport, dport uint16) pktSpec {
	return pktSpec{src: netip.MustParseAddr(src), dst: netip.MustParseAddr(dst), sport: sport, dport: dport, proto: 6, syn: true, payload: []byte("hello, inference world")}
}

func udp(src, dst string, sport, dport uint16) pktSpec {
	return pktSpec{src: netip.MustParseAddr(src), dst: netip.MustParseAddr(dst), sport: sport, dport: dport, proto: 17, payload: []byte("query for a model name")}
}

func (s pktSpec) build(t testing.TB) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: clientMAC, DstMAC: nicMAC}
	var ls []gopacket.SerializableLayer
	ls = append(ls, eth)
	l3type := layers.EthernetTypeIPv4
	if s.src.Is6() {
		l3type = layers.EthernetTypeIPv6
	}
	next := l3type
	for i := len(s.vlans) - 1; i >= 0; i-- {
		_ = i
	}
	if len(s.vlans) > 0 {
		if len(s.vlans) >= 2 {
			eth.EthernetType = layers.EthernetTypeQinQ
		} else {
			eth.EthernetType = layers.EthernetTypeDot1Q
		}
		for i, id := range s.vlans {
			d := &layers.Dot1Q{VLANIdentifier: id}
			if i == len(s.vlans)-1 {
				d.Type = next
			} else if i == len(s.vlans)-2 {
				d.Type = layers.EthernetTypeDot1Q
			} else {
				d.Type = layers.EthernetTypeQinQ
			}
			ls = append(ls, d)
		}
	} else {
		eth.EthernetType = l3type
	}
	var l4 gopacket.SerializableLayer
	var nl gopacket.NetworkLayer
	var ipProto layers.IPProtocol = layers.IPProtocol(s.proto)
	if s.src.Is4() {
		ip := &layers.IPv4{Version: 4, TTL: 61, Protocol: ipProto, SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice(), TOS: s.tos, Id: 0x1234}
		switch s.frag {
		case 1:
			ip.Flags = layers.IPv4MoreFragments
		case 2:
			ip.FragOffset = 185
		}
		if s.ipOptions {
			ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
		}
		ls = append(ls, ip)
		nl = ip
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 61, NextHeader: ipProto, SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice(), TrafficClass: s.tos, FlowLabel: 0x12345}
		nl = ip
		if s.frag != 0 {
			fh := []byte{byte(ipProto), 0, 0, 1, 0, 0, 0x12, 0x34} // offset 0, more fragments
			if s.frag == 2 {
				fh[2], fh[3] = 0x05, 0xc8 // offset 185 (x8 bytes), last
			}
			ip.NextHeader = layers.IPProtocolIPv6Fragment
			ls = append(ls, ip, rawLayer(fh))
		} else if s.v6Ext {
			ip.NextHeader = layers.IPProtocolIPv6HopByHop
			ls = append(ls, ip, rawLayer(v6Opt(byte(layers.IPProtocolIPv6Destination))), rawLayer(v6Opt(byte(ipProto))))
		} else {
			ls = append(ls, ip)
		}
	}
	switch s.proto {
	case 6:
		th := &layers.TCP{SrcPort: layers.TCPPort(s.sport), DstPort: layers.TCPPort(s.dport), SYN: s.syn, ACK: s.ack, Seq: 1000, Window: 65535, DataOffset: 5}
		th.SetNetworkLayerForChecksum(nl)
		l4 = th
	case 17:
		uh := &layers.UDP{SrcPort: layers.UDPPort(s.sport), DstPort: layers.UDPPort(s.dport)}
		uh.SetNetworkLayerForChecksum(nl)
		l4 = uh
	case 1:
		l4 = &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 7, Seq: 1}
	case 58:
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}
		ic.SetNetworkLayerForChecksum(nl)
		l4 = ic
	}
	if l4 != nil && s.frag != 2 {
		ls = append(ls, l4)
	}
	ls = append(ls, gopacket.Payload(s.payload))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// v6Opt is an 8-byte extension header (hop-by-hop or destination options)
// padded with PadN.
func v6Opt(next byte) []byte { return []byte{next, 0, 1, 4, 0, 0, 0, 0} }

type rawLayer []byte

func (r rawLayer) SerializeTo(b gopacket.SerializeBuffer, _ gopacket.SerializeOptions) error {
	p, err := b.PrependBytes(len(r))
	if err != nil {
		return err
	}
	copy(p, r)
	return nil
}
func (r rawLayer) LayerType() gopacket.LayerType { return gopacket.LayerTypePayload }

func runOpts(pkt, out []byte) *ebpf.RunOptions {
	return &ebpf.RunOptions{Data: pkt, DataOut: out, Repeat: 1}
}

func run(t testing.TB, prog *ebpf.Program, pkt []byte) (uint32, []byte) {
	t.Helper()
	opts := runOpts(pkt, make([]byte, len(pkt)+256))
	ret, err := prog.Run(opts)
	if err != nil {
		t.Fatalf("test run: %v", err)
	}
	return ret, opts.DataOut
}

func stats(t testing.TB, b *Balancer) Stats {
	t.Helper()
	s, err := b.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// l3 returns the bytes of pkt from its IP header on (skipping VLAN tags).
func l3(pkt []byte) []byte {
	off := 14
	et := binary.BigEndian.Uint16(pkt[12:])
	for et == 0x8100 || et == 0x88a8 {
		et = binary.BigEndian.Uint16(pkt[off+2:])
		off += 4
	}
	return pkt[off:]
}

// ipv4Checksum is the RFC 1071 sum over a header (including its check field):
// zero when valid.
func ipv4Checksum(h []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(h); i += 2 {
		s += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func mustEqual(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differ:\n got %x\nwant %x", what, got, want)
	}
}
