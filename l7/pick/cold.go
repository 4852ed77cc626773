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
// with the least load per unit of effective weight (coldCost, one more
// request counted; under a backlog the load weighs the prefill queue more
// and a long prompt keeps off that backend, see the short lane below),
// ties going to the prefix's rendezvous home (so an idle
// pool places it where the affinity chooser would, and router replicas
// agree), and the index records it there so the prompt's next requests
// find it. A rendezvous home within the load
// bound, which the affinity chooser gives a prefix otherwise, spreads such
// prompts by hash and lets a backend run up to its bound while others idle;
// in the scheduling simulation that cost the tail on fleets whose speed
// changes (a throttled GPU kept its hash share until its bound bit).
//
// The weight divided by is the backend's load weight averaged over
// steadyTau (steadyWeights), not the last report's: the in-flight count
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
	var wStack, sStack [16]float64
	weights, steady := wStack[:0], sStack[:0]
	for _, b := range backends {
		weights = append(weights, p.weightOf(ws, b, label(pool, b)))
	}
	steady = p.steadyWeights(pool, backends, weights, p.now(), steady)
	best := p.leastCost(pool, backends, weights, steady, home, -1, pendingTokensPerRequest)
	if best >= 0 && backlogged(backends[best]) {
		// A backlog: place by the prefill queue (coldPendingTokensPerRequest),
		// and keep a long prompt off the short lane.
		best = p.leastCost(pool, backends, weights, steady, home, -1, coldPendingTokensPerRequest)
		if tokens := len(hashes) * p.chooser.BlockTokens(); best >= 0 && offLane(tokens, backends[best]) {
			lane := p.leastCost(pool, backends, weights, steady, home, best, coldPendingTokensPerRequest)
			if lane >= 0 && queued(backends[lane], steady[lane]) <= laneGiveWay*queued(backends[best], steady[best]) {
				best = lane
			}
		}
	}
	if best >= 0 {
		p.chooser.Record(hashes, label(pool, backends[best]))
	}
	return best
}

// leastCost is the backend of positive weight with the least coldCost at
// rate (prompt tokens to prefill per request), ties going to the
// prefix's rendezvous home; -1 if none. With skip >= 0 it is the short
// lane's alternative instead (offLane): the least cost among the
// others, skip left out, of at least half skip's steady weight, and only
// where at least laneMinCandidates backends have a positive weight.
func (p *Picker) leastCost(pool string, backends []*route.Backend, weights, steady []float64, home uint64, skip int, rate float64) int {
	best, bestCost, bestRank := -1, math.Inf(1), math.Inf(-1)
	n := 0
	for i, b := range backends {
		w := weights[i]
		if !(w > 0) || math.IsInf(w, 0) {
			continue
		}
		n++
		if i == skip || skip >= 0 && steady[i] < steady[skip]/2 {
			continue
		}
		cost := coldCost(b, steady[i], rate)
		if cost > bestCost {
			continue
		}
		rank := affinity.Rank(home, label(pool, b), w)
		if cost < bestCost || rank > bestRank {
			best, bestCost, bestRank = i, cost, rank
		}
	}
	if skip >= 0 && n < laneMinCandidates {
		return -1
	}
	return best
}

// The short lane. Under a backlog every engine's queue is first come,
// first served, so a request waits for all the prompt tokens queued ahead
// of it there, and a long prompt (a document, a code base: tens of
// thousands of tokens) placed where the short ones go makes every short
// request behind it wait for its whole prefill. While the pool is
// backlogged (the least loaded backend has a long prompt's worth of
// prompt tokens to prefill) cold prompts are therefore placed by the
// prefill queue (coldPendingTokensPerRequest), and a long prompt, when
// even the least loaded backend already has at least its own length
// queued, goes to the next least loaded one instead, so that the least
// loaded stays the short requests' lane. It gives way where its prefill
// queue is under 1/laneGiveWay of the next one's (per unit of weight):
// there the lane is capacity the long prompts need, not a short queue to
// keep short (in a sustained overload the lane would otherwise serve
// short requests alone while long ones waited ever longer). Without a
// backlog nothing changes.
//
// The slowest requests under such bursts are short ones queued behind long
// prompts, not the long prompts themselves, and when every engine is full
// placement by least work alone does not shorten them: which requests wait
// does. Keeping the lane when there is no backlog makes the long prompts
// wait for nothing, and a lane that never gives way starves them in a
// sustained overload (figures in BENCHMARKS.md, "short lane").
const (
	// longPromptTokens: a prompt of at least this many tokens is long
	// (16 requests' worth of prefill at the load bound's rate; chat
	// prompts with their history stay well below it), and a backend with
	// that many to prefill is backlogged.
	longPromptTokens = 16 * affinity.PrefillTokensPerRequest
	// laneMinCandidates: with two backends, keeping one for short
	// requests would leave the long ones half the fleet.
	laneMinCandidates = 3
	// laneGiveWay: the lane is kept while the next backend's prompt
	// tokens to prefill per unit of weight are at most this many times
	// the lane's.
	laneGiveWay = 2.0
)

// backlogged reports whether the least loaded backend least has a long
// prompt's worth of prompt tokens to prefill.
func backlogged(least *route.Backend) bool {
	return least.PendingTokens() >= longPromptTokens
}

// queued is b's prompt tokens to prefill per unit of steady weight.
func queued(b *route.Backend, steady float64) float64 {
	return float64(b.PendingTokens()) / steady
}

// offLane reports whether a cold prompt of tokens should keep off the
// least loaded backend least: it is long and least already has at least
// that many prompt tokens to prefill.
func offLane(tokens int, least *route.Backend) bool {
	return tokens >= longPromptTokens && least.PendingTokens() >= int64(tokens)
}

// steadyTau is the time constant of steadyWeights' average: long against
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
	// back is when the backend came back after an absence while others
	// stayed (zero: not slow-starting).
	back time.Time
}

// Slow start for a backend back after an absence: its weight counts at
// slowStartFloor of its average at first, rising linearly to all of it
// over slowStartWindow (Envoy's slow start, with its default 10% floor).
// Its in-flight count is what the cold path compares, and a backend back
// empty has none, so even at the others' mean weight it would take every
// new request until it had as many in flight as each of them (on a busy
// chat fleet some hundred, all to prefill at once, where theirs are
// mostly decoding): in test/sched's fail scenario the returned GPU took
// all 121 requests of its first second, TTFT up to 1.8 s. The ramp lets
// it fill over the window instead.
const (
	slowStartWindow = 10 * time.Second
	slowStartFloor  = 0.1
)

// maxSteady bounds coldState's map: backends come and go with policies,
// and a name not seen for a while is reset rather than kept.
const maxSteady = 4096

// steadyJump: a weight under 1/steadyJump of the average replaces it at
// once. Reports vary by less; a fall by half is a different kind of
// backend (an A10's first report after the neutral weight every host
// starts with). Averaging those in placed cold prefixes on the A10s of a
// mixed fleet for the first seconds, and the prefixes stayed there: in
// test/sched ie-prefix's p99 TTFT went from 97 to 131 ms without this
// rule. A rise is averaged in like any change: a falling weight errs
// towards sending less, a rising one would err towards a flood.
const steadyJump = 2.0

// steadyWeights sets out[i] to backends[i]'s weight weights[i] averaged
// exponentially over steadyTau of the picker's clock (now, read once per
// pick), for each backend of positive weight, and returns out.
//
// A backend that was not among the candidates for steadyTau or longer
// while others were (it failed, was marked out, was drained, or is new)
// starts again from its
// weight, but no higher than the mean average of the backends that were,
// and counts at a part of that rising over slowStartWindow (a slow start,
// as Envoy's and HAProxy's for a returning host). Its first
// report compares an idle host with loaded ones: after a GPU of an equal
// fleet came back from a 90-second failure, its idle weight was many
// times the busy GPUs', so it took that many times their requests in
// flight before its cost caught up, and in test/sched the requests sent
// in the ten seconds after its return made most of the fail scenario's
// p99 TTFT (seed 1: 244 of the slowest 1%, TTFT p99 2.4 s in that
// window). From the others' mean it fills up as they are filled, and its
// average rises to its own over steadyTau as it proves it can take more.
func (p *Picker) steadyWeights(pool string, backends []*route.Backend, weights []float64, now time.Time, out []float64) []float64 {
	p.steadyMu.Lock()
	defer p.steadyMu.Unlock()
	if p.steady == nil || len(p.steady) >= maxSteady {
		p.steady = make(map[string]*steadyAvg)
	}
	// Absent is measured against the latest cold pick that saw any of
	// these backends, not against now: a pool with no cold prompt for a
	// while has nobody absent.
	var latest time.Time
	for i, b := range backends {
		if w := weights[i]; w > 0 && !math.IsInf(w, 0) {
			if s, ok := p.steady[label(pool, b)]; ok && s.at.After(latest) {
				latest = s.at
			}
		}
	}
	fresh := func(s *steadyAvg) bool { return latest.Sub(s.at) < steadyTau }
	var sum float64
	n := 0
	for i, b := range backends {
		if w := weights[i]; !(w > 0) || math.IsInf(w, 0) {
			continue
		}
		if s, ok := p.steady[label(pool, b)]; ok && fresh(s) {
			sum += s.avg
			n++
		}
	}
	for i, b := range backends {
		w := weights[i]
		out = append(out, 0)
		if !(w > 0) || math.IsInf(w, 0) {
			continue
		}
		name := label(pool, b)
		s, ok := p.steady[name]
		if !ok || !fresh(s) {
			if !ok {
				s = &steadyAvg{}
				p.steady[name] = s
			}
			s.at, s.avg, s.back = now, w, time.Time{}
			if n > 0 {
				s.avg, s.back = min(w, sum/float64(n)), now
			}
		}
		if w*steadyJump < s.avg {
			s.avg = w
		}
		if dt := now.Sub(s.at); dt > 0 {
			s.avg += (w - s.avg) * -math.Expm1(-dt.Seconds()/steadyTau.Seconds())
			s.at = now
		}
		if !(s.avg > 0) || math.IsInf(s.avg, 0) {
			s.avg = w
		}
		out[i] = s.avg
		if !s.back.IsZero() {
			if f := float64(now.Sub(s.back)) / float64(slowStartWindow); f < 1 {
				out[i] *= max(f, slowStartFloor)
			} else {
				s.back = time.Time{}
			}
		}
	}
	return out
}
