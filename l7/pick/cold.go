package pick

import (
	"math"

	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/l7/affinity"
	"github.com/infergate/infergate/l7/route"
)

// pickCold places a prompt whose prefix no backend is known to hold. With
// no cache to be near, the only question is load: it goes to the backend
// with the fewest requests in flight per unit of effective weight (one
// more counted), ties going to the prefix's rendezvous home (so an idle
// pool places it where the affinity chooser would, and router replicas
// agree), and the index records it there so the prompt's next requests
// find it. A rendezvous home within the load
// bound, which the affinity chooser gives a prefix otherwise, spreads such
// prompts by hash and lets a backend run up to its bound while others idle;
// in the scheduling simulation that cost the tail on fleets whose speed
// changes (a throttled GPU kept its hash share until its bound bit).
func (p *Picker) pickCold(pool string, backends []*route.Backend, ws score.Weights, hashes []uint64) int {
	var home uint64 // as Choose keys a prefix: by its first block
	if len(hashes) > 0 {
		home = hashes[0]
	}
	best, bestCost, bestRank := -1, math.Inf(1), math.Inf(-1)
	for i, b := range backends {
		name := label(pool, b)
		w := p.weightOf(ws, b, name)
		if !(w > 0) || math.IsInf(w, 0) {
			continue
		}
		cost := (loadOf(b) + 1) / w
		if cost > bestCost {
			continue
		}
		rank := affinity.Rank(home, name, w)
		if cost < bestCost || rank > bestRank {
			best, bestCost, bestRank = i, cost, rank
		}
	}
	if best >= 0 {
		p.chooser.Record(hashes, label(pool, backends[best]))
	}
	return best
}
