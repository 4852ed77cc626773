package score

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"time"
)

// Defaults for Config's zero fields.
const (
	// DefaultBaseWeight is the weight of an idle host of capacity 1; it
	// matches the policy's default static backend weight.
	DefaultBaseWeight = 100
	// DefaultMaxWeight caps a weight so a very large host cannot make
	// every other host's share of a Maglev table round to nothing.
	DefaultMaxWeight = 10000
	// DefaultMinWeight is the floor of a healthy host of capacity 1: a
	// busy host keeps a trickle of new flows so its reports keep
	// reflecting real traffic and it recovers as soon as it drains its
	// queue. The floor scales with capacity (MinWeight x capacity, at
	// least 1), so a slow host's trickle is as small a fraction of what
	// it can serve as a fast host's: a fixed floor gave a loaded A10
	// (capacity 0.06 on a KV-bound workload) more new flows than its
	// share, and the fleet's p99 came from there.
	DefaultMinWeight = 5
	// DefaultAlpha is the EWMA weight of a new observation. With reports
	// every second, 0.3 follows a step change to 90% within about 6 s,
	// slow enough that one noisy scrape does not move traffic.
	DefaultAlpha = 0.3
	// DefaultRebuildThreshold: a host's weight must move by more than 15%
	// of its published value before the Maglev table is rebuilt.
	DefaultRebuildThreshold = 0.15
	// DefaultStaleness: a host silent for this long is steered back
	// towards the neutral weight.
	DefaultStaleness = 10 * time.Second
	// DefaultQueueScale: this many waiting requests per unit of capacity
	// halve a host's weight.
	DefaultQueueScale = 4.0
	// DefaultUtilWeight: a fully busy GPU (by SM utilisation) loses at
	// most this fraction of its weight. Utilisation is a weak predictor of
	// queueing (a decoding GPU reads 100% at any batch size), so it counts
	// for less than KV pressure and queue depth.
	DefaultUtilWeight = 0.3
	// DefaultMemWeight: a GPU with no free memory loses at most this
	// fraction of its weight. Inference servers preallocate most memory,
	// so this mostly separates hosts with other tenants on the GPU.
	DefaultMemWeight = 0.2
	// DefaultKVWeightTokens is X0 of EffectiveCapacity: the KV tokens
	// whose read in a decode step costs as much as reading the model's
	// weights. 131072 fits an 8B-class model in bf16 with grouped-query
	// attention (16 GB of weights / 128 KiB of KV per token = 122k);
	// a 70B model in fp8 with 80 layers is ~430k.
	DefaultKVWeightTokens = 131072
	// DefaultKVSaturationTokens is S of EffectiveCapacity: a KV cache
	// this large holds a full batch (vLLM's default max_num_seqs of 256
	// sequences of ~1024 tokens of context), so more cache adds no
	// throughput and such a host's capacity is its bandwidth's.
	DefaultKVSaturationTokens = 262144
)

// Limits on configuration, so a typo cannot make weights meaningless.
const (
	maxWeightLimit = 1 << 20
	maxCapacity    = 1024.0
	maxKVTokens    = 1 << 40
)

// Config tunes Score and the Weighter. Zero fields take the defaults above.
type Config struct {
	BaseWeight    uint32
	MaxWeight     uint32
	MinWeight     uint32
	NeutralWeight uint32 // weight of a host with no fresh report; default BaseWeight

	Alpha            float64
	RebuildThreshold float64
	Staleness        time.Duration

	QueueScale float64
	UtilWeight float64
	MemWeight  float64

	KVWeightTokens     float64
	KVSaturationTokens float64
}

// WithDefaults returns c with zero fields filled and checks the result.
func (c Config) WithDefaults() (Config, error) {
	c.BaseWeight = cmp.Or(c.BaseWeight, DefaultBaseWeight)
	c.MaxWeight = cmp.Or(c.MaxWeight, DefaultMaxWeight)
	c.MinWeight = cmp.Or(c.MinWeight, DefaultMinWeight)
	c.NeutralWeight = cmp.Or(c.NeutralWeight, c.BaseWeight)
	c.Alpha = cmp.Or(c.Alpha, DefaultAlpha)
	c.RebuildThreshold = cmp.Or(c.RebuildThreshold, DefaultRebuildThreshold)
	c.Staleness = cmp.Or(c.Staleness, DefaultStaleness)
	c.QueueScale = cmp.Or(c.QueueScale, DefaultQueueScale)
	c.UtilWeight = cmp.Or(c.UtilWeight, DefaultUtilWeight)
	c.MemWeight = cmp.Or(c.MemWeight, DefaultMemWeight)
	c.KVWeightTokens = cmp.Or(c.KVWeightTokens, DefaultKVWeightTokens)
	c.KVSaturationTokens = cmp.Or(c.KVSaturationTokens, DefaultKVSaturationTokens)
	switch {
	case c.MaxWeight > maxWeightLimit:
		return c, fmt.Errorf("score: max weight %d above %d", c.MaxWeight, maxWeightLimit)
	case c.MinWeight > c.MaxWeight:
		return c, fmt.Errorf("score: min weight %d above max weight %d", c.MinWeight, c.MaxWeight)
	case c.BaseWeight > c.MaxWeight || c.NeutralWeight > c.MaxWeight:
		return c, fmt.Errorf("score: base/neutral weight above max weight %d", c.MaxWeight)
	case !(c.Alpha > 0 && c.Alpha <= 1):
		return c, fmt.Errorf("score: alpha %v outside (0,1]", c.Alpha)
	case !(c.RebuildThreshold > 0 && c.RebuildThreshold < 10):
		return c, fmt.Errorf("score: rebuild threshold %v outside (0,10)", c.RebuildThreshold)
	case c.Staleness < 0:
		return c, errors.New("score: negative staleness")
	case !(c.QueueScale > 0) || math.IsInf(c.QueueScale, 0):
		return c, fmt.Errorf("score: queue scale %v not positive", c.QueueScale)
	case !(c.UtilWeight >= 0 && c.UtilWeight <= 1):
		return c, fmt.Errorf("score: util weight %v outside [0,1]", c.UtilWeight)
	case !(c.MemWeight >= 0 && c.MemWeight <= 1):
		return c, fmt.Errorf("score: memory weight %v outside [0,1]", c.MemWeight)
	case !(c.KVWeightTokens > 0 && c.KVWeightTokens <= maxKVTokens):
		return c, fmt.Errorf("score: KV weight tokens %v outside (0,%g]", c.KVWeightTokens, float64(maxKVTokens))
	case !(c.KVSaturationTokens > 0 && c.KVSaturationTokens <= maxKVTokens):
		return c, fmt.Errorf("score: KV saturation tokens %v outside (0,%g]", c.KVSaturationTokens, float64(maxKVTokens))
	}
	return c, nil
}

// Score is the scoring function: it turns one report into the weight the
// host deserves now, before smoothing, flooring and rounding. cfg must have
// its defaults filled (Config.WithDefaults).
//
// A host's weight is its capacity times the fraction of that capacity that
// is free, scaled so an idle host of capacity 1 scores BaseWeight:
//
//	weight = BaseWeight × capacity × kv × queue × util × mem
//
// Each factor is 1 for an idle host, falls as its signal shows more load,
// and is exactly 1 when the signal is absent from the report (unknown is
// treated as neutral, never as idle or as full):
//
//   - kv = 1 − KVCacheUsage. KV-cache pressure comes first: a server whose
//     KV blocks are full must queue or preempt, so the free fraction of the
//     cache is the room left for new sequences.
//   - queue = 1 / (1 + RequestsWaiting / (QueueScale × capacity)). Waiting
//     requests are time to first token already lost; QueueScale waiting
//     requests per unit of capacity halve the weight, and the factor never
//     reaches zero, so ratios between busy hosts stay meaningful. Dividing by
//     capacity means a twice-as-fast host shrugs off twice the queue.
//   - util = 1 − UtilWeight × SMUtil. Utilisation is secondary: it saturates
//     long before a server queues, so it can only take UtilWeight of the
//     weight away.
//   - mem = 1 − MemWeight × used/total GPU memory, likewise secondary.
//
// Capacity (EffectiveCapacity: Report.Capacity, 0 taken as 1, derated
// for a small KV cache when the report carries its size, capped at 1024)
// multiplies the whole product, so at equal pressure a host with twice the
// capacity gets twice the weight. RequestsRunning does not enter: with continuous batching
// a running request costs what its KV blocks cost, which kv already counts.
//
// An unhealthy report scores 0. The result is in [0, MaxWeight]; NaN or
// out-of-range inputs are clamped rather than propagated.
func Score(r Report, cfg Config) float64 {
	if !r.Healthy {
		return 0
	}
	capacity := EffectiveCapacity(r, cfg)

	f := 1.0
	if r.Signals.Has(HasKVCache) {
		f *= 1 - clamp01(r.KVCacheUsage)
	}
	if r.Signals.Has(HasWaiting) {
		waiting := r.RequestsWaiting
		if !(waiting > 0) {
			waiting = 0
		}
		f *= 1 / (1 + waiting/(cfg.QueueScale*capacity))
	}
	if r.Signals.Has(HasUtil) {
		f *= 1 - cfg.UtilWeight*clamp01(r.SMUtil)
	}
	if r.Signals.Has(HasMemory) && r.MemoryTotalBytes > 0 {
		used := float64(r.MemoryUsedBytes) / float64(r.MemoryTotalBytes)
		f *= 1 - cfg.MemWeight*clamp01(used)
	}
	w := float64(cfg.BaseWeight) * capacity * f
	return math.Min(w, float64(cfg.MaxWeight))
}

// EffectiveCapacity is the capacity Score uses for r: Report.Capacity (0,
// negative or NaN taken as 1; at most 1024), times a KV-cache factor when
// the report carries the cache's size (HasKVTokens), else times 1.
//
// The factor models decoding as reading the weights plus the KV of every
// sequence in the batch each step: with x tokens of context in the batch,
// tokens per second go as x / (X0 + x), X0 = KVWeightTokens the tokens
// whose KV read costs as much as the weights. A host's x is bounded by its
// cache K, and nobody's batch holds more than S = KVSaturationTokens, so
//
//	factor = g(min(K, S)) / g(S),  g(x) = x / (X0 + x)
//
// which is 1 for a cache of at least S tokens and falls towards K/X0 ×
// (X0+S)/S for a small one. An A10 serving an 8B model (31k tokens of KV
// cache) gets 0.30, so capacity 0.18 by bandwidth becomes 0.053; the test
// fleet's A10 measures 0.059 of an H100 on a chat workload.
func EffectiveCapacity(r Report, cfg Config) float64 {
	capacity := r.Capacity
	if !(capacity > 0) {
		capacity = 1
	}
	capacity = math.Min(capacity, maxCapacity)
	if r.Signals.Has(HasKVTokens) && r.KVCacheTokens > 0 && cfg.KVWeightTokens > 0 && cfg.KVSaturationTokens > 0 {
		g := func(x float64) float64 { return x / (cfg.KVWeightTokens + x) }
		k := math.Min(r.KVCacheTokens, cfg.KVSaturationTokens)
		capacity *= g(k) / g(cfg.KVSaturationTokens)
	}
	return capacity
}

// clamp01 bounds v to [0,1], mapping NaN to 0.
func clamp01(v float64) float64 {
	switch {
	case v > 1:
		return 1
	case v > 0:
		return v
	default:
		return 0
	}
}
