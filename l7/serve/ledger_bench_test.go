package serve

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/mockllm"
)

// What the ledger's spool costs a request: chat completions through the
// Server with no ledger, and with a spool (fsynced group commits, no
// database), one at a time and 32 in flight, in the same run.
func BenchmarkLedger(b *testing.B) {
	s := mockllm.New(mockllm.Config{})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	be := backend{s, mustAddrPort(b, ts.URL)}
	for _, bc := range []struct {
		name  string
		spool bool
	}{{"off", false}, {"spool", true}} {
		c := testPolicy([]backend{be}, []uint32{100})
		c.Gateway.Listen = "127.0.0.1:0"
		if bc.spool {
			c.Gateway.Ledger = policy.Ledger{Spool: filepath.Join(b.TempDir(), "ledger.db")}
		}
		srv := New(Options{})
		if err := srv.Apply(c); err != nil {
			b.Fatal(err)
		}
		h := srv.Handler()
		one := func() {
			req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions",
				strings.NewReader(`{"model":"m","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}`))
			req.Header.Set("Authorization", "Bearer "+testKey)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Errorf("status %d", w.Code)
			}
		}
		b.Run(bc.name+"/serial", func(b *testing.B) {
			for b.Loop() {
				one()
			}
		})
		b.Run(bc.name+"/parallel32", func(b *testing.B) {
			b.SetParallelism(32)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					one()
				}
			})
		})
		_ = srv.Shutdown(b.Context())
	}
}
