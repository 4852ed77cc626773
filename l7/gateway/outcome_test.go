package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/mockllm"
)

// TestStreamBreakSendsErrorEvent: an upstream that dies mid-stream ends the
// client's stream with an error event (what the OpenAI SDKs raise), not a
// clean end, and the exchange is recorded as failed while billing what
// was streamed.
func TestStreamBreakSendsErrorEvent(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	m.SetFailure(mockllm.Failure{BreakAfter: 4})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("x", `,"stream":true,"max_tokens":50`))
	events := sse(body)
	if status != 200 || len(events) < 2 || strings.Contains(string(body), "[DONE]") {
		t.Fatalf("%d %s", status, body)
	}
	var last struct {
		Error *struct{ Code, Type, Message string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(events[len(events)-1]), &last); err != nil || last.Error == nil ||
		last.Error.Code != "upstream_stream_broken" || last.Error.Message == "" {
		t.Fatalf("last event %q", events[len(events)-1])
	}
	r := h.last()
	if r.Status != http.StatusBadGateway || r.Error != "upstream_stream_broken" || r.CompletionTokens != int64(o200k(t).Count(mockllm.Text(4))) {
		t.Fatalf("audit %+v", r)
	}
	if s := h.limiter.all(); len(s) != 1 || s[0].tokens != r.PromptTokens+r.CompletionTokens || s[0].tokens == 0 {
		t.Fatalf("settled %+v", s)
	}
}

// TestStreamWithoutDoneIsBroken: a stream the upstream ends cleanly but
// without [DONE] is cut short too.
func TestStreamWithoutDoneIsBroken(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n")
	}))
	t.Cleanup(up.Close)
	ap := netip.MustParseAddrPort(strings.TrimPrefix(up.URL, "http://"))
	c := basePolicy(policy.CompiledPool{Name: "p", Backends: []policy.CompiledBackend{{Name: "b", Address: ap.Addr(), Port: ap.Port(), Weight: 1}}})
	h := newHarness(t, c, Options{})
	_, _, body := h.call(testKey, "/v1/chat/completions", chatBody("x", `,"stream":true`))
	events := sse(body)
	if len(events) != 2 || !strings.Contains(events[1], `"upstream_stream_broken"`) {
		t.Fatalf("%s", body)
	}
	if r := h.last(); r.Status != http.StatusBadGateway {
		t.Fatalf("audit %+v", r)
	}
}

// TestFailedRequestsNotCharged: a request the upstream refuses (400) or
// fails (500 on every route) settles with nothing used.
func TestFailedRequestsNotCharged(t *testing.T) {
	for _, code := range []int{400, 500} {
		m := newMock(t, mockllm.Config{})
		m.SetFailure(mockllm.Failure{Status: code})
		h := newHarness(t, basePolicy(pool("p", m)), Options{})
		status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("a prompt that costs tokens", ""))
		if status < 400 {
			t.Fatalf("upstream %d: %d %s", code, status, body)
		}
		s := h.limiter.all()
		if len(s) != 1 || s[0].tokens != 0 || s[0].cost != 0 {
			t.Fatalf("upstream %d: settled %+v", code, s)
		}
		if r := h.last(); r.PromptTokens != 0 || r.CostUSD != 0 {
			t.Fatalf("upstream %d: audit %+v", code, r)
		}
	}
}

// TestGatewayCountedUsage: when the upstream omits usage, the client gets
// the gateway's exact count, marked as such: in a whole response's body
// (and a response field), and in a last chunk of a stream that asked for
// usage.
func TestGatewayCountedUsage(t *testing.T) {
	m := newMock(t, mockllm.Config{OmitUsage: true})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	const n = 9
	prompt := "How many tokens is this?"
	want := struct{ prompt, completion int64 }{wantPrompt(t, prompt), int64(o200k(t).Count(mockllm.Text(n)))}

	status, hdr, body := h.call(testKey, "/v1/chat/completions", chatBody(prompt, `,"max_tokens":`+strconv.Itoa(n)))
	var whole struct {
		Usage *struct {
			PromptTokens     int64 `json:"prompt_tokens"`
			CompletionTokens int64 `json:"completion_tokens"`
			TotalTokens      int64 `json:"total_tokens"`
		} `json:"usage"`
		Choices []json.RawMessage `json:"choices"`
	}
	if err := json.Unmarshal(body, &whole); status != 200 || err != nil || whole.Usage == nil || len(whole.Choices) != 1 {
		t.Fatalf("%d %s", status, body)
	}
	if u := whole.Usage; u.PromptTokens != want.prompt || u.CompletionTokens != want.completion || u.TotalTokens != want.prompt+want.completion {
		t.Fatalf("usage %+v, want %+v", *u, want)
	}
	if hdr.Get(usageSourceHeader) != usageGatewayCounted {
		t.Fatalf("head %v", hdr)
	}
	if r := h.last(); r.UsageSource != "counted" || r.PromptTokens != want.prompt || r.CompletionTokens != want.completion {
		t.Fatalf("audit %+v", r)
	}

	_, _, body = h.call(testKey, "/v1/chat/completions", chatBody(prompt, `,"stream":true,"stream_options":{"include_usage":true},"max_tokens":`+strconv.Itoa(n)))
	events := sse(body)
	if len(events) < 3 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("%s", body)
	}
	var chunk struct {
		Choices []json.RawMessage `json:"choices"`
		Usage   *struct {
			PromptTokens     int64 `json:"prompt_tokens"`
			CompletionTokens int64 `json:"completion_tokens"`
		} `json:"usage"`
		Source string `json:"infergate_usage"`
	}
	if err := json.Unmarshal([]byte(events[len(events)-2]), &chunk); err != nil || chunk.Usage == nil || len(chunk.Choices) != 0 ||
		chunk.Usage.PromptTokens != want.prompt || chunk.Usage.CompletionTokens != want.completion || chunk.Source != usageGatewayCounted {
		t.Fatalf("usage chunk %q", events[len(events)-2])
	}
	if s := h.limiter.all(); len(s) != 2 || s[1].tokens != want.prompt+want.completion {
		t.Fatalf("settled %+v", s)
	}
}
