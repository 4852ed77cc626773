package gpumodel

import (
	"container/list"
	"errors"
	"fmt"
)

// BlockTokens is the KV-cache block size in tokens: vLLM's default, and
// about the 64-byte block the router hashes.
const BlockTokens = 16

// Request is one inference request. C is the caller's handle for whoever
// sent it (the simulation's client connection, the mock server's HTTP
// exchange); the engine never looks at it.
type Request[C any] struct {
	ID     int
	Conn   C
	Arrive float64 // when the client sent it (the balancer adds no delay)
	Prompt int     // prompt tokens, shared prefix included
	Output int     // tokens to generate, >= 1
	// Prefix is the shared system prompt's id (-1 none) and PrefixLen its
	// tokens, the leading part of Prompt.
	Prefix    int
	PrefixLen int
	// Adapter is the LoRA adapter the request names (0: the base model).
	Adapter int

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
	// (Engine.Oracle) serves without holding them; held starts after them.
	virtual int
}

// Generated is how many output tokens r has produced so far.
func (r *Request[C]) Generated() int { return r.generated }

// BlockKey names a full block's content. Tokens of a shared prefix are
// the same in every request that carries it; every token after the first
// request-specific one makes the rest of the sequence unique (block
// hashes chain), so a block is either block Idx of prefix p (Owner -1-p)
// or block Idx of request Owner. It stands for the block hash vLLM puts
// in its KV-cache events.
type BlockKey struct {
	Owner int
	Idx   int
}

// Hash is a 64-bit name of k, as a router's event-fed index keys blocks.
func (k BlockKey) Hash() uint64 {
	x := uint64(int64(k.Owner))*0x9e3779b97f4a7c15 ^ uint64(int64(k.Idx))*0xc2b2ae3d27d4eb4f
	x ^= x >> 31
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 29
	return x
}

// KeyOf is the key of block idx of r's sequence.
func KeyOf[C any](r *Request[C], idx int) BlockKey {
	if r.Prefix >= 0 && (idx+1)*BlockTokens <= r.PrefixLen {
		return BlockKey{Owner: -1 - r.Prefix, Idx: idx}
	}
	return BlockKey{Owner: r.ID, Idx: idx}
}

// block is one KV-cache block. A block whose content is complete and
// whose key no other block holds is in the cache index (hashed); when no
// request references it, it stays there, evictable, in the LRU list.
type block struct {
	key    BlockKey
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
//
// LoRA: at most Spec.MaxLoras distinct adapters run in one batch (vLLM's
// --max-loras); a waiting request whose adapter would exceed that is
// passed over, and the ones behind it may start (vLLM V1's scheduler
// skips it the same way). The engine keeps MaxLoras adapters loaded,
// least recently used out; a step that starts a request whose adapter is
// not loaded pays Spec.AdapterLoad.
//
// Speed scales every step's duration (SetSpeed): a throttled GPU (clocks
// lowered by heat or power capping, a noisy neighbour) does the same
// work slower.
//
// Hooks: OnStored and OnRemoved, when set, are told every block the
// prefix cache indexes and every block it drops, as vLLM publishes
// BlockStored and BlockRemoved KV-cache events.
type Engine[C any] struct {
	Spec  Spec
	Index int
	// Oracle: see above; only with prefix caching.
	Oracle bool
	// OnStored and OnRemoved receive the cache's KV events.
	OnStored, OnRemoved func(BlockKey)

	blocks  int // total KV blocks
	caching bool
	speed   float64
	waiting []*Request[C]
	running []*Request[C]
	// loras are the loaded adapters, most recently used first.
	loras []int

	empty int                 // free blocks holding nothing reusable
	index map[BlockKey]*block // hashed blocks, referenced or not
	lru   *list.List          // hashed unreferenced blocks, most recent at front
	spare []*block            // recycled block structs

	busy      bool
	stepStart float64
	busyTime  float64 // accumulated, for the utilisation signal
	// MaxKVUsed is the high-water mark of referenced KV, in tokens
	// (blocks x BlockTokens), for tests.
	MaxKVUsed int
	// Steps counts engine steps; Evictions counts cached blocks dropped;
	// AdapterLoads counts adapters loaded.
	Steps, Evictions, AdapterLoads int
}

// NewEngine returns an idle engine.
func NewEngine[C any](spec Spec, index int, prefixCaching bool) *Engine[C] {
	n := spec.KVTokens() / BlockTokens
	return &Engine[C]{
		Spec: spec, Index: index, blocks: n, empty: n, caching: prefixCaching, speed: 1,
		index: map[BlockKey]*block{}, lru: list.New(),
	}
}

// SetSpeed sets the fraction of its nominal speed the GPU runs at (1:
// nominal; 0.6: every step takes 1/0.6 as long). It applies from the next
// step.
func (e *Engine[C]) SetSpeed(f float64) error {
	if !(f > 0 && f <= 10) {
		return errors.New("gpumodel: speed outside (0, 10]")
	}
	e.speed = f
	return nil
}

// Speed is the fraction of nominal speed the GPU runs at.
func (e *Engine[C]) Speed() float64 { return e.speed }

// KVCapacity is the engine's KV-cache size in tokens.
func (e *Engine[C]) KVCapacity() int { return e.blocks * BlockTokens }

// Enqueue adds a request to the waiting queue.
func (e *Engine[C]) Enqueue(r *Request[C]) { e.waiting = append(e.waiting, r) }

// Idle reports whether the engine has nothing to do.
func (e *Engine[C]) Idle() bool { return len(e.waiting) == 0 && len(e.running) == 0 }

// Busy reports whether a step is under way.
func (e *Engine[C]) Busy() bool { return e.busy }

// Waiting and Running are the queue lengths an inference server exports.
func (e *Engine[C]) Waiting() int { return len(e.waiting) }

// Running is the number of sequences in the batch.
func (e *Engine[C]) Running() int { return len(e.running) }

// free is the blocks a request may take: empty ones and evictable cached
// ones.
func (e *Engine[C]) free() int { return e.empty + e.lru.Len() }

// usedBlocks are the blocks running requests reference.
func (e *Engine[C]) usedBlocks() int { return e.blocks - e.free() }

// CachedBlocks is the number of indexed blocks (referenced or not).
func (e *Engine[C]) CachedBlocks() int { return len(e.index) }

// KVUsage is the fraction of the cache held by running requests (vLLM's
// kv_cache_usage_perc: evictable cached blocks count as free).
//
// A GPU with fixed timings (Spec.Fixed) has no memory model: its cache is
// as full as its batch.
func (e *Engine[C]) KVUsage() float64 {
	if e.Spec.Fixed() {
		return float64(len(e.running)) / float64(e.Spec.maxSeqs())
	}
	return float64(e.usedBlocks()) / float64(e.blocks)
}

// BusyTime is the total time spent in steps up to now.
func (e *Engine[C]) BusyTime(now float64) float64 {
	if e.busy {
		return e.busyTime + (now - e.stepStart)
	}
	return e.busyTime
}

// take returns a block for a request: an empty one if any, else the least
// recently used cached one, evicted. The caller has checked free() > 0.
func (e *Engine[C]) take() *block {
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
		if e.OnRemoved != nil {
			e.OnRemoved(b.key)
		}
	}
	*b = block{refs: 1}
	return b
}

// release drops r's references, last block first so that, among equally
// old blocks, a sequence's tail is evicted before its head (vLLM frees in
// reverse order for the same reason: heads are what other requests share).
func (e *Engine[C]) release(r *Request[C]) {
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
func (r *Request[C]) covered() int { return (r.virtual + len(r.held)) * BlockTokens }

// register indexes r's blocks that are now complete (computed), up to
// tokens of its sequence. A block whose content is already indexed (two
// requests computed the same prefix at once) stays private, as in vLLM.
func (e *Engine[C]) register(r *Request[C], tokens int) {
	if !e.caching {
		return
	}
	full := min(tokens/BlockTokens-r.virtual, len(r.held))
	for ; r.registered < full; r.registered++ {
		b := r.held[r.registered]
		if b.hashed {
			continue
		}
		k := KeyOf(r, r.virtual+r.registered)
		if _, dup := e.index[k]; dup {
			continue
		}
		b.key, b.hashed = k, true
		e.index[k] = b
		if e.OnStored != nil {
			e.OnStored(k)
		}
	}
}

// preempt evicts the newest running request back to the head of the queue;
// its blocks are freed (cached ones stay reusable) and it is recomputed on
// readmission.
func (e *Engine[C]) preempt() {
	victim := e.running[len(e.running)-1]
	e.running = e.running[:len(e.running)-1]
	e.release(victim)
	victim.prefillNeed, victim.prefillDone, victim.matched = 0, 0, 0
	victim.Preempted++
	e.waiting = append([]*Request[C]{victim}, e.waiting...)
}

func blocksFor(tokens int) int { return (tokens + BlockTokens - 1) / BlockTokens }

// admit tries to start waiting request i; false if it does not fit.
func (e *Engine[C]) admit(i int) bool {
	r := e.waiting[i]
	tokens := r.Prompt + r.generated // a preempted request recomputes its output too
	// Longest run of cached leading blocks; the last token is always
	// computed (it yields the next token's logits), as in vLLM.
	var hit []*block
	virtual := 0
	if e.caching && e.Oracle && r.Prefix >= 0 {
		virtual = min(r.PrefixLen/BlockTokens, (tokens-1)/BlockTokens)
	}
	if e.caching {
		for i := virtual; i < (tokens-1)/BlockTokens; i++ {
			b, ok := e.index[KeyOf(r, i)]
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
	e.waiting = append(e.waiting[:i], e.waiting[i+1:]...)
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
func (e *Engine[C]) Start(now float64) (dur float64, ok bool) {
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
	loads := 0
	for i := 0; budget > 0 && i < len(e.waiting) && len(e.running) < e.Spec.maxSeqs(); {
		if !e.adapterFits(e.waiting[i].Adapter) {
			i++ // passed over; FCFS resumes behind it
			continue
		}
		if !e.admit(i) {
			break
		}
		r := e.running[len(e.running)-1]
		if e.useAdapter(r.Adapter) {
			loads++
		}
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
	return (e.Spec.StepTime(decodeSeqs, kvRead, prefill) + float64(loads)*e.Spec.AdapterLoad) / e.speed, true
}

// Finish ends the step under way at now; it returns the output tokens the
// step produced and the requests it completed.
func (e *Engine[C]) Finish(now float64) (tokens int, done []*Request[C]) {
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

// Abort removes r, waiting or running, and frees its blocks (the client
// went away). It reports whether r was there.
func (e *Engine[C]) Abort(r *Request[C]) bool {
	for i, x := range e.waiting {
		if x == r {
			e.waiting = append(e.waiting[:i], e.waiting[i+1:]...)
			return true
		}
	}
	for i, x := range e.running {
		if x == r {
			e.running = append(e.running[:i], e.running[i+1:]...)
			e.release(r)
			r.decoding, r.scheduled = false, 0
			return true
		}
	}
	return false
}

// Fail is the GPU failing: every request, waiting or running, is dropped
// and returned, the step under way is lost, and the prefix cache is
// emptied (OnRemoved hears of every block, as vLLM's AllBlocksCleared
// says at once).
func (e *Engine[C]) Fail(now float64) []*Request[C] {
	if e.busy {
		e.busyTime += now - e.stepStart
		e.busy = false
	}
	lost := append(append([]*Request[C](nil), e.running...), e.waiting...)
	for _, r := range e.running {
		e.release(r)
		r.decoding, r.scheduled = false, 0
	}
	e.running, e.waiting = nil, nil
	for el := e.lru.Front(); el != nil; el = el.Next() {
		b := el.Value.(*block)
		delete(e.index, b.key)
		if e.OnRemoved != nil {
			e.OnRemoved(b.key)
		}
		e.empty++
	}
	e.lru.Init()
	e.loras = e.loras[:0]
	return lost
}

// UsedBlocks are the blocks running requests reference; EmptyBlocks those
// holding nothing; FreeCachedBlocks the indexed ones nobody references;
// TotalBlocks all of them. Drained, Used is 0 and Empty + FreeCached is
// Total.
func (e *Engine[C]) UsedBlocks() int       { return e.usedBlocks() }
func (e *Engine[C]) EmptyBlocks() int      { return e.empty }
func (e *Engine[C]) FreeCachedBlocks() int { return e.lru.Len() }
func (e *Engine[C]) TotalBlocks() int      { return e.blocks }

// Cached reports whether block k is in the prefix-cache index.
func (e *Engine[C]) Cached(k BlockKey) bool {
	_, ok := e.index[k]
	return ok
}

// IndexedKeys lists the keys in the prefix-cache index.
func (e *Engine[C]) IndexedKeys() []BlockKey {
	out := make([]BlockKey, 0, len(e.index))
	for k := range e.index {
		out = append(out, k)
	}
	return out
}

// CheckIndex checks that every indexed block is stored under its own key,
// marked hashed, and (on a drained engine) referenced by nobody.
func (e *Engine[C]) CheckIndex() error {
	for k, b := range e.index {
		if b.key != k || !b.hashed || b.refs != 0 {
			return fmt.Errorf("index entry %+v holds %+v", k, *b)
		}
	}
	return nil
}
