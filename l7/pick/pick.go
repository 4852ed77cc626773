// Package pick is the L7 gateway's GPU-aware backend choice: a
// route.PrefixPicker that steers each request by the GPU hosts' load
// (gpu/score weights from their load reports), the gateway's own in-flight
// counts, and prefix affinity (l7/affinity), so requests sharing a system
// prompt or continuing a conversation land where that prefix's KV cache
// already is, as long as that backend is within its load bound.
//
// It lives in l7/ because it is the consumer of load signals: gpu/ produces
// them (reports, scores, weights) and imports nothing from l7/.
//
// A backend's weight is score.Effective of its static policy weight and its
// load weight, the same combination the agent's Maglev tables use, so an
// operator's weight 0 or 100:900 split holds at L4 and L7 alike. Only the
// pools SetPools names (those with loadReports on) are steered; for the
// others Pick returns -1 and the route's weighted power of two choices
// decides, as it would without load reports.
//
// Without a prompt (Pick), or for a prompt shorter than one affinity block,
// it is weighted power of two choices: two distinct candidates drawn with
// probability proportional to their weights, the one with fewer requests
// in flight per unit of weight wins. With a prompt (PickPrefix) it is
// l7/affinity's consistent hashing with bounded loads over the same
// weights and in-flight counts.
//
// A request for a LoRA adapter (PickModel, PickAdapter; adapter.go) is
// first narrowed to the backends whose reports have the adapter in use,
// else to those with an adapter slot free, each within the load bound;
// where a full batch has kept an adapter waiting for a slot, the adapters
// running there with the least traffic are drained so slots turn over
// (adapter_drain.go).
//
// A backend's load is its in-flight count plus the prompt tokens it still
// has to prefill for this gateway (load.go; the gateway leaves out the
// part PickPrefixHit says the backend holds cached; a prompt no backend
// holds counts them at a higher rate, and a long one keeps off the least
// loaded backend while the pool is backlogged: cold.go), and a backend the
// route table has marked out for failing (route's outlier marking) weighs
// 0.
//
// Wiring: l7/serve builds it with the weighter and report poller as one
// Loads and hands it to every gateway it builds; test/sched drives it in
// simulation.
package pick

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/l7/affinity"
	"github.com/infergate/infergate/l7/route"
	"github.com/infergate/infergate/policy"
)

// Defaults for Config's zero fields.
const (
	// DefaultWeightsTTL: how long one snapshot of the weights serves
	// requests. Reports arrive once a second, so a tenth of that loses
	// nothing, and the snapshot (a map of every host) is not rebuilt per
	// request.
	DefaultWeightsTTL = 100 * time.Millisecond
	// maxWeightsTTL bounds the reuse of a snapshot.
	maxWeightsTTL = 10 * time.Second
)

// Config for New.
type Config struct {
	// Weights returns the current weights keyed "pool/backend" (the
	// report poller's target names), e.g. score.Weighter.Current.
	// Required.
	Weights func() score.Weights
	// NeutralWeight is the weight of a backend Weights does not list (no
	// report yet); default score.DefaultBaseWeight, the policy's default
	// static weight.
	NeutralWeight float64
	// WeightsTTL: how long a snapshot of Weights is reused (default
	// DefaultWeightsTTL; negative: never reused).
	WeightsTTL time.Duration
	// Affinity tunes the prefix chooser (block size, load bound, index).
	Affinity affinity.Config
	// Now is the clock (default time.Now); a simulation runs its own.
	Now func() time.Time
}

// Picker implements route.PrefixPicker. It is safe for concurrent use.
type Picker struct {
	cfg     Config
	chooser *affinity.Chooser
	now     func() time.Time

	snap atomic.Pointer[snapshot]
	mu   sync.Mutex // serialises snapshot refreshes
	// pools is the set of pools steered by load; nil steers every pool.
	pools        atomic.Pointer[map[string]bool]
	preciseState // precise.go
	coldState    // cold.go
	adapterState // adapter.go
}

type snapshot struct {
	at time.Time
	ws score.Weights
	// adapters: some weight carries its engine's LoRA adapters, so
	// PickAdapter has something to steer by (adapter.go).
	adapters bool
}

var _ route.ModelPicker = (*Picker)(nil)

// New returns a Picker for cfg.
func New(cfg Config) (*Picker, error) {
	if cfg.Weights == nil {
		return nil, errors.New("pick: no weights source")
	}
	if cfg.NeutralWeight == 0 {
		cfg.NeutralWeight = score.DefaultBaseWeight
	}
	if !(cfg.NeutralWeight > 0 && cfg.NeutralWeight <= score.DefaultMaxWeight*100) {
		return nil, fmt.Errorf("pick: neutral weight %v out of range", cfg.NeutralWeight)
	}
	if cfg.WeightsTTL == 0 {
		cfg.WeightsTTL = DefaultWeightsTTL
	}
	if cfg.WeightsTTL > maxWeightsTTL {
		return nil, fmt.Errorf("pick: weights TTL %v above %v", cfg.WeightsTTL, maxWeightsTTL)
	}
	ch, err := affinity.New(cfg.Affinity)
	if err != nil {
		return nil, fmt.Errorf("pick: %w", err)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Picker{cfg: cfg, chooser: ch, now: now}, nil
}

// SetPools restricts the picker to c's pools with loadReports or kvEvents on; the
// others are left to the route's weighted power of two choices. Until it is
// called every pool is steered.
func (p *Picker) SetPools(c *policy.Compiled) {
	m := map[string]bool{}
	for _, pl := range c.Pools {
		if pl.LoadReports || pl.KVEvents != nil {
			m[pl.Name] = true
		}
	}
	p.pools.Store(&m)
}

// steers reports whether pool is picked by load.
func (p *Picker) steers(pool string) bool {
	m := p.pools.Load()
	return m == nil || (*m)[pool]
}

// weights returns a snapshot no older than WeightsTTL.
func (p *Picker) weights() score.Weights { return p.snapshot().ws }

// snapshot returns the weights snapshot in force, taking a new one when
// it is older than WeightsTTL.
func (p *Picker) snapshot() *snapshot {
	now := p.now()
	if s := p.snap.Load(); s != nil && p.cfg.WeightsTTL > 0 && now.Sub(s.at) < p.cfg.WeightsTTL {
		return s
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.snap.Load(); s != nil && p.cfg.WeightsTTL > 0 && now.Sub(s.at) < p.cfg.WeightsTTL {
		return s
	}
	s := &snapshot{at: now, ws: p.cfg.Weights()}
	for _, w := range s.ws {
		if w.Adapters != nil {
			s.adapters = true
			break
		}
	}
	p.snap.Store(s)
	return s
}

// weightOf is b's effective weight (score.EffectiveFloat of its static
// weight and its load weight): 0 when the policy or its report drains it,
// its static weight scaled by the neutral load weight when nothing has been
// heard from it. A backend marked out for failing (route's outlier
// marking) weighs 0 as a drained one does.
func (p *Picker) weightOf(ws score.Weights, b *route.Backend, name string) float64 {
	if b.Draining || b.Ejected() {
		return 0
	}
	w, ok := ws[name]
	if !ok {
		return score.EffectiveFloat(b.Weight, p.cfg.NeutralWeight)
	}
	if w.Draining {
		return 0
	}
	return score.EffectiveFloat(b.Weight, float64(w.Weight))
}

// Pick is weighted power of two choices: it returns -1 (the route's plain
// power of two choices) when the pool is not steered by load or no backend
// has a positive weight.
func (p *Picker) Pick(pool string, backends []*route.Backend) int {
	if !p.steers(pool) {
		return -1
	}
	ws := p.weights()
	var stack [16]float64
	weights := stack[:0]
	total := 0.0
	for _, b := range backends {
		w := p.weightOf(ws, b, label(pool, b))
		weights = append(weights, w)
		total += w
	}
	return twoChoices(backends, weights, total)
}

// twoChoices draws two distinct backends with probability proportional to
// weight and returns the one with fewer in-flight requests per unit of
// weight (the first drawn on a tie).
func twoChoices(backends []*route.Backend, weights []float64, total float64) int {
	if !(total > 0) || math.IsInf(total, 0) {
		return -1
	}
	a := draw(weights, total, -1)
	if a < 0 {
		return -1
	}
	rest := total - weights[a]
	if !(rest > 0) {
		return a
	}
	b := draw(weights, rest, a)
	if b < 0 {
		return a
	}
	la := (loadOf(backends[a]) + 1) / weights[a]
	lb := (loadOf(backends[b]) + 1) / weights[b]
	if lb < la {
		return b
	}
	return a
}

// draw picks an index with probability weights[i]/total, skipping skip
// (whose weight total leaves out).
func draw(weights []float64, total float64, skip int) int {
	u := rand.Float64() * total
	last := -1
	for i, w := range weights {
		if i == skip || !(w > 0) {
			continue
		}
		last = i
		if u < w {
			return i
		}
		u -= w
	}
	return last // rounding left u just past the end
}

// PickPrefix steers by prompt: the backend that recently served the
// longest leading part of it, within l7/affinity's load bound over the
// weights and in-flight counts; a prompt without a full block falls back
// to Pick. It returns -1 only when no backend has a positive weight.
func (p *Picker) PickPrefix(pool string, backends []*route.Backend, prompt []byte) int {
	i, _ := p.PickPrefixHit(pool, backends, prompt)
	return i
}

// PickPrefixHit is PickPrefix that also returns the fraction of the
// prompt (0..1) the chosen backend holds as far as the picker knows: its
// engine's own account on the precise path (whole blocks, so at most one
// block over), the blocks the approximate index saw it served otherwise,
// 0 for a cold prompt. The gateway counts only the rest as the backend's
// prefill to come (route.HitPicker).
func (p *Picker) PickPrefixHit(pool string, backends []*route.Backend, prompt []byte) (int, float64) {
	if !p.steers(pool) {
		return -1, 0
	}
	if i, matched, blocks := p.pickPrecise(pool, backends, prompt); i >= 0 {
		return i, min(float64(matched)/float64(blocks), 1)
	}
	hashes := p.chooser.Hashes(prompt)
	if len(hashes) == 0 {
		return p.Pick(pool, backends), 0
	}
	i, matched := p.PickBlocksHit(pool, backends, hashes)
	if i < 0 || len(prompt) == 0 {
		return i, 0
	}
	return i, min(float64(matched)*float64(p.chooser.BlockBytes())/float64(len(prompt)), 1)
}

// PickBlocks is PickPrefix for a prompt already hashed into chained block
// hashes (affinity.Chooser.Hashes, or a simulation's stand-in for them).
func (p *Picker) PickBlocks(pool string, backends []*route.Backend, hashes []uint64) int {
	i, _ := p.PickBlocksHit(pool, backends, hashes)
	return i
}

// PickBlocksHit is PickBlocks that also returns how many leading blocks
// of hashes the chosen backend served recently (0: a cold prefix, or
// affinity gave way to the bound).
func (p *Picker) PickBlocksHit(pool string, backends []*route.Backend, hashes []uint64) (int, int) {
	if !p.steers(pool) {
		return -1, 0
	}
	ws := p.weights()
	if p.chooser.Cold(hashes) {
		return p.pickCold(pool, backends, ws, hashes), 0
	}
	cands := make([]affinity.Candidate, len(backends))
	for i, b := range backends {
		name := label(pool, b)
		cands[i] = affinity.Candidate{Name: name, Weight: p.weightOf(ws, b, name), Load: loadOf(b)}
	}
	ch, err := p.chooser.Choose(hashes, cands)
	if err != nil {
		return -1, 0
	}
	return ch.Index, ch.Matched
}

// label is b's "pool/backend" name, the key of its load weight; the route
// table made it once, so no request builds it.
func label(pool string, b *route.Backend) string {
	if b.Label != "" {
		return b.Label
	}
	return pool + "/" + b.Name
}

// Forget drops a backend from the prefix index (it restarted and lost its
// KV cache, or left the pool).
func (p *Picker) Forget(pool, backend string) { p.chooser.Forget(pool + "/" + backend) }
