package gateway

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/infergate/infergate/internal/redistest"
	"github.com/infergate/infergate/l7/route"
	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/mockllm"
)

// TestTwoReplicasShareRedisLimits: two gateways on one redis-server,
// hammered together, admit no more than the tenant's limit and at least
// 95% of it.
func TestTwoReplicasShareRedisLimits(t *testing.T) {
	addr := redistest.Start(t).Addr
	m := newMock(t, mockllm.Config{})
	const limitRPM = 40
	c := basePolicy(pool("p", m))
	c.Gateway.Tenants[0].Limits.RequestsPerMinute = limitRPM
	c.Gateway.LimitStore = policy.LimitStore{Redis: addr}
	a := newHarness(t, c, Options{})
	b := newHarness(t, c, Options{})
	var ok, limited, other atomic.Int64
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := a
			if w%2 == 1 {
				h = b
			}
			for range 8 {
				resp := h.do(testKey, "/v1/chat/completions", chatBody("x", `,"max_tokens":1`))
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case 200:
					ok.Add(1)
				case 429:
					limited.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	// GCRA refills limit/minute continuously: allow one extra for the
	// seconds the test runs.
	if n := ok.Load(); n > limitRPM+1 || n < limitRPM*95/100 || other.Load() != 0 {
		t.Fatalf("admitted %d (limit %d), limited %d, other %d", n, limitRPM, limited.Load(), other.Load())
	}
	// Either replica reports the shared state.
	_, hdr, _ := b.call(testKey, "/v1/chat/completions", chatBody("x", ""))
	if hdr.Get("x-ratelimit-remaining-requests") != "0" || hdr.Get("Retry-After") == "" {
		t.Fatalf("headers after exhaustion %v", hdr)
	}
}

func TestBudgetExhausted(t *testing.T) {
	m := newMock(t, mockllm.Config{MaxTokens: 10})
	c := basePolicy(pool("p", m))
	c.Gateway.Models[0].Price = policy.Price{InputPerMTok: 1e4, OutputPerMTok: 1e4}
	// One request costs about (prompt + 10) * 1e4 / 1e6 = ~$0.2.
	c.Gateway.Tenants[0].Limits.BudgetUSD = 0.3
	h := newHarness(t, c, Options{})
	if status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("x", `,"max_tokens":10`)); status != 200 {
		t.Fatalf("first: %d %s", status, body)
	}
	status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("x", `,"max_tokens":10`))
	if status != 429 {
		t.Fatalf("over budget: %d %s", status, body)
	}
	if _, code := decodeError(t, body); code != "insufficient_quota" {
		t.Fatalf("code %q", code)
	}
}

// TestSlowClientBody: a client that stops sending its body is cut off.
func TestSlowClientBody(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	h := newHarness(t, basePolicy(pool("p", m)), Options{BodyReadTimeout: 200 * time.Millisecond})
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"model\":", testKey)
	_ = conn.SetReadDeadline(time.Now().Add(waitDeadline))
	start := time.Now()
	b, _ := io.ReadAll(conn)
	if !strings.Contains(string(b), " 408 ") || time.Since(start) > 2*time.Second {
		t.Fatalf("after %v: %q", time.Since(start), b)
	}
	if m.Stats().Total != 0 {
		t.Fatal("partial body forwarded")
	}
}

func TestJWTTenantFlows(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	c := basePolicy(pool("p", m))
	c.Gateway.JWT = []policy.JWTIssuer{{Issuer: "https://idp.test", Audience: "infergate", HS256SecretEnv: "JWT_SECRET", TenantClaim: "org"}}
	secret := strings.Repeat("s", 32)
	h := newHarness(t, c, Options{Getenv: func(k string) string {
		if k == "JWT_SECRET" {
			return secret
		}
		return ""
	}})
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "https://idp.test", "aud": "infergate",
		"sub": "user-7", "org": "globex", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	if status, _, body := h.call(tok, "/v1/chat/completions", chatBody("x", "")); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	if r := h.last(); r.Tenant != "globex" || r.Subject != "user-7" || r.Key != "" {
		t.Fatalf("audit %+v", r)
	}
	bad, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "https://idp.test", "aud": "infergate",
		"org": "globex", "exp": time.Now().Add(-time.Hour).Unix()}).SignedString([]byte(secret))
	if status, _, body := h.call(bad, "/v1/chat/completions", chatBody("x", "")); status != 401 {
		t.Fatalf("expired token: %d %s", status, body)
	}
}

func TestUpstreamClientErrorPassedThrough(t *testing.T) {
	a, b := newMock(t, mockllm.Config{}), newMock(t, mockllm.Config{})
	a.SetFailure(mockllm.Failure{Status: 400})
	h := newHarness(t, basePolicy(pool("a", a), pool("b", b)), Options{})
	status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("x", ""))
	if status != 400 || b.Stats().Total != 0 {
		t.Fatalf("upstream 400: got %d (fallback tried: %v) %s", status, b.Stats().Total != 0, body)
	}
	decodeError(t, body)

	// A 401 from upstream is the gateway's credential failing: never
	// shown to the client as its own 401; the next route is tried.
	a.SetFailure(mockllm.Failure{Status: 401})
	status, _, body = h.call(testKey, "/v1/chat/completions", chatBody("x", ""))
	if status != 200 || b.Stats().Total != 1 {
		t.Fatalf("upstream 401: got %d %s", status, body)
	}
}

func TestCompletionsStream(t *testing.T) {
	m := newMock(t, mockllm.Config{OmitUsage: true})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	status, _, body := h.call(testKey, "/v1/completions", `{"model":"gpt-4o-mini","prompt":"once upon","stream":true,"max_tokens":12}`)
	if status != 200 || !strings.Contains(string(body), "[DONE]") {
		t.Fatalf("%d %s", status, body)
	}
	r := h.last()
	if r.UsageSource != "counted" || r.CompletionTokens != int64(o200k(t).Count(mockllm.Text(12))) || r.PromptTokens != int64(o200k(t).Count("once upon")) {
		t.Fatalf("audit %+v", r)
	}
	if got := testCount(t, h, "gen_ai_server_time_to_first_token_seconds"); got == 0 {
		t.Fatal("no TTFT observation for a stream")
	}
}

func testCount(t *testing.T, h *harness, name string) int {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			n := 0
			for _, m := range mf.GetMetric() {
				n += int(m.GetHistogram().GetSampleCount())
			}
			return n
		}
	}
	return 0
}

type panickyPicker struct{ left atomic.Int64 }

func (p *panickyPicker) Pick(string, []*route.Backend) int {
	if p.left.Add(-1) >= 0 {
		panic("picker bug")
	}
	return -1
}

// TestPanicInStageReleasesLimits: a bug in a stage after admission answers
// 500 and still releases the concurrency slot.
func TestPanicInStageReleasesLimits(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	c := basePolicy(pool("p", m))
	c.Gateway.Keys[0].Limits.Concurrent = 1
	pp := &panickyPicker{}
	pp.left.Store(1)
	h := newHarness(t, c, Options{Picker: pp, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("x", ""))
	if status != 500 {
		t.Fatalf("%d %s", status, body)
	}
	if _, code := decodeError(t, body); code != "internal_error" {
		t.Fatalf("body %s", body)
	}
	if status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("x", "")); status != 200 {
		t.Fatalf("slot not released after panic: %d %s", status, body)
	}
}

// blackhole returns a loopback address whose connects hang: a listener
// with a backlog of one that never accepts, its queue already full, so the
// kernel drops further SYNs.
func blackhole(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sa.(*syscall.SockaddrInet4).Port))
	filler, err := net.DialTimeout("tcp", ap.String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { filler.Close() })
	if c, err := net.DialTimeout("tcp", ap.String(), 100*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("this kernel accepts connections beyond the backlog; no black hole on loopback")
	}
	return ap
}

// TestConnectTimeout: a backend that never completes the handshake is
// given up after the connect timeout, on the pool and the provider path,
// and the next route answers.
func TestConnectTimeout(t *testing.T) {
	hole := blackhole(t)
	good := newMock(t, mockllm.Config{})
	c := basePolicy(policy.CompiledPool{Name: "hole", Backends: []policy.CompiledBackend{{Name: "h", Address: hole.Addr(), Port: hole.Port(), Weight: 1}}}, pool("good", good))
	c.Gateway.Providers = []policy.Provider{{Name: "hole-api", BaseURL: "http://" + hole.String() + "/v1"}}
	md := &c.Gateway.Models[0]
	md.Fallback = []policy.CompiledRoute{{Pool: -1, Provider: 0}, {Pool: 1, Provider: -1}}
	md.Timeouts.Connect = 150 * time.Millisecond
	h := newHarness(t, c, Options{})
	start := time.Now()
	status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("x", ""))
	if status != 200 || time.Since(start) > 2*time.Second {
		t.Fatalf("%d after %v: %s", status, time.Since(start), body)
	}
	if r := h.last(); r.Attempts != 3 || r.Backend != "good/good-a" {
		t.Fatalf("audit %+v", r)
	}
}
