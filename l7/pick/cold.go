package pick

import (
	"math"
	"sync"
	"time"

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
//
// The weight divided by is the backend's load weight averaged over
// steadyTau (steadyWeight), not the last report's: the in-flight count
// already says how loaded a backend is now, and the report's weight says
// it again a second late (a busy engine reports a fuller KV cache and a
// lower weight), so the two together over-steered, away from a backend
// that had just been busy and onto one that had just been idle. What the
// weight must add is what the count cannot say, how much a backend can
// take (an A10 beside an H100, a GPU throttled for minutes), and that
// changes slowly. In test/sched (seeds 1-3, medians) it lowered
// throttle's p99 TTFT from 260 to 216 ms (the IE scorer set: 317) and
// steady's from 279 to 245 ms.
func (p *Picker) pickCold(pool string, backends []*route.Backend, ws score.Weights, hashes []uint64) int {
	var home uint64 // as Choose keys a prefix: by its first block
	if len(hashes) > 0 {
		home = hashes[0]
	}
	best, bestCost, bestRank := -1, math.Inf(1), math.Inf(-1)
	now := p.now()
	for i, b := range backends {
		name := label(pool, b)
		w := p.weightOf(ws, b, name)
		if !(w > 0) || math.IsInf(w, 0) {
			continue
		}
		cost := (loadOf(b) + 1) / p.steadyWeight(name, w, now)
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

// steadyTau is the time constant of steadyWeight's average: long against
// the one-second reports (so a burst's report does not steer), short
// against a throttled GPU's minutes. In test/sched 10 s and 20 s did about
// as well on throttle and steady, 10 s worse on heavy-tenant (p99 351
// against 331 ms); much longer left the A10s of a mixed fleet overloaded
// for a while after the start.
const steadyTau = 5 * time.Second

// coldState is pickCold's memory: each backend's averaged weight.
type coldState struct {
	steadyMu sync.Mutex
	steady   map[string]*steadyAvg
}

type steadyAvg struct {
	at  time.Time
	avg float64
}

// maxSteady bounds coldState's map: backends come and go with policies,
// and a name not seen for a while is reset rather than kept.
const maxSteady = 4096

// steadyJump: a weight more than this factor above or below the average
// replaces it at once. Reports vary by less; a factor of two is a
// different kind of backend (an A10's first report after the neutral
// weight every host starts with, a GPU back from a failure). Averaging
// those in placed cold prefixes on the A10s of a mixed fleet for the
// first seconds, and the prefixes stayed there: in test/sched ie-prefix's
// p99 TTFT went from 97 to 131 ms without this rule.
const steadyJump = 2.0

// steadyWeight returns name's weight w averaged exponentially over
// steadyTau of the picker's clock, read once per pick (now); the first call, and one whose w is
// steadyJump times above or below the average, returns w.
func (p *Picker) steadyWeight(name string, w float64, now time.Time) float64 {
	p.steadyMu.Lock()
	defer p.steadyMu.Unlock()
	s, ok := p.steady[name]
	if !ok {
		if p.steady == nil || len(p.steady) >= maxSteady {
			p.steady = make(map[string]*steadyAvg)
		}
		s = &steadyAvg{at: now, avg: w}
		p.steady[name] = s
	}
	if w > steadyJump*s.avg || w*steadyJump < s.avg {
		s.avg = w
	}
	if dt := now.Sub(s.at); dt > 0 {
		s.avg += (w - s.avg) * -math.Expm1(-dt.Seconds()/steadyTau.Seconds())
		s.at = now
	}
	if !(s.avg > 0) || math.IsInf(s.avg, 0) {
		s.avg = w
	}
	return s.avg
}
