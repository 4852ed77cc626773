package pick

import (
	"github.com/infergate/infergate/l7/affinity"
	"github.com/infergate/infergate/l7/route"
)

// PickMatched is PickBlocks with the cached prefix lengths known instead
// of guessed: matched(label) is how many leading blocks of hashes the
// backend labelled "pool/backend" holds, as an index fed by the engines'
// KV-cache events says. The same load bound and weights apply.
func (p *Picker) PickMatched(pool string, backends []*route.Backend, hashes []uint64, matched func(label string) int) int {
	i, _ := p.PickMatchedHit(pool, backends, hashes, matched)
	return i
}

// PickMatchedHit is PickMatched that also returns the blocks the chosen
// backend holds (0: none, or the bound sent the request elsewhere).
func (p *Picker) PickMatchedHit(pool string, backends []*route.Backend, hashes []uint64, matched func(label string) int) (int, int) {
	if !p.steers(pool) {
		return -1, 0
	}
	ws := p.weights()
	cands := make([]affinity.Candidate, len(backends))
	m := make(map[string]int, len(backends))
	for i, b := range backends {
		name := label(pool, b)
		cands[i] = affinity.Candidate{Name: name, Weight: p.weightOf(ws, b, name), Load: loadOf(b)}
		if n := matched(name); n > 0 {
			m[name] = n
		}
	}
	if len(m) == 0 {
		// No engine holds even the first block: placed by load alone,
		// as PickBlocks places a cold prefix.
		return p.pickCold(pool, backends, ws, hashes), 0
	}
	ch, err := p.chooser.ChooseMatched(hashes, cands, m)
	if err != nil {
		return -1, 0
	}
	return ch.Index, ch.Matched
}
