package gateway

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/redistest"
	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/mockllm"
)

// cachePolicy is basePolicy over one mock with the response cache on.
func cachePolicy(m *mock, rc policy.ResponseCache) *policy.Compiled {
	c := basePolicy(pool("p", m))
	c.Gateway.Cache = &rc
	return c
}

func (h *harness) callH(key, body string, hdr map[string]string) (int, http.Header, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.ts.URL+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func wantCache(t *testing.T, hdr http.Header, want string) {
	t.Helper()
	if got := hdr.Get(cacheHeader); got != want {
		t.Fatalf("%s: %q, want %q", cacheHeader, got, want)
	}
}

func wantUpstream(t *testing.T, m *mock, n int64) {
	t.Helper()
	if got := m.Stats().Total; got != n {
		t.Fatalf("upstream requests: %d, want %d", got, n)
	}
}

// TestCacheRepeatedDeterministicRequest: the same temperature-0 request
// asked again is answered from the cache with no upstream call, with the
// same body; it is audited as a cached answer costing nothing and settles
// its limit ticket at zero; a parameter that changes the output misses,
// one that does not (user, key order, 0 written as 0.0) hits.
func TestCacheRepeatedDeterministicRequest(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	h := newHarness(t, cachePolicy(m, policy.ResponseCache{}), Options{})
	body := chatBody("hello there", `,"temperature":0,"max_tokens":5`)
	st, hdr, first := h.call(testKey, "/v1/chat/completions", body)
	if st != 200 {
		t.Fatalf("status %d %s", st, first)
	}
	wantCache(t, hdr, "miss")
	st, hdr, second := h.call(testKey, "/v1/chat/completions", body)
	if st != 200 || string(second) != string(first) {
		t.Fatalf("hit: status %d body %s, want %s", st, second, first)
	}
	wantCache(t, hdr, "hit-exact")
	wantUpstream(t, m, 1)
	rec := h.records(2)[1]
	if rec.Backend != "cache" || rec.Cache != "exact" || rec.CostUSD != 0 || rec.PromptTokens != 0 || rec.CachedTokens == 0 || rec.UsageSource != "cache" || rec.Attempts != 0 {
		t.Fatalf("audit of the hit: %+v", rec)
	}
	if s := h.limiter.all(); len(s) != 2 || s[1].tokens != 0 || s[1].cost != 0 {
		t.Fatalf("settlements %+v: the hit must settle at zero", s)
	}
	// Same answer: a member that cannot change it, another spelling.
	same := `{"user":"u1","temperature":0.0,"max_tokens":5,"messages":[{"content":"You are terse.","role":"system"},{"role":"user","content":"hello there"}],"model":"mini"}`
	_, hdr, b := h.call(testKey, "/v1/chat/completions", same)
	wantCache(t, hdr, "hit-exact")
	if string(b) != string(first) {
		t.Fatalf("body %s", b)
	}
	// A different answer: max_tokens changes the output.
	_, hdr, _ = h.call(testKey, "/v1/chat/completions", chatBody("hello there", `,"temperature":0,"max_tokens":6`))
	wantCache(t, hdr, "miss")
	wantUpstream(t, m, 2)
	if got := counterValue(t, h, "infergate_cache_lookups_total", map[string]string{"kind": "exact", "result": "hit"}); got != 2 {
		t.Fatalf("exact hits counted %v, want 2", got)
	}
	if got := counterValue(t, h, "infergate_cache_saved_tokens_total", map[string]string{"gen_ai_token_type": "output"}); got != 10 {
		t.Fatalf("saved output tokens %v, want 10", got)
	}
	in := counterValue(t, h, "infergate_cache_saved_tokens_total", map[string]string{"gen_ai_token_type": "input"})
	wantUSD := (in*1 + 10*2) / 1e6 // the model's price: 1 and 2 USD per million
	if got := counterValue(t, h, "infergate_cache_saved_usd_total", nil); in == 0 || math.Abs(got-wantUSD) > 1e-12 {
		t.Fatalf("saved USD %v, want %v", got, wantUSD)
	}
	if n := histogramCount(t, h, "infergate_cache_hit_time_to_first_token_seconds"); n != 2 {
		t.Fatalf("%d hit TTFT samples, want 2", n)
	}
}

// TestCacheTenantsApart: one tenant's entry never answers another's
// request, unless the policy shares entries.
func TestCacheTenantsApart(t *testing.T) {
	for _, share := range []bool{false, true} {
		m := newMock(t, mockllm.Config{})
		h := newHarness(t, cachePolicy(m, policy.ResponseCache{ShareAcrossTenants: share}), Options{})
		body := chatBody("tenant question", `,"temperature":0`)
		h.call(testKey, "/v1/chat/completions", body)
		_, hdr, _ := h.call(otherKey, "/v1/chat/completions", body)
		if share {
			wantCache(t, hdr, "hit-exact")
			wantUpstream(t, m, 1)
		} else {
			wantCache(t, hdr, "miss")
			wantUpstream(t, m, 2)
			// and each tenant now hits its own
			_, hdr, _ = h.call(otherKey, "/v1/chat/completions", body)
			wantCache(t, hdr, "hit-exact")
		}
	}
}

// TestCacheNonDeterministic: a request with a temperature above zero (or
// none, which is 1) is never cached, unless the model or the request opts
// in.
func TestCacheNonDeterministic(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	c := cachePolicy(m, policy.ResponseCache{})
	h := newHarness(t, c, Options{})
	for _, extra := range []string{`,"temperature":0.7`, ``} {
		body := chatBody("random question", extra)
		for range 2 {
			_, hdr, _ := h.call(testKey, "/v1/chat/completions", body)
			wantCache(t, hdr, "")
		}
	}
	wantUpstream(t, m, 4)
	body := chatBody("opted in", `,"temperature":0.7`)
	h.callH(testKey, body, map[string]string{cacheHeader: "allow"})
	_, hdr, _ := h.callH(testKey, body, map[string]string{cacheHeader: "allow"})
	wantCache(t, hdr, "hit-exact")
	wantUpstream(t, m, 5)

	m2 := newMock(t, mockllm.Config{})
	c2 := cachePolicy(m2, policy.ResponseCache{})
	c2.Gateway.Models[0].Cache.NonDeterministic = true
	h2 := newHarness(t, c2, Options{})
	h2.call(testKey, "/v1/chat/completions", chatBody("q", ""))
	_, hdr, _ = h2.call(testKey, "/v1/chat/completions", chatBody("q", ""))
	wantCache(t, hdr, "hit-exact")
	wantUpstream(t, m2, 1)
}

// TestCacheBypass: Cache-Control: no-store and X-Infergate-Cache: bypass
// neither read nor store; no-cache (refresh) skips the lookup.
func TestCacheBypass(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	h := newHarness(t, cachePolicy(m, policy.ResponseCache{}), Options{})
	body := chatBody("bypass me", `,"temperature":0`)
	for _, hd := range []map[string]string{{"Cache-Control": "no-store"}, {cacheHeader: "bypass"}} {
		_, hdr, _ := h.callH(testKey, body, hd)
		wantCache(t, hdr, "bypass")
	}
	wantUpstream(t, m, 2)
	_, hdr, _ := h.callH(testKey, body, nil)
	wantCache(t, hdr, "miss") // nothing was stored by the bypassed ones
	_, hdr, _ = h.callH(testKey, body, map[string]string{"Cache-Control": "no-cache"})
	wantCache(t, hdr, "miss")
	wantUpstream(t, m, 4)
	_, hdr, _ = h.callH(testKey, body, nil)
	wantCache(t, hdr, "hit-exact")
	wantUpstream(t, m, 4)
}

type streamed struct {
	content string
	finish  string
	usage   *struct{ PromptTokens, CompletionTokens int64 }
	done    bool
}

// parseStream checks a stream is well-formed SSE of chat chunks and
// returns what it says.
func parseStream(t *testing.T, body []byte) streamed {
	t.Helper()
	var s streamed
	if !strings.HasSuffix(string(body), "data: [DONE]\n\n") {
		t.Fatalf("stream does not end with [DONE]: %q", body)
	}
	for _, ev := range strings.Split(strings.TrimSuffix(string(body), "\n\n"), "\n\n") {
		d, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.Contains(d, "\n") {
			t.Fatalf("malformed event %q", ev)
		}
		if d == "[DONE]" {
			s.done = true
			continue
		}
		var c struct {
			Object  string `json:"object"`
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage *struct {
				PromptTokens     int64 `json:"prompt_tokens"`
				CompletionTokens int64 `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(d), &c); err != nil || c.Object != "chat.completion.chunk" {
			t.Fatalf("chunk %s: %v", d, err)
		}
		for _, ch := range c.Choices {
			s.content += ch.Delta.Content
			if ch.FinishReason != nil {
				s.finish = *ch.FinishReason
			}
		}
		if c.Usage != nil {
			s.usage = &struct{ PromptTokens, CompletionTokens int64 }{c.Usage.PromptTokens, c.Usage.CompletionTokens}
		}
	}
	return s
}

// TestCacheStreamReplay: a streamed answer is stored, and a streamed hit
// is replayed as well-formed SSE with the same text, finish reason, the
// usage chunk only when asked for, and [DONE]; whole and streamed
// requests answer each other.
func TestCacheStreamReplay(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	h := newHarness(t, cachePolicy(m, policy.ResponseCache{}), Options{})
	withUsage := chatBody("stream me", `,"temperature":0,"max_tokens":7,"stream":true,"stream_options":{"include_usage":true}`)
	_, hdr, b := h.call(testKey, "/v1/chat/completions", withUsage)
	wantCache(t, hdr, "miss")
	orig := parseStream(t, b)
	_, hdr, b = h.call(testKey, "/v1/chat/completions", withUsage)
	wantCache(t, hdr, "hit-exact")
	if ct := hdr.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	hit := parseStream(t, b)
	if hit.content != orig.content || hit.finish != "length" || hit.usage == nil || *hit.usage != *orig.usage {
		t.Fatalf("replay %+v, original %+v", hit, orig)
	}
	// No usage asked for: no usage chunk.
	_, hdr, b = h.call(testKey, "/v1/chat/completions", chatBody("stream me", `,"temperature":0,"max_tokens":7,"stream":true`))
	wantCache(t, hdr, "hit-exact")
	if s := parseStream(t, b); s.usage != nil || s.content != orig.content {
		t.Fatalf("replay without usage asked: %+v", s)
	}
	// A whole request answered from the streamed entry.
	_, hdr, b = h.call(testKey, "/v1/chat/completions", chatBody("stream me", `,"temperature":0,"max_tokens":7`))
	wantCache(t, hdr, "hit-exact")
	var whole struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(b, &whole); err != nil || len(whole.Choices) != 1 || whole.Choices[0].Message.Content != orig.content {
		t.Fatalf("whole from stream entry: %s", b)
	}
	wantUpstream(t, m, 1)
}

// TestCacheStoresOnlyComplete: a stream the upstream cut and an upstream
// error are not stored.
func TestCacheStoresOnlyComplete(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	h := newHarness(t, cachePolicy(m, policy.ResponseCache{}), Options{})
	body := chatBody("cut me", `,"temperature":0,"max_tokens":8,"stream":true`)
	m.SetFailure(mockllm.Failure{BreakAfter: 3, Count: 1})
	h.call(testKey, "/v1/chat/completions", body)
	_, hdr, b := h.call(testKey, "/v1/chat/completions", body)
	wantCache(t, hdr, "miss")
	parseStream(t, b)
	wantUpstream(t, m, 2)
	whole := chatBody("fail me", `,"temperature":0`)
	m.SetFailure(mockllm.Failure{Status: 500, Count: 3})
	st, _, _ := h.call(testKey, "/v1/chat/completions", whole)
	if st == 200 {
		t.Fatal("the failure did not happen")
	}
	_, hdr, _ = h.call(testKey, "/v1/chat/completions", whole)
	wantCache(t, hdr, "miss")
}

// TestCacheReplicasShareThroughRedis: an answer one gateway stored is
// served by another gateway on the same redis-server, with no upstream
// call, over the limit store's connection settings: AUTH, and TLS with a
// client certificate.
func TestCacheReplicasShareThroughRedis(t *testing.T) {
	const pass = "cache-pass-0123"
	pw := filepath.Join(t.TempDir(), "redis-password")
	if err := os.WriteFile(pw, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("auth", func(t *testing.T) {
		rs := redistest.StartWith(t, redistest.Options{Password: pass})
		replicasShare(t, policy.LimitStore{Redis: rs.Addr, PasswordFile: pw})
	})
	t.Run("tls", func(t *testing.T) {
		rs := redistest.StartWith(t, redistest.Options{TLS: true, ClientCerts: true, Password: pass})
		c := rs.TLS
		replicasShare(t, policy.LimitStore{Redis: rs.Addr, PasswordFile: pw,
			TLS: policy.RedisTLS{Enabled: true, CAFile: c.CAFile, CertFile: c.ClientCert, KeyFile: c.ClientKey}})
	})
}

func replicasShare(t *testing.T, ls policy.LimitStore) {
	m := newMock(t, mockllm.Config{})
	mk := func() *harness {
		c := cachePolicy(m, policy.ResponseCache{Redis: true})
		c.Gateway.LimitStore = ls
		return newHarness(t, c, Options{})
	}
	a, b := mk(), mk()
	body := chatBody("shared answer", `,"temperature":0`)
	_, _, first := a.call(testKey, "/v1/chat/completions", body)
	deadline := time.Now().Add(waitDeadline)
	for {
		_, hdr, got := b.call(testKey, "/v1/chat/completions", body)
		if hdr.Get(cacheHeader) == "hit-exact" {
			if string(got) != string(first) {
				t.Fatalf("replica answered %s, want %s", got, first)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second replica never saw the first one's entry")
		}
		time.Sleep(20 * time.Millisecond)
	}
	upstream := m.Stats().Total
	_, hdr, _ := b.call(otherKey, "/v1/chat/completions", body)
	wantCache(t, hdr, "miss") // another tenant, also through Redis
	wantUpstream(t, m, upstream+1)
}

// TestCacheSemantic: with the model's semantic cache on, a paraphrase
// whose embedding is above the threshold is answered from the cache, one
// below it is not; the embeddings are real calls to the pool's
// /v1/embeddings.
func TestCacheSemantic(t *testing.T) {
	const (
		orig      = "What is the capital city of France?"
		close     = "what is the capital city of france"
		far       = "Which river runs through the capital of France?"
		threshold = 0.9
	)
	sim := func(a, b string) float64 {
		x, y := mockllm.Embed(a), mockllm.Embed(b)
		var d float64
		for i := range x {
			d += x[i] * y[i]
		}
		return d
	}
	if s := sim(orig, close); s < threshold {
		t.Fatalf("premise: close paraphrase at %.3f", s)
	}
	if s := sim(orig, far); s >= threshold {
		t.Fatalf("premise: far paraphrase at %.3f", s)
	}
	m := newMock(t, mockllm.Config{})
	c := cachePolicy(m, policy.ResponseCache{Semantic: &policy.SemanticCache{EmbeddingsModel: "embed", Threshold: threshold}})
	c.Gateway.Models[0].Cache.Semantic = true
	c.Gateway.Models = append(c.Gateway.Models, policy.CompiledModel{Name: "embed", Encoding: "cl100k_base",
		Routes: []policy.CompiledRoute{{Pool: 0, Provider: -1, Weight: 100}}})
	h := newHarness(t, c, Options{})
	_, hdr, first := h.call(testKey, "/v1/chat/completions", chatBody(orig, `,"temperature":0`))
	wantCache(t, hdr, "miss")
	_, hdr, b := h.call(testKey, "/v1/chat/completions", chatBody(close, `,"temperature":0`))
	wantCache(t, hdr, "hit-semantic")
	if string(b) != string(first) || hdr.Get(cacheSimilarityHeader) == "" {
		t.Fatalf("semantic hit %s (similarity %q)", b, hdr.Get(cacheSimilarityHeader))
	}
	_, hdr, _ = h.call(testKey, "/v1/chat/completions", chatBody(far, `,"temperature":0`))
	wantCache(t, hdr, "miss")
	// Same text, other parameters: not the same conversation.
	_, hdr, _ = h.call(testKey, "/v1/chat/completions", chatBody(close, `,"temperature":0,"max_tokens":3`))
	wantCache(t, hdr, "miss")
	// Another tenant never matches.
	_, hdr, _ = h.call(otherKey, "/v1/chat/completions", chatBody(close, `,"temperature":0`))
	wantCache(t, hdr, "miss")
	var chats, embeds int
	for _, r := range m.Requests() {
		switch r.Path {
		case "/v1/chat/completions":
			chats++
		case "/v1/embeddings":
			embeds++
		}
	}
	if chats != 4 || embeds != 5 {
		t.Fatalf("upstream saw %d chat and %d embeddings requests, want 4 and 5", chats, embeds)
	}
	if got := counterValue(t, h, "infergate_cache_lookups_total", map[string]string{"kind": "semantic", "result": "hit"}); got != 1 {
		t.Fatalf("semantic hits counted %v", got)
	}
}

// counterValue sums the counter samples of name whose labels include want.
func counterValue(t *testing.T, h *harness, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// TestCacheReload: a reload that keeps the cache's settings keeps its
// entries; one whose cache cannot start (Redis refuses the credentials)
// fails as a whole and leaves the policy in force, entries and all.
func TestCacheReload(t *testing.T) {
	rs := redistest.StartWith(t, redistest.Options{Password: "s3cret-pass"})
	m := newMock(t, mockllm.Config{})
	c := cachePolicy(m, policy.ResponseCache{})
	h := newHarness(t, c, Options{})
	body := chatBody("keep me", `,"temperature":0`)
	h.call(testKey, "/v1/chat/completions", body)

	bad := cachePolicy(m, policy.ResponseCache{Redis: true})
	bad.Gateway.LimitStore.Redis = rs.Addr // no password file: refused
	if err := h.g.Apply(bad); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("apply with a refused cache store: %v", err)
	}
	_, hdr, _ := h.call(testKey, "/v1/chat/completions", body)
	wantCache(t, hdr, "hit-exact")

	next := cachePolicy(m, policy.ResponseCache{})
	next.Gateway.Models[0].Price.InputPerMTok = 7
	if err := h.g.Apply(next); err != nil {
		t.Fatal(err)
	}
	_, hdr, _ = h.call(testKey, "/v1/chat/completions", body)
	wantCache(t, hdr, "hit-exact")
	wantUpstream(t, m, 1)

	smaller := cachePolicy(m, policy.ResponseCache{MemoryBytes: 1 << 20})
	if err := h.g.Apply(smaller); err != nil {
		t.Fatal(err)
	}
	_, hdr, _ = h.call(testKey, "/v1/chat/completions", body)
	wantCache(t, hdr, "miss") // a new store
}

// TestCacheBillHits: with billHits a hit settles its limit ticket and is
// audited at the tokens and cost of the stored answer.
func TestCacheBillHits(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	h := newHarness(t, cachePolicy(m, policy.ResponseCache{BillHits: true}), Options{})
	body := chatBody("bill me", `,"temperature":0,"max_tokens":4`)
	h.call(testKey, "/v1/chat/completions", body)
	h.call(testKey, "/v1/chat/completions", body)
	recs := h.records(2)
	miss, hit := recs[0], recs[1]
	if hit.Cache != "exact" || hit.PromptTokens != miss.PromptTokens || hit.CompletionTokens != miss.CompletionTokens || hit.CostUSD != miss.CostUSD || hit.CostUSD == 0 {
		t.Fatalf("billed hit %+v, miss %+v", hit, miss)
	}
	if s := h.limiter.all(); len(s) != 2 || s[1] != s[0] {
		t.Fatalf("settlements %+v: the billed hit must settle as the miss did", s)
	}
}

// histogramCount sums the sample counts of histogram name.
func histogramCount(t *testing.T, h *harness, name string) uint64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

// TestCacheSkipsTranslatedAPIs: a deterministic Anthropic Messages request
// asked twice reaches the upstream twice and both answers are Messages:
// a stored answer is replayed in the chat wire format, which a client of
// another API does not speak, so those requests are not cached.
func TestCacheSkipsTranslatedAPIs(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	h := newHarness(t, cachePolicy(m, policy.ResponseCache{}), Options{})
	body := `{"model":"` + testModel + `","max_tokens":5,"temperature":0,"messages":[{"role":"user","content":"Say hello."}]}`
	for i := range 2 {
		status, _, b := h.postAPI("/v1/messages", body, anthropicHeaders(testKey))
		if status != http.StatusOK || !strings.Contains(string(b), `"type":"message"`) {
			t.Fatalf("call %d: %d %s", i, status, b)
		}
	}
	wantUpstream(t, m, 2)
}
