package loader

import (
	"fmt"
	"testing"
	"time"
)

func verdicts(t *testing.T, b *Balancer, pkts ...pktSpec) []uint32 {
	t.Helper()
	var out []uint32
	for _, p := range pkts {
		ret, _ := run(t, b.Program(), p.build(t))
		out = append(out, ret)
	}
	return out
}

func repeat(p pktSpec, n int) []pktSpec {
	out := make([]pktSpec, n)
	for i := range out {
		out[i] = p
	}
	return out
}

func wantVerdicts(t *testing.T, what string, got []uint32, want ...uint32) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: verdicts %v, want %v", what, got, want)
	}
}

func TestRateLimitPacketsAndClasses(t *testing.T) {
	b := newBalancer(t, testConfig())
	standardSetup(t, b)
	err := b.SetClasses(Limits{}, []Class{
		{Prefixes: pfx("198.18.30.0/24"), Limits: Limits{PacketsPerSecond: 1, PacketBurst: 3}},
		{Prefixes: pfx("2001:db8:30::/48"), Limits: Limits{PacketsPerSecond: 1, PacketBurst: 2}},
		{Prefixes: pfx("198.18.30.128/25"), Limits: Limits{PacketsPerSecond: 1, PacketBurst: 1}}, // more specific class
	})
	if err != nil {
		t.Fatal(err)
	}
	const P, D = xdpPass, xdpDrop
	wantVerdicts(t, "class 1", verdicts(t, b, repeat(tcp("198.18.30.1", "198.18.0.99", 1, 80), 5)...), P, P, P, D, D)
	if s := stats(t, b); s[StatDropRatePackets] != 2 {
		t.Fatalf("drop_rate_packets %d", s[StatDropRatePackets])
	}
	// Aggregation /32 (default): a neighbour has its own bucket.
	wantVerdicts(t, "neighbour", verdicts(t, b, repeat(tcp("198.18.30.2", "198.18.0.99", 1, 80), 4)...), P, P, P, D)
	wantVerdicts(t, "longer class", verdicts(t, b, repeat(tcp("198.18.30.200", "198.18.0.99", 1, 80), 2)...), P, D)
	wantVerdicts(t, "v6 class", verdicts(t, b, repeat(tcp("2001:db8:30::1", "2001:db8::99", 1, 80), 3)...), P, P, D)
	wantVerdicts(t, "default class (unlimited)", verdicts(t, b, repeat(tcp("198.18.31.1", "198.18.0.99", 1, 80), 6)...), P, P, P, P, P, P)
	if f, err := b.Fill(); err != nil || f.Buckets != 5 {
		t.Fatalf("fill %+v %v: want 5 buckets (one per client, unlimited ones too: they cache their class)", f, err)
	}

	// Reclassify: the same source gets the default (unlimited) class.
	if err := b.SetClasses(Limits{}, nil); err != nil {
		t.Fatal(err)
	}
	wantVerdicts(t, "after removing classes", verdicts(t, b, repeat(tcp("198.18.30.1", "198.18.0.99", 1, 80), 3)...), P, P, P)
}

func TestRateLimitAggregation(t *testing.T) {
	cfg := testConfig()
	cfg.AggregateV4, cfg.AggregateV6 = 24, 64
	b := newBalancer(t, cfg)
	if err := b.SetClasses(Limits{PacketsPerSecond: 1, PacketBurst: 3}, nil); err != nil {
		t.Fatal(err)
	}
	const P, D = xdpPass, xdpDrop
	got := verdicts(t, b, tcp("198.18.30.1", "198.18.0.99", 1, 80), tcp("198.18.30.2", "198.18.0.99", 1, 80),
		tcp("198.18.30.3", "198.18.0.99", 1, 80), tcp("198.18.30.4", "198.18.0.99", 1, 80), tcp("198.18.31.4", "198.18.0.99", 1, 80))
	wantVerdicts(t, "one /24 bucket", got, P, P, P, D, P)
	got = verdicts(t, b, tcp("2001:db8:1:2::1", "2001:db8::99", 1, 80), tcp("2001:db8:1:2::2", "2001:db8::99", 1, 80),
		tcp("2001:db8:1:2:ffff::3", "2001:db8::99", 1, 80), tcp("2001:db8:1:2::4", "2001:db8::99", 1, 80), tcp("2001:db8:1:3::1", "2001:db8::99", 1, 80))
	wantVerdicts(t, "one /64 bucket", got, P, P, P, D, P)
}

func TestRateLimitRefill(t *testing.T) {
	b := newBalancer(t, testConfig())
	// 20/s: a token every 50 ms, burst 2. The limiter's clock advances in
	// scheduler ticks (<= 4 ms), so sleeps keep clear of token boundaries.
	if err := b.SetClasses(Limits{PacketsPerSecond: 20, PacketBurst: 2}, nil); err != nil {
		t.Fatal(err)
	}
	p := tcp("198.18.30.1", "198.18.0.99", 1, 80)
	const P, D = xdpPass, xdpDrop
	wantVerdicts(t, "burst", verdicts(t, b, repeat(p, 3)...), P, P, D)
	// Sleeps may overshoot on a loaded machine: count the passes before
	// the first drop and check them against the time that really passed.
	passes := func() int {
		n := 0
		for _, v := range verdicts(t, b, repeat(p, 4)...) {
			if v != P {
				break
			}
			n++
		}
		return n
	}
	for _, sleep := range []time.Duration{120 * time.Millisecond, 60 * time.Millisecond} {
		start := time.Now()
		time.Sleep(sleep)
		n := passes()
		elapsed := time.Since(start)
		// Tokens regained: elapsed/50ms, capped at the burst (2); the
		// clock's tick (<= 4 ms) may round down by one.
		want := min(int(elapsed/(50*time.Millisecond)), 2)
		if n > want || n < min(int((elapsed-5*time.Millisecond)/(50*time.Millisecond)), 2) || n == 0 {
			t.Fatalf("after %v: %d packets passed, want %d", elapsed, n, want)
		}
	}
}

func TestRateLimitNewConnections(t *testing.T) {
	b := newBalancer(t, testConfig())
	standardSetup(t, b)
	if err := b.SetClasses(Limits{NewConnsPerSecond: 1, NewConnBurst: 2}, nil); err != nil {
		t.Fatal(err)
	}
	const T, P, D = xdpTx, xdpPass, xdpDrop
	syn := func(sport uint16) pktSpec { return tcp("198.18.40.1", "198.18.0.10", sport, 443) }
	wantVerdicts(t, "SYNs to VIP", verdicts(t, b, syn(1), syn(2), syn(3)), T, T, D)
	ack := syn(1)
	ack.syn, ack.ack = false, true
	wantVerdicts(t, "established flow", verdicts(t, b, ack, ack, ack), T, T, T)
	if s := stats(t, b); s[StatDropRateConns] != 1 {
		t.Fatalf("drop_rate_conns %d", s[StatDropRateConns])
	}
	// UDP: the first packet of a flow is a new connection, later ones not.
	u := func(sport uint16) pktSpec { return udp("198.18.40.2", "198.18.0.11", sport, 53) }
	wantVerdicts(t, "UDP flows", verdicts(t, b, u(1), u(2), u(1), u(2), u(3)), T, T, T, T, D)
	// The node's own services: bare SYNs count, other segments do not.
	s := func(sport uint16) pktSpec { return tcp("198.18.40.3", "198.18.0.99", sport, 22) }
	a := s(1)
	a.syn, a.ack = false, true
	wantVerdicts(t, "to the stack", verdicts(t, b, s(1), s(2), s(3), a, a), P, P, D, P, P)
}

func TestVIPGuard(t *testing.T) {
	b := newBalancer(t, testConfig())
	standardSetup(t, b)
	v := vip4
	v.NewConnsPerSecond, v.NewConnBurst = 1, 2
	if err := b.UpsertVIP(v, buildTable(t, ids(0, 4), nil)); err != nil {
		t.Fatal(err)
	}
	const T, D = xdpTx, xdpDrop
	got := verdicts(t, b, tcp("198.18.41.1", "198.18.0.10", 1, 443), tcp("198.18.41.2", "198.18.0.10", 1, 443),
		tcp("198.18.41.3", "198.18.0.10", 1, 443), tcp("198.18.41.1", "198.18.0.10", 1, 443))
	wantVerdicts(t, "guard", got, T, T, D, T)
	if s := stats(t, b); s[StatDropVIPGuard] != 1 {
		t.Fatalf("drop_vip_guard %d", s[StatDropVIPGuard])
	}
	// Other VIPs are not guarded.
	wantVerdicts(t, "other VIP", verdicts(t, b, udp("198.18.41.4", "198.18.0.11", 1, 53)), T)
}

// A flood of spoofed sources churns the LRU bucket table, but a client with
// an established flow was promoted to the established table and keeps its
// bucket (and so its rate state); a client without one is evicted.
func TestSpoofFloodKeepsEstablishedClients(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBuckets = 128
	b := newBalancer(t, cfg)
	standardSetup(t, b)
	// Every client is limited, so every source gets a bucket.
	if err := b.SetClasses(Limits{PacketsPerSecond: 1, PacketBurst: 5}, nil); err != nil {
		t.Fatal(err)
	}
	const T, D = xdpTx, xdpDrop
	// Built ahead, so that little time passes between spending the
	// client's tokens and checking they are still spent (1 token/s).
	var flood [][]byte
	tmpl := tcp("198.19.0.0", "198.18.0.10", 7, 443).build(t)
	for i := 0; i < 4000; i++ {
		p := append([]byte(nil), tmpl...)
		p[28], p[29] = byte(i>>8), byte(i)
		flood = append(flood, p)
	}
	est := tcp("198.18.50.1", "198.18.0.10", 1000, 443)
	estAck := est
	estAck.syn, estAck.ack = false, true
	wantVerdicts(t, "established client", verdicts(t, b, est, estAck, estAck, estAck, estAck, estAck), T, T, T, T, T, D)
	idle := tcp("198.18.50.2", "198.18.0.10", 1000, 443)
	wantVerdicts(t, "SYN-only client", verdicts(t, b, idle), T)
	s := stats(t, b)
	if s[StatBucketPromote] != 1 {
		t.Fatalf("bucket_promote %d, want 1", s[StatBucketPromote])
	}

	for _, p := range flood {
		run(t, b.Program(), p)
	}
	var bk balancerBucket
	estKey := balancerAddrKey{Addr: addrWords(est.src), Family: familyV4}
	if !establishedClient(t, b, estKey) {
		t.Fatal("established client's bucket gone after the flood")
	}
	idleKey := balancerAddrKey{Addr: addrWords(idle.src), Family: familyV4}
	if err := b.objs.RlBuckets.Lookup(idleKey, &bk); err == nil {
		t.Fatal("the flood did not evict the SYN-only client: the test proves nothing")
	}
	// Its state survived too: still out of tokens, not a fresh bucket.
	wantVerdicts(t, "established client after flood", verdicts(t, b, estAck), D)
	f, err := b.Fill()
	if err != nil || f.Buckets > int(cfg.MaxBuckets) || f.EstablishedClients != 1 {
		t.Fatalf("fill %+v %v", f, err)
	}
	// Pruning by idleness.
	if n, err := b.ExpireIdleClients(time.Hour); err != nil || n != 0 {
		t.Fatalf("expire(1h) = %d, %v", n, err)
	}
	time.Sleep(5 * time.Millisecond)
	if n, err := b.ExpireIdleClients(time.Millisecond); err != nil || n != 1 {
		t.Fatalf("expire(1ms) = %d, %v", n, err)
	}
}

// establishedClient reports whether key holds a slot in the established
// clients' table.
func establishedClient(t *testing.T, b *Balancer, key balancerAddrKey) bool {
	t.Helper()
	found := 0
	err := b.scanEstablished(func(_ uint32, e *balancerEstClient) {
		if e.State == estUsed && e.Key == key {
			found++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if found > 1 {
		t.Fatalf("client %v holds %d slots", key, found)
	}
	return found == 1
}

// The established clients' table is searched by open addressing within a
// bounded window: with 4 clients configured it has 8 slots, one window.
// Eight clients (v4 and v6) are promoted, a ninth finds the window full
// (counted, its packets still go through), a pruned slot is probed past
// by the others' lookups and reused by the ninth.
func TestEstablishedClientsTable(t *testing.T) {
	cfg := testConfig()
	cfg.MaxEstablishedClients = 4
	b := newBalancer(t, cfg)
	standardSetup(t, b)
	if err := b.SetClasses(Limits{PacketsPerSecond: 1, PacketBurst: 100}, nil); err != nil {
		t.Fatal(err)
	}
	const T = xdpTx
	client := func(i int) (syn, ack pktSpec) {
		if i%2 == 0 {
			syn = tcp(fmt.Sprintf("198.18.%d.1", 60+i), "198.18.0.10", 1000, 443)
		} else {
			syn = tcp(fmt.Sprintf("2001:db8:60:%x::1", i), "2001:db8::10", 1000, 443)
		}
		ack = syn
		ack.syn, ack.ack = false, true
		return syn, ack
	}
	key := func(i int) balancerAddrKey {
		s, _ := client(i)
		k := balancerAddrKey{Addr: addrWords(s.src), Family: familyV4}
		if s.src.Is6() {
			k.Addr[2], k.Addr[3] = 0, 0 // aggregated to /64
			k.Family = familyV6
		}
		return k
	}
	for i := 0; i < 8; i++ {
		syn, ack := client(i)
		wantVerdicts(t, fmt.Sprintf("client %d", i), verdicts(t, b, syn, ack), T, T)
	}
	s := stats(t, b)
	if s[StatBucketPromote] != 8 || s[StatBucketPromoteFail] != 0 {
		t.Fatalf("promote %d, fail %d; want 8, 0", s[StatBucketPromote], s[StatBucketPromoteFail])
	}
	for i := 0; i < 8; i++ {
		if !establishedClient(t, b, key(i)) {
			t.Fatalf("client %d not in the established table", i)
		}
	}
	syn8, ack8 := client(8)
	wantVerdicts(t, "client 8, table full", verdicts(t, b, syn8, ack8), T, T)
	if s := stats(t, b); s[StatBucketPromoteFail] != 1 {
		t.Fatalf("promote_fail %d, want 1", s[StatBucketPromoteFail])
	}
	if f, err := b.Fill(); err != nil || f.EstablishedClients != 8 {
		t.Fatalf("fill %+v %v", f, err)
	}

	// Prune client 0's slot the way ExpireIdleClients does.
	pruned := false
	err := b.scanEstablished(func(slot uint32, e *balancerEstClient) {
		if e.State == estUsed && e.Key == key(0) {
			tomb := balancerEstClient{State: estDeleted}
			if err := b.objs.RlEstablished.Update(slot, &tomb, 0); err != nil {
				t.Fatal(err)
			}
			pruned = true
		}
	})
	if err != nil || !pruned {
		t.Fatalf("prune client 0: %v, found %v", err, pruned)
	}
	before := stats(t, b)
	for i := 1; i < 8; i++ {
		_, ack := client(i)
		wantVerdicts(t, fmt.Sprintf("client %d after prune", i), verdicts(t, b, ack), T)
	}
	after := stats(t, b)
	if after[StatBucketPromote] != before[StatBucketPromote] || after[StatBucketInsert] != before[StatBucketInsert] {
		t.Fatalf("clients 1-7 were not found past the tombstone: promote %d->%d, bucket insert %d->%d",
			before[StatBucketPromote], after[StatBucketPromote], before[StatBucketInsert], after[StatBucketInsert])
	}
	wantVerdicts(t, "client 8 again", verdicts(t, b, ack8), T)
	if s := stats(t, b); s[StatBucketPromote] != 9 {
		t.Fatalf("promote %d, want 9 (client 8 into the pruned slot)", s[StatBucketPromote])
	}
	if !establishedClient(t, b, key(8)) || establishedClient(t, b, key(0)) {
		t.Fatal("client 8 should hold client 0's old slot")
	}
	if f, err := b.Fill(); err != nil || f.EstablishedClients != 8 {
		t.Fatalf("fill %+v %v", f, err)
	}
}
