package score

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func defaults(t *testing.T) Config {
	t.Helper()
	c, err := Config{}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func full(kv, waiting, util, memUsed float64, capacity float64) Report {
	return Report{
		Healthy:          true,
		Signals:          HasKVCache | HasWaiting | HasRunning | HasUtil | HasMemory,
		KVCacheUsage:     kv,
		RequestsWaiting:  waiting,
		RequestsRunning:  8,
		SMUtil:           util,
		MemoryUsedBytes:  uint64(memUsed * 80e9),
		MemoryTotalBytes: 80e9,
		Capacity:         capacity,
	}
}

func TestScoreIdleIsBase(t *testing.T) {
	c := defaults(t)
	r := Report{Healthy: true}
	if got := Score(r, c); got != float64(c.BaseWeight) {
		t.Fatalf("no signals: got %v, want base %d", got, c.BaseWeight)
	}
	r = full(0, 0, 0, 0, 0)
	if got := Score(r, c); got != float64(c.BaseWeight) {
		t.Fatalf("idle with all signals: got %v, want base %d", got, c.BaseWeight)
	}
}

func TestScoreMonotonicInEachSignal(t *testing.T) {
	c := defaults(t)
	prev := math.Inf(1)
	for q := 0.0; q <= 64; q++ {
		s := Score(full(0.3, q, 0.5, 0.5, 1), c)
		if !(s < prev) {
			t.Fatalf("waiting=%v: score %v not below %v", q, s, prev)
		}
		if s <= 0 {
			t.Fatalf("waiting=%v: queue alone reached zero", q)
		}
		prev = s
	}
	prev = math.Inf(1)
	for kv := 0.0; kv <= 1.0001; kv += 0.05 {
		s := Score(full(kv, 2, 0.5, 0.5, 1), c)
		if kv < 1 && !(s < prev) {
			t.Fatalf("kv=%v: score %v not below %v", kv, s, prev)
		}
		prev = s
	}
	if s := Score(full(1, 0, 0, 0, 1), c); s != 0 {
		t.Fatalf("full KV cache scored %v, want 0 before the floor", s)
	}
	prev = math.Inf(1)
	for u := 0.0; u <= 1.0001; u += 0.1 {
		s := Score(full(0.3, 2, u, 0.5, 1), c)
		if !(s < prev) {
			t.Fatalf("util=%v: score %v not below %v", u, s, prev)
		}
		prev = s
	}
	prev = math.Inf(1)
	for m := 0.0; m <= 1.0001; m += 0.1 {
		s := Score(full(0.3, 2, 0.5, m, 1), c)
		if !(s < prev) {
			t.Fatalf("mem=%v: score %v not below %v", m, s, prev)
		}
		prev = s
	}
}

func TestScorePrimarySignalsDominate(t *testing.T) {
	c := defaults(t)
	// Full utilisation and memory cost at most UtilWeight and MemWeight;
	// a KV cache at 80% costs more than both together.
	hot := Score(full(0.1, 0, 1, 1, 1), c)
	kvBound := Score(full(0.8, 0, 0, 0, 1), c)
	if !(kvBound < hot) {
		t.Fatalf("KV at 80%% scored %v, not below saturated util+mem %v", kvBound, hot)
	}
	queued := Score(full(0.1, 16, 0, 0, 1), c)
	if !(queued < hot) {
		t.Fatalf("16 waiting scored %v, not below saturated util+mem %v", queued, hot)
	}
}

func TestScoreCapacityScaling(t *testing.T) {
	c := defaults(t)
	for _, r := range []Report{full(0, 0, 0, 0, 0), full(0.5, 0, 0.7, 0.9, 0), full(0.2, 0, 1, 0.5, 0)} {
		one := r
		one.Capacity = 1
		two := r
		two.Capacity = 2
		a, b := Score(one, c), Score(two, c)
		if math.Abs(b/a-2) > 1e-9 {
			t.Fatalf("equal pressure: capacity 2 scored %v, capacity 1 %v (ratio %v, want 2)", b, a, b/a)
		}
	}
	// Equal queue per unit of capacity is equal pressure.
	a := Score(full(0.4, 4, 0.5, 0.5, 1), c)
	b := Score(full(0.4, 8, 0.5, 0.5, 2), c)
	if math.Abs(b/a-2) > 1e-9 {
		t.Fatalf("twice the queue on twice the capacity: ratio %v, want 2", b/a)
	}
	// Unknown capacity counts as 1.
	if Score(full(0.4, 4, 0.5, 0.5, 0), c) != a {
		t.Fatal("capacity 0 not treated as 1")
	}
}

func TestScoreUnknownSignalsAreNeutral(t *testing.T) {
	c := defaults(t)
	// Values without their bits must not count, whatever they hold.
	r := Report{Healthy: true, KVCacheUsage: 0.99, RequestsWaiting: 1000, SMUtil: 1,
		MemoryUsedBytes: 80e9, MemoryTotalBytes: 80e9}
	if got := Score(r, c); got != float64(c.BaseWeight) {
		t.Fatalf("absent signals changed the score: %v", got)
	}
}

func TestScoreBoundsBadInput(t *testing.T) {
	c := defaults(t)
	cases := []Report{
		full(math.NaN(), math.NaN(), math.NaN(), 0, math.NaN()),
		full(-1, -5, -1, 0, -3),
		full(7, math.Inf(1), 9, 2, math.Inf(1)),
	}
	for i, r := range cases {
		s := Score(r, c)
		if math.IsNaN(s) || s < 0 || s > float64(c.MaxWeight) {
			t.Fatalf("case %d: score %v out of [0,%d]", i, s, c.MaxWeight)
		}
	}
	if s := Score(Report{Healthy: false}, c); s != 0 {
		t.Fatalf("unhealthy scored %v", s)
	}
}

func TestConfigValidation(t *testing.T) {
	bad := []Config{
		{Alpha: 1.5},
		{Alpha: -0.1},
		{MinWeight: 50, MaxWeight: 10},
		{MaxWeight: maxWeightLimit + 1},
		{UtilWeight: 2},
		{MemWeight: -1},
		{QueueScale: -1},
		{RebuildThreshold: -0.1},
		{Staleness: -time.Second},
		{BaseWeight: 200, MaxWeight: 100},
	}
	for i, c := range bad {
		if _, err := c.WithDefaults(); err == nil {
			t.Errorf("case %d (%+v) accepted", i, c)
		}
	}
	if _, err := NewWeighter(Config{Alpha: 2}); err == nil {
		t.Error("NewWeighter accepted alpha 2")
	}
}

func TestCapacityForModel(t *testing.T) {
	cases := map[string]float64{
		"NVIDIA H100 80GB HBM3": 1,
		"NVIDIA H200":           4.8 / 3.35,
		"NVIDIA H100 PCIe":      2.0 / 3.35,
		"NVIDIA A100-SXM4-80GB": 2.04 / 3.35,
		"NVIDIA A100-SXM4-40GB": 1.555 / 3.35,
		"NVIDIA A10G":           0.6 / 3.35,
		"NVIDIA L4":             0.3 / 3.35,
		"NVIDIA L40S":           0.864 / 3.35,
		"Tesla T4":              0.32 / 3.35,
		"Some Future GPU":       0,
	}
	for name, want := range cases {
		if got := CapacityForModel(name); math.Abs(got-want) > 1e-9 {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
}

func TestSignalsJSONRoundTrip(t *testing.T) {
	r := full(0.5, 3, 0.25, 0.5, 2)
	r.Time = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	r.Signals = HasKVCache | HasWaiting | HasKVTokens
	r.KVCacheTokens = 31_000
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back != r {
		t.Fatalf("round trip: %+v != %+v", back, r)
	}
	var s Signals
	if err := json.Unmarshal([]byte(`["kvCache","fromTheFuture"]`), &s); err != nil || s != HasKVCache {
		t.Fatalf("unknown signal name: %v %v, want it skipped", s, err)
	}
	if err := json.Unmarshal([]byte(`"kvCache"`), &s); err == nil {
		t.Fatal("signals as a string accepted")
	}
	if got := (HasKVCache | HasMemory).String(); got != "kvCache,memory" {
		t.Fatalf("String: %q", got)
	}
}

// TestScoreProperties checks, over many random reports, that the score is
// bounded, that more load never raises it, and that it scales with
// capacity.
func TestScoreProperties(t *testing.T) {
	c := defaults(t)
	rng := rand.New(rand.NewPCG(6, 6))
	for i := 0; i < 20000; i++ {
		r := full(rng.Float64(), float64(rng.IntN(200)), rng.Float64(), rng.Float64(), 0.1+rng.Float64()*8)
		r.Signals = Signals(rng.IntN(32))
		s := Score(r, c)
		if s < 0 || s > float64(c.MaxWeight) || math.IsNaN(s) {
			t.Fatalf("score %v out of range for %+v", s, r)
		}
		more := r
		switch rng.IntN(4) {
		case 0:
			more.KVCacheUsage = math.Min(1, r.KVCacheUsage+rng.Float64()*0.3)
		case 1:
			more.RequestsWaiting += float64(1 + rng.IntN(10))
		case 2:
			more.SMUtil = math.Min(1, r.SMUtil+rng.Float64()*0.3)
		case 3:
			more.MemoryUsedBytes = min(r.MemoryTotalBytes, r.MemoryUsedBytes+uint64(rng.IntN(10<<30)))
		}
		if Score(more, c) > s {
			t.Fatalf("more load raised the score: %+v → %+v", r, more)
		}
		double := r
		double.Capacity = 2 * r.Capacity
		double.RequestsWaiting = 2 * r.RequestsWaiting
		if d := Score(double, c); d < float64(c.MaxWeight) && math.Abs(d-2*s) > 1e-6*s+1e-9 {
			t.Fatalf("twice the capacity under the same pressure: %v, want %v", d, 2*s)
		}
	}
}

func TestEffectiveCapacityKVCache(t *testing.T) {
	c := defaults(t)
	a10 := Report{Healthy: true, Signals: HasKVTokens, KVCacheTokens: 31_000, Capacity: CapacityForModel("NVIDIA A10")}
	got := EffectiveCapacity(a10, c)
	// g(31k)/g(262k) with X0 = 131072: 0.191/0.667 = 0.287, times 0.179.
	g := func(x float64) float64 { return x / (DefaultKVWeightTokens + x) }
	want := 0.6 / 3.35 * g(31_000) / g(DefaultKVSaturationTokens)
	if math.Abs(got-want) > 1e-12 || got > 0.06 || got < 0.04 {
		t.Fatalf("A10 with 31k KV tokens: capacity %v, want %v (near the simulated 0.059)", got, want)
	}
	// Without the signal the size is ignored.
	a10.Signals = 0
	if got := EffectiveCapacity(a10, c); got != 0.6/3.35 {
		t.Fatalf("KV size without its signal bit used: %v", got)
	}
	// A cache at or past saturation leaves the bandwidth capacity alone.
	h100 := Report{Healthy: true, Signals: HasKVTokens, KVCacheTokens: 403_000, Capacity: 1}
	if got := EffectiveCapacity(h100, c); got != 1 {
		t.Fatalf("H100 with 403k KV tokens: %v, want 1", got)
	}
	// More cache never lowers capacity; bad sizes are neutral.
	prev := 0.0
	for k := 1000.0; k <= 1e6; k *= 1.5 {
		r := Report{Healthy: true, Signals: HasKVTokens, KVCacheTokens: k, Capacity: 1}
		got := EffectiveCapacity(r, c)
		if got < prev || got > 1 {
			t.Fatalf("KV %v tokens: capacity %v after %v", k, got, prev)
		}
		prev = got
	}
	for _, k := range []float64{0, -5, math.NaN(), math.Inf(1)} {
		r := Report{Healthy: true, Signals: HasKVTokens, KVCacheTokens: k, Capacity: 2}
		if got := EffectiveCapacity(r, c); got != 2 {
			t.Fatalf("KV tokens %v: capacity %v, want 2", k, got)
		}
	}
	// Score uses it: same pressure, derated capacity, derated score (no
	// queue: its factor also divides by capacity).
	r := full(0.2, 0, 0.5, 0.5, 1)
	s1 := Score(r, c)
	r.Signals |= HasKVTokens
	r.KVCacheTokens = 65536
	if s2 := Score(r, c); math.Abs(s2/s1-EffectiveCapacity(r, c)) > 1e-9 {
		t.Fatalf("score with a 64k cache %v, without %v: ratio not the KV factor", s2, s1)
	}
}

func TestConfigValidationKV(t *testing.T) {
	for _, c := range []Config{{KVWeightTokens: -1}, {KVSaturationTokens: math.NaN()}, {KVSaturationTokens: math.Inf(1)}} {
		if _, err := c.WithDefaults(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestEffectiveCombinesStaticAndLoad(t *testing.T) {
	for _, tc := range []struct{ static, load, want uint32 }{
		{100, DefaultBaseWeight, 100}, // neutral load keeps the static weight
		{900, DefaultBaseWeight, 900},
		{0, 5000, 0},   // the operator's 0 wins over any load
		{900, 0, 0},    // a draining report wins over any static weight
		{900, 50, 450}, // a half-loaded host gets half its share
		{1, 5, 1},      // two positive weights never make 0
		{10000, 10000, 1000000},
	} {
		if got := Effective(tc.static, tc.load); got != tc.want {
			t.Errorf("Effective(%d, %d) = %d, want %d", tc.static, tc.load, got, tc.want)
		}
		if got := EffectiveFloat(tc.static, float64(tc.load)); got != float64(tc.want) {
			t.Errorf("EffectiveFloat(%d, %d) = %v, want %d", tc.static, tc.load, got, tc.want)
		}
	}
}
