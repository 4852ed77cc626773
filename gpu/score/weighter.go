package score

import (
	"fmt"
	"maps"
	"math"
	"sync"
	"time"
)

// maxHosts bounds the number of hosts a Weighter tracks.
const maxHosts = 1 << 16

// Weight is one host's weight as the balancer should use it.
type Weight struct {
	// Weight is the Maglev / router weight; 0 only while draining.
	Weight uint32 `json:"weight"`
	// Draining: the host's last report said a GPU is unhealthy. Existing
	// flows may finish; no new ones should be sent.
	Draining bool `json:"draining,omitempty"`
	// Stale: no fresh report within Config.Staleness; Weight is decaying
	// towards the neutral weight.
	Stale bool `json:"stale,omitempty"`
	// Adapters are the LoRA adapters the host's last report named (nil:
	// it named none, or it is stale or draining).
	Adapters *Adapters `json:"adapters,omitempty"`
}

// Weights maps backend names to weights.
type Weights map[string]Weight

// hostState is the Weighter's memory of one host.
type hostState struct {
	smoothed float64 // EWMA of Score, before the floor
	seeded   bool    // smoothed holds at least one observation
	lastSeen time.Time
	draining bool
	stale    bool
	neutral  float64 // weight to decay to when stale
	// capacity is EffectiveCapacity of the last healthy report (1 before
	// any): it scales the host's floor.
	capacity float64
	// override is the operator's capacity for the host (0: none); it
	// replaces what reports say.
	override float64
	// adapters are the last healthy report's (nil: none).
	adapters *Adapters
}

// Weighter smooths per-host scores into weights and decides when they have
// moved enough to rebuild the Maglev table. It is safe for concurrent use.
//
// Each Observe moves the host's smoothed score by an EWMA step of Alpha
// towards Score(report). A host without a fresh report (older than
// Staleness by Tick's clock) decays by the same step towards its neutral
// weight on every Tick. A healthy host never falls below its floor,
// MinWeight times its capacity (EffectiveCapacity of its last healthy
// report, or the operator's SetCapacity; 1 before any), rounded and at
// least 1: every host keeps the same small fraction of what it can serve. A report
// with Healthy false drains the host at once (weight 0, Draining); only a
// healthy report undrains it, and its history starts afresh so it is not
// held down by the load it had before it failed. A drained host that then
// goes silent stays drained: its last word was that a GPU is broken.
//
// Next implements hysteresis: it hands out a new set of weights only when a
// host is added, removed, drained or undrained, or when some host's current
// weight differs from the last handed-out one by more than RebuildThreshold
// of the latter; otherwise it returns the last set unchanged, so small moves
// never churn Maglev tables and the flows they pin. Weights below a quarter
// of BaseWeight are compared as if they were a quarter of BaseWeight: a host
// near the floor moving by a unit or two changes its share of the table by
// almost nothing, and such noise must not rebuild it.
type Weighter struct {
	cfg Config

	mu        sync.Mutex
	hosts     map[string]*hostState
	published Weights
	dirty     bool // membership changed since last publish
}

// NewWeighter returns a Weighter for cfg (zero fields take defaults).
func NewWeighter(cfg Config) (*Weighter, error) {
	c, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	return &Weighter{cfg: c, hosts: map[string]*hostState{}, published: Weights{}}, nil
}

// Config returns the configuration in use, defaults filled.
func (w *Weighter) Config() Config { return w.cfg }

// host returns the state of name, creating it at the neutral weight.
func (w *Weighter) host(name string) (*hostState, error) {
	h, ok := w.hosts[name]
	if ok {
		return h, nil
	}
	if len(w.hosts) >= maxHosts {
		return nil, fmt.Errorf("score: more than %d hosts", maxHosts)
	}
	n := float64(w.cfg.NeutralWeight)
	h = &hostState{smoothed: n, neutral: n, capacity: 1}
	w.hosts[name] = h
	w.dirty = true
	return h, nil
}

// SetNeutral sets the weight name decays to while stale (for example its
// static weight from policy) and registers the host if it is new; a host
// that has never reported starts there.
func (w *Weighter) SetNeutral(name string, weight uint32) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	h, err := w.host(name)
	if err != nil {
		return err
	}
	h.neutral = math.Min(float64(weight), float64(w.cfg.MaxWeight))
	if !h.seeded {
		h.smoothed = h.neutral
	}
	return nil
}

// SetCapacity fixes name's capacity, for an operator who measured it:
// reports' Capacity and KV-cache size are then ignored for this host (0
// goes back to the reports). It registers the host if it is new.
func (w *Weighter) SetCapacity(name string, capacity float64) error {
	if math.IsNaN(capacity) || capacity < 0 || capacity > maxCapacity {
		return fmt.Errorf("score: capacity %v outside [0,%g]", capacity, maxCapacity)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	h, err := w.host(name)
	if err != nil {
		return err
	}
	h.override = capacity
	if capacity > 0 {
		h.capacity = capacity
	}
	return nil
}

// Observe feeds one report received for name at now. A report whose own
// Time is older than Staleness at now carries no fresh information: it is
// ignored (the host keeps ageing towards stale) and an error says so.
func (w *Weighter) Observe(name string, r Report, now time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	h, err := w.host(name)
	if err != nil {
		return err
	}
	if !r.Time.IsZero() && w.cfg.Staleness > 0 && now.Sub(r.Time) > w.cfg.Staleness {
		return fmt.Errorf("score: report for %s is %v old", name, now.Sub(r.Time).Round(time.Millisecond))
	}
	h.lastSeen = now
	h.stale = false
	h.adapters = nil
	if !r.Healthy {
		h.draining = true
		h.seeded = false
		return nil
	}
	if h.override > 0 {
		r.Capacity = h.override
		r.Signals &^= HasKVTokens
	}
	h.capacity = EffectiveCapacity(r, w.cfg)
	h.adapters = adaptersOf(r)
	target := Score(r, w.cfg)
	if h.draining || !h.seeded {
		h.draining = false
		h.seeded = true
		h.smoothed = target
		return nil
	}
	h.smoothed += w.cfg.Alpha * (target - h.smoothed)
	return nil
}

// Tick marks hosts silent for longer than Staleness as stale and moves each
// stale, non-draining host one EWMA step towards its neutral weight. Call it
// once per polling interval.
func (w *Weighter) Tick(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, h := range w.hosts {
		if now.Sub(h.lastSeen) <= w.cfg.Staleness {
			continue
		}
		h.stale = true
		if h.draining {
			continue
		}
		h.smoothed += w.cfg.Alpha * (h.neutral - h.smoothed)
	}
}

// Remove forgets name.
func (w *Weighter) Remove(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.hosts[name]; ok {
		delete(w.hosts, name)
		w.dirty = true
	}
}

// weightOf is h's current weight: 0 while draining, else the smoothed score
// rounded and held within [floor, MaxWeight].
func (w *Weighter) weightOf(h *hostState) Weight {
	if h.draining {
		return Weight{Draining: true, Stale: h.stale}
	}
	v := math.Round(h.smoothed)
	v = math.Max(v, w.floor(h.capacity))
	v = math.Min(v, float64(w.cfg.MaxWeight))
	out := Weight{Weight: uint32(v), Stale: h.stale}
	if !h.stale {
		out.Adapters = h.adapters
	}
	return out
}

// floor is the least weight of a healthy host of the given capacity:
// MinWeight x capacity, rounded, at least 1 (a weight of 0 means drained).
func (w *Weighter) floor(capacity float64) float64 {
	if !(capacity > 0) {
		capacity = 1
	}
	return math.Max(1, math.Round(float64(w.cfg.MinWeight)*capacity))
}

// Current returns every host's weight now, without hysteresis: what an L7
// router choosing per request should use.
func (w *Weighter) Current() Weights {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(Weights, len(w.hosts))
	for name, h := range w.hosts {
		out[name] = w.weightOf(h)
	}
	return out
}

// Next returns the weights a Maglev table should be built from and whether
// they changed since the last call (the rebuild decision; see Weighter).
// The returned map is a copy the caller may keep.
func (w *Weighter) Next() (Weights, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	rebuild := w.dirty
	cur := make(Weights, len(w.hosts))
	for name, h := range w.hosts {
		c := w.weightOf(h)
		cur[name] = c
		if rebuild {
			continue
		}
		p := w.published[name]
		if p.Draining != c.Draining {
			rebuild = true
			continue
		}
		if moved(p.Weight, c.Weight, w.cfg.RebuildThreshold, float64(w.cfg.BaseWeight)*lowWeightFraction) {
			rebuild = true
		}
	}
	if rebuild {
		w.published = cur
		w.dirty = false
	} else {
		// Stale flags are informational and do not trigger a rebuild, but
		// the copy handed out should show them.
		for name, c := range cur {
			p := w.published[name]
			p.Stale = c.Stale
			w.published[name] = p
		}
	}
	return maps.Clone(w.published), rebuild
}

// lowWeightFraction of BaseWeight is the smallest weight hysteresis
// measures moves against.
const lowWeightFraction = 0.25

// moved reports whether cur differs from prev by more than threshold of
// prev, or of low when prev is below it.
func moved(prev, cur uint32, threshold, low float64) bool {
	base := math.Max(math.Max(float64(prev), low), 1)
	return math.Abs(float64(cur)-float64(prev)) > threshold*base
}
