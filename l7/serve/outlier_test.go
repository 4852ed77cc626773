package serve

import (
	"net/http"
	"net/netip"
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
