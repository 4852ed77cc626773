package serve

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infergate/infergate/l7/gateway"
	"github.com/infergate/infergate/test/mockllm"
)

// The Server dispatches each request to the gateway in force through one
// atomic load: compare GET /v1/models (no upstream) through it and
// straight to a gateway built from the same policy, in the same run.
func BenchmarkDispatch(b *testing.B) {
	s := mockllm.New(mockllm.Config{})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	be := backend{s, mustAddrPort(b, ts.URL)}
	c := testPolicy([]backend{be}, []uint32{100})
	c.Gateway.Listen = "127.0.0.1:0"
	g, err := gateway.New(c, gateway.Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	srv := New(Options{})
	if err := srv.Apply(c); err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown(b.Context())
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"gateway", g.Handler()}, {"serve", srv.Handler()}} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/v1/models", nil)
			req.Header.Set("Authorization", "Bearer "+testKey)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				bc.h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
