package h1

import (
	"bytes"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestBodyBudgetBoundsHeap: 150 connections each declare a 4 MiB body and
// send one byte, to a handler that sizes its buffer by Content-Length (as
// the gateway did). Without a bound that is 600 MiB of heap for 150 bytes
// received; with the server's default budget the heap grows by at most
// the budget and a margin, the requests beyond it are answered 503, and
// everything counted is given back once the clients leave.
func TestBodyBudgetBoundsHeap(t *testing.T) {
	const (
		clients  = 150
		declared = 4 << 20
		// Generous: the default budget (64 MiB) plus room for 150
		// connections' buffers and goroutines and the runtime's slack.
		maxGrowth = 160 << 20
	)
	var entered atomic.Int32
	s, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered.Add(1)
		var buf bytes.Buffer
		buf.Grow(int(r.ContentLength))
		_, err := buf.ReadFrom(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, buf.Len())
	}), nil)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	conns := make([]*rawConn, clients)
	for i := range conns {
		conns[i] = dial(t, addr)
		conns[i].send(fmt.Sprintf("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\nx", declared))
	}
	// Generous: 16 handlers each zero 4 MiB, slow under the race detector
	// on a busy machine.
	waitWithin(t, 30*time.Second, "every request to be taken or refused", func() bool {
		return int(entered.Load())+int(s.Stats().BodyRefused) == clients
	})
	runtime.GC()
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("heap in use grew %d MiB for %d bodies of %d MiB declared; %d handlers ran, %d refused",
		growth>>20, clients, declared>>20, entered.Load(), s.Stats().BodyRefused)
	if growth > maxGrowth {
		t.Fatalf("heap in use grew %d MiB; want at most %d MiB", growth>>20, maxGrowth>>20)
	}
	if got := s.Stats().BodyBytesInFlight; got > DefaultMaxBodyBytesInFlight {
		t.Fatalf("%d body bytes in flight; budget %d", got, DefaultMaxBodyBytesInFlight)
	}
	refused := 0
	for _, c := range conns {
		_ = c.c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if b, err := c.br.Peek(12); err == nil && string(b) == "HTTP/1.1 503" {
			resp, _ := c.response("POST")
			if resp.Header.Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
			refused++
		}
	}
	if refused != int(s.Stats().BodyRefused) || refused == 0 {
		t.Fatalf("%d clients read a 503; the server refused %d", refused, s.Stats().BodyRefused)
	}
	for _, c := range conns {
		c.c.Close()
	}
	waitGone(t, s)
	if got := s.Stats().BodyBytesInFlight; got != 0 {
		t.Fatalf("%d body bytes still counted after every client left", got)
	}
	// The budget is free again for a real upload.
	c := dial(t, addr)
	c.send(fmt.Sprintf("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", declared))
	c.send(strings.Repeat("y", declared))
	if resp, body := c.response("POST"); resp.StatusCode != 200 || body != fmt.Sprint(declared) {
		t.Fatalf("upload after the flood: %d %q", resp.StatusCode, body)
	}
}

// TestBodyBudgetLimits: a declared body larger than the whole budget gets
// 413, a chunked body that outgrows it fails its Read with ErrBodyBudget,
// and bodies that came whole with their head are not counted.
func TestBodyBudgetLimits(t *testing.T) {
	const budget = 64 << 10
	s, addr := start(t, echo(), func(s *Server) { s.MaxBodyBytesInFlight = budget })
	defer func() {
		if got := s.Stats().BodyRefused; got != 2 {
			t.Errorf("%d refusals counted; want 2", got)
		}
	}()
	c := dial(t, addr)
	c.send(fmt.Sprintf("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", budget+1))
	if resp, _ := c.response("POST"); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("body over the whole budget: %d; want 413", resp.StatusCode)
	}
	c = dial(t, addr)
	c.send("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
	chunk := strings.Repeat("z", 16<<10)
	for range 5 {
		c.send(fmt.Sprintf("%x\r\n%s\r\n", len(chunk), chunk))
	}
	c.send("0\r\n\r\n")
	resp, body := c.response("POST")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, ErrBodyBudget.Error()) {
		t.Fatalf("chunked body over the budget: %d %q", resp.StatusCode, body)
	}
	// Small bodies sent whole are served whatever the budget holds.
	c = dial(t, addr)
	for range 3 {
		c.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello")
		if resp, body := c.response("POST"); resp.StatusCode != 200 || !strings.HasSuffix(body, "hello") {
			t.Fatalf("small body: %d %q", resp.StatusCode, body)
		}
	}
}
