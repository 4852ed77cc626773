package agent

import (
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
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
	h := NewHealthChecker(func(id string, ok bool) { flips <- flip{id, ok} })
	defer h.Close()
	h.Set([]HealthTarget{{ID: "p/a", Addr: addr, Interval: testHealthInterval, Timeout: testHealthInterval, Rise: 2, Fall: 2}})

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
	h := NewHealthChecker(func(id string, ok bool) { flips <- flip{id, ok} })
	defer h.Close()
	tgt := HealthTarget{ID: "p/h", Addr: addr, HTTP: true, Path: "/health", Interval: testHealthInterval, Timeout: testHealthInterval, Rise: 1, Fall: 3}
	h.Set([]HealthTarget{tgt})

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
