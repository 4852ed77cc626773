package gateway

import (
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/fakeclock"
	"github.com/infergate/infergate/l7/route"
	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/mockllm"
)

// A backend that refuses connections gets no new requests once
// DefaultConsecutiveFailures attempts in a row failed on it, and gets
// traffic again once it is back and the back-off has run out.
func TestRefusingBackendMarkedOutThenBack(t *testing.T) {
	good := newMock(t, mockllm.Config{})
	// A port nothing listens on: connections to it are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := netip.MustParseAddrPort(ln.Addr().String())
	_ = ln.Close()
	p := pool("p", good)
	p.Backends = append(p.Backends, policy.CompiledBackend{Name: "p-dead", Address: dead.Addr(), Port: dead.Port(), Weight: 100})
	clk := fakeclock.New(time.Unix(1_000_000, 0))
	h := newHarness(t, basePolicy(p), Options{Outliers: route.OutlierConfig{Now: clk.Now}})

	refused := 0
	for range 60 {
		code, _, _ := h.call(testKey, "/v1/chat/completions", chatBody("x", ""))
		switch code {
		case http.StatusOK:
		case http.StatusBadGateway:
			refused++
		default:
			t.Fatalf("status %d", code)
		}
	}
	// Power of two choices sends half the requests to the dead backend
	// when nothing marks it out (about 30 of 60).
	if refused != route.DefaultConsecutiveFailures {
		t.Fatalf("%d requests sent to the refusing backend, want %d then none", refused, route.DefaultConsecutiveFailures)
	}

	// It comes back on the same port; once the back-off is over it
	// takes requests again.
	ln, err = net.Listen("tcp", dead.String())
	if err != nil {
		t.Skipf("the refusing backend's port was taken meanwhile: %v", err)
	}
	back := mockllm.New(mockllm.Config{})
	srv := &http.Server{Handler: back.Handler()}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	for range 10 {
		if code, _, _ := h.call(testKey, "/v1/chat/completions", chatBody("x", "")); code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
	}
	if n := back.Stats().Total; n != 0 {
		t.Fatalf("the marked-out backend got %d requests during its back-off", n)
	}
	clk.Add(route.DefaultBaseEjection)
	for range 40 {
		if code, _, _ := h.call(testKey, "/v1/chat/completions", chatBody("x", "")); code != http.StatusOK {
			t.Fatalf("status %d after recovery", code)
		}
	}
	if n := back.Stats().Total; n < 5 {
		t.Fatalf("the recovered backend got %d of 40 requests after its back-off", n)
	}
}

// 5xx answers mark a backend out as refusals do; 429s (a busy engine) do
// not.
func TestServerErrorsMarkOut429sDoNot(t *testing.T) {
	a, b := newMock(t, mockllm.Config{}), newMock(t, mockllm.Config{})
	b.SetFailure(mockllm.Failure{Status: http.StatusTooManyRequests})
	h := newHarness(t, basePolicy(pool("p", a, b)), Options{})
	for range 40 {
		h.call(testKey, "/v1/chat/completions", chatBody("x", ""))
	}
	if n := b.Stats().Total; n < 10 {
		t.Fatalf("a backend answering 429 got %d of 40 requests: marked out", n)
	}
	b.SetFailure(mockllm.Failure{Status: http.StatusInternalServerError})
	before := b.Stats().Total
	for range 40 {
		h.call(testKey, "/v1/chat/completions", chatBody("x", ""))
	}
	if n := b.Stats().Total - before; n != route.DefaultConsecutiveFailures {
		t.Fatalf("a backend answering 500 got %d of 40 requests, want %d then none", n, route.DefaultConsecutiveFailures)
	}
}
