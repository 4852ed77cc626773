package gateway

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// BackendStats are cumulative counters for one pool backend, kept while
// the backend stays in the applied policy; readers compute rates from
// successive samples.
type BackendStats struct {
	Requests uint64
	// Errors are requests that ended with status 500 or above, the
	// gateway's answer to a transport failure included.
	Errors           uint64
	PromptTokens     uint64
	CompletionTokens uint64
	// TTFTSum over TTFTCount streamed responses gives the mean time to
	// first token.
	TTFTSum   time.Duration
	TTFTCount uint64
}

// backendCounters are one backend's live counters. They are made when a
// policy naming the backend is first seen, so a request only adds.
type backendCounters struct {
	requests, errors, prompt, completion, ttftNanos, ttftCount atomic.Uint64
}

// backendStatsSnap maps the labels ("pool/backend") of one applied
// policy's backends to their counters; read-only once published.
type backendStatsSnap struct {
	cfg *config
	m   map[string]*backendCounters
}

// backendStatsTable keeps counters across policy changes: a backend still
// in the new policy keeps its counters, one dropped from it loses them,
// so the table never holds more than the current policy's backends.
type backendStatsTable struct {
	mu  sync.Mutex // serialises rebuilds
	cur atomic.Pointer[backendStatsSnap]
}

// forConfig returns the snapshot for cfg, rebuilding it when cfg is new.
// Rebuilds happen once per applied policy, on the first request or read
// after it, so Apply needs no hook.
func (t *backendStatsTable) forConfig(cfg *config) *backendStatsSnap {
	if s := t.cur.Load(); s != nil && s.cfg == cfg {
		return s
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.cur.Load()
	if old != nil && old.cfg == cfg {
		return old
	}
	n := 0
	for i := range cfg.c.Pools {
		n += len(cfg.c.Pools[i].Backends)
	}
	s := &backendStatsSnap{cfg: cfg, m: make(map[string]*backendCounters, n)}
	for i := range cfg.c.Pools {
		p := &cfg.c.Pools[i]
		for _, b := range p.Backends {
			label := p.Name + "/" + b.Name
			var c *backendCounters
			if old != nil {
				c = old.m[label]
			}
			if c == nil {
				c = new(backendCounters)
			}
			s.m[label] = c
		}
	}
	t.cur.Store(s)
	return s
}

// record counts one finished request against backend (a "pool/backend"
// label; provider labels and requests that never reached a backend match
// nothing). It always counts against the policy now applied, so a request
// that began under an older policy cannot bring its table back.
func (g *Gateway) recordBackend(last *lastRecorded, backend string, status int, prompt, completion int64, ttft time.Duration) {
	if backend == "" {
		return
	}
	snap := g.backendStats.forConfig(g.cfg.Load())
	c := last.counters
	if last.stats != snap || last.backend != backend {
		c = snap.m[backend]
		last.stats, last.backend, last.counters = snap, backend, c
	}
	if c == nil {
		return
	}
	c.requests.Add(1)
	if status >= http.StatusInternalServerError {
		c.errors.Add(1)
	}
	if prompt > 0 {
		c.prompt.Add(uint64(prompt))
	}
	if completion > 0 {
		c.completion.Add(uint64(completion))
	}
	if ttft > 0 {
		c.ttftNanos.Add(uint64(ttft))
		c.ttftCount.Add(1)
	}
}

// BackendStats returns the counters of every pool backend of the applied
// policy, keyed "pool/backend".
func (g *Gateway) BackendStats() map[string]BackendStats {
	s := g.backendStats.forConfig(g.cfg.Load())
	out := make(map[string]BackendStats, len(s.m))
	for label, c := range s.m {
		out[label] = BackendStats{Requests: c.requests.Load(), Errors: c.errors.Load(), PromptTokens: c.prompt.Load(),
			CompletionTokens: c.completion.Load(), TTFTSum: time.Duration(c.ttftNanos.Load()), TTFTCount: c.ttftCount.Load()}
	}
	return out
}
