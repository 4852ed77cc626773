package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/mockllm"
)

// get sends a GET with key (if any) and returns status, headers and body.
func (h *harness) get(key, path string) (int, http.Header, []byte) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.ts.URL+path, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// callWith posts body with extra request header fields.
func (h *harness) callWith(key, path, body string, hdr map[string]string) (int, http.Header, []byte) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.ts.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

const testTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// TestRequestIDAndTraceContext: the client's X-Request-Id is the request's
// id (response, audit, upstream) and its traceparent and tracestate reach
// the upstream; malformed ones are replaced or dropped.
func TestRequestIDAndTraceContext(t *testing.T) {
	m := newMock(t, mockllm.Config{KeepRequests: 4})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	status, hdr, body := h.callWith(testKey, "/v1/chat/completions", chatBody("hi", ""),
		map[string]string{"X-Request-Id": "client-req-42", "Traceparent": testTraceparent, "Tracestate": "vendor=abc"})
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	if got := hdr.Get("X-Request-Id"); got != "client-req-42" {
		t.Fatalf("response X-Request-Id %q", got)
	}
	up, _ := m.LastRequest()
	if up.Header.Get("X-Request-Id") != "client-req-42" || up.Header.Get("Traceparent") != testTraceparent ||
		up.Header.Get("Tracestate") != "vendor=abc" || up.Header.Get(hopsHeader) != "1" {
		t.Fatalf("upstream head %v", up.Header)
	}
	if r := h.last(); r.ID != "client-req-42" {
		t.Fatalf("audit id %q", r.ID)
	}

	status, hdr, _ = h.callWith(testKey, "/v1/chat/completions", chatBody("hi", ""),
		map[string]string{"X-Request-Id": "has space", "Traceparent": "00-zz-00f067aa0ba902b7-01"})
	if status != 200 || !strings.HasPrefix(hdr.Get("X-Request-Id"), "req-") {
		t.Fatalf("malformed id kept: %d %q", status, hdr.Get("X-Request-Id"))
	}
	up, _ = m.LastRequest()
	if up.Header.Get("Traceparent") != "" || up.Header.Get("X-Request-Id") != hdr.Get("X-Request-Id") {
		t.Fatalf("upstream head %v", up.Header)
	}
}

// TestUpstreamRequestIDPassedBack: the backend's x-request-id reaches the
// client as X-Upstream-Request-Id, through the pool and the transport.
func TestUpstreamRequestIDPassedBack(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("x-request-id", "upstream-77")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`)
	}))
	t.Cleanup(up.Close)
	ap := netip.MustParseAddrPort(strings.TrimPrefix(up.URL, "http://"))
	c := basePolicy(policy.CompiledPool{Name: "p", Backends: []policy.CompiledBackend{{Name: "b", Address: ap.Addr(), Port: ap.Port(), Weight: 1}}})
	for name, opts := range map[string]Options{"pool": {}, "transport": {Transport: http.DefaultTransport}} {
		h := newHarness(t, c, opts)
		status, hdr, body := h.call(testKey, "/v1/chat/completions", chatBody("hi", ""))
		if status != 200 || hdr.Get("X-Upstream-Request-Id") != "upstream-77" || strings.HasPrefix(hdr.Get("X-Request-Id"), "upstream") {
			t.Fatalf("%s: %d %v %s", name, status, hdr, body)
		}
	}
}

// TestHopsStopLoop: a provider pointing back at the gateway itself (with a
// key the gateway accepts) recurses until the hop limit answers 508, which
// ends the request at every level instead of being retried.
func TestHopsStopLoop(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	h := newHarness(t, basePolicy(pool("p", m)), Options{Getenv: func(k string) string {
		if k == "SELF_KEY" {
			return testKey
		}
		return ""
	}})
	c := basePolicy()
	c.Gateway.Providers = []policy.Provider{{Name: "self", BaseURL: h.ts.URL + "/v1", APIKeyEnv: "SELF_KEY"}}
	c.Gateway.Models[0].Routes = []policy.CompiledRoute{{Pool: -1, Provider: 0, Weight: 1}}
	if err := h.g.Apply(c); err != nil {
		t.Fatal(err)
	}
	status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("hi", ""))
	if status != http.StatusLoopDetected {
		t.Fatalf("%d %s", status, body)
	}
	if _, code := decodeError(t, body); code != "loop_detected" {
		t.Fatalf("code %q", code)
	}
	if recs := h.records(maxHops + 1); len(recs) != maxHops+1 {
		t.Fatalf("%d requests for one loop, want %d", len(recs), maxHops+1)
	}
	for _, v := range []string{"8", "x1", "-1", "1234"} {
		if status, _, _ := h.callWith(testKey, "/v1/chat/completions", chatBody("hi", ""), map[string]string{hopsHeader: v}); status != http.StatusLoopDetected {
			t.Fatalf("hops %q: %d", v, status)
		}
	}
}

// TestHealthAndReadiness: /healthz and /readyz answer without credentials;
// readiness turns 503 once the gateway shuts down.
func TestHealthAndReadiness(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	for _, p := range []string{"/healthz", "/readyz"} {
		if status, _, body := h.get("", p); status != 200 || !json.Valid(body) {
			t.Fatalf("%s: %d %s", p, status, body)
		}
	}
	h.g.admission.n.Or(closingBit) // shutting down, without Shutdown's closing of the rest
	if status, _, _ := h.get("", "/readyz"); status != http.StatusServiceUnavailable {
		t.Fatalf("readyz while shutting down: %d", status)
	}
	if status, _, _ := h.get("", "/healthz"); status != 200 {
		t.Fatalf("healthz while shutting down: %d", status)
	}
	h.g.admission.n.And(^closingBit)
}

// TestRetrieveModel: GET /v1/models/{id} (the SDK's models.retrieve)
// answers a served name or alias, 404 otherwise, 401 without a key.
func TestRetrieveModel(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	for _, id := range []string{testModel, "mini"} {
		status, _, body := h.get(testKey, "/v1/models/"+id)
		var o struct{ ID, Object string }
		if status != 200 || json.Unmarshal(body, &o) != nil || o.ID != id || o.Object != "model" {
			t.Fatalf("%s: %d %s", id, status, body)
		}
	}
	status, _, body := h.get(testKey, "/v1/models/nope")
	if status != 404 {
		t.Fatalf("unknown model: %d %s", status, body)
	}
	if _, code := decodeError(t, body); code != "model_not_found" {
		t.Fatalf("code %q", code)
	}
	if status, _, _ := h.get("", "/v1/models/"+testModel); status != 401 {
		t.Fatalf("no key: %d", status)
	}
}
