package pick

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/l7/affinity"
	"github.com/infergate/infergate/l7/route"
	"github.com/infergate/infergate/policy"
)

// backends builds a real route table's pool "p" of n backends (p-0,
// p-1, ...) so in-flight counters behave as in the gateway.
func backends(t *testing.T, n int, draining ...int) []*route.Backend {
	t.Helper()
	return backendsWith(t, n, route.Options{}, draining...)
}

// backendsWith is backends with the route table's options.
func backendsWith(t *testing.T, n int, opts route.Options, draining ...int) []*route.Backend {
	t.Helper()
	c := &policy.Compiled{}
	p := policy.CompiledPool{Name: "p"}
	for i := range n {
		b := policy.CompiledBackend{Name: fmt.Sprintf("p-%d", i), Address: netip.MustParseAddr("198.18.0.1"),
			Port: uint16(9000 + i), Weight: 100}
		for _, d := range draining {
			b.Draining = b.Draining || d == i
		}
		p.Backends = append(p.Backends, b)
	}
	c.Pools = []policy.CompiledPool{p}
	c.Gateway.Models = []policy.CompiledModel{{Name: "m", Routes: []policy.CompiledRoute{{Pool: 0, Provider: -1, Weight: 1}}}}
	tb, err := route.New(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := tb.Lookup("m")
	return m.Routes[0].Pool.Backends
}

func fixed(ws score.Weights) func() score.Weights { return func() score.Weights { return ws } }

func newPicker(t *testing.T, cfg Config) *Picker {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPickSkipsDrainedAndZero(t *testing.T) {
	bs := backends(t, 4, 1)
	p := newPicker(t, Config{Weights: fixed(score.Weights{
		"p/p-0": {Weight: 100}, "p/p-2": {Draining: true}, "p/p-3": {Weight: 100},
		// p-1 is drained by policy although its report is fine.
		"p/p-1": {Weight: 500},
	})})
	seen := map[int]int{}
	for range 2000 {
		seen[p.Pick("p", bs)]++
	}
	if seen[1] != 0 || seen[2] != 0 || seen[0] == 0 || seen[3] == 0 {
		t.Fatalf("choices %v: drained backends chosen or live ones never", seen)
	}
	none := newPicker(t, Config{Weights: fixed(score.Weights{"p/p-0": {Draining: true}})})
	if got := none.Pick("p", bs[:1]); got != -1 {
		t.Fatalf("only a drained backend: %d, want -1", got)
	}
	if got := none.PickPrefix("p", bs[:1], []byte(strings.Repeat("x", 256))); got != -1 {
		t.Fatalf("prefix, only a drained backend: %d, want -1", got)
	}
}

// Power of two choices on in-flight per unit of weight: in a closed loop
// where the chosen backend keeps the request for a while, each backend's
// share of in-flight requests follows its weight.
func TestPickFollowsWeights(t *testing.T) {
	bs := backends(t, 4)
	p := newPicker(t, Config{Weights: fixed(score.Weights{
		"p/p-0": {Weight: 400}, "p/p-1": {Weight: 100}, "p/p-2": {Weight: 100}, "p/p-3": {Weight: 5},
	})})
	const hold = 60 // requests in flight at once
	var open []func()
	counts := make([]int, len(bs))
	for i := range 20000 {
		k := p.Pick("p", bs)
		if k < 0 {
			t.Fatal("no choice")
		}
		counts[k]++
		open = append(open, bs[k].Acquire())
		if len(open) > hold {
			j := (i * 7919) % len(open) // pseudo-random completion order
			open[j]()
			open = append(open[:j], open[j+1:]...)
		}
	}
	share := func(i int) float64 { return float64(counts[i]) / 20000 }
	// Weight shares: 0.66, 0.165, 0.165, 0.008.
	if s := share(0); s < 0.55 || s > 0.75 {
		t.Errorf("weight 400 of 605: share %.3f", s)
	}
	if s := share(3); s > 0.03 {
		t.Errorf("weight 5 of 605: share %.3f, far above its weight", s)
	}
	if d := share(1) - share(2); d > 0.03 || d < -0.03 {
		t.Errorf("equal weights, shares %.3f and %.3f", share(1), share(2))
	}
}

func TestPickUnreportedIsNeutral(t *testing.T) {
	bs := backends(t, 2)
	// p-1 never reported: neutral 100 against p-0's 10, so idle p-1 wins
	// every draw of two.
	p := newPicker(t, Config{Weights: fixed(score.Weights{"p/p-0": {Weight: 10}})})
	for range 100 {
		if got := p.Pick("p", bs); got != 1 {
			t.Fatalf("got %d, want the unreported (neutral) backend", got)
		}
	}
}

func TestPickPrefixAffinityWithinBound(t *testing.T) {
	// Total 32+k in flight, 8 on each of the three others. With the plain
	// bound (Gain < 0) the home takes requests while 8+k+1 <=
	// ceil(1.25*(33+k)/4): k = 3 is the last taken, so it moves with 12
	// in flight. The system prompt is 255 blocks of 64 bytes (4080 tokens
	// at 4 bytes a token), all held by the home, so by default it may
	// carry a credit of 4*4080/1024 = 15.9 requests beyond 1.25 times the
	// others' 8+1/3 per backend: n+1-15.9 <= 10.4, so it moves with 26.
	for _, tc := range []struct {
		gain float64
		want int64
	}{{0, 26}, {-1, 12}} {
		bs := backends(t, 4)
		p := newPicker(t, Config{Weights: fixed(score.Weights{
			"p/p-0": {Weight: 100}, "p/p-1": {Weight: 100}, "p/p-2": {Weight: 100}, "p/p-3": {Weight: 100},
		}), Affinity: affinity.Config{Gain: tc.gain}})
		sys := []byte(strings.Repeat("You are a support agent for ACME. ", 480))
		first := p.PickPrefix("p", bs, append(append([]byte{}, sys...), "user: hello"...))
		for i := range 20 {
			prompt := append(append([]byte{}, sys...), fmt.Sprintf("user: question %d", i)...)
			if got := p.PickPrefix("p", bs, prompt); got != first {
				t.Fatalf("gain %v: request %d with the same system prompt went to %d, first to %d", tc.gain, i, got, first)
			}
		}
		var release []func()
		for _, b := range bs {
			for range 8 {
				release = append(release, b.Acquire())
			}
		}
		moved := -1
		for range 100 {
			got := p.PickPrefix("p", bs, append(append([]byte{}, sys...), "user: more"...))
			if got != first {
				moved = got
				break
			}
			release = append(release, bs[got].Acquire())
		}
		if moved < 0 {
			t.Fatalf("gain %v: 100 requests in flight on backend %d and the prefix never moved", tc.gain, first)
		}
		if n := bs[first].InFlight(); n != tc.want {
			t.Fatalf("gain %v: moved with %d in flight on the home, want %d (the bound)", tc.gain, n, tc.want)
		}
		// A prompt shorter than one block is power of two choices.
		if got := p.PickPrefix("p", bs, []byte("hi")); got < 0 || got == first {
			t.Fatalf("gain %v: short prompt: %d", tc.gain, got)
		}
		for _, r := range release {
			r()
		}
	}
}

func TestWeightsSnapshotReused(t *testing.T) {
	calls := 0
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	p := newPicker(t, Config{WeightsTTL: time.Second, Weights: func() score.Weights {
		calls++
		return score.Weights{"p/p-0": {Weight: 100}}
	}})
	p.now = func() time.Time { return now }
	bs := backends(t, 1)
	for range 10 {
		p.Pick("p", bs)
	}
	now = now.Add(2 * time.Second)
	p.Pick("p", bs)
	if calls != 2 {
		t.Fatalf("weights read %d times, want 2 (once per TTL)", calls)
	}
}

func TestNewValidates(t *testing.T) {
	for _, c := range []Config{
		{},
		{Weights: fixed(nil), NeutralWeight: -1},
		{Weights: fixed(nil), WeightsTTL: time.Hour},
		{Weights: fixed(nil), Affinity: affinity.Config{Bound: 0.5}},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// staticBackends is backends with the given static (policy) weights.
func staticBackends(t *testing.T, weights ...uint32) []*route.Backend {
	t.Helper()
	bs := backends(t, len(weights))
	for i, w := range weights {
		bs[i].Weight = w
	}
	return bs
}

// The operator's static weights hold under the load picker: weight 0 gets
// nothing, 100:900 splits about 1:9 when loads are equal (both idle, both
// reporting the same load, or neither reporting).
func TestPickHonoursStaticWeights(t *testing.T) {
	for name, ws := range map[string]score.Weights{
		"unreported": {},
		"equal load": {"p/p-0": {Weight: 60}, "p/p-1": {Weight: 60}},
	} {
		t.Run(name, func(t *testing.T) {
			p := newPicker(t, Config{Weights: fixed(ws)})
			zero := staticBackends(t, 0, 100)
			for range 1000 {
				if got := p.Pick("p", zero); got != 1 {
					t.Fatalf("Pick chose the weight-0 backend (%d)", got)
				}
				if got := p.PickPrefix("p", zero, []byte(strings.Repeat("shared system prompt ", 20))); got != 1 {
					t.Fatalf("PickPrefix chose the weight-0 backend (%d)", got)
				}
			}
			// In a closed loop (requests held a while, as in
			// TestPickFollowsWeights) the shares follow the weights.
			split := staticBackends(t, 100, 900)
			n := [2]int{}
			var open []func()
			for i := range 4000 {
				k := p.Pick("p", split)
				n[k]++
				open = append(open, split[k].Acquire())
				if len(open) > 40 {
					j := (i * 7919) % len(open)
					open[j]()
					open = append(open[:j], open[j+1:]...)
				}
			}
			// Expected 400 of 4000; generous bounds.
			if n[0] < 200 || n[0] > 700 {
				t.Fatalf("100:900 came out %d:%d", n[0], n[1])
			}
		})
	}
}

// Pools the policy does not steer by load are left to the route (-1).
func TestPickOnlySteersLoadReportPools(t *testing.T) {
	p := newPicker(t, Config{Weights: fixed(score.Weights{})})
	bs := backends(t, 2)
	if p.Pick("p", bs) < 0 {
		t.Fatal("every pool is steered before SetPools")
	}
	p.SetPools(&policy.Compiled{Pools: []policy.CompiledPool{{Name: "p"}, {Name: "q", LoadReports: true}}})
	if got := p.Pick("p", bs); got != -1 {
		t.Fatalf("pool without loadReports: Pick %d, want -1", got)
	}
	if got := p.PickPrefix("p", bs, []byte(strings.Repeat("x", 256))); got != -1 {
		t.Fatalf("pool without loadReports: PickPrefix %d, want -1", got)
	}
	if p.Pick("q", bs) < 0 {
		t.Fatal("pool with loadReports not steered")
	}
}
