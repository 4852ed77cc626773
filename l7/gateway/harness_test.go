package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infergate/infergate/internal/syncbuf"
	"github.com/infergate/infergate/l7/audit"
	"github.com/infergate/infergate/l7/auth"
	"github.com/infergate/infergate/l7/h1"
	"github.com/infergate/infergate/l7/limit"
	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/mockllm"
)

const (
	testKey      = "sk-test-alpha-0123456789"
	otherKey     = "sk-test-beta-0123456789"
	testModel    = "gpt-4o-mini"
	waitDeadline = 5 * time.Second
)

// mock is a mockllm server on a loopback port.
type mock struct {
	*mockllm.Server
	ts   *httptest.Server
	addr netip.AddrPort
}

func newMock(t testing.TB, cfg mockllm.Config) *mock {
	t.Helper()
	s := mockllm.New(cfg)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	ap := netip.MustParseAddrPort(strings.TrimPrefix(ts.URL, "http://"))
	return &mock{Server: s, ts: ts, addr: ap}
}

// pool builds a compiled pool of the given mocks.
func pool(name string, ms ...*mock) policy.CompiledPool {
	p := policy.CompiledPool{Name: name}
	for i, m := range ms {
		p.Backends = append(p.Backends, policy.CompiledBackend{Name: name + "-" + string(rune('a'+i)),
			Address: m.addr.Addr(), Port: m.addr.Port(), Weight: 100})
	}
	return p
}

// basePolicy: tenants "acme" (key testKey) and "globex" (key otherKey),
// one model served by the given pools (route to pool 0, fallback to the
// others in order).
func basePolicy(pools ...policy.CompiledPool) *policy.Compiled {
	c := &policy.Compiled{Name: "test", Version: "1", Pools: pools}
	c.Gateway.Tenants = []policy.Tenant{{Name: "acme"}, {Name: "globex"}}
	c.Gateway.Keys = []policy.CompiledKey{
		{Name: "acme-key", Tenant: 0, Hash: auth.HashKey(testKey)},
		{Name: "globex-key", Tenant: 1, Hash: auth.HashKey(otherKey)},
	}
	m := policy.CompiledModel{Name: testModel, Aliases: []string{"mini"}, Encoding: "o200k_base", Retries: 2,
		Price: policy.Price{InputPerMTok: 1, OutputPerMTok: 2}}
	for i := range pools {
		r := policy.CompiledRoute{Pool: i, Provider: -1, Weight: 100}
		if i == 0 {
			m.Routes = append(m.Routes, r)
		} else {
			m.Fallback = append(m.Fallback, r)
		}
	}
	c.Gateway.Models = []policy.CompiledModel{m}
	return c
}

// settled is one Settle call the recording limiter saw.
type settled struct {
	tokens int64
	cost   float64
}

// recordingLimiter is the real limiter with Settle calls recorded.
type recordingLimiter struct {
	limit.Limiter
	mu      sync.Mutex
	settles []settled
}

type recordingTicket struct {
	limit.Ticket
	l *recordingLimiter
}

func (l *recordingLimiter) Admit(ctx context.Context, r limit.Request) (limit.Ticket, limit.Decision, error) {
	t, d, err := l.Limiter.Admit(ctx, r)
	if t != nil {
		t = recordingTicket{t, l}
	}
	return t, d, err
}

func (t recordingTicket) Settle(ctx context.Context, tokens int64, cost float64) error {
	t.l.mu.Lock()
	t.l.settles = append(t.l.settles, settled{tokens, cost})
	t.l.mu.Unlock()
	return t.Ticket.Settle(ctx, tokens, cost)
}

func (l *recordingLimiter) all() []settled {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]settled(nil), l.settles...)
}

type harness struct {
	t       testing.TB
	g       *Gateway
	ts      *h1TestServer
	reg     *prometheus.Registry
	limiter *recordingLimiter
	audit   *syncbuf.Buffer
}

func newHarness(t testing.TB, c *policy.Compiled, opts Options) *harness {
	t.Helper()
	h := &harness{t: t, reg: prometheus.NewRegistry(), limiter: &recordingLimiter{Limiter: limit.NewMemory()}, audit: &syncbuf.Buffer{}}
	opts.Registry = h.reg
	if c.Gateway.LimitStore.Redis == "" {
		opts.Limiter = h.limiter
	}
	opts.Audit = h.audit
	g, err := New(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.g = g
	h.ts = newH1TestServer(t, g.Handler())
	t.Cleanup(func() {
		h.ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
		defer cancel()
		_ = g.Shutdown(ctx)
	})
	return h
}

func (h *harness) do(key, path, body string) *http.Response {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.ts.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp
}

// h1TestServer serves a handler with the gateway listener's server
// (l7/h1), as "infergate gateway" does, so every harness test runs over it.
type h1TestServer struct {
	URL string
	srv *h1.Server
}

func newH1TestServer(t testing.TB, h http.Handler) *h1TestServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewListenerServer(h, nil)
	go func() { _ = srv.Serve(ln) }()
	return &h1TestServer{URL: "http://" + ln.Addr().String(), srv: srv}
}

func (s *h1TestServer) Close() { _ = s.srv.Close() }

// call posts and returns status, headers and body.
func (h *harness) call(key, path, body string) (int, http.Header, []byte) {
	h.t.Helper()
	resp := h.do(key, path, body)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// records waits for at least n audit records and returns them.
func (h *harness) records(n int) []audit.Record {
	h.t.Helper()
	deadline := time.Now().Add(waitDeadline)
	for {
		_ = h.g.audit.Flush()
		var out []audit.Record
		for _, line := range strings.Split(strings.TrimSpace(h.audit.String()), "\n") {
			if line == "" {
				continue
			}
			var r audit.Record
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				h.t.Fatalf("audit line %q: %v", line, err)
			}
			out = append(out, r)
		}
		if len(out) >= n {
			return out
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%d audit records, want %d", len(out), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) last() audit.Record {
	h.t.Helper()
	r := h.records(1)
	return r[len(r)-1]
}

// apiError decodes OpenAI's error shape strictly.
type apiError struct {
	Error struct {
		Message *string `json:"message"`
		Type    *string `json:"type"`
		Code    *string `json:"code"`
		Param   *string `json:"param"`
	} `json:"error"`
}

func decodeError(t *testing.T, body []byte) (typ, code string) {
	t.Helper()
	var raw map[string]map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	for _, k := range []string{"message", "type", "code", "param"} {
		if _, ok := raw["error"][k]; !ok {
			t.Fatalf("error body %s lacks %q", body, k)
		}
	}
	var e apiError
	_ = json.Unmarshal(body, &e)
	if e.Error.Message == nil || *e.Error.Message == "" || e.Error.Type == nil {
		t.Fatalf("error body %s has no message or type", body)
	}
	if e.Error.Code != nil {
		code = *e.Error.Code
	}
	return *e.Error.Type, code
}

func chatBody(content string, extra string) string {
	b, _ := json.Marshal(content)
	return `{"model":"` + testModel + `","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":` + string(b) + `}]` + extra + `}`
}

// sse returns the data payloads of a stream.
func sse(body []byte) []string {
	var out []string
	for _, l := range strings.Split(string(body), "\n") {
		if d, ok := strings.CutPrefix(l, "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}
