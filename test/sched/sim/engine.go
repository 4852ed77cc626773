package sim

import "container/list"

// Request is one inference request.
type Request struct {
	ID     int
	Conn   *Conn
	Arrive float64 // when the client sent it (the balancer adds no delay)
	Prompt int     // prompt tokens, shared prefix included
	Output int     // tokens to generate, >= 1
	// Prefix is the shared system prompt's id (-1 none) and PrefixLen its
	// tokens, the leading part of Prompt.
	Prefix    int
	PrefixLen int

	Backend    int
	FirstToken float64 // -1 until the first token
	Done       float64 // -1 until complete
	CacheHit   bool    // the prefill that gave the first token found the prefix cached

	generated   int  // tokens produced so far
	prefillNeed int  // tokens to prefill on this admission
	prefillDone int  // of prefillNeed
	kvOwn       int  // KV tokens held by this request alone
	pinned      bool // holds a reference on its prefix's cache entry
	scheduled   int  // prefill tokens in the step under way
	decoding    bool // decodes a token in the step under way
	Preempted   int  // times evicted for lack of KV cache
	admittedSeq uint64
}

// prefixEntry is a cached shared prefix: its KV blocks live in the cache
// and are shared by every running request that uses it.
type prefixEntry struct {
	id     int
	tokens int
	refs   int
	el     *list.Element // in lru while refs == 0
}

// Engine is one GPU running a vLLM-like engine: FCFS admission, chunked
// prefill mixed with decode under a per-step token budget, a KV-cache
// token limit, and recompute preemption of the newest request when the
// cache runs out (vLLM's default).
type Engine struct {
	Spec     Spec
	Index    int
	kvCap    int
	caching  bool // automatic prefix caching on
	waiting  []*Request
	running  []*Request
	kvUsed   int // request-owned tokens plus every cached prefix
	prefixes map[int]*prefixEntry
	lru      *list.List // unreferenced prefixes, least recent at back

	busy      bool
	stepStart float64
	busyTime  float64 // accumulated, for the utilisation signal
	seq       uint64
	// MaxKVUsed is the high-water mark of kvUsed, for tests.
	MaxKVUsed int
	// Steps counts engine steps.
	Steps int
}

// NewEngine returns an idle engine.
func NewEngine(spec Spec, index int, prefixCaching bool) *Engine {
	return &Engine{
		Spec: spec, Index: index, kvCap: spec.KVTokens(), caching: prefixCaching,
		prefixes: map[int]*prefixEntry{}, lru: list.New(),
	}
}

// KVCapacity is the engine's KV-cache size in tokens.
func (e *Engine) KVCapacity() int { return e.kvCap }

// Enqueue adds a request to the waiting queue.
func (e *Engine) Enqueue(r *Request) { e.waiting = append(e.waiting, r) }

// Idle reports whether the engine has nothing to do.
func (e *Engine) Idle() bool { return len(e.waiting) == 0 && len(e.running) == 0 }

// Busy reports whether a step is under way.
func (e *Engine) Busy() bool { return e.busy }

// Waiting and Running are the queue lengths an inference server exports.
func (e *Engine) Waiting() int { return len(e.waiting) }

// Running is the number of sequences in the batch.
func (e *Engine) Running() int { return len(e.running) }

// KVUsage is the fraction of the cache held by running requests (vLLM's
// kv_cache_usage_perc: evictable cached prefixes count as free).
func (e *Engine) KVUsage() float64 {
	used := e.kvUsed
	for el := e.lru.Front(); el != nil; el = el.Next() {
		used -= el.Value.(*prefixEntry).tokens
	}
	return float64(used) / float64(e.kvCap)
}

// BusyTime is the total time spent in steps up to now.
func (e *Engine) BusyTime(now float64) float64 {
	if e.busy {
		return e.busyTime + (now - e.stepStart)
	}
	return e.busyTime
}

func (e *Engine) free() int { return e.kvCap - e.kvUsed }

// evict drops unreferenced cached prefixes, least recent first, until need
// tokens are free or none is left; keep is never dropped.
func (e *Engine) evict(need int, keep int) {
	for el := e.lru.Back(); el != nil && e.free() < need; {
		p := el.Value.(*prefixEntry)
		prev := el.Prev()
		if p.id != keep {
			e.lru.Remove(el)
			delete(e.prefixes, p.id)
			e.kvUsed -= p.tokens
		}
		el = prev
	}
}

func (e *Engine) unpin(r *Request) {
	if !r.pinned {
		return
	}
	r.pinned = false
	p := e.prefixes[r.Prefix]
	p.refs--
	if p.refs == 0 {
		p.el = e.lru.PushFront(p)
	}
}

// preempt evicts the newest running request back to the head of the queue;
// its KV is freed and recomputed on readmission.
func (e *Engine) preempt() {
	victim := e.running[len(e.running)-1]
	e.running = e.running[:len(e.running)-1]
	e.kvUsed -= victim.kvOwn
	victim.kvOwn = 0
	e.unpin(victim)
	victim.prefillNeed, victim.prefillDone = 0, 0
	victim.Preempted++
	e.waiting = append([]*Request{victim}, e.waiting...)
}

// admit tries to start the head of the queue; false if it does not fit.
func (e *Engine) admit(now float64) bool {
	r := e.waiting[0]
	tokens := r.Prompt + r.generated // a preempted request recomputes its output too
	cached := 0
	var p *prefixEntry
	if e.caching && r.Prefix >= 0 {
		p = e.prefixes[r.Prefix]
		if p != nil {
			cached = p.tokens
		}
	}
	need := tokens - cached
	if p == nil && e.caching && r.Prefix >= 0 {
		need = tokens // own part plus the new cache entry
	}
	if e.free() < need {
		e.evict(need, r.Prefix)
	}
	if e.free() < need {
		return false
	}
	e.waiting = e.waiting[1:]
	if r.FirstToken < 0 {
		r.CacheHit = cached > 0
	}
	if e.caching && r.Prefix >= 0 {
		if p == nil {
			// The prefix's blocks are computed by this request and become
			// shareable; requests admitted later in the same step start
			// their chunks after this one's, so they never overtake it.
			p = &prefixEntry{id: r.Prefix, tokens: r.PrefixLen}
			e.prefixes[r.Prefix] = p
			e.kvUsed += p.tokens
		} else if p.refs == 0 {
			e.lru.Remove(p.el)
		}
		p.refs++
		r.pinned = true
		r.kvOwn = tokens - r.PrefixLen
		r.prefillNeed = tokens - cached
	} else {
		r.kvOwn = tokens
		r.prefillNeed = tokens
	}
	e.kvUsed += r.kvOwn
	r.prefillDone = 0
	e.seq++
	r.admittedSeq = e.seq
	e.running = append(e.running, r)
	return true
}

// Start begins a step at now if there is work and none under way, and
// returns its duration (ok false if the engine stays idle).
func (e *Engine) Start(now float64) (dur float64, ok bool) {
	if e.busy || e.Idle() {
		return 0, false
	}
	// Decoding sequences each need one more KV token this step; make room
	// by dropping cached prefixes, then by preempting the newest.
	for {
		decoding := 0
		for _, r := range e.running {
			if r.prefillDone == r.prefillNeed {
				decoding++
			}
		}
		if e.free() < decoding {
			e.evict(decoding, -1)
		}
		if e.free() >= decoding || len(e.running) == 0 {
			break
		}
		e.preempt()
	}
	budget := e.Spec.MaxBatchedTokens
	decodeSeqs, kvRead, prefill := 0, 0, 0
	for _, r := range e.running {
		if r.prefillDone == r.prefillNeed {
			r.decoding = true
			r.kvOwn++
			e.kvUsed++
			decodeSeqs++
			kvRead += r.Prompt + r.generated
			budget--
		}
	}
	// Continue partial prefills, oldest first, then admit new requests
	// while the token budget, the sequence limit and the cache allow.
	for _, r := range e.running {
		if budget <= 0 {
			break
		}
		if rem := r.prefillNeed - r.prefillDone; rem > 0 && !r.decoding {
			c := min(rem, budget)
			r.scheduled = c
			prefill += c
			budget -= c
		}
	}
	for budget > 0 && len(e.waiting) > 0 && len(e.running) < MaxSeqs {
		if !e.admit(now) {
			break
		}
		r := e.running[len(e.running)-1]
		c := min(r.prefillNeed, budget)
		r.scheduled = c
		prefill += c
		budget -= c
	}
	e.MaxKVUsed = max(e.MaxKVUsed, e.kvUsed)
	if decodeSeqs == 0 && prefill == 0 {
		// Nothing fits (cannot happen while requests fit an empty cache);
		// stay idle rather than spin.
		return 0, false
	}
	e.busy = true
	e.stepStart = now
	e.Steps++
	return e.Spec.StepTime(decodeSeqs, kvRead, prefill), true
}

// Finish ends the step under way at now; it returns the output tokens the
// step produced and the requests it completed.
func (e *Engine) Finish(now float64) (tokens int, done []*Request) {
	e.busy = false
	e.busyTime += now - e.stepStart
	kept := e.running[:0]
	for _, r := range e.running {
		finished := false
		switch {
		case r.decoding:
			r.decoding = false
			r.generated++
			tokens++
			finished = r.generated >= r.Output
		case r.scheduled > 0:
			r.prefillDone += r.scheduled
			r.scheduled = 0
			if r.prefillDone == r.prefillNeed && r.generated == 0 {
				// The step that completes the prompt samples the first
				// token (a preempted request already had it).
				r.generated = 1
				r.FirstToken = now
				tokens++
				finished = r.Output <= 1
			}
		}
		if finished {
			r.Done = now
			e.kvUsed -= r.kvOwn
			r.kvOwn = 0
			e.unpin(r)
			done = append(done, r)
			continue
		}
		kept = append(kept, r)
	}
	e.running = kept
	return tokens, done
}
