package gateway

import (
	"bytes"
	"net/http"
	"strings"
	"time"

	"github.com/infergate/infergate/l7/cache"
	"github.com/infergate/infergate/l7/limit"
	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/policy"
)

// Request and response fields of the response cache.
const (
	// cacheHeader in a request: "bypass" neither reads nor stores, "refresh"
	// skips the lookup but stores the new answer, "allow" opts a
	// non-deterministic request in. In a response: hit-exact,
	// hit-semantic, miss or bypass.
	cacheHeader = "X-Infergate-Cache"
	// cacheSimilarityHeader is the cosine similarity of a semantic hit.
	cacheSimilarityHeader = "X-Infergate-Cache-Similarity"
	cacheBackend          = "cache"
	hitExact              = "exact"
	hitSemantic           = "semantic"
)

// cacheStage answers a request from the response cache (l7/cache) when it
// can and otherwise lets the proxy answer it, keeping the answer for the
// next time. It runs after limit, so a hit is still authenticated,
// limited, inspected, audited and measured; a hit costs nothing unless
// the policy bills hits, and is recorded as cached.
//
// Only chat and text completions are cached; only deterministic requests
// (temperature 0) unless the model or the request opts in; never a request
// whose prompt inspection redacted (the upstream saw other text than the
// key says). An answer is stored only when it was complete: a 200 whose
// body was read whole, or a stream that ended with [DONE] after every
// choice finished, the client still there.
//
// Reads: x.r, x.body, x.req, x.model, x.principal, x.inspected. Writes, on
// a hit: the response and the outcome (status, backend "cache", ttft,
// usage, cacheHit); on a miss: x.scratch.cache, read by the proxy's
// capture hooks and by finish.
type cacheStage struct {
	store    *cache.Store
	index    *cache.Index // nil without semantic caching
	embed    *embedder
	conf     policy.ResponseCache
	redisKey policy.LimitStore // the connection settings the store was built with
	thresh   float32
}

func newCacheStage(g *Gateway, cfg *config) (stage, error) {
	c := cfg.c.Gateway.Cache
	if c == nil {
		return nil, nil
	}
	s := &cacheStage{conf: *c, thresh: cache.DefaultSemanticThreshold}
	if c.Redis {
		s.redisKey = cfg.c.Gateway.LimitStore
	}
	if c.Semantic != nil {
		s.conf.Semantic = nil // compared without it below
		if c.Semantic.Threshold > 0 {
			s.thresh = float32(c.Semantic.Threshold)
		}
		timeout := c.Semantic.Timeout.D()
		if timeout <= 0 {
			timeout = defaultEmbedTimeout
		}
		s.embed = &embedder{model: c.Semantic.EmbeddingsModel, timeout: timeout}
	}
	// The entries outlive a reload that keeps the store's settings.
	if prev := previousCacheStage(g); prev != nil {
		if prev.conf.MemoryBytes == c.MemoryBytes && prev.conf.MaxEntryBytes == c.MaxEntryBytes && prev.conf.TTL == c.TTL &&
			prev.conf.Redis == c.Redis && prev.redisKey == s.redisKey {
			s.store = prev.store
		}
		// Vectors of another embeddings model are not comparable.
		if c.Semantic != nil && prev.index != nil && prev.embed != nil && prev.embed.maxEntries == c.Semantic.MaxEntries &&
			prev.embed.model == c.Semantic.EmbeddingsModel && prev.conf.TTL == c.TTL && s.store == prev.store {
			s.index = prev.index
		}
	}
	if s.store == nil {
		o := cache.Options{MemoryBytes: c.MemoryBytes, MaxEntryBytes: c.MaxEntryBytes, TTL: c.TTL.D(), Logger: g.log}
		if c.Redis {
			ro, err := limit.RedisOptionsFromPolicy(cfg.c.Gateway.LimitStore)
			if err != nil {
				return nil, err
			}
			o.Redis = &cache.RedisOptions{Addr: ro.Addr, Username: ro.Username, Password: ro.Password, TLS: ro.TLS}
		}
		st, err := cache.NewStore(o)
		if err != nil {
			return nil, err
		}
		s.store = st
	}
	if c.Semantic != nil {
		s.embed.maxEntries = c.Semantic.MaxEntries
		if s.index == nil {
			s.index = cache.NewIndex(c.Semantic.MaxEntries, c.TTL.D(), nil)
		}
	}
	return s, nil
}

// previousCacheStage is the cache stage of the policy in force, if any.
func previousCacheStage(g *Gateway) *cacheStage {
	old := g.cfg.Load()
	if old == nil {
		return nil
	}
	for _, st := range old.chain {
		if cs, ok := st.(*cacheStage); ok {
			return cs
		}
	}
	return nil
}

// closeReplacedCache closes the store of old's cache stage unless cfg
// kept it (Apply, after the swap; Shutdown with cfg nil).
func closeReplacedCache(old, cfg *config) {
	var prev, next *cacheStage
	for _, st := range chainOf(old) {
		if cs, ok := st.(*cacheStage); ok {
			prev = cs
		}
	}
	for _, st := range chainOf(cfg) {
		if cs, ok := st.(*cacheStage); ok {
			next = cs
		}
	}
	if prev != nil && (next == nil || next.store != prev.store) {
		_ = prev.store.Close()
	}
}

func chainOf(c *config) []stage {
	if c == nil {
		return nil
	}
	return c.chain
}

// cacheScratch is the cache's per-request state.
type cacheScratch struct {
	active  bool // the request may be stored
	stream  bool
	hit     string // hitExact or hitSemantic
	tried   bool   // the semantic index was searched
	key     cache.Key
	facts   cache.Facts
	scope   string
	vec     []float32
	whole   []byte // the whole answer as relayed (not streamed)
	asm     cache.Assembler
	maxBody int
}

func (c *cacheScratch) reset() {
	whole := c.whole[:0]
	if cap(whole) > maxPooledBuffer {
		whole = nil
	}
	*c = cacheScratch{whole: whole}
}

// keepWhole is the proxy's hook for a whole answer about to be relayed.
func (c *cacheScratch) keepWhole(out []byte) {
	if !c.active || c.stream {
		return
	}
	if len(out) > c.maxBody {
		c.active = false
		return
	}
	c.whole = append(c.whole[:0], out...)
}

// event is the proxy's hook for each streamed event's data.
func (c *cacheScratch) event(data []byte) {
	if c.active && c.stream {
		c.asm.Event(data)
	}
}

// cacheMode reads the request's cache directives: bypass (neither read
// nor store), refresh (store only) and allow (opt in).
func cacheMode(r *http.Request) (bypass, refresh, allow bool) {
	for _, v := range r.Header.Values("Cache-Control") {
		for tok := range strings.SplitSeq(v, ",") {
			switch strings.ToLower(strings.TrimSpace(tok)) {
			case "no-store":
				bypass = true
			case "no-cache":
				refresh = true
			}
		}
	}
	switch strings.ToLower(strings.TrimSpace(r.Header.Get(cacheHeader))) {
	case "bypass":
		bypass = true
	case "refresh":
		refresh = true
	case "allow":
		allow = true
	}
	return bypass, refresh, allow
}

func (s *cacheStage) serve(x *exchange) *openai.Error {
	// A request translated from another API (x.in) is not cached yet: a
	// stored answer is replayed in the chat wire format, which that
	// client does not speak.
	if x.ep == openai.Embeddings || x.model.Policy.Cache.Disabled || x.inspected.Redacted != nil || x.in != nil {
		return nil
	}
	bypass, refresh, allow := cacheMode(x.r)
	if bypass {
		x.setHeader(cacheHeader, "bypass")
		return nil
	}
	sc := &x.scratch.cache
	if !s.conf.ShareAcrossTenants {
		sc.scope = x.principal.Tenant
	}
	facts, err := cache.RequestFacts(sc.scope, x.ep.Path(), x.model.Name, x.body)
	if err != nil {
		return nil
	}
	if !facts.Deterministic && !x.model.Policy.Cache.NonDeterministic && !allow {
		return nil
	}
	sc.facts, sc.key = facts, facts.Key
	ctx := x.r.Context()
	semantic := s.index != nil && x.model.Policy.Cache.Semantic && x.ep == openai.ChatCompletions && facts.LastUser != ""
	if !refresh {
		if e, ok := s.store.Get(ctx, facts.Key); ok && s.answer(x, e, hitExact, 0) {
			return nil
		}
		if semantic {
			sc.tried = true
			sc.vec = s.embed.embed(x, facts.LastUser)
			if sc.vec != nil {
				if k, sim, ok := s.index.Search(sc.scope, x.model.Name, sc.vec, facts.Context, s.thresh); ok {
					if e, ok := s.store.Get(ctx, k); ok && s.answer(x, e, hitSemantic, sim) {
						return nil
					}
					s.index.Forget(sc.scope, x.model.Name, k) // its answer is gone
				}
			}
		}
	} else if semantic {
		sc.vec = s.embed.embed(x, facts.LastUser)
	}
	x.setHeader(cacheHeader, "miss")
	sc.active = true
	sc.stream = x.req.Stream
	sc.maxBody = int(s.store.MaxEntryBytes())
	if sc.stream {
		sc.asm.Reset(sc.maxBody)
	}
	return nil
}

// answer writes a stored answer, whole or replayed as an event stream;
// false (nothing written) when it cannot be replayed.
func (s *cacheStage) answer(x *exchange, e *cache.Entry, kind string, sim float32) bool {
	body := e.Body
	ct := "application/json"
	if x.req.Stream {
		b, err := cache.Replay(e, x.req.WantsUsage())
		if err != nil {
			return false
		}
		body, ct = b, "text/event-stream"
	}
	x.scratch.cache.hit = kind
	x.cacheHit = kind
	x.cacheBilled = s.conf.BillHits
	x.backend = cacheBackend
	x.status = http.StatusOK
	x.answered = true
	x.wroteHeader = true
	x.usageStore = openai.Usage{PromptTokens: e.PromptTokens, CompletionTokens: e.CompletionTokens, TotalTokens: e.PromptTokens + e.CompletionTokens}
	x.usage = &x.usageStore
	h := x.w.Header()
	h.Set("Content-Type", ct)
	if x.req.Stream {
		h.Set("Cache-Control", "no-cache")
	}
	x.setHeader(cacheHeader, "hit-"+kind)
	if kind == hitSemantic {
		x.setHeader(cacheSimilarityHeader, formatSimilarity(sim))
	}
	x.w.WriteHeader(http.StatusOK)
	x.ttft = time.Since(x.start)
	if _, err := x.w.Write(body); err != nil {
		x.clientGone = x.r.Context().Err() != nil
	}
	if x.req.Stream {
		_ = http.NewResponseController(x.w).Flush()
	}
	return true
}

func formatSimilarity(f float32) string {
	b := make([]byte, 0, 8)
	v := int(f*10000 + 0.5)
	b = append(b, byte('0'+v/10000))
	b = append(b, '.')
	for d := 1000; d > 0; d /= 10 {
		b = append(b, byte('0'+(v/d)%10))
	}
	return string(b)
}

// finish records the lookup and stores a complete answer of a miss.
func (s *cacheStage) finish(x *exchange) {
	sc := &x.scratch.cache
	m := x.g.metrics.respCache
	if sc.hit != "" {
		m.hit(x, sc.hit)
		return
	}
	if !sc.active {
		return
	}
	m.miss(x, sc.tried)
	if x.status != http.StatusOK || !x.answered || x.clientGone || x.errMsg != "" || x.attempts == 0 {
		return
	}
	var prompt, completion int64
	if x.usage != nil {
		prompt, completion = x.usage.PromptTokens, x.usage.CompletionTokens
	} else {
		prompt, completion = x.promptTokens, x.countedCompletion()
	}
	var body []byte
	if sc.stream {
		b, ok := sc.asm.Whole(prompt, completion)
		if !ok {
			return
		}
		body = b
	} else {
		if len(sc.whole) == 0 {
			return
		}
		body = bytes.Clone(sc.whole)
	}
	if !s.store.Put(sc.key, &cache.Entry{Body: body, PromptTokens: prompt, CompletionTokens: completion}) {
		return
	}
	if sc.vec != nil {
		s.index.Add(sc.scope, x.model.Name, sc.vec, sc.facts.Context, sc.key)
	}
	m.stored(s.store, s.index)
}
