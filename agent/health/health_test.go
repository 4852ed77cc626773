package health

import (
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infergate/infergate/policy"
)

const (
	testHealthInterval = 50 * time.Millisecond
	testHealthWait     = 5 * time.Second
)

type flip struct {
	id      string
	healthy bool
}

func waitFlip(t *testing.T, ch <-chan flip, id string, healthy bool) {
	t.Helper()
	timeout := time.After(testHealthWait)
	for {
		select {
		case f := <-ch:
			if f.id == id && f.healthy == healthy {
				return
			}
		case <-timeout:
			t.Fatalf("%s never turned healthy=%v", id, healthy)
		}
	}
}

func TestHealthTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddrPort(ln.Addr().String())
	go acceptAll(ln)
	flips := make(chan flip, 16)
	h := NewChecker(func(id string, ok bool) { flips <- flip{id, ok} })
	defer h.Close()
	h.Set([]Target{{ID: "p/a", Addr: addr, Interval: testHealthInterval, Timeout: testHealthInterval, Rise: 2, Fall: 2}})

	// It stays healthy while the listener is there.
	time.Sleep(4 * testHealthInterval)
	if st := h.States()["p/a"]; !st.Healthy || st.Checked.IsZero() {
		t.Fatalf("state with a listener: %+v", st)
	}
	select {
	case f := <-flips:
		t.Fatalf("flipped while healthy: %+v", f)
	default:
	}

	ln.Close()
	waitFlip(t, flips, "p/a", false)
	if st := h.States()["p/a"]; st.Healthy || st.LastError == "" {
		t.Fatalf("state after the listener went: %+v", st)
	}

	ln2, err := net.Listen("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	go acceptAll(ln2)
	waitFlip(t, flips, "p/a", true)
}

func TestHealthHTTP(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var gotPath atomic.Value
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath.Store(r.URL.Path)
		w.WriteHeader(int(status.Load()))
	})}
	go srv.Serve(ln)
	defer srv.Close()
	addr := netip.MustParseAddrPort(ln.Addr().String())
	flips := make(chan flip, 16)
	h := NewChecker(func(id string, ok bool) { flips <- flip{id, ok} })
	defer h.Close()
	tgt := Target{ID: "p/h", Addr: addr, HTTP: true, Path: "/health", Interval: testHealthInterval, Timeout: testHealthInterval, Rise: 1, Fall: 3}
	h.Set([]Target{tgt})

	status.Store(http.StatusServiceUnavailable)
	waitFlip(t, flips, "p/h", false)
	if p, _ := gotPath.Load().(string); p != "/health" {
		t.Fatalf("probed %q", p)
	}
	status.Store(http.StatusNoContent)
	waitFlip(t, flips, "p/h", true)

	// Removing the target stops it; re-adding starts it healthy.
	h.Set(nil)
	if len(h.States()) != 0 {
		t.Fatal("target still probed after removal")
	}
}

func acceptAll(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// TestTargets: only pools with a health check are probed, the check's port
// overrides the backend's, Rise and Fall are at least 1, and IDs come from
// the caller's naming.
func TestTargets(t *testing.T) {
	if Targets(nil, nil) != nil {
		t.Fatal("targets from a nil policy")
	}
	a := netip.MustParseAddr("198.18.0.1")
	c := &policy.Compiled{Pools: []policy.CompiledPool{
		{Name: "plain", Backends: []policy.CompiledBackend{{Name: "x", Address: a, Port: 80}}},
		{Name: "p", HealthCheck: &policy.CompiledHealthCheck{HTTP: true, Path: "/h", Interval: time.Second, Timeout: time.Second},
			Backends: []policy.CompiledBackend{{Name: "b", Address: a, Port: 8000}}},
		{Name: "q", HealthCheck: &policy.CompiledHealthCheck{Port: 9000, Rise: 3, Fall: 4},
			Backends: []policy.CompiledBackend{{Name: "c", Address: a, Port: 8000}}},
	}}
	got := Targets(c, func(pool, backend string) string { return pool + "|" + backend })
	want := []Target{
		{ID: "p|b", Addr: netip.AddrPortFrom(a, 8000), HTTP: true, Path: "/h", Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1},
		{ID: "q|c", Addr: netip.AddrPortFrom(a, 9000), Rise: 3, Fall: 4},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("targets:\n got %+v\nwant %+v", got, want)
	}
}
