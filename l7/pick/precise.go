package pick

import (
	"math"
	"sync/atomic"

	"github.com/infergate/infergate/l7/route"
)

// Precise is the engines' own account of their KV caches (l7/kvindex's
// Watcher, fed by their KV-cache events).
type Precise interface {
	// PromptHashes returns prompt's block hashes as pool's engines
	// compute them; nil when the pool publishes no events.
	PromptHashes(pool string, prompt []byte) []uint64
	// Match sets out[i] to the leading blocks backend names[i] holds (-1:
	// no live event stream) and reports whether any stream is live.
	Match(hashes []uint64, names []string, out []int) bool
	// BlockTokens is the tokens per block of pool's engines (what a
	// matched block saves in prefill); 0 when the pool publishes no
	// events.
	BlockTokens(pool string) int
}

// SetPrecise makes PickPrefix prefer, within the load bound, the backend
// whose engine reports holding the prompt's longest prefix. Where no
// engine of the pool has a live event stream, or none within the bound
// holds even the first block, l7/affinity's approximate index decides as
// before: it also covers the moments between sending a prompt and its
// engine publishing the blocks.
func (p *Picker) SetPrecise(pr Precise) { p.precise.Store(&pr) }

// PreciseStats counts PickPrefix's decisions: by the engines' events,
// and left to the approximate index in pools that publish events.
func (p *Picker) PreciseStats() (precise, fallback uint64) {
	return p.preciseHits.Load(), p.preciseMiss.Load()
}

type preciseState struct {
	precise     atomic.Pointer[Precise]
	preciseHits atomic.Uint64
	preciseMiss atomic.Uint64
}

// pickPrecise returns the backend chosen by the engines' events, or -1,
// with the blocks it holds of the prompt's blocks.
func (p *Picker) pickPrecise(pool string, backends []*route.Backend, prompt []byte) (i, matched, blocks int) {
	pp := p.precise.Load()
	if pp == nil || len(backends) == 0 {
		return -1, 0, 0
	}
	pr := *pp
	hashes := pr.PromptHashes(pool, prompt)
	if len(hashes) == 0 {
		return -1, 0, 0
	}
	var nameStack [16]string
	var outStack [16]int
	names, out := nameStack[:0], outStack[:0]
	for _, b := range backends {
		names = append(names, label(pool, b))
		out = append(out, 0)
	}
	if !pr.Match(hashes, names, out) {
		p.preciseMiss.Add(1)
		return -1, 0, 0
	}
	ws := p.weights()
	var wStack [16]float64
	weights := wStack[:0]
	var totalW, totalL float64
	for i, b := range backends {
		w := p.weightOf(ws, b, names[i])
		weights = append(weights, w)
		if w > 0 && !math.IsInf(w, 0) {
			totalW += w
			totalL += loadOf(b)
		}
	}
	if !(totalW > 0) {
		return -1, 0, 0
	}
	blockTokens := pr.BlockTokens(pool)
	// The same rule as l7/affinity: a backend may take the request while
	// its in-flight count stays within bound times its weighted share,
	// widened by a credit for the tokens of the prompt it holds (a hit
	// saves their prefill), so a hot prefix cannot pile onto one GPU, a
	// slowed holder of a short prompt gives it up once its queue outgrows
	// the prefill saved, yet a long one is not moved off its holder by a
	// passing burst.
	best, bestMatch, bestLoad := -1, 0, math.Inf(1)
	for i, b := range backends {
		w := weights[i]
		if !(w > 0) || math.IsInf(w, 0) || out[i] <= 0 {
			continue
		}
		load := loadOf(b)
		if !p.chooser.Allowed(load, w, totalL, totalW, out[i], blockTokens) {
			continue
		}
		rel := (load + 1) / w
		if out[i] > bestMatch || (out[i] == bestMatch && rel < bestLoad) {
			best, bestMatch, bestLoad = i, out[i], rel
		}
	}
	if best < 0 {
		p.preciseMiss.Add(1)
		return -1, 0, 0
	}
	p.preciseHits.Add(1)
	return best, bestMatch, len(hashes)
}
