package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/l7/route"
	"github.com/infergate/infergate/l7/tokens"
	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/mockllm"
)

func o200k(t *testing.T) *tokens.Counter {
	t.Helper()
	c, err := tokens.Get("o200k_base")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wantPrompt counts chatBody's prompt with l7/tokens directly.
func wantPrompt(t *testing.T, content string) int64 {
	return int64(o200k(t).CountChat([]tokens.Message{{Role: "system", Content: "You are terse."}, {Role: "user", Content: content}}))
}

func TestChatWholeBilledFromUpstreamUsage(t *testing.T) {
	m := newMock(t, mockllm.Config{MaxTokens: 7})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	status, hdr, body := h.call(testKey, "/v1/chat/completions", chatBody("hello world", ""))
	if status != 200 {
		t.Fatalf("status %d %s", status, body)
	}
	var resp struct {
		Choices []struct{ Message struct{ Content string } }
		Usage   openai.Usage
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Choices[0].Message.Content != mockllm.Text(7) || hdr.Get("x-request-id") == "" {
		t.Fatalf("body %s headers %v", body, hdr)
	}
	r := h.last()
	if r.Tenant != "acme" || r.Key != "acme-key" || r.Model != testModel || r.Backend != "p/p-a" || r.Status != 200 ||
		r.UsageSource != "upstream" || r.PromptTokens != resp.Usage.PromptTokens || r.CompletionTokens != 7 {
		t.Fatalf("audit %+v", r)
	}
	wantCost := (float64(resp.Usage.PromptTokens)*1 + 7*2) / 1e6
	if r.CostUSD != wantCost {
		t.Fatalf("cost %v want %v", r.CostUSD, wantCost)
	}
	if s := h.limiter.all(); len(s) != 1 || s[0].tokens != resp.Usage.PromptTokens+7 || s[0].cost != wantCost {
		t.Fatalf("settles %+v", s)
	}
	// The client's credential never goes upstream.
	up, _ := m.LastRequest()
	if up.Header.Get("Authorization") != "" || up.Header.Get("X-Request-Id") != hdr.Get("x-request-id") {
		t.Fatalf("upstream headers %v", up.Header)
	}
	// Metrics carry tenant, model, backend, status.
	if n := testutil.CollectAndCount(h.g.metrics.tokens, "gen_ai_client_token_usage"); n != 2 {
		t.Fatalf("token usage series %d, want 2 (input, output)", n)
	}
	if v := testutil.ToFloat64(h.g.metrics.cost.WithLabelValues("acme", testModel, "p/p-a", "200")); v != wantCost {
		t.Fatalf("cost metric %v", v)
	}
}

func TestAliasCompletionsEmbeddingsModels(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	status, _, body := h.call(testKey, "/v1/completions", `{"model":"mini","prompt":["one two","three"],"max_tokens":3}`)
	if status != 200 || !strings.Contains(string(body), `"text_completion"`) {
		t.Fatalf("completions %d %s", status, body)
	}
	if r := h.last(); r.Model != testModel || r.Endpoint != "/completions" {
		t.Fatalf("alias not resolved: %+v", r)
	}
	status, _, body = h.call(testKey, "/v1/embeddings", `{"model":"gpt-4o-mini","input":"embed me"}`)
	if status != 200 || !strings.Contains(string(body), `"embedding"`) {
		t.Fatalf("embeddings %d %s", status, body)
	}
	req, _ := http.NewRequest("GET", h.ts.URL+"/v1/models", nil)
	req.Header.Set("x-api-key", testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"id":"gpt-4o-mini"`) || !strings.Contains(string(b), `"id":"mini"`) {
		t.Fatalf("models %s", b)
	}
	resp, _ = http.Get(h.ts.URL + "/v1/models")
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("unauthenticated /v1/models: %d", resp.StatusCode)
	}
}

func TestAuthFailures(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	for _, tc := range []struct{ name, key string }{{"missing", ""}, {"wrong", "sk-wrong-key"}} {
		status, _, body := h.call(tc.key, "/v1/chat/completions", chatBody("hi", ""))
		if status != 401 {
			t.Fatalf("%s: status %d", tc.name, status)
		}
		typ, code := decodeError(t, body)
		if typ != openai.TypeAuthentication || code == "" {
			t.Fatalf("%s: type %q code %q", tc.name, typ, code)
		}
	}
	if st := m.Stats(); st.Total != 0 {
		t.Fatalf("unauthenticated requests reached upstream: %+v", st)
	}
}

func TestMalformedInputs(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	c := basePolicy(pool("p", m))
	c.Gateway.MaxBodyBytes = 2048
	h := newHarness(t, c, Options{})
	for _, tc := range []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"bad json", "/v1/chat/completions", `{"model":`, 400, "invalid_json"},
		{"not object", "/v1/chat/completions", `[1,2]`, 400, "invalid_json"},
		{"no model", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}]}`, 400, "missing_model"},
		{"no messages", "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[]}`, 400, "missing_messages"},
		{"bad content", "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":5}]}`, 400, "invalid_value"},
		{"negative max_tokens", "/v1/chat/completions", chatBody("x", `,"max_tokens":-1`), 400, "invalid_value"},
		{"unknown model", "/v1/chat/completions", `{"model":"nope","messages":[{"role":"user","content":"x"}]}`, 404, "model_not_found"},
		{"too large", "/v1/chat/completions", chatBody(strings.Repeat("a", 4096), ""), 413, "request_too_large"},
		{"stream embeddings", "/v1/embeddings", `{"model":"gpt-4o-mini","input":"x","stream":true}`, 400, "invalid_value"},
		{"unknown path", "/v1/nothing", `{}`, 404, "unknown_url"},
	} {
		status, _, body := h.call(testKey, tc.path, tc.body)
		if status != tc.status {
			t.Fatalf("%s: status %d %s", tc.name, status, body)
		}
		if _, code := decodeError(t, body); code != tc.code {
			t.Fatalf("%s: code %q want %q", tc.name, code, tc.code)
		}
	}
	if st := m.Stats(); st.Total != 0 {
		t.Fatalf("malformed requests reached upstream: %+v", st)
	}
}

func TestRequestLimitHit(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	c := basePolicy(pool("p", m))
	c.Gateway.Tenants[0].Limits.RequestsPerMinute = 2
	h := newHarness(t, c, Options{})
	for i := range 2 {
		status, hdr, body := h.call(testKey, "/v1/chat/completions", chatBody("hi", ""))
		if status != 200 || hdr.Get("x-ratelimit-limit-requests") != "2" ||
			hdr.Get("x-ratelimit-remaining-requests") != strconv.Itoa(1-i) {
			t.Fatalf("request %d: %d %v %s", i, status, hdr, body)
		}
	}
	status, hdr, body := h.call(testKey, "/v1/chat/completions", chatBody("hi", ""))
	if status != 429 {
		t.Fatalf("third request: %d", status)
	}
	if ra, _ := strconv.Atoi(hdr.Get("Retry-After")); ra < 1 || ra > 60 || hdr.Get("x-ratelimit-remaining-requests") != "0" {
		t.Fatalf("429 headers %v", hdr)
	}
	if typ, code := decodeError(t, body); typ != openai.TypeRateLimit || code != "rate_limit_exceeded" {
		t.Fatalf("429 body %s", body)
	}
	// The other tenant is unaffected.
	if status, _, _ := h.call(otherKey, "/v1/chat/completions", chatBody("hi", "")); status != 200 {
		t.Fatalf("other tenant: %d", status)
	}
	if m.Stats().Total != 3 {
		t.Fatalf("upstream saw %d requests, want 3", m.Stats().Total)
	}
}

// TestConcurrencyLimitRecovers: a held slot refuses the next request, and
// the slot comes back when the first request ends.
func TestConcurrencyLimitRecovers(t *testing.T) {
	m := newMock(t, mockllm.Config{TTFT: 300 * time.Millisecond})
	c := basePolicy(pool("p", m))
	c.Gateway.Keys[0].Limits.Concurrent = 1
	h := newHarness(t, c, Options{})
	done := make(chan int)
	go func() {
		resp := h.do(testKey, "/v1/chat/completions", chatBody("slow", ""))
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	deadline := time.Now().Add(waitDeadline)
	for m.Stats().Running == 0 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("hi", ""))
	if status != 429 || !strings.Contains(string(body), "key_concurrent") {
		t.Fatalf("second concurrent request: %d %s", status, body)
	}
	if s := <-done; s != 200 {
		t.Fatalf("first request %d", s)
	}
	if status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("hi", "")); status != 200 {
		t.Fatalf("after release: %d %s", status, body)
	}
}

func TestTokenLimitReservesMaxTokens(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	c := basePolicy(pool("p", m))
	c.Gateway.Tenants[0].Limits.TokensPerMinute = 500
	h := newHarness(t, c, Options{})
	// prompt + 1000 can never fit in 500/min: refused without reaching upstream.
	status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("hi", `,"max_tokens":1000`))
	if status != 429 || m.Stats().Total != 0 {
		t.Fatalf("oversized reservation: %d %s", status, body)
	}
	status, hdr, _ := h.call(testKey, "/v1/chat/completions", chatBody("hi", `,"max_tokens":5`))
	if status != 200 || hdr.Get("x-ratelimit-limit-tokens") != "500" {
		t.Fatalf("small request %d %v", status, hdr)
	}
}

func TestStreamUsageStrippedWhenNotAsked(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	status, hdr, body := h.call(testKey, "/v1/chat/completions", chatBody("stream please", `,"stream":true,"max_tokens":6`))
	if status != 200 || hdr.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d %v", status, hdr)
	}
	up, _ := m.LastRequest()
	if !strings.Contains(up.Body, `"stream_options":{"include_usage":true}`) {
		t.Fatalf("upstream was not asked for usage: %s", up.Body)
	}
	events := sse(body)
	if events[len(events)-1] != "[DONE]" {
		t.Fatalf("events %v", events)
	}
	var text strings.Builder
	for _, e := range events[:len(events)-1] {
		if strings.Contains(e, `"usage"`) {
			t.Fatalf("usage chunk reached a client that did not ask: %s", e)
		}
		var c openai.Chunk
		_ = json.Unmarshal([]byte(e), &c)
		text.WriteString(string(c.AppendText(nil)))
	}
	if text.String() != mockllm.Text(6) {
		t.Fatalf("text %q", text.String())
	}
	r := h.last()
	if r.UsageSource != "upstream" || r.CompletionTokens != 6 || !r.Stream || r.TTFTMS <= 0 {
		t.Fatalf("audit %+v", r)
	}

	// A client that asks gets the usage chunk.
	_, _, body = h.call(testKey, "/v1/chat/completions", chatBody("stream please", `,"stream":true,"max_tokens":6,"stream_options":{"include_usage":true}`))
	events = sse(body)
	if !strings.Contains(events[len(events)-2], `"completion_tokens":6`) {
		t.Fatalf("usage chunk missing: %v", events)
	}
}

// TestStreamWithoutUsageBilledFromCountedTokens: a backend that reports no
// usage is billed from the gateway's count of the streamed text, which
// equals l7/tokens' count of that text; the prompt from the local count.
func TestStreamWithoutUsageBilledFromCountedTokens(t *testing.T) {
	m := newMock(t, mockllm.Config{OmitUsage: true})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	const n = 40
	prompt := "Count these tokens: naïve café, 数字, emoji 🎉 and code `x := 1`."
	status, _, body := h.call(testKey, "/v1/chat/completions", chatBody(prompt, `,"stream":true,"max_tokens":`+strconv.Itoa(n)))
	if status != 200 || strings.Contains(string(body), `"usage"`) {
		t.Fatalf("status %d body %s", status, body)
	}
	wantCompletion := int64(o200k(t).Count(mockllm.Text(n)))
	r := h.last()
	if r.UsageSource != "counted" || r.CompletionTokens != wantCompletion || r.PromptTokens != wantPrompt(t, prompt) {
		t.Fatalf("audit %+v, want completion %d prompt %d", r, wantCompletion, wantPrompt(t, prompt))
	}
	if s := h.limiter.all(); len(s) != 1 || s[0].tokens != r.PromptTokens+wantCompletion {
		t.Fatalf("settled %+v", s)
	}
	// Same for a whole response.
	_, _, _ = h.call(testKey, "/v1/chat/completions", chatBody(prompt, `,"max_tokens":9`))
	if r := h.last(); r.UsageSource != "counted" || r.CompletionTokens != int64(o200k(t).Count(mockllm.Text(9))) {
		t.Fatalf("whole audit %+v", r)
	}
}

// TestClientDisconnectMidStream: the upstream request is cancelled, and the
// completion is billed from the tokens streamed before the client left.
func TestClientDisconnectMidStream(t *testing.T) {
	m := newMock(t, mockllm.Config{TokensPerSecond: 200})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", h.ts.URL+"/v1/chat/completions",
		strings.NewReader(chatBody("long", `,"stream":true,"max_tokens":2000`)))
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	var got int
	for got < 6 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "data: ") {
			got++
		}
	}
	cancel()
	resp.Body.Close()
	r := h.last()
	if r.Status != statusClientClosed || r.UsageSource != "counted" || r.CompletionTokens < 5 || r.CompletionTokens >= 2000 {
		t.Fatalf("audit %+v", r)
	}
	if s := h.limiter.all(); len(s) != 1 || s[0].tokens != r.PromptTokens+r.CompletionTokens {
		t.Fatalf("settled %+v", s)
	}
	deadline := time.Now().Add(waitDeadline)
	for m.Stats().Canceled == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := m.Stats(); st.Canceled != 1 || st.Completed != 0 {
		t.Fatalf("upstream not cancelled: %+v", st)
	}
}

// TestBrokenStreamBilled: a backend that dies mid-stream; the client keeps
// what it got and billing counts it.
func TestBrokenStreamBilled(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	m.SetFailure(mockllm.Failure{BreakAfter: 4})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("x", `,"stream":true,"max_tokens":50`))
	if status != 200 || strings.Contains(string(body), "[DONE]") {
		t.Fatalf("%d %s", status, body)
	}
	r := h.last()
	if r.UsageSource != "counted" || r.CompletionTokens != int64(o200k(t).Count(mockllm.Text(4))) || r.Error != "upstream_stream_broken" {
		t.Fatalf("audit %+v", r)
	}
}

func TestFallback(t *testing.T) {
	bad := newMock(t, mockllm.Config{})
	good := newMock(t, mockllm.Config{})
	h := newHarness(t, basePolicy(pool("bad", bad), pool("good", good)), Options{})
	for _, st := range []int{500, 429, 503} {
		bad.SetFailure(mockllm.Failure{Status: st})
		status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("x", ""))
		if status != 200 {
			t.Fatalf("upstream %d: got %d %s", st, status, body)
		}
		if r := h.last(); r.Backend != "good/good-a" || r.Attempts != 2 {
			t.Fatalf("upstream %d: audit %+v", st, r)
		}
	}
	// Only 429s: the client gets 429 with the upstream's Retry-After.
	good.SetFailure(mockllm.Failure{Status: 429})
	status, hdr, body := h.call(testKey, "/v1/chat/completions", chatBody("x", ""))
	if status != 429 || hdr.Get("Retry-After") != "1" {
		t.Fatalf("all 429: %d %v %s", status, hdr, body)
	}
	// Both failing: the client gets an upstream error.
	good.SetFailure(mockllm.Failure{Status: 500})
	status, _, body = h.call(testKey, "/v1/chat/completions", chatBody("x", ""))
	if status != http.StatusBadGateway {
		t.Fatalf("all failing: %d %s", status, body)
	}
	if typ, _ := decodeError(t, body); typ != openai.TypeUpstream {
		t.Fatalf("all failing body %s", body)
	}
	// A connection refused backend falls back too.
	good.SetFailure(mockllm.Failure{})
	bad.ts.Close()
	if status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("x", "")); status != 200 {
		t.Fatalf("refused: %d %s", status, body)
	}
}

func TestFallbackRespectsRetryBudget(t *testing.T) {
	a, b, c := newMock(t, mockllm.Config{}), newMock(t, mockllm.Config{}), newMock(t, mockllm.Config{})
	for _, m := range []*mock{a, b} {
		m.SetFailure(mockllm.Failure{Status: 500})
	}
	pc := basePolicy(pool("a", a), pool("b", b), pool("c", c))
	pc.Gateway.Models[0].Retries = 1
	h := newHarness(t, pc, Options{})
	if status, _, _ := h.call(testKey, "/v1/chat/completions", chatBody("x", "")); status != http.StatusBadGateway {
		t.Fatalf("status %d, want 502 with one retry", status)
	}
	if c.Stats().Total != 0 {
		t.Fatal("third route tried beyond the retry budget")
	}
}

func TestTTFTTimeout(t *testing.T) {
	slow := newMock(t, mockllm.Config{TTFT: 2 * time.Second})
	fast := newMock(t, mockllm.Config{})
	pc := basePolicy(pool("slow", slow), pool("fast", fast))
	pc.Gateway.Models[0].Timeouts.TimeToFirstToken = 100 * time.Millisecond
	h := newHarness(t, pc, Options{})
	start := time.Now()
	status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("x", `,"stream":true`))
	if status != 200 || time.Since(start) > time.Second {
		t.Fatalf("status %d after %v: %s", status, time.Since(start), body)
	}
	if r := h.last(); r.Backend != "fast/fast-a" {
		t.Fatalf("audit %+v", r)
	}
	// Without a fallback the client gets 504.
	pc2 := basePolicy(pool("slow", slow))
	pc2.Gateway.Models[0].Timeouts.TimeToFirstToken = 100 * time.Millisecond
	if err := h.g.Apply(pc2); err != nil {
		t.Fatal(err)
	}
	status, _, body = h.call(testKey, "/v1/chat/completions", chatBody("x", `,"stream":true`))
	if status != http.StatusGatewayTimeout {
		t.Fatalf("status %d %s", status, body)
	}
	deadline := time.Now().Add(waitDeadline)
	for slow.Stats().Canceled < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if slow.Stats().Canceled != 2 {
		t.Fatalf("timed-out attempts not cancelled upstream: %+v", slow.Stats())
	}
}

func TestTotalTimeout(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	m.SetFailure(mockllm.Failure{Hang: true})
	pc := basePolicy(pool("p", m))
	pc.Gateway.Models[0].Timeouts.Total = 150 * time.Millisecond
	h := newHarness(t, pc, Options{})
	if status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("x", "")); status != http.StatusGatewayTimeout {
		t.Fatalf("status %d %s", status, body)
	}
}

func TestWeightedSplit(t *testing.T) {
	a, b := newMock(t, mockllm.Config{}), newMock(t, mockllm.Config{})
	pc := basePolicy(pool("a", a), pool("b", b))
	md := &pc.Gateway.Models[0]
	md.Fallback = nil
	md.Routes = []policy.CompiledRoute{{Pool: 0, Provider: -1, Weight: 80}, {Pool: 1, Provider: -1, Weight: 20, UpstreamModel: "canary-v2"}}
	h := newHarness(t, pc, Options{})
	const n = 200
	for range n {
		if status, _, _ := h.call(testKey, "/v1/chat/completions", chatBody("x", `,"max_tokens":1`)); status != 200 {
			t.Fatal(status)
		}
	}
	na := a.Stats().Total
	if na < 130 || na > 185 {
		t.Fatalf("route a got %d of %d, want about 80%%", na, n)
	}
	up, _ := b.LastRequest()
	if !strings.Contains(up.Body, `"model":"canary-v2"`) {
		t.Fatalf("upstream model not renamed: %s", up.Body)
	}
}

func TestPoolPowerOfTwoSpreadsLoad(t *testing.T) {
	ms := []*mock{newMock(t, mockllm.Config{TTFT: 50 * time.Millisecond}), newMock(t, mockllm.Config{TTFT: 50 * time.Millisecond}), newMock(t, mockllm.Config{TTFT: 50 * time.Millisecond})}
	h := newHarness(t, basePolicy(pool("p", ms...)), Options{})
	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := h.do(testKey, "/v1/chat/completions", chatBody("x", ""))
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	wg.Wait()
	for i, m := range ms {
		if got := m.Stats().Total; got < 5 {
			t.Fatalf("backend %d got %d of 30", i, got)
		}
	}
}

type fixedPicker struct{ idx int }

func (p fixedPicker) Pick(string, []*route.Backend) int { return p.idx }

func TestPickerChoosesBackend(t *testing.T) {
	a, b := newMock(t, mockllm.Config{}), newMock(t, mockllm.Config{})
	h := newHarness(t, basePolicy(pool("p", a, b)), Options{Picker: fixedPicker{1}})
	for range 10 {
		h.call(testKey, "/v1/chat/completions", chatBody("x", ""))
	}
	if a.Stats().Total != 0 || b.Stats().Total != 10 {
		t.Fatalf("picker ignored: a=%d b=%d", a.Stats().Total, b.Stats().Total)
	}
}

func TestProviderKeyInjected(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	pc := basePolicy()
	pc.Gateway.Providers = []policy.Provider{{Name: "ext", BaseURL: m.ts.URL + "/v1/", APIKeyEnv: "EXT_KEY"}}
	pc.Gateway.Models[0].Routes = []policy.CompiledRoute{{Pool: -1, Provider: 0, Weight: 1}}
	h := newHarness(t, pc, Options{Getenv: func(k string) string {
		if k == "EXT_KEY" {
			return "sk-upstream-secret"
		}
		return ""
	}})
	if status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("x", "")); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	up, _ := m.LastRequest()
	if up.Header.Get("Authorization") != "Bearer sk-upstream-secret" || up.Path != "/v1/chat/completions" {
		t.Fatalf("upstream got %v %s", up.Header, up.Path)
	}
	if r := h.last(); r.Backend != "provider/ext" {
		t.Fatalf("audit %+v", r)
	}
}

// TestApplyKeepsInFlightSnapshot: a stream started before Apply finishes on
// the old routes; requests after it see the new policy.
func TestApplyKeepsInFlightSnapshot(t *testing.T) {
	m := newMock(t, mockllm.Config{TokensPerSecond: 100})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	resp := h.do(testKey, "/v1/chat/completions", chatBody("x", `,"stream":true,"max_tokens":20`))
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	next := basePolicy(pool("p", m))
	next.Gateway.Models[0].Name = "other-model"
	next.Gateway.Models[0].Aliases = nil
	if err := h.g.Apply(next); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(br)
	resp.Body.Close()
	if !strings.Contains(string(rest), "[DONE]") {
		t.Fatalf("in-flight stream cut by Apply: %s", rest)
	}
	if status, _, _ := h.call(testKey, "/v1/chat/completions", chatBody("x", "")); status != 404 {
		t.Fatalf("old model still served after Apply: %d", status)
	}
}

// TestShutdownFinishesStreams: Shutdown waits for an open stream to end and
// refuses new requests meanwhile.
func TestShutdownFinishesStreams(t *testing.T) {
	m := newMock(t, mockllm.Config{TokensPerSecond: 50})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	resp := h.do(testKey, "/v1/chat/completions", chatBody("x", `,"stream":true,"max_tokens":15`))
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
		defer cancel()
		shut <- h.g.Shutdown(ctx)
	}()
	deadline := time.Now().Add(waitDeadline)
	for {
		status, _, _ := h.call(testKey, "/v1/chat/completions", chatBody("x", ""))
		if status == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("new requests still accepted during shutdown")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v before the stream ended", err)
	default:
	}
	rest, _ := io.ReadAll(br)
	resp.Body.Close()
	if !strings.Contains(string(rest), "[DONE]") {
		t.Fatalf("stream cut by shutdown: %s", rest)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}
