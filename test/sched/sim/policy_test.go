package sim

import (
	"testing"

	"github.com/infergate/infergate/gpu/score"
)

func testView(n int) *View {
	names := BackendNames(testFleet[:n])
	return &View{Backends: names, OpenConns: make([]int, n), InFlight: make([]int, n), PrefixBlock: prefixBlocks}
}

func TestRoundRobinAndLeastConn(t *testing.T) {
	v := testView(4)
	rr := &RoundRobin{}
	for i := 0; i < 8; i++ {
		if got := rr.Pick(v, &Conn{}, nil); got != i%4 {
			t.Fatalf("round robin pick %d = %d", i, got)
		}
	}
	lc := &LeastConn{}
	v.OpenConns = []int{3, 1, 2, 1}
	for i := 0; i < 4; i++ {
		got := lc.Pick(v, &Conn{}, nil)
		if v.OpenConns[got] != 1 {
			t.Fatalf("least-conn picked a backend with %d connections", v.OpenConns[got])
		}
	}
}

// LeastWork picks the backend whose in-flight requests, one more
// counted, are the fewest for its capacity, and spreads ties.
func TestLeastWork(t *testing.T) {
	v := testView(4)
	p := &LeastWork{Capacity: []float64{4, 4, 0.2, 0.2}}
	// (0+1)/4 on both H100s beats (0+1)/0.2 on the A10s; ties alternate.
	a, b := p.Pick(v, &Conn{}, nil), p.Pick(v, &Conn{}, nil)
	if a > 1 || b > 1 || a == b {
		t.Fatalf("idle fleet: picks %d then %d, want both H100s", a, b)
	}
	// An idle A10 (1/0.2 = 5) wins only once every H100 is past 5.
	v.InFlight = []int{18, 20, 0, 0}
	if got := p.Pick(v, &Conn{}, nil); got != 0 {
		t.Fatalf("in flight %v: pick %d, want 0 (19/4 < 5)", v.InFlight, got)
	}
	v.InFlight = []int{20, 20, 0, 1}
	if got := p.Pick(v, &Conn{}, nil); got != 2 {
		t.Fatalf("in flight %v: pick %d, want 2", v.InFlight, got)
	}
}

func shareOf(g *GPU, b int) float64 {
	n := 0
	for _, id := range g.table {
		if int(id) == b {
			n++
		}
	}
	return float64(n) / float64(len(g.table))
}

// The gpu policy moves new connections away from a host whose reports
// show KV pressure and a queue, and weighs GPU models by capacity; with
// unchanging reports it stops rebuilding (hysteresis).
func TestGPUPolicyFollowsReports(t *testing.T) {
	v := testView(4)
	g, err := NewGPU(v.Backends, score.Config{})
	if err != nil {
		t.Fatal(err)
	}
	report := func(b int, kv, waiting float64) score.Report {
		return score.Report{
			Time: simTime(v.Now), Healthy: true, Signals: score.HasKVCache | score.HasWaiting,
			KVCacheUsage: kv, RequestsWaiting: waiting, Capacity: score.CapacityForModel(testFleet[b].Name),
		}
	}
	for tick := 0; tick < 30; tick++ {
		v.Now = float64(tick)
		g.Report(v, 0, report(0, 0.95, 40)) // a swamped H100
		g.Report(v, 1, report(1, 0.1, 0))
		g.Report(v, 2, report(2, 0.1, 0))
		g.Report(v, 3, report(3, 0.1, 0))
		g.Tick(v)
	}
	busy, idle, small := shareOf(g, 0), shareOf(g, 1), shareOf(g, 2)
	if !(busy < small && small < idle) {
		t.Fatalf("shares: swamped H100 %.3f, idle A10 %.3f, idle H100 %.3f", busy, small, idle)
	}
	if idle < 4*small {
		t.Fatalf("idle H100 share %.3f not well above idle A10's %.3f: capacity ignored", idle, small)
	}
	before := g.Rebuilds
	for tick := 30; tick < 40; tick++ {
		v.Now = float64(tick)
		for b := 0; b < 4; b++ {
			kv, w := 0.1, 0.0
			if b == 0 {
				kv, w = 0.95, 40
			}
			g.Report(v, b, report(b, kv, w))
		}
		g.Tick(v)
	}
	if g.Rebuilds != before {
		t.Fatalf("%d rebuilds with steady reports", g.Rebuilds-before)
	}
	// Connections hash into the table: same hash, same backend.
	c := &Conn{Hash: 12345}
	if g.Pick(v, c, nil) != g.Pick(v, c, nil) {
		t.Fatal("pick is not a function of the flow hash")
	}
}

func TestGPUPrefixKeepsAPrefixTogether(t *testing.T) {
	v := testView(4)
	p, err := NewGPUPrefix(v.Backends, score.Config{})
	if err != nil {
		t.Fatal(err)
	}
	first := -1
	for i := 0; i < 20; i++ {
		r := &Request{ID: i, Prompt: 3200, Prefix: 3, PrefixLen: 3000}
		b := p.Pick(v, nil, r)
		if first < 0 {
			first = b
		}
		if b != first {
			t.Fatalf("request %d of the same prefix went to %d, not %d", i, b, first)
		}
	}
	// Under load the bound sends it elsewhere.
	v.InFlight[first] = 50
	if b := p.Pick(v, nil, &Request{ID: 99, Prompt: 3200, Prefix: 3, PrefixLen: 3000}); b == first {
		t.Fatal("overloaded home still chosen")
	}
}
