package serve

import (
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/infergate/infergate/l7/route"
	"github.com/infergate/infergate/test/mockllm"
)

// The gateway the Server assembles marks out a backend that refuses
// connections, through the load picker and without it: after
// route.DefaultConsecutiveFailures refused attempts it gets no more.
func TestServeMarksOutRefusingBackend(t *testing.T) {
	for _, loadReports := range []bool{true, false} {
		good := newBackend(t, mockllm.Config{})
		dead := backend{addr: netip.MustParseAddrPort(freeAddr(t))}
		c := testPolicy([]backend{good, dead}, []uint32{100, 100})
		c.Pools[0].LoadReports = loadReports
		c.Gateway.Listen = "127.0.0.1:0"
		s := newServer(t, Options{PollLoadReports: &LoadsConfig{}})
		if err := s.Apply(c); err != nil {
			t.Fatal(err)
		}
		if s.Picking() != loadReports {
			t.Fatalf("picking %v, want %v", s.Picking(), loadReports)
		}
		refused := 0
		for range 60 {
			switch st := chat(t, s.Addr(), "hello"); st {
			case http.StatusOK:
			case http.StatusBadGateway:
				refused++
			default:
				t.Fatalf("status %d", st)
			}
		}
		if refused != route.DefaultConsecutiveFailures {
			t.Fatalf("load reports %v: %d requests refused, want %d then none", loadReports, refused, route.DefaultConsecutiveFailures)
		}
	}
}

// A backend marked out by its failures is offered requests again at once
// when ReinstateBackend says its health check passed (the agent's call),
// not only when the marking runs out.
func TestServeReinstatedBackendTakesRequests(t *testing.T) {
	good := newBackend(t, mockllm.Config{})
	back := backend{addr: netip.MustParseAddrPort(freeAddr(t))}
	c := testPolicy([]backend{good, back}, []uint32{100, 100})
	c.Gateway.Listen = "127.0.0.1:0"
	s := newServer(t, Options{})
	if err := s.Apply(c); err != nil {
		t.Fatal(err)
	}
	for range 30 {
		chat(t, s.Addr(), "hello")
	}
	// It comes back, and its health check says so.
	ln, err := net.Listen("tcp", back.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	var served atomic.Int64
	h := mockllm.New(mockllm.Config{}).Handler()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		h.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	for range 20 {
		if st := chat(t, s.Addr(), "hello"); st != http.StatusOK {
			t.Fatalf("status %d", st)
		}
	}
	if n := served.Load(); n != 0 {
		t.Fatalf("a marked-out backend got %d requests before it was reinstated", n)
	}
	s.ReinstateBackend(back.addr)
	for range 20 {
		if st := chat(t, s.Addr(), "hello"); st != http.StatusOK {
			t.Fatalf("status %d", st)
		}
	}
	if served.Load() == 0 {
		t.Fatal("the reinstated backend got none of 20 requests")
	}
}
