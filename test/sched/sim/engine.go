package sim

import "container/list"

// BlockTokens is the KV-cache block size in tokens: vLLM's default, and
// about the 64-byte block the router hashes.
const BlockTokens = 16

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
	// CachedTokens is how many prompt tokens the admission that gave the
	// first token found in the prefix cache; CacheHit is CachedTokens > 0.
	CachedTokens int
	CacheHit     bool

	generated   int      // tokens produced so far
	prefillNeed int      // tokens to prefill on this admission
	prefillDone int      // of prefillNeed
	matched     int      // tokens found cached on this admission
	held        []*block // KV blocks referenced, in sequence order, after the virtual ones
	registered  int      // leading blocks of held already in the cache index
	scheduled   int      // prefill tokens in the step under way
	decoding    bool     // decodes a token in the step under way
	Preempted   int      // times evicted for lack of KV cache
	// virtual is how many leading blocks of the sequence an oracle cache
	// (Engine.oracle) serves without holding them; held starts after them.
	virtual int
}

// blockKey names a full block's content. Tokens of a shared prefix are
// the same in every request that carries it; every token after the first
// request-specific one makes the rest of the sequence unique (block
// hashes chain), so a block is either block idx of prefix p (owner -1-p)
// or block idx of request owner.
type blockKey struct {
	owner int
	idx   int
}

func keyOf(r *Request, idx int) blockKey {
	if r.Prefix >= 0 && (idx+1)*BlockTokens <= r.PrefixLen {
		return blockKey{owner: -1 - r.Prefix, idx: idx}
	}
	return blockKey{owner: r.ID, idx: idx}
}

// block is one KV-cache block. A block whose content is complete and
// whose key no other block holds is in the cache index (hashed); when no
// request references it, it stays there, evictable, in the LRU list.
type block struct {
	key    blockKey
	hashed bool
	refs   int
	el     *list.Element // in lru while hashed and refs == 0
}

// Engine is one GPU running a vLLM-like engine: FCFS admission, chunked
// prefill mixed with decode under a per-step token budget, a paged KV
// cache of BlockTokens-token blocks, and recompute preemption of the
// newest request when the cache runs out (vLLM's default).
//
// With prefix caching on, it follows vLLM's automatic prefix caching:
// every full block a request computes (shared prefix, its own prompt, its
// output) is indexed by content; a new request reuses the longest run of
// indexed leading blocks and prefills only the rest. A block nobody
// references stays indexed but counts as free: it is evicted, least
// recently used first, as soon as any request needs a block and no empty
// one is left. Cached prefixes therefore live in the same KV budget as the
// running requests and survive only while the load leaves room for them.
//
// With oracle set as well, every full block of a request's shared prefix
// is a hit on admission, whatever the engine computed before, and holds no
// KV-cache room (Request.virtual): an infinite prefix cache, free of
// charge, on every GPU. No real engine works so; it is the control that
// bounds what prefix affinity can buy (Config.OracleCache). Decode steps
// still read the prefix's KV, as attention over a cached prefix does.
type Engine struct {
	Spec    Spec
	Index   int
	blocks  int // total KV blocks
	caching bool
	oracle  bool
	waiting []*Request
	running []*Request

	empty int                 // free blocks holding nothing reusable
	index map[blockKey]*block // hashed blocks, referenced or not
	lru   *list.List          // hashed unreferenced blocks, most recent at front
	spare []*block            // recycled block structs

	busy      bool
	stepStart float64
	busyTime  float64 // accumulated, for the utilisation signal
	// MaxKVUsed is the high-water mark of referenced KV, in tokens
	// (blocks x BlockTokens), for tests.
	MaxKVUsed int
	// Steps counts engine steps; Evictions counts cached blocks dropped.
	Steps, Evictions int
}

// NewEngine returns an idle engine.
func NewEngine(spec Spec, index int, prefixCaching bool) *Engine {
	n := spec.KVTokens() / BlockTokens
	return &Engine{
		Spec: spec, Index: index, blocks: n, empty: n, caching: prefixCaching,
		index: map[blockKey]*block{}, lru: list.New(),
	}
}

// KVCapacity is the engine's KV-cache size in tokens.
func (e *Engine) KVCapacity() int { return e.blocks * BlockTokens }

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

// free is the blocks a request may take: empty ones and evictable cached
// ones.
func (e *Engine) free() int { return e.empty + e.lru.Len() }

// usedBlocks are the blocks running requests reference.
func (e *Engine) usedBlocks() int { return e.blocks - e.free() }

// CachedBlocks is the number of indexed blocks (referenced or not).
func (e *Engine) CachedBlocks() int { return len(e.index) }

// KVUsage is the fraction of the cache held by running requests (vLLM's
// kv_cache_usage_perc: evictable cached blocks count as free).
func (e *Engine) KVUsage() float64 { return float64(e.usedBlocks()) / float64(e.blocks) }

// BusyTime is the total time spent in steps up to now.
func (e *Engine) BusyTime(now float64) float64 {
	if e.busy {
		return e.busyTime + (now - e.stepStart)
	}
	return e.busyTime
}

// take returns a block for a request: an empty one if any, else the least
// recently used cached one, evicted. The caller has checked free() > 0.
func (e *Engine) take() *block {
	var b *block
	if e.empty > 0 {
		e.empty--
		if n := len(e.spare); n > 0 {
			b = e.spare[n-1]
			e.spare = e.spare[:n-1]
		} else {
			b = &block{}
		}
	} else {
		el := e.lru.Back()
		b = el.Value.(*block)
		e.lru.Remove(el)
		delete(e.index, b.key)
		e.Evictions++
	}
	*b = block{refs: 1}
	return b
}

// release drops r's references, last block first so that, among equally
// old blocks, a sequence's tail is evicted before its head (vLLM frees in
// reverse order for the same reason: heads are what other requests share).
func (e *Engine) release(r *Request) {
	for i := len(r.held) - 1; i >= 0; i-- {
		b := r.held[i]
		b.refs--
		if b.refs > 0 {
			continue
		}
		if b.hashed {
			b.el = e.lru.PushFront(b)
			continue
		}
		e.empty++
		e.spare = append(e.spare, b)
	}
	r.held = r.held[:0]
	r.registered = 0
	r.virtual = 0
}

// covered is how many tokens of r's sequence have a KV slot: its virtual
// blocks and those it holds.
func (r *Request) covered() int { return (r.virtual + len(r.held)) * BlockTokens }

// register indexes r's blocks that are now complete (computed), up to
// tokens of its sequence. A block whose content is already indexed (two
// requests computed the same prefix at once) stays private, as in vLLM.
func (e *Engine) register(r *Request, tokens int) {
	if !e.caching {
		return
	}
	full := min(tokens/BlockTokens-r.virtual, len(r.held))
	for ; r.registered < full; r.registered++ {
		b := r.held[r.registered]
		if b.hashed {
			continue
		}
		k := keyOf(r, r.virtual+r.registered)
		if _, dup := e.index[k]; dup {
			continue
		}
		b.key, b.hashed = k, true
		e.index[k] = b
	}
}

// preempt evicts the newest running request back to the head of the queue;
// its blocks are freed (cached ones stay reusable) and it is recomputed on
// readmission.
func (e *Engine) preempt() {
	victim := e.running[len(e.running)-1]
	e.running = e.running[:len(e.running)-1]
	e.release(victim)
	victim.prefillNeed, victim.prefillDone, victim.matched = 0, 0, 0
	victim.Preempted++
	e.waiting = append([]*Request{victim}, e.waiting...)
}

func blocksFor(tokens int) int { return (tokens + BlockTokens - 1) / BlockTokens }

// admit tries to start the head of the queue; false if it does not fit.
func (e *Engine) admit() bool {
	r := e.waiting[0]
	tokens := r.Prompt + r.generated // a preempted request recomputes its output too
	// Longest run of cached leading blocks; the last token is always
	// computed (it yields the next token's logits), as in vLLM.
	var hit []*block
	virtual := 0
	if e.caching && e.oracle && r.Prefix >= 0 {
		virtual = min(r.PrefixLen/BlockTokens, (tokens-1)/BlockTokens)
	}
	if e.caching {
		for i := virtual; i < (tokens-1)/BlockTokens; i++ {
			b, ok := e.index[keyOf(r, i)]
			if !ok {
				break
			}
			hit = append(hit, b)
		}
	}
	need := blocksFor(tokens) - virtual - len(hit)
	reusedFree := 0
	for _, b := range hit {
		if b.refs == 0 {
			reusedFree++
		}
	}
	if e.free()-reusedFree < need {
		return false
	}
	e.waiting = e.waiting[1:]
	for _, b := range hit {
		if b.refs == 0 {
			e.lru.Remove(b.el)
			b.el = nil
		}
		b.refs++
		r.held = append(r.held, b)
	}
	r.registered = len(hit)
	r.virtual = virtual
	for range need {
		r.held = append(r.held, e.take())
	}
	r.matched = (virtual + len(hit)) * BlockTokens
	if r.FirstToken < 0 {
		r.CachedTokens = min(r.matched, r.Prompt)
		r.CacheHit = r.CachedTokens > 0
	}
	r.prefillNeed = tokens - r.matched
	r.prefillDone = 0
	e.running = append(e.running, r)
	return true
}

// Start begins a step at now if there is work and none under way, and
// returns its duration (ok false if the engine stays idle).
func (e *Engine) Start(now float64) (dur float64, ok bool) {
	if e.busy || e.Idle() {
		return 0, false
	}
	// Each decoding sequence writes the KV of its last sampled token this
	// step (Prompt+generated tokens in all); one whose blocks are full
	// needs a new one. Taking blocks evicts cached
	// ones first; when none is left, the newest request is preempted.
	for {
		need := 0
		for _, r := range e.running {
			if r.prefillDone == r.prefillNeed && r.Prompt+r.generated > r.covered() {
				need++
			}
		}
		if e.free() >= need || len(e.running) == 0 {
			break
		}
		e.preempt()
	}
	budget := e.Spec.MaxBatchedTokens
	decodeSeqs, kvRead, prefill := 0, 0, 0
	for _, r := range e.running {
		if r.prefillDone == r.prefillNeed {
			r.decoding = true
			if r.Prompt+r.generated > r.covered() {
				r.held = append(r.held, e.take())
			}
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
		if !e.admit() {
			break
		}
		r := e.running[len(e.running)-1]
		c := min(r.prefillNeed, budget)
		r.scheduled = c
		prefill += c
		budget -= c
	}
	e.MaxKVUsed = max(e.MaxKVUsed, e.usedBlocks()*BlockTokens)
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
			// The token decoded this step had its KV written; the one it
			// sampled has not yet.
			e.register(r, r.Prompt+r.generated-1)
		case r.scheduled > 0:
			r.prefillDone += r.scheduled
			r.scheduled = 0
			e.register(r, r.matched+r.prefillDone)
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
			e.release(r)
			done = append(done, r)
			continue
		}
		kept = append(kept, r)
	}
	e.running = kept
	return tokens, done
}
