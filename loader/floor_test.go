package loader

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/infergate/infergate/internal/privtest"
)

// Floor benchmarks: bpf/floor.c does only the irreducible work of the
// balancer's established and new-flow paths (parse, one connection-table
// lookup, insert for a new flow, IPIP encapsulation or MAC rewrite), timed
// with the same method as the real paths (benchSingle, benchRepeat) so the
// figures sit side by side: they bound from below what the balancer can
// reach on the machine at hand.

// floorTable is how a floor benchmark's connection table is made.
type floorTable struct {
	name    string
	typ     ebpf.MapType
	flags   uint32
	entries uint32
	// hot: each flow is deleted (from Go, untimed) before the next sample,
	// so the table stays nearly empty and the insert reuses warm memory.
	hot bool
}

const bpfFNoCommonLRU = 1 << 1 // BPF_F_NO_COMMON_LRU

var floorCT1M = floorTable{name: "lru_1M", typ: ebpf.LRUHash, entries: 1 << 20}

func loadFloorTable(t testing.TB, tbl floorTable) *floorObjects {
	t.Helper()
	spec, err := loadFloor()
	if err != nil {
		t.Fatal(err)
	}
	m := spec.Maps["floor_ct"]
	m.Type, m.Flags, m.MaxEntries = tbl.typ, tbl.flags, tbl.entries
	var objs floorObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		t.Fatalf("load floor programs (%s): %v", tbl.name, err)
	}
	t.Cleanup(func() { objs.Close() })
	return &objs
}

// floorKey is the connection-table key the floor programs build for an
// IPv4 TCP frame from the test packet builders (untagged Ethernet).
func floorKey(pkt []byte) floorFlowKey4 {
	ip := pkt[14:]
	ihl := int(ip[0]&0x0f) * 4
	return floorFlowKey4{
		Src:   binary.NativeEndian.Uint32(ip[12:16]),
		Dst:   binary.NativeEndian.Uint32(ip[16:20]),
		Sport: binary.NativeEndian.Uint16(ip[ihl:]),
		Dport: binary.NativeEndian.Uint16(ip[ihl+2:]),
		Proto: 6,
	}
}

func trackFloorFlow(t testing.TB, objs *floorObjects, pkt []byte) {
	t.Helper()
	v := floorCtVal{Backend: 1, Vip: 1, Flags: 1, Hash: 0x12345678}
	if err := objs.FloorCt.Update(floorKey(pkt), v, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
}

// TestFloorPrograms: the floor programs do the work they stand for: a hit
// is encapsulated (outer IPv4 header, valid checksum, inner packet intact)
// or MAC-rewritten, a new flow is inserted and encapsulated.
func TestFloorPrograms(t *testing.T) {
	privtest.Root(t)
	objs := loadFloorTable(t, floorTable{name: "lru_4096", typ: ebpf.LRUHash, entries: 4096})
	pkt := establishedPkt(t)

	if ret, _ := run(t, objs.FloorEstIpip, pkt); ret != xdpDrop {
		t.Fatalf("untracked flow: verdict %d, want drop", ret)
	}
	trackFloorFlow(t, objs, pkt)
	// The outer source is 172.16.0.0/16 with the host bits taken from the
	// hash as stored (network-order mask over the native-order word).
	checkEncap := func(in []byte, ret uint32, out []byte, hash uint32) {
		t.Helper()
		if ret != xdpTx {
			t.Fatalf("verdict %d, want tx", ret)
		}
		out = out[:len(in)+20]
		outer := out[14:34]
		if binary.BigEndian.Uint16(out[12:]) != 0x0800 || outer[0] != 0x45 || outer[9] != 4 ||
			int(binary.BigEndian.Uint16(outer[2:])) != len(in)-14+20 || ipv4Checksum(outer) != 0 {
			t.Fatalf("bad outer header % x", outer)
		}
		if got := netip.AddrFrom4([4]byte(outer[16:20])); got != netip.MustParseAddr("198.18.200.1") {
			t.Fatalf("outer destination %s", got)
		}
		var h [4]byte
		binary.NativeEndian.PutUint32(h[:], hash)
		mustEqual(t, "outer source", outer[12:16], []byte{172, 16, h[2], h[3]})
		mustEqual(t, "inner packet", out[34:], in[14:])
		mustEqual(t, "destination MAC", out[:6], []byte{2, 0, 0, 0, 0xbe, 1})
	}
	ret, out := run(t, objs.FloorEstIpip, pkt)
	checkEncap(pkt, ret, out, 0x12345678)

	ret, out = run(t, objs.FloorEstL2, pkt)
	if ret != xdpTx {
		t.Fatalf("L2: verdict %d", ret)
	}
	mustEqual(t, "L2 destination MAC", out[:6], []byte{2, 0, 0, 0, 0xbe, 1})
	mustEqual(t, "L2 source MAC", out[6:12], pkt[:6])
	mustEqual(t, "L2 rest", out[12:len(pkt)], pkt[12:])

	fresh := flowPacket(tcp("198.19.0.0", "198.18.0.10", 0, 443).build(t), 7, true)
	ret, out = run(t, objs.FloorMissIpip, fresh)
	if ret != xdpTx {
		t.Fatalf("miss: verdict %d", ret)
	}
	var v floorCtVal
	if err := objs.FloorCt.Lookup(floorKey(fresh), &v); err == nil {
		t.Fatal("floor_miss_ipip inserted a flow")
	}
	ret, out = run(t, objs.FloorNewIpip, fresh)
	if err := objs.FloorCt.Lookup(floorKey(fresh), &v); err != nil {
		t.Fatalf("floor_new_ipip did not insert the flow: %v", err)
	}
	checkEncap(fresh, ret, out, v.Hash)
	if ret, _ := run(t, objs.FloorNewIpip, fresh); ret != xdpDrop {
		t.Fatalf("second packet of the new flow: verdict %d, want drop (already tracked)", ret)
	}
	if bytes.Equal(out[:14], pkt[:14]) {
		t.Fatal("Ethernet header unchanged")
	}
}

// BenchmarkFloorEstablishedIPIP: parse + connection hit + IPIP, the floor
// of BenchmarkEstablishedFlow (same packet, same method).
func BenchmarkFloorEstablishedIPIP(b *testing.B) {
	privtest.Root(b)
	pinCPU(b)
	objs := loadFloorTable(b, floorCT1M)
	pkt := establishedPkt(b)
	trackFloorFlow(b, objs, pkt)
	benchSingle(b, objs.FloorEstIpip, func(int) []byte { return pkt }, xdpTx)
}

// BenchmarkFloorEstablishedL2: parse + connection hit + MAC rewrite, timed
// both ways like BenchmarkEstablishedFlowL2.
func BenchmarkFloorEstablishedL2(b *testing.B) {
	privtest.Root(b)
	pinCPU(b)
	objs := loadFloorTable(b, floorCT1M)
	pkt := establishedPkt(b)
	trackFloorFlow(b, objs, pkt)
	b.Run("repeat", func(b *testing.B) { benchRepeat(b, objs.FloorEstL2, pkt, xdpTx) })
	b.Run("single", func(b *testing.B) { benchSingle(b, objs.FloorEstL2, func(int) []byte { return pkt }, xdpTx) })
}

// BenchmarkFloorNewFlow: parse + lookup (miss) + insert + IPIP for b.N
// distinct flows into a table loaded fresh for each b.N round, as in
// BenchmarkNewFlow. Variants separate the insert's own cost from the
// table's kind and from cold memory:
//
//	lru_1M           the balancer's table (LRU hash, common LRU list, 1M)
//	lru_nocommon_1M  LRU hash with per-CPU LRU lists (BPF_F_NO_COMMON_LRU)
//	hash_1M          a preallocated plain hash (no LRU bookkeeping)
//	lru_4096_hot     4,096-slot LRU hash, each flow deleted before the next
//	                 sample: the insert on warm memory
//	miss_1M          no insert (floor_miss_ipip): the rest of the path
func BenchmarkFloorNewFlow(b *testing.B) {
	privtest.Root(b)
	pinCPU(b)
	tmpl := tcp("198.19.0.0", "198.18.0.10", 0, 443).build(b)
	for _, c := range []struct {
		tbl  floorTable
		miss bool
	}{
		{tbl: floorCT1M},
		{tbl: floorTable{name: "lru_nocommon_1M", typ: ebpf.LRUHash, flags: bpfFNoCommonLRU, entries: 1 << 20}},
		{tbl: floorTable{name: "hash_1M", typ: ebpf.Hash, entries: 1 << 20}},
		{tbl: floorTable{name: "lru_4096_hot", typ: ebpf.LRUHash, entries: 4096, hot: true}},
		{tbl: floorTable{name: "miss_1M", typ: ebpf.LRUHash, entries: 1 << 20}, miss: true},
	} {
		b.Run(c.tbl.name, func(b *testing.B) {
			objs := loadFloorTable(b, c.tbl)
			prog := objs.FloorNewIpip
			if c.miss {
				prog = objs.FloorMissIpip
			}
			var prev []byte
			benchSingle(b, prog, func(i int) []byte {
				if c.tbl.hot && prev != nil {
					if err := objs.FloorCt.Delete(floorKey(prev)); err != nil {
						b.Fatalf("delete flow %d: %v", i-1, err)
					}
				}
				prev = flowPacket(tmpl, i, true)
				return prev
			}, xdpTx)
			// Each b.N round has its own table; release it before the next.
			objs.Close()
		})
	}
}
