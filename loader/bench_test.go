package loader

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/infergate/infergate/internal/privtest"
)

// Two ways to time a path with BPF_PROG_TEST_RUN:
//
//   - benchRepeat: one run of b.N repetitions, timed by the kernel. The
//     kernel does not restore the frame between repetitions, so it only
//     suits paths that leave the frame as they found it (drop, pass, L2
//     rewrite). The figure includes the test loop's own cost per repetition
//     (BenchmarkEmptyProgram, ~21 ns on the VM in BENCHMARKS.md).
//   - benchSingle: b.N runs of one repetition each, each on a frame of its
//     own (next(i)), each timed by the kernel. Every run is paired with a
//     run of an empty XDP program on the same frame, right before it, so
//     the timer's fixed cost (80-90 ns here) is measured under the same load
//     as the path; the report is median(path) - median(empty). It suits
//     encapsulation (which moves the frame's start, so repetitions would
//     run out of headroom) and new flows: next(i) returns a packet of a
//     flow never seen before, so every one of the b.N samples is a distinct
//     new flow (Maglev pick + connection insert), not a connection hit.
//     BenchmarkEstablishedFlowL2 times one path both ways, which bounds
//     the error of the subtraction.

func benchRepeat(b *testing.B, prog *ebpf.Program, pkt []byte, want uint32) {
	b.Helper()
	b.ResetTimer()
	ret, d, err := prog.Benchmark(pkt, b.N, nil)
	if err != nil {
		b.Fatal(err)
	}
	if ret != want {
		b.Fatalf("verdict %d, want %d", ret, want)
	}
	b.ReportMetric(float64(d.Nanoseconds()), "ns/packet")
}

var (
	emptyOnce sync.Once
	emptyProg *ebpf.Program
	emptyErr  error
)

// emptyXDP is an XDP program that only returns XDP_PASS (kept for the
// process: benchSingle runs it beside every sample).
func emptyXDP(b *testing.B) *ebpf.Program {
	emptyOnce.Do(func() {
		emptyProg, emptyErr = ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, xdpPass), asm.Return()}})
	})
	if emptyErr != nil {
		b.Fatal(emptyErr)
	}
	return emptyProg
}

// BenchmarkEmptyProgram: the fixed cost of one repetition in benchRepeat,
// for reading the other figures.
func BenchmarkEmptyProgram(b *testing.B) {
	privtest.Root(b)
	pinCPU(b)
	benchRepeat(b, emptyXDP(b), denyPkt(b), xdpPass)
}

func median(ds []float64) float64 {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

func benchSingle(b *testing.B, prog *ebpf.Program, next func(i int) []byte, want uint32) {
	b.Helper()
	empty := emptyXDP(b)
	ds := make([]float64, 0, b.N)
	base := make([]float64, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pkt := next(i)
		_, e, err := empty.Benchmark(pkt, 1, nil)
		if err != nil {
			b.Fatal(err)
		}
		ret, d, err := prog.Benchmark(pkt, 1, nil)
		if err != nil {
			b.Fatal(err)
		}
		if ret != want {
			b.Fatalf("run %d: verdict %d, want %d", i, ret, want)
		}
		ds = append(ds, float64(d.Nanoseconds()))
		base = append(base, float64(e.Nanoseconds()))
	}
	bm := median(base)
	b.ReportMetric(median(ds)-bm, "ns/packet")
	b.ReportMetric(bm, "timer-ns")
}

// benchSetup: the standard VIPs, a deny rule for 198.18.9.9, and a default
// class with limits high enough never to drop but engaging the buckets.
func benchSetup(b *testing.B, bl *Balancer) {
	standardSetup(b, bl)
	if err := bl.SetRules([]Rule{{Deny: true, Prefixes: pfx("198.18.9.9/32")}, {Deny: true, Prefixes: pfx("198.18.100.0/24")}}, false); err != nil {
		b.Fatal(err)
	}
	if err := bl.SetClasses(Limits{PacketsPerSecond: 1e9, PacketBurst: 1e9, NewConnsPerSecond: 1e9, NewConnBurst: 1e9},
		[]Class{{Prefixes: pfx("198.18.77.0/24"), Limits: Limits{PacketsPerSecond: 1, PacketBurst: 1}}}); err != nil {
		b.Fatal(err)
	}
}

var (
	smallOnce sync.Once
	small     *Balancer
	smallErr  error
)

// benchBalancer is one balancer shared by the small-map benchmarks of a
// process (loading one per b.N round would dominate the run).
func benchBalancer(b *testing.B) *Balancer {
	privtest.Root(b)
	pinCPU(b)
	smallOnce.Do(func() {
		cfg := testConfig()
		cfg.MaxFlows = 1 << 20
		small, smallErr = LoadBalancer(cfg, "")
		if smallErr == nil {
			benchSetup(b, small)
		}
	})
	if smallErr != nil {
		b.Fatal(smallErr)
	}
	return small
}

var denyPkt = func(t testing.TB) []byte { return tcp("198.18.9.9", "198.18.0.10", 40000, 443).build(t) }

func BenchmarkDeny(b *testing.B) {
	bl := benchBalancer(b)
	benchRepeat(b, bl.Program(), denyPkt(b), xdpDrop)
}

func BenchmarkRateLimited(b *testing.B) {
	bl := benchBalancer(b)
	pkt := tcp("198.18.77.1", "198.18.0.99", 40000, 80).build(b)
	run(b, bl.Program(), pkt) // spends the one token
	benchRepeat(b, bl.Program(), pkt, xdpDrop)
}

func BenchmarkPassToStack(b *testing.B) {
	bl := benchBalancer(b)
	benchRepeat(b, bl.Program(), tcp("198.18.5.5", "198.18.0.99", 40000, 80).build(b), xdpPass)
}

func establishedPkt(t testing.TB) []byte {
	p := tcp("198.18.5.5", "198.18.0.10", 40000, 443)
	p.syn, p.ack = false, true
	return p.build(t)
}

func BenchmarkEstablishedFlow(b *testing.B) {
	bl := benchBalancer(b)
	pkt := establishedPkt(b)
	if ret, _ := run(b, bl.Program(), pkt); ret != xdpTx {
		b.Fatalf("verdict %d", ret)
	}
	benchSingle(b, bl.Program(), func(int) []byte { return pkt }, xdpTx)
}

// The established path with L2 DSR leaves the frame reusable, so it can be
// timed both ways: a cross-check of benchSingle's correction.
func BenchmarkEstablishedFlowL2(b *testing.B) {
	bl := benchBalancer(b)
	if err := bl.SetBackend(20, Backend{Addr: backendAddr(0), MAC: []byte{2, 0, 0, 0, 0xbe, 1}}); err != nil {
		b.Fatal(err)
	}
	v := VIP{ID: 6, Addr: vip4.Addr, Port: 8443, Protocol: 6, L2: true}
	if err := bl.UpsertVIP(v, []uint32{20}); err != nil {
		b.Fatal(err)
	}
	p := tcp("198.18.5.5", "198.18.0.10", 40000, 8443)
	p.syn, p.ack = false, true
	pkt := p.build(b)
	if ret, _ := run(b, bl.Program(), pkt); ret != xdpTx {
		b.Fatalf("verdict %d", ret)
	}
	b.Run("repeat", func(b *testing.B) { benchRepeat(b, bl.Program(), pkt, xdpTx) })
	b.Run("single", func(b *testing.B) { benchSingle(b, bl.Program(), func(int) []byte { return pkt }, xdpTx) })
}

// BenchmarkNewFlow times b.N distinct new flows (see benchSingle). Each b.N
// round loads a balancer of its own, so every round inserts into a table
// in the same state (empty, 1M slots, no eviction), whatever ran before.
func BenchmarkNewFlow(b *testing.B) {
	privtest.Root(b)
	pinCPU(b)
	cfg := testConfig()
	cfg.MaxFlows = 1 << 20
	bl, err := LoadBalancer(cfg, "")
	if err != nil {
		b.Fatal(err)
	}
	defer bl.Close()
	benchSetup(b, bl)
	tmpl := tcp("198.19.0.0", "198.18.0.10", 0, 443).build(b)
	benchSingle(b, bl.Program(), func(i int) []byte { return flowPacket(tmpl, i, true) }, xdpTx)
}

// xdp-filter (xdp-tools) on the same deny packet. xdpfilt_dny_ip is the
// default-deny variant: the packet's addresses are not listed (one other
// address is), so both lookups miss and it drops. xdpfilt_alw_ip is the
// default-allow variant with the source listed: it drops on a source hit.
func BenchmarkXDPFilterDeny(b *testing.B) {
	privtest.Root(b)
	pinCPU(b)
	dir := xdpFilterDir(b)
	for _, c := range []struct {
		obj    string
		listed netip.Addr
	}{
		{"xdpfilt_dny_ip.o", netip.MustParseAddr("198.18.33.33")},
		{"xdpfilt_alw_ip.o", netip.MustParseAddr("198.18.9.9")},
	} {
		b.Run(strings.TrimSuffix(c.obj, ".o"), func(b *testing.B) {
			spec, err := ebpf.LoadCollectionSpec(filepath.Join(dir, c.obj))
			if err != nil {
				b.Fatal(err)
			}
			for _, m := range spec.Maps {
				m.Pinning = ebpf.PinNone
			}
			coll, err := ebpf.NewCollection(spec)
			if err != nil {
				b.Fatal(err)
			}
			defer coll.Close()
			var prog *ebpf.Program
			for _, p := range coll.Programs {
				prog = p
			}
			const mapFlagSrcDst = 1 | 2 // MAP_FLAG_SRC | MAP_FLAG_DST in xdp-filter
			a := c.listed.As4()
			vals := make([]uint64, nCPU(b))
			for i := range vals {
				vals[i] = mapFlagSrcDst
			}
			if err := coll.Maps["filter_ipv4"].Update(binary.NativeEndian.Uint32(a[:]), vals, ebpf.UpdateAny); err != nil {
				b.Fatal(err)
			}
			benchRepeat(b, prog, denyPkt(b), xdpDrop)
		})
	}
}

func nCPU(b *testing.B) int {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func xdpFilterDir(b *testing.B) string {
	for _, d := range []string{"/usr/lib/x86_64-linux-gnu/bpf", "/usr/lib/bpf", "/usr/local/lib/bpf"} {
		if _, err := os.Stat(filepath.Join(d, "xdpfilt_dny_ip.o")); err == nil {
			return d
		}
	}
	privtest.Skip(b, "xdp-tools' xdpfilt_dny_ip.o not installed (apt install libxdp1)")
	return ""
}

// At scale: 1M flows, 1M prefixes (mixed lengths, v4 and v6), 1M buckets,
// 1,000 backends behind one VIP.
type scaleFixture struct {
	b        *Balancer
	estPkt   []byte
	lpmDeny  netip.Addr // covered by a random v4 prefix in the LPM trie
	memory   map[string]string
	setupDur time.Duration
}

var (
	scaleOnce sync.Once
	scale     *scaleFixture
	scaleErr  error
)

func getScale(b *testing.B) *scaleFixture {
	privtest.Root(b)
	pinCPU(b)
	scaleOnce.Do(func() { scale, scaleErr = buildScale(b) })
	if scaleErr != nil {
		b.Fatal(scaleErr)
	}
	return scale
}

const (
	scaleFlows    = 1_000_000
	scalePrefixes = 1_000_000
	scaleBuckets  = 1_000_000
	scaleBackends = 1000
)

func buildScale(b *testing.B) (*scaleFixture, error) {
	start := time.Now()
	cfg := scaleConfig()
	bl, err := LoadBalancer(cfg, "")
	if err != nil {
		return nil, err
	}
	var bes []uint32
	for id := uint32(0); id < scaleBackends; id++ {
		if err := bl.SetBackend(id, Backend{Addr: netip.AddrFrom4([4]byte{198, 18, byte(100 + id/250), byte(id % 250)})}); err != nil {
			return nil, err
		}
		bes = append(bes, id)
	}
	if err := bl.UpsertVIP(vip4, buildTable(b, bes, nil)); err != nil {
		return nil, err
	}
	// Prefixes: random, avoiding the test ranges, half v4 (/16../32), half
	// v6 (/32../128 in steps of 8), plus the benchmark's deny address.
	rng := rand.New(rand.NewPCG(1, 2))
	reserved4 := netip.MustParsePrefix("198.18.0.0/15")
	reserved6 := netip.MustParsePrefix("2001:db8::/32")
	seen := map[netip.Prefix]bool{}
	prefixes := []netip.Prefix{netip.MustParsePrefix("198.18.9.9/32")}
	var lpmDeny netip.Addr
	for len(prefixes) < scalePrefixes {
		var p netip.Prefix
		if len(prefixes)%2 == 0 {
			var a [4]byte
			binary.BigEndian.PutUint32(a[:], rng.Uint32())
			p, _ = netip.AddrFrom4(a).Prefix(16 + rng.IntN(17))
			if p.Overlaps(reserved4) {
				continue
			}
		} else {
			var a [16]byte
			binary.BigEndian.PutUint64(a[:], rng.Uint64())
			binary.BigEndian.PutUint64(a[8:], rng.Uint64())
			p, _ = netip.AddrFrom16(a).Prefix(32 + 8*rng.IntN(13))
			if p.Overlaps(reserved6) {
				continue
			}
		}
		if !seen[p] {
			seen[p] = true
			prefixes = append(prefixes, p)
		}
		if !lpmDeny.IsValid() && p.Addr().Is4() && p.Bits() < 32 {
			lpmDeny = p.Addr().Next()
		}
	}
	if err := bl.SetRules([]Rule{{Deny: true, Prefixes: prefixes}}, false); err != nil {
		return nil, err
	}
	if err := bl.SetClasses(Limits{PacketsPerSecond: 1e9, PacketBurst: 1e9, NewConnsPerSecond: 1e9, NewConnBurst: 1e9}, nil); err != nil {
		return nil, err
	}
	// Buckets: 1M clients in the LRU table.
	keys := make([]balancerAddrKey, 0, scaleBuckets)
	vals := make([]balancerBucket, 0, scaleBuckets)
	for i := 0; i < scaleBuckets; i++ {
		keys = append(keys, balancerAddrKey{Addr: [4]uint32{0x0a000000 + uint32(i)}, Family: familyV4})
		vals = append(vals, balancerBucket{LastSeenNs: monotonicNow()})
	}
	if _, err := bl.objs.RlBuckets.BatchUpdate(keys, vals, nil); err != nil {
		return nil, fmt.Errorf("fill buckets: %w", err)
	}
	// Flows: 1M entries.
	n := 0
	for i := 0; i < scaleFlows; i++ {
		k := balancerFlowKey4{Src: 0x0b000000 + uint32(i), Dst: addrWords(vip4.Addr)[0], Sport: htons(1024), Dport: htons(443), Proto: 6}
		v := balancerCtVal{Backend: uint32(i % scaleBackends), Vip: vip4.ID, Flags: 1, Hash: uint32(i) * 2654435761}
		if err := bl.objs.Conntrack.Update(k, v, ebpf.UpdateAny); err != nil {
			return nil, fmt.Errorf("fill flows: %w", err)
		}
		n++
	}
	est := establishedPkt(b)
	if ret, _ := run(b, bl.Program(), est); ret != xdpTx {
		return nil, fmt.Errorf("established packet at scale: verdict %d", ret)
	}
	f, err := bl.Fill()
	if err != nil {
		return nil, err
	}
	mem, err := scaleMemory(bl, f)
	if err != nil {
		return nil, err
	}
	return &scaleFixture{b: bl, estPkt: est, lpmDeny: lpmDeny, memory: mem, setupDur: time.Since(start)}, nil
}

// memlock reads the kernel's memory accounting of a map from fdinfo.
func memlock(m *ebpf.Map) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", m.FD()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "memlock:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("no memlock in fdinfo")
}

func innerMap(outer *ebpf.Map, slot uint32) (*ebpf.Map, error) {
	var id uint32
	if err := outer.Lookup(slot, &id); err != nil {
		return nil, err
	}
	return ebpf.NewMapFromID(ebpf.MapID(id))
}

func scaleMemory(bl *Balancer, f Fill) (map[string]string, error) {
	out := map[string]string{}
	add := func(name string, m *ebpf.Map, entries int) error {
		n, err := memlock(m)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		info, _ := m.Info()
		// Hash and LRU maps preallocate max_entries; inner maps are created
		// at their content's size: per entry = memlock / max_entries.
		out[name] = fmt.Sprintf("%d entries (max %d): %.1f MiB, %.0f B per max entry", entries, info.MaxEntries, float64(n)/(1<<20), float64(n)/float64(max(info.MaxEntries, 1)))
		return nil
	}
	if err := add("conntrack (IPv4)", bl.objs.Conntrack, f.Flows-f.Flows6); err != nil {
		return nil, err
	}
	if err := add("conntrack6 (IPv6, empty)", bl.objs.Conntrack6, f.Flows6); err != nil {
		return nil, err
	}
	if err := add("rl_buckets", bl.objs.RlBuckets, f.Buckets); err != nil {
		return nil, err
	}
	if err := add("rl_established (empty, preallocated)", bl.objs.RlEstablished, int(bl.cfg.MaxEstablishedClients)); err != nil {
		return nil, err
	}
	for _, t := range []struct {
		name  string
		outer *ebpf.Map
	}{{"fw_exact4", bl.objs.FwExact4}, {"fw_exact6", bl.objs.FwExact6}, {"fw_lpm4", bl.objs.FwLpm4}, {"fw_lpm6", bl.objs.FwLpm6}} {
		m, err := innerMap(t.outer, bl.conf.FwSlot)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.name, err)
		}
		info, _ := m.Info()
		cnt := int(info.MaxEntries) // inner maps are created at the rule set's size
		if err := add(t.name, m, cnt); err != nil {
			m.Close()
			return nil, err
		}
		m.Close()
	}
	ring, err := innerMap(bl.objs.MaglevRings, vip4.ID)
	if err != nil {
		return nil, err
	}
	defer ring.Close()
	info, _ := ring.Info()
	if err := add("maglev ring (1000 backends)", ring, int(info.MaxEntries)); err != nil {
		return nil, err
	}
	if err := add("backends", bl.objs.Backends, int(bl.cfg.MaxBackends)); err != nil {
		return nil, err
	}
	return out, nil
}

func BenchmarkEstablishedFlowAtScale(b *testing.B) {
	s := getScale(b)
	b.Logf("setup %v; memory: %v", s.setupDur, s.memory)
	benchSingle(b, s.b.Program(), func(int) []byte { return s.estPkt }, xdpTx)
}

func BenchmarkDenyAtScale(b *testing.B) {
	s := getScale(b)
	benchRepeat(b, s.b.Program(), denyPkt(b), xdpDrop)
}

// The deny path when the match is a prefix in the 1M-entry LPM tries.
func BenchmarkDenyPrefixAtScale(b *testing.B) {
	s := getScale(b)
	b.Logf("source %s", s.lpmDeny)
	benchRepeat(b, s.b.Program(), tcp(s.lpmDeny.String(), "198.18.0.10", 40000, 443).build(b), xdpDrop)
}

// The deny path when the match is a prefix (small LPM trie).
func BenchmarkDenyPrefix(b *testing.B) {
	bl := benchBalancer(b)
	benchRepeat(b, bl.Program(), tcp("198.18.100.7", "198.18.0.10", 40000, 443).build(b), xdpDrop)
}

// The deny path for a packet to a port without VIPs (no connection lookup).
func BenchmarkDenyOtherPort(b *testing.B) {
	bl := benchBalancer(b)
	benchRepeat(b, bl.Program(), tcp("198.18.9.9", "198.18.0.10", 40000, 8080).build(b), xdpDrop)
}

// The deny path for a non-SYN packet to a VIP port: the connection table is
// looked up (and misses) before the host rules, the order that lets
// established flows skip the firewall (see balancer.c).
func BenchmarkDenyNonSYN(b *testing.B) {
	bl := benchBalancer(b)
	p := tcp("198.18.9.9", "198.18.0.10", 40000, 443)
	p.syn, p.ack = false, true
	benchRepeat(b, bl.Program(), p.build(b), xdpDrop)
}
