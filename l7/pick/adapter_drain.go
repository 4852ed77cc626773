package pick

import (
	"slices"
	"time"

	"github.com/infergate/infergate/gpu/score"
)

// Draining adapters off a full backend. An engine frees an adapter slot
// only when the last running request of one of its adapters ends, and it
// admits the requests of an adapter in the batch at once. So an adapter
// with requests arriving all the time never gives its slot up, and an
// adapter queued behind a full batch of such adapters waits until the
// gateway's timeout (in test/sched's lora scenario, where the adapters
// want twice the fleet's slots, almost every timeout was such a wait).
//
// Once an adapter has waited drainAfter for a slot on a backend whose
// batch is full (its reports say so), the picker drains that backend:
// up to as many of its running adapters as adapters wait, and at most
// all but one, those it sent the fewest requests recently (the least
// traffic loses least by waiting, and drains fastest), stop getting new
// requests there; they go where the adapter is in use or waits elsewhere,
// or has room, or else to any backend but the drained ones. When the
// drained adapter's last request there ends, the engine gives its slot to
// the adapter waiting longest. An adapter stays drained while it runs
// there, up to drainFor. Draining fewer at once left some waits to time
// out; draining all of them stalled the batch.
//
// This trades some requests' wait for a bounded one: in an oversubscribed
// fleet more requests wait some seconds for a slot, and none waits until
// the timeout (figures in BENCHMARKS.md, "adapter drain").
const (
	// drainAfter: how long an adapter waits for a slot before the backend
	// is drained for it: well inside the gateway's first-token timeout,
	// and long enough that a slot freeing by itself is not pre-empted.
	drainAfter = 10 * time.Second
	// drainFor bounds one adapter's drain on one backend.
	drainFor = 60 * time.Second
	// sendWindow: sends are counted over the current and the previous
	// window of this length.
	sendWindow = 10 * time.Second
)

// adapterSend is the picker's record of one adapter's requests to one
// backend: the last one, and the count over the last two windows.
type adapterSend struct {
	at      time.Time // last send
	window  time.Time // start of the window n counts
	n, prev uint32
}

// add counts a send at now.
func (s *adapterSend) add(now time.Time) {
	switch d := now.Sub(s.window); {
	case d >= 2*sendWindow || d < 0:
		s.window, s.n, s.prev = now, 0, 0
	case d >= sendWindow:
		s.window, s.n, s.prev = now, 0, s.n
	}
	s.n++
	s.at = now
}

// recent is the count of sends over the window under way and the one
// before it, as of now.
func (s adapterSend) recent(now time.Time) uint32 {
	switch d := now.Sub(s.window); {
	case d >= 2*sendWindow:
		return 0
	case d >= sendWindow:
		return s.n
	}
	return s.n + s.prev
}

// drainState is one backend's drain: the adapters its reports show
// waiting while its batch is full, since when, and the adapters drained.
type drainState struct {
	report  time.Time            // Adapters.At of the report last read
	waiting map[string]time.Time // adapter -> first report showing it wait
	victims []string
	chosen  []time.Time // when each victim was drained
}

// observe reads a report into d.waiting.
func (d *drainState) observe(a *score.Adapters) {
	d.report = a.At
	for w := range d.waiting {
		if !a.IsWaiting(w) || a.IsRunning(w) {
			delete(d.waiting, w)
		}
	}
	for _, w := range a.Waiting {
		if a.IsRunning(w) {
			continue
		}
		if _, ok := d.waiting[w]; !ok {
			d.waiting[w] = a.At
		}
	}
}

// draining reports whether adapter, running on backend name whose report
// is a, is drained there (see the top of this file). sent is the
// backend's send record. Call with adapterMu held.
func (p *Picker) draining(name string, a *score.Adapters, sent map[string]adapterSend, adapter string, now time.Time) bool {
	if a.Max < 2 || len(a.Running) < a.Max {
		return false // a slot is free, or draining would empty the batch
	}
	d := p.drain[name]
	if d == nil {
		if p.drain == nil || len(p.drain) >= maxAdapterBackends {
			p.drain = make(map[string]*drainState)
		}
		d = &drainState{waiting: make(map[string]time.Time)}
		p.drain[name] = d
	}
	if !d.report.Equal(a.At) {
		d.observe(a)
	}
	long := false
	for _, since := range d.waiting {
		if now.Sub(since) >= drainAfter {
			long = true
			break
		}
	}
	if !long {
		d.victims, d.chosen = d.victims[:0], d.chosen[:0]
		return false
	}
	k := 0
	for i, v := range d.victims {
		if a.IsRunning(v) && now.Sub(d.chosen[i]) < drainFor {
			d.victims[k], d.chosen[k] = v, d.chosen[i]
			k++
		}
	}
	d.victims, d.chosen = d.victims[:k], d.chosen[:k]
	for len(d.victims) < min(len(d.waiting), a.Max-1) {
		best, fewest := "", uint32(0)
		for _, r := range a.Running {
			if slices.Contains(d.victims, r) {
				continue
			}
			if n := sent[r].recent(now); best == "" || n < fewest {
				best, fewest = r, n
			}
		}
		if best == "" {
			break
		}
		d.victims = append(d.victims, best)
		d.chosen = append(d.chosen, now)
	}
	return slices.Contains(d.victims, adapter)
}
