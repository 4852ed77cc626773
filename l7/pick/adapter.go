package pick

import (
	"math"
	"slices"
	"sync"
	"time"

	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/l7/affinity"
	"github.com/infergate/infergate/l7/route"
)

// LoRA adapter affinity. vLLM serves each LoRA adapter as a model name and
// runs at most --max-loras adapters in one batch: a request for an adapter
// already in use on a backend joins its batches at once, one for an
// adapter with a free slot pays for loading it, and one for an adapter
// with no slot free waits until a slot is. The hosts' load reports carry
// each engine's adapters in use (lora_requests_info, score.Adapters).
//
// A request for an adapter goes, among the backends within the load
// bound, first to those where it is in use, then to those with a slot
// free; the picker the request would otherwise get (prefix affinity, a
// cold pick) chooses among them. A backend using the adapter may load up
// to the bound plus adapterGain times the other backends' load (per unit
// of weight, adapterAllowed), so a hot adapter spreads to a second
// backend, with a free slot, once its holder is that far ahead; not
// sooner, since the second backend then spends one of its slots on it.
//
// A report is up to a second old, and in that time a gateway sends many
// requests. So the picker remembers where it sent each adapter since the
// backend's last report was measured, and counts those sends as the
// backend's adapters in use; the next report says what became of them.
//
// A backend whose full batch keeps an adapter waiting for a slot too
// long is drained for it: the adapters running there with the least
// traffic get no new requests there until their slots free
// (adapter_drain.go).
//
// A model is taken for an adapter once some backend has reported it in
// use: a base model never appears among adapters, and steering its
// requests by free slots would only skew them. Where no backend's report
// carries adapters, or the model is no adapter, the pick is unchanged.

// adapterGain is how far beyond the load bound a backend using the
// request's adapter may go (adapterAllowed): moving an adapter to another
// backend costs a slot there, which the adapters already on it wanted, so
// an adapter's backend is worth some extra load. 2 is the least of the
// gains that did best in test/sched's lora scenario (BENCHMARKS.md; swept
// before the drain below).
const adapterGain = 2.0

// Bounds on the adapter memory.
const (
	// adapterMemory: a send is forgotten after this long even when no
	// report comes (a host gone silent has no adapters in the weights).
	adapterMemory             = 10 * time.Second
	maxAdapterSendsPerBackend = 1024
	maxAdapterBackends        = 4096
	maxKnownAdapters          = 4096
)

// adapterState is the picker's memory of adapters: where it sent each,
// and which model names backends have reported as adapters.
type adapterState struct {
	adapterMu sync.Mutex
	sent      map[string]map[string]adapterSend // backend label -> adapter -> sends
	known     map[string]struct{}
	drain     map[string]*drainState // backend label -> its drain (adapter_drain.go)
}

// Adapter classes of a backend for one request.
const (
	adapterNone    int8 = iota // weight 0: not a candidate
	adapterFull                // every slot taken by other adapters
	adapterRoom                // a slot free, or nothing known
	adapterInUse               // the adapter is in use there
	adapterDrained             // in use there, but drained (adapter_drain.go)
)

// PickModel is PickPrefix for a request whose upstream is asked for
// model: a LoRA adapter goes where it is in use or has room
// (PickAdapter).
func (p *Picker) PickModel(pool, model string, backends []*route.Backend, prompt []byte) int {
	i, _ := p.PickModelHit(pool, model, backends, prompt)
	return i
}

// PickModelHit is PickModel that also returns the fraction of the prompt
// the chosen backend holds (PickPrefixHit; route.ModelPicker).
func (p *Picker) PickModelHit(pool, model string, backends []*route.Backend, prompt []byte) (int, float64) {
	hit := 0.0
	i := p.PickAdapter(pool, model, backends, func(bs []*route.Backend) int {
		j, h := p.PickPrefixHit(pool, bs, prompt)
		hit = h
		return j
	})
	return i, hit
}

// PickAdapter narrows backends to those where adapter is in use, else to
// those with a slot free for it, each within the load bound (see the top
// of this file), and lets pick choose among them; pick gets backends
// whole when adapter is no adapter, nothing is known of adapters, or no
// backend passes. It returns pick's answer as an index into backends.
func (p *Picker) PickAdapter(pool, adapter string, backends []*route.Backend, pick func([]*route.Backend) int) int {
	if adapter == "" || len(backends) < 2 || !p.steers(pool) {
		return pick(backends)
	}
	snap := p.snapshot()
	if !snap.adapters {
		return pick(backends) // a fleet without LoRA pays no more than this
	}
	ws := snap.ws
	now := p.now()
	var clsStack [16]int8
	var wStack [16]float64
	var aStack [16]*score.Adapters
	cls, weights, reports := clsStack[:0], wStack[:0], aStack[:0]
	informed, reported := false, false
	for _, b := range backends {
		a := ws[label(pool, b)].Adapters
		reports = append(reports, a)
		if a != nil {
			informed = true
			reported = reported || a.Has(adapter)
		}
	}
	if !informed {
		return pick(backends)
	}
	p.adapterMu.Lock()
	if !p.isAdapter(adapter, reported) {
		p.adapterMu.Unlock()
		return pick(backends)
	}
	var totalW, totalL float64
	for i, b := range backends {
		name := label(pool, b)
		w := p.weightOf(ws, b, name)
		weights = append(weights, w)
		if !(w > 0) || math.IsInf(w, 0) {
			cls = append(cls, adapterNone)
			continue
		}
		totalW += w
		totalL += loadOf(b)
		cls = append(cls, p.adapterClass(reports[i], name, adapter, now))
	}
	p.adapterMu.Unlock()
	if !(totalW > 0) {
		return pick(backends)
	}
	bound := p.chooser.Bound()
	var subStack [16]*route.Backend
	var idxStack [16]int
	sub, idx := subStack[:0], idxStack[:0]
	for _, want := range []int8{adapterInUse, adapterRoom} {
		gain := 0.0
		if want == adapterInUse {
			gain = adapterGain
		}
		for i, b := range backends {
			if cls[i] == want && adapterAllowed(loadOf(b), weights[i], totalL, totalW, bound, gain) {
				sub = append(sub, b)
				idx = append(idx, i)
			}
		}
		if len(sub) > 0 {
			break
		}
	}
	if len(sub) == 0 && slices.Contains(cls, adapterDrained) {
		// Nowhere in use or with room: anywhere but where the adapter
		// is drained.
		for i, b := range backends {
			if cls[i] != adapterDrained && cls[i] != adapterNone {
				sub = append(sub, b)
				idx = append(idx, i)
			}
		}
	}
	i := -1
	switch {
	case len(sub) == 0 || len(sub) == len(backends):
		i = pick(backends)
	default:
		// The backends left out are here, only busy with other
		// adapters: the cold path's steady weights must not take them
		// for absent and slow-start them when they are candidates again
		// (cold.go), so they are seen now as if offered.
		var outStack [16]float64
		p.steadyWeights(pool, backends, weights, now, outStack[:0])
		if j := pick(sub); j >= 0 && j < len(sub) {
			i = idx[j]
		}
	}
	if i >= 0 && i < len(backends) {
		p.adapterSent(label(pool, backends[i]), adapter, now)
	}
	return i
}

// adapterAllowed reports whether a backend with load requests in flight
// and weight w may take one more adapter request, where the candidates'
// loads and weights total totalL and totalW: within bound times its
// weighted share (affinity.Allowed's bounded loads), or, for a backend
// using the adapter (gain > 0), while its in-flight count per unit of
// weight stays within bound+gain times the other backends'. The
// allowance is a factor on the others' load, not affinity.Allowed's
// credit of requests for the prefill a prefix hit saves: what an adapter
// in use saves is a batch slot on another backend, which the adapters
// there want whatever the queue, not prefill time.
func adapterAllowed(load, w, totalL, totalW, bound, gain float64) bool {
	load = max(load, 0)
	if affinity.Allowed(load, w, totalL, totalW, bound, 0, 0) {
		return true
	}
	if !(gain > 0) {
		return false
	}
	otherL, otherW := max(totalL-load, 0), totalW-w
	if !(otherW > 0) {
		return true // the only backend
	}
	return (load+1)/w <= (bound+gain)*(otherL+1)/otherW
}

// isAdapter reports whether model is an adapter: reported now by some
// backend, or before. Call with adapterMu held.
func (p *Picker) isAdapter(model string, reported bool) bool {
	if _, ok := p.known[model]; ok {
		return true
	}
	if !reported {
		return false
	}
	if p.known == nil || len(p.known) >= maxKnownAdapters {
		p.known = make(map[string]struct{})
	}
	p.known[model] = struct{}{}
	return true
}

// adapterClass classes backend name for adapter from its report a (nil:
// none) and the sends since a was measured. Call with adapterMu held.
func (p *Picker) adapterClass(a *score.Adapters, name, adapter string, now time.Time) int8 {
	sent := p.sent[name]
	fresh := func(at time.Time) bool {
		return now.Sub(at) < adapterMemory && (a == nil || !at.Before(a.At))
	}
	if a != nil && a.IsRunning(adapter) {
		if p.draining(name, a, sent, adapter, now) {
			return adapterDrained
		}
		return adapterInUse
	}
	if a != nil && a.IsWaiting(adapter) {
		return adapterInUse
	}
	if s, ok := sent[adapter]; ok && fresh(s.at) {
		return adapterInUse
	}
	if a == nil {
		return adapterRoom
	}
	used := a.InUse()
	for x, s := range sent {
		if !fresh(s.at) {
			if now.Sub(s.at) >= adapterMemory {
				delete(sent, x)
			}
			continue
		}
		if !a.Has(x) {
			used++
		}
	}
	if used < a.Max {
		return adapterRoom
	}
	return adapterFull
}

// adapterSent remembers that adapter was sent to backend name at now.
func (p *Picker) adapterSent(name, adapter string, now time.Time) {
	p.adapterMu.Lock()
	defer p.adapterMu.Unlock()
	m := p.sent[name]
	if m == nil || len(m) >= maxAdapterSendsPerBackend {
		if p.sent == nil || len(p.sent) >= maxAdapterBackends {
			p.sent = make(map[string]map[string]adapterSend)
		}
		m = make(map[string]adapterSend)
		p.sent[name] = m
	}
	s := m[adapter]
	s.add(now)
	m[adapter] = s
}
