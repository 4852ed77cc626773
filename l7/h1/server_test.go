package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const testWait = 5 * time.Second

// fallbackOnly makes start's servers keep their connections off the close
// watcher and the raw path (TestFallback).
var fallbackOnly bool

// TestFallback runs the framing, disconnect and shutdown tests again on
// the path a connection the close watcher cannot take is served by.
func TestFallback(t *testing.T) {
	fallbackOnly = true
	defer func() { fallbackOnly = false }()
	for name, f := range map[string]func(*testing.T){
		"KeepAliveAndFraming": TestKeepAliveAndFraming, "RejectsAndCloses": TestRejectsAndCloses,
		"HeadLimits": TestHeadLimits, "ExpectContinue": TestExpectContinue, "StreamingFlush": TestStreamingFlush,
		"ClientDisconnectCancels": TestClientDisconnectCancels, "StopDisconnect": TestStopDisconnect,
		"ContextEndsWithHandler": TestContextEndsWithHandler, "ShutdownDrains": TestShutdownDrains,
		"PanicAnd500": TestPanicAnd500, "UnreadBodyDiscarded": TestUnreadBodyDiscarded, "BodyBuffered": TestBodyBuffered,
		"PipelinedDuringHandler": TestPipelinedDuringHandler,
	} {
		t.Run(name, f)
	}
}

// start serves h on a loopback port and returns its address.
func start(t *testing.T, h http.Handler, tune func(*Server)) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h, noWatch: fallbackOnly}
	if tune != nil {
		tune(s)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close(); <-done })
	return s, ln.Addr().String()
}

// rawConn sends raw bytes and reads raw responses.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(testWait))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatal(err)
	}
}

// response reads one response with net/http's client parser.
func (r *rawConn) response(method string) (*http.Response, string) {
	r.t.Helper()
	resp, err := http.ReadResponse(r.br, &http.Request{Method: method})
	if err != nil {
		r.t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp, string(b)
}

// closed reports whether the server closed the connection.
func (r *rawConn) closed() bool {
	_ = r.c.SetReadDeadline(time.Now().Add(testWait))
	_, err := r.br.ReadByte()
	return err == io.EOF || errors.Is(err, net.ErrClosed) || isReset(err)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func isReset(err error) bool { return err != nil && strings.Contains(err.Error(), "reset") }

// echo answers with the method, path, the body read, and some headers.
func echo() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "body error: %v", err)
			return
		}
		w.Header().Set("X-Len", fmt.Sprint(r.ContentLength))
		w.Header().Set("X-Host", r.Host)
		fmt.Fprintf(w, "%s %s %s|%s|%s", r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), b)
	})
}

// TestKeepAliveAndFraming: a Content-Length request, a chunked one (with an
// extension and a trailer) and a body-less one on one connection; each
// response carries its Content-Length and the connection stays open.
func TestKeepAliveAndFraming(t *testing.T) {
	_, addr := start(t, echo(), nil)
	c := dial(t, addr)
	c.send("POST /a?q=1 HTTP/1.1\r\nHost: x\r\nauthorization: Bearer k\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer-A: v\r\n\r\n" +
		"GET /c HTTP/1.1\r\nHost: y:8080\r\n\r\n")
	want := []struct{ body, length, host string }{
		{"POST /a q=1|Bearer k|hello", "5", "x"},
		{"POST /b ||abcde", "-1", "x"},
		{"GET /c ||", "0", "y:8080"},
	}
	for i, w := range want {
		resp, body := c.response("")
		if resp.StatusCode != 200 || body != w.body || resp.Header.Get("X-Len") != w.length || resp.Header.Get("X-Host") != w.host {
			t.Fatalf("response %d: %d %q %v", i, resp.StatusCode, body, resp.Header)
		}
		if resp.ContentLength != int64(len(w.body)) || resp.Close || resp.Header.Get("Date") == "" {
			t.Fatalf("response %d framing: length %d close %v date %q", i, resp.ContentLength, resp.Close, resp.Header.Get("Date"))
		}
	}
}

// TestRejectsAndCloses: requests that could be read two ways get a 4xx/5xx
// and the connection closes, so a smuggled second request is never served.
func TestRejectsAndCloses(t *testing.T) {
	var served atomic.Int64
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
		}
	}), nil)
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	cases := []struct {
		name, req string
		status    int
	}{
		{"CL and TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE and CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400},
		{"two lengths", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 40\r\n\r\n", 400},
		{"obs-fold", "POST / HTTP/1.1\r\nHost: x\r\nX: a\r\n Transfer-Encoding: chunked\r\n\r\n", 400},
		{"space before colon", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n", 400},
		{"te xchunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n", 501},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
		{"bare lf", "POST / HTTP/1.1\nHost: x\n\n", 400},
		{"no host", "GET / HTTP/1.1\r\n\r\n", 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := served.Load()
			c := dial(t, addr)
			c.send(tc.req + smuggled)
			resp, _ := c.response("")
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if !c.closed() {
				t.Fatal("connection left open after a rejected request")
			}
			// The bad chunk case reaches the handler (the head is fine);
			// nothing after it may.
			if n := served.Load() - before; n > 1 || (n == 1 && tc.name != "bad chunk size") {
				t.Fatalf("%d requests served", n)
			}
		})
	}
}

// TestHeadLimits: a head over MaxHeaderBytes gets 431; one that does not
// complete within ReadHeaderTimeout is dropped; an idle connection is
// closed after IdleTimeout.
func TestHeadLimits(t *testing.T) {
	_, addr := start(t, echo(), func(s *Server) {
		s.MaxHeaderBytes = 1 << 10
		s.ReadHeaderTimeout = 100 * time.Millisecond
		s.IdleTimeout = 200 * time.Millisecond
	})
	c := dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2<<10) + "\r\n\r\n")
	if resp, _ := c.response(""); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d", resp.StatusCode)
	}
	c = dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: x\r\n")
	start := time.Now()
	if !c.closed() || time.Since(start) > 2*time.Second {
		t.Fatalf("slow head: closed after %v", time.Since(start))
	}
	c = dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	c.response("")
	start = time.Now()
	if !c.closed() || time.Since(start) < 100*time.Millisecond {
		t.Fatalf("idle connection closed after %v", time.Since(start))
	}
}

// TestHTTP10AndClose: HTTP/1.0 closes unless keep-alive is asked for;
// Connection: close from either side closes after the response.
func TestHTTP10AndClose(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		_, _ = io.WriteString(w, "ok")
	}), nil)
	c := dial(t, addr)
	c.send("GET / HTTP/1.0\r\n\r\n")
	if resp, body := c.response(""); body != "ok" || !resp.Close {
		t.Fatalf("1.0: %q close %v", body, resp.Close)
	}
	if !c.closed() {
		t.Fatal("HTTP/1.0 connection left open")
	}
	c = dial(t, addr)
	c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n")
	if resp, _ := c.response(""); resp.Close || resp.Header.Get("Connection") != "keep-alive" {
		t.Fatalf("1.0 keep-alive: %v", resp.Header)
	}
	if resp, _ := c.response(""); !resp.Close {
		t.Fatal("second 1.0 request kept open")
	}
	for _, req := range []string{"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "GET /close HTTP/1.1\r\nHost: x\r\n\r\n"} {
		c = dial(t, addr)
		c.send(req)
		if resp, _ := c.response(""); !resp.Close {
			t.Fatalf("%q: response without Connection: close", req)
		}
		if !c.closed() {
			t.Fatalf("%q: connection left open", req)
		}
	}
}

// TestExpectContinue: 100 Continue goes out only when the handler reads
// the body; a handler that answers without reading gets no 100 and the
// connection closes (the client may still be sending).
func TestExpectContinue(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/skip" {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	}), nil)
	c := dial(t, addr)
	c.send("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	line, err := c.br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("interim %q %v", line, err)
	}
	if blank, _ := c.br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("interim end %q", blank)
	}
	c.send("body")
	if _, body := c.response(""); body != "body" {
		t.Fatalf("body %q", body)
	}
	c = dial(t, addr)
	c.send("POST /skip HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	if resp, _ := c.response(""); resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
		t.Fatalf("skip: %d close %v", resp.StatusCode, resp.Close)
	}
}

// TestStreamingFlush: each Flush puts one chunk on the wire before the
// handler goes on, and the stream ends with the last chunk.
func TestStreamingFlush(t *testing.T) {
	next := make(chan struct{})
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			if err := rc.Flush(); err != nil {
				return
			}
			<-next
		}
	}), nil)
	resp, err := http.Post("http://"+addr+"/", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("transfer encoding %q", resp.TransferEncoding)
	}
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: %d\n", i) {
			t.Fatalf("event %d: %q %v", i, line, err)
		}
		_, _ = br.ReadString('\n')
		next <- struct{}{}
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("after the last event: %q %v", rest, err)
	}
}

// TestLargeBodyChunked: a body larger than the held-back buffer goes out
// chunked and arrives whole; a declared Content-Length is kept.
func TestLargeBodyChunked(t *testing.T) {
	big := strings.Repeat("x", 3*bodyBufferSize+7)
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/declared" {
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		}
		_, _ = io.WriteString(w, big)
	}), nil)
	for _, path := range []string{"/", "/declared"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != big {
			t.Fatalf("%s: %d bytes", path, len(b))
		}
		if path == "/declared" && resp.ContentLength != int64(len(big)) {
			t.Fatalf("declared length %d", resp.ContentLength)
		}
	}
}

// TestClientDisconnectCancels: a client that goes away while its request
// runs cancels the request's context.
func TestClientDisconnectCancels(t *testing.T) {
	entered, canceled, hooked := make(chan struct{}), make(chan struct{}), make(chan struct{})
	stopRes := make(chan bool, 1)
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		dn := w.(interface {
			OnDisconnect(func())
			StopDisconnect() bool
		})
		dn.OnDisconnect(func() {
			if r.Context().Err() == nil {
				t.Error("hook ran before the context was cancelled")
			}
			close(hooked)
		})
		close(entered)
		select {
		case <-r.Context().Done():
			close(canceled)
		case <-time.After(testWait):
		}
		<-hooked
		stopRes <- dn.StopDisconnect()
	}), nil)
	c := dial(t, addr)
	c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
	<-entered
	c.c.Close()
	select {
	case <-canceled:
	case <-time.After(testWait):
		t.Fatal("request context not cancelled after the client left")
	}
	if <-stopRes {
		t.Fatal("StopDisconnect reported a hook that ran as removed in time")
	}
}

// TestStopDisconnect: a hook removed before the client leaves never runs,
// and StopDisconnect says it was removed in time.
func TestStopDisconnect(t *testing.T) {
	var ran atomic.Bool
	results := make(chan bool, 1)
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dn := w.(interface {
			OnDisconnect(func())
			StopDisconnect() bool
		})
		dn.OnDisconnect(func() { ran.Store(true) })
		results <- dn.StopDisconnect()
		time.Sleep(3 * disconnectCheckDelay)
	}), nil)
	c := dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if !<-results {
		t.Fatal("StopDisconnect reported a hook that never ran as fired")
	}
	c.c.Close()
	time.Sleep(5 * disconnectCheckDelay)
	if ran.Load() {
		t.Fatal("removed hook ran")
	}
}

// TestContextEndsWithHandler: the request context is done once the
// handler returned, and a long handler with a live client is not
// cancelled by the watch.
func TestContextEndsWithHandler(t *testing.T) {
	ctxs := make(chan context.Context, 1)
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(3 * disconnectCheckDelay)
		if r.Context().Err() != nil {
			w.WriteHeader(http.StatusInternalServerError)
		}
		ctxs <- r.Context()
	}), nil)
	c := dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := c.response(""); resp.StatusCode != 200 {
		t.Fatalf("live client's request cancelled: %d", resp.StatusCode)
	}
	if ctx := <-ctxs; ctx.Err() == nil {
		t.Fatal("context still live after the handler returned")
	}
	// The connection still serves (the watch gave the socket back).
	c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := c.response(""); resp.StatusCode != 200 {
		t.Fatalf("second request %d", resp.StatusCode)
	}
}

// TestShutdownDrains: Shutdown closes idle connections at once, lets an
// in-flight request finish (told to close), then returns.
func TestShutdownDrains(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	s, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		_, _ = io.WriteString(w, "done")
	}), nil)
	idle := dial(t, addr)
	idle.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	idle.response("")
	busy := dial(t, addr)
	busy.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	if !idle.closed() {
		t.Fatal("idle connection not closed by Shutdown")
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	resp, body := busy.response("")
	if body != "done" || !resp.Close {
		t.Fatalf("in-flight: %q close %v", body, resp.Close)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testWait):
		t.Fatal("Shutdown did not return")
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("still accepting after Shutdown")
	}
}

// TestPanicAnd500: a handler panic before any output becomes a 500 and a
// closed connection; the server goes on serving others.
func TestPanicAnd500(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			w.Header().Set("X-Lost", "1")
			_, _ = io.WriteString(w, "partial")
			panic("boom")
		}
		_, _ = io.WriteString(w, "ok")
	}), func(s *Server) { s.Logger = discardLogger() })
	c := dial(t, addr)
	c.send("GET /panic HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := c.response("")
	if resp.StatusCode != 500 || body != "" || resp.Header.Get("X-Lost") != "" || !resp.Close {
		t.Fatalf("%d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp2, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
}

// TestUnreadBodyDiscarded: a small body the handler ignores is read past,
// so the next request on the connection parses.
func TestUnreadBodyDiscarded(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.URL.Path)
	}), nil)
	c := dial(t, addr)
	c.send("POST /one HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789GET /two HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, b := c.response(""); b != "/one" {
		t.Fatalf("first %q", b)
	}
	if _, b := c.response(""); b != "/two" {
		t.Fatalf("second %q", b)
	}
}

// TestHeadAndNoContent: HEAD and 204 responses carry no body bytes.
func TestHeadAndNoContent(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/204" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		_, _ = io.WriteString(w, "hello")
	}), nil)
	c := dial(t, addr)
	c.send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET /204 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, b := c.response(http.MethodHead); b != "" || resp.ContentLength != 5 {
		t.Fatalf("HEAD: %q length %d", b, resp.ContentLength)
	}
	if resp, b := c.response(""); resp.StatusCode != 204 || b != "" {
		t.Fatalf("204: %d %q", resp.StatusCode, b)
	}
	if _, b := c.response(""); b != "hello" {
		t.Fatalf("after: %q", b)
	}
}

// TestResponseHeaderSanitized: CR/LF in a handler's value cannot split the
// response.
func TestResponseHeaderSanitized(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-A", "v\r\nX-Injected: 1")
	}), nil)
	c := dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, _ := c.response("")
	if resp.Header.Get("X-Injected") != "" || resp.Header.Get("X-A") != "v  X-Injected: 1" {
		t.Fatalf("header %v", resp.Header)
	}
}

// TestExpectIgnoredForHTTP10: an HTTP/1.0 client gets no 100 Continue
// (1.0 has no interim responses); its body is read as sent.
func TestExpectIgnoredForHTTP10(t *testing.T) {
	_, addr := start(t, echo(), nil)
	c := dial(t, addr)
	c.send("POST /x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi")
	line, err := c.br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 200 OK\r\n" {
		t.Fatalf("first line %q %v", line, err)
	}
}

// TestBodyBuffered: the body tells whether it is already in memory (the
// gateway then sets no read deadline for it): a body sent with its head
// is, a body still on its way or chunked is not, until it has arrived.
func TestBodyBuffered(t *testing.T) {
	got := make(chan [2]bool, 1)
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bb := r.Body.(interface{ Buffered() bool })
		before := bb.Buffered()
		_, _ = io.ReadAll(r.Body)
		got <- [2]bool{before, bb.Buffered()}
	}), nil)
	c := dial(t, addr)
	check := func(name string, wantBefore bool) {
		t.Helper()
		c.response("POST")
		var g [2]bool
		select {
		case g = <-got:
		case <-time.After(testWait):
			t.Fatalf("%s: the handler did not finish", name)
		}
		if g[0] != wantBefore || !g[1] {
			t.Errorf("%s: Buffered before/after reading = %v/%v; want %v/true", name, g[0], g[1], wantBefore)
		}
	}
	c.send("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	check("with the head", true)
	c.send("POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhe")
	go func() { time.Sleep(50 * time.Millisecond); c.send("llo") }()
	check("still arriving", false)
	c.send("POST /d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	check("chunked", false)
	c.send("POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	go func() { time.Sleep(50 * time.Millisecond); c.send("hello") }()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: "POST"})
	if err != nil || resp.StatusCode != http.StatusContinue {
		t.Fatalf("expect: %v %v", resp, err)
	}
	check("after 100 Continue", false)
}

// TestRawHeader: lines added through RawHeader go out with the map's
// fields, in a buffered and in a streamed (chunked) head; they are not
// carried to the next response on the connection, and a panic drops them
// with the rest of the handler's head.
func TestRawHeader(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw := w.(interface{ RawHeader() *[]byte }).RawHeader()
		switch r.URL.Path {
		case "/none":
		case "/stream":
			*raw = append(*raw, "X-Raw: s\r\n"...)
			_, _ = io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "b")
		case "/panic":
			*raw = append(*raw, "X-Lost: 1\r\n"...)
			panic("boom")
		default:
			w.Header().Set("X-Map", "m")
			*raw = append(*raw, "X-Raw: 1\r\nX-Ratelimit-Limit-Requests: 60\r\n"...)
		}
		_, _ = io.WriteString(w, "ok")
	}), func(s *Server) { s.Logger = discardLogger() })
	c := dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /none HTTP/1.1\r\nHost: x\r\n\r\nGET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := c.response("")
	if resp.Header.Get("X-Map") != "m" || resp.Header.Get("X-Raw") != "1" || resp.Header.Get("X-Ratelimit-Limit-Requests") != "60" ||
		resp.ContentLength != 2 || body != "ok" {
		t.Fatalf("first: %v %q", resp.Header, body)
	}
	if resp, body := c.response(""); resp.Header.Get("X-Raw") != "" || resp.Header.Get("X-Map") != "" || body != "ok" {
		t.Fatalf("second carries the first's fields: %v %q", resp.Header, body)
	}
	if resp, body := c.response(""); resp.Header.Get("X-Raw") != "s" || resp.TransferEncoding == nil || body != "abok" {
		t.Fatalf("streamed: %v %v %q", resp.Header, resp.TransferEncoding, body)
	}
	c.send("GET /panic HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := c.response(""); resp.StatusCode != 500 || resp.Header.Get("X-Lost") != "" {
		t.Fatalf("panic: %d %v", resp.StatusCode, resp.Header)
	}
}

// serverConn returns the server's one connection.
func serverConn(t *testing.T, s *Server) *conn {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for {
		s.mu.Lock()
		for c := range s.conns {
			s.mu.Unlock()
			return c
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("no server connection")
		}
		time.Sleep(time.Millisecond)
	}
}

// waitGone waits until the server has forgotten every connection.
func waitGone(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections left", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRawPathOneReadPerRequest: on a keep-alive connection whose client
// waits for each response, every request costs one read of the socket,
// not a failed read and then another, as net.Conn's read-then-wait
// makes it (the fallback path, shown to be taken without the watcher).
func TestRawPathOneReadPerRequest(t *testing.T) {
	const n = 50
	for _, noWatch := range []bool{false, true} {
		s, addr := start(t, echo(), func(s *Server) { s.noWatch = noWatch })
		c := dial(t, addr)
		for i := range n {
			c.send(fmt.Sprintf("POST /r%d HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", i))
			if _, b := c.response(""); b != fmt.Sprintf("POST /r%d ||hi", i) {
				t.Fatalf("response %d: %q", i, b)
			}
		}
		sc := serverConn(t, s)
		c.c.Close()
		waitGone(t, s)
		s.mu.Lock() // the connection's last read happened before it was forgotten
		raw, slow := sc.rawReads, sc.slowReads
		s.mu.Unlock()
		switch {
		case !noWatch && (raw > n+2 || slow != 0):
			t.Errorf("raw path: %d reads (and %d net.Conn reads) for %d requests and the close", raw, slow, n)
		case noWatch && (raw != 0 || slow < n):
			t.Errorf("fallback: %d raw reads, %d net.Conn reads for %d requests", raw, slow, n)
		}
	}
}

// TestPipelinedDuringHandler: a request the client sends while the server
// is still answering the previous one is served at once, not left for the
// idle timeout: the raw path must not lose the readiness that came in
// while the handler ran.
func TestPipelinedDuringHandler(t *testing.T) {
	entered := make(chan struct{}, 2)
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		if r.URL.Path == "/slow" {
			time.Sleep(50 * time.Millisecond)
		}
		_, _ = io.WriteString(w, r.URL.Path)
	}), func(s *Server) { s.IdleTimeout = time.Minute })
	c := dial(t, addr)
	c.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	c.send("GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
	start := time.Now()
	if _, b := c.response(""); b != "/slow" {
		t.Fatalf("first %q", b)
	}
	if _, b := c.response(""); b != "/next" {
		t.Fatalf("second %q", b)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the pipelined request waited %v", d)
	}
}

// TestBodyAfterHead: a body that arrives after its head is read by the
// handler from the socket (serveOne's path), a head sent in two pieces is
// gathered, and the connection then goes back to the raw path.
func TestBodyAfterHead(t *testing.T) {
	s, addr := start(t, echo(), nil)
	c := dial(t, addr)
	c.send("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhe")
	time.Sleep(20 * time.Millisecond)
	c.send("llo")
	if _, b := c.response(""); b != "POST /a ||hello" {
		t.Fatalf("split body: %q", b)
	}
	c.send("GET /b HTTP/1.1\r\nHo")
	time.Sleep(20 * time.Millisecond)
	c.send("st: x\r\n\r\n")
	if _, b := c.response(""); b != "GET /b ||" {
		t.Fatalf("split head: %q", b)
	}
	sc := serverConn(t, s)
	for i := range 20 {
		c.send("GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, b := c.response(""); b != "GET /c ||" {
			t.Fatalf("request %d after: %q", i, b)
		}
	}
	c.c.Close()
	waitGone(t, s)
	s.mu.Lock()
	raw, slow := sc.rawReads, sc.slowReads
	s.mu.Unlock()
	if raw < 20 || raw > 20+12 || slow > 6 {
		t.Fatalf("%d raw reads, %d net.Conn reads: the connection did not go back to the raw path", raw, slow)
	}
}

// TestCloseWithActiveHandler: Close returns at once while a handler runs
// (on the raw path inside the read callback), and the handler's context is
// cancelled.
func TestCloseWithActiveHandler(t *testing.T) {
	for _, noWatch := range []bool{false, true} {
		entered, canceled := make(chan struct{}), make(chan struct{})
		s, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			select {
			case <-r.Context().Done():
				close(canceled)
			case <-time.After(testWait):
			}
		}), func(s *Server) { s.noWatch = noWatch })
		c := dial(t, addr)
		c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		<-entered
		closed := make(chan struct{})
		go func() { _ = s.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(time.Second):
			t.Fatalf("noWatch=%v: Close waited for the handler", noWatch)
		}
		if !noWatch {
			// The fallback's watch reads only after disconnectCheckDelay
			// and ends with the closed socket; the watcher sees the
			// shutdown at once.
			select {
			case <-canceled:
			case <-time.After(testWait):
				t.Fatal("handler's context not cancelled by Close")
			}
		}
		if !c.closed() {
			t.Fatalf("noWatch=%v: connection still open after Close", noWatch)
		}
	}
}

// TestRawWriteBackpressure: a response larger than the socket takes at
// once, to a client that reads late, arrives whole (the raw write hands
// the rest to the poller's wait), and the connection serves on.
func TestRawWriteBackpressure(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 1<<19) // 8 MiB
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			_, _ = io.WriteString(w, big)
			return
		}
		_, _ = io.WriteString(w, "small")
	}), nil)
	c := dial(t, addr)
	c.send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(100 * time.Millisecond) // the server fills the socket meanwhile
	if _, b := c.response(""); b != big {
		t.Fatalf("big body: %d bytes, want %d", len(b), len(big))
	}
	c.send("GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, b := c.response(""); b != "small" {
		t.Fatalf("after: %q", b)
	}
}

// TestWriteDeadlineKept: a write deadline the handler set still fails its
// writes once passed (the raw write path steps aside for it).
func TestWriteDeadlineKept(t *testing.T) {
	errs := make(chan error, 1)
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_ = rc.SetWriteDeadline(time.Now().Add(-time.Second))
		_, _ = io.WriteString(w, "late")
		errs <- rc.Flush()
	}), nil)
	c := dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if err := <-errs; err == nil {
		t.Fatal("write past its deadline succeeded")
	}
}
