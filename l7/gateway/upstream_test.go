package gateway

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/infergate/infergate/l7/rawsock"
	"github.com/infergate/infergate/test/mockllm"
)

// countingMock is a mock whose server counts new connections and closes
// idle ones after idle.
func countingMock(t *testing.T, idle time.Duration) (*mock, *atomic.Int64) {
	t.Helper()
	s := mockllm.New(mockllm.Config{})
	ts := httptest.NewUnstartedServer(s.Handler())
	var conns atomic.Int64
	ts.Config.IdleTimeout = idle
	ts.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	ts.Start()
	t.Cleanup(ts.Close)
	return &mock{Server: s, ts: ts, addr: netip.MustParseAddrPort(strings.TrimPrefix(ts.URL, "http://"))}, &conns
}

// TestPoolReusesConnections: sequential requests, whole and streamed,
// share one upstream connection.
func TestPoolReusesConnections(t *testing.T) {
	m, conns := countingMock(t, time.Minute)
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	for i := range 10 {
		extra := ""
		if i%2 == 1 {
			extra = `,"stream":true`
		}
		if status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("x", extra)); status != 200 {
			t.Fatalf("%d %s", status, body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d upstream connections for 10 sequential requests", n)
	}
}

// TestPoolSkipsConnectionsClosedByServer: a connection the backend closed
// while idle is noticed before use, so the request neither fails nor runs
// twice.
func TestPoolSkipsConnectionsClosedByServer(t *testing.T) {
	m, conns := countingMock(t, 50*time.Millisecond)
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	for range 3 {
		if status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("x", "")); status != 200 {
			t.Fatalf("%d %s", status, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st := m.Stats(); st.Total != 3 || conns.Load() != 3 {
		t.Fatalf("upstream saw %d requests on %d connections, want 3 on 3", st.Total, conns.Load())
	}
	if r := h.records(3); r[2].Attempts != 1 {
		t.Fatalf("a request needed %d attempts", r[2].Attempts)
	}
}

// TestPoolSweepsStaleConnections: connections idle past the timeout are
// closed even if their backend gets no more requests.
func TestPoolSweepsStaleConnections(t *testing.T) {
	a, b := newMock(t, mockllm.Config{}), newMock(t, mockllm.Config{})
	p := newConnPool()
	ctx := t.Context()
	ca, err := p.dial(ctx, a.addr.String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	p.put(a.addr.String(), ca)
	p.mu.Lock()
	ca.idleFrom = time.Now().Add(-2 * poolIdleTimeout)
	p.lastSweep = time.Now().Add(-2 * poolIdleTimeout)
	p.mu.Unlock()
	cb, err := p.dial(ctx, b.addr.String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	p.put(b.addr.String(), cb)
	p.mu.Lock()
	_, stale := p.idle[a.addr.String()]
	n := len(p.idle[b.addr.String()])
	p.mu.Unlock()
	if stale || n != 1 {
		t.Fatalf("stale connection kept: %v, fresh ones %d", stale, n)
	}
	if _, err := ca.c.Write([]byte("x")); err == nil {
		t.Fatal("swept connection still open")
	}
	p.closeIdle()
}

// TestClientGoneCancelsWholeRequest: a client that leaves while a
// non-streamed completion is generated cancels the upstream request (the
// server's disconnect hook expires the pooled connection), and the request
// is logged as closed by the client.
func TestClientGoneCancelsWholeRequest(t *testing.T) {
	m := newMock(t, mockllm.Config{TokensPerSecond: 20})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	c, err := net.Dial("tcp", strings.TrimPrefix(h.ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	body := chatBody("long", `,"max_tokens":2000`)
	fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s", testKey, len(body), body)
	deadline := time.Now().Add(waitDeadline)
	for m.Stats().Total == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	c.Close()
	for m.Stats().Canceled == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := m.Stats(); st.Canceled != 1 {
		t.Fatalf("upstream not cancelled after the client left: %+v", st)
	}
	if r := h.last(); r.Status != statusClientClosed {
		t.Fatalf("audit %+v", r)
	}
}

// TestCloseWatch: a pooled connection is watched for the backend's close;
// a recently used one is handed out without a peek, one idle past
// peekAfterIdle with one, and one the backend closed is marked by the
// watcher and never handed out.
func TestCloseWatch(t *testing.T) {
	m, _ := countingMock(t, time.Minute)
	w := rawsock.CloseWatcher()
	if w == nil {
		t.Fatal("no close watcher")
	}
	p := newConnPool()
	defer p.closeIdle()
	addr := m.addr.String()
	pc, err := p.dial(t.Context(), addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !w.Trusted(pc.watchID) {
		t.Fatalf("connection not watched (id %d)", pc.watchID)
	}
	p.put(addr, pc)
	if got, check := p.get(addr); got != pc || check {
		t.Fatalf("recently used connection: got %p (want %p), check %v", got, pc, check)
	}
	p.put(addr, pc)
	pc.idleFrom = time.Now().Add(-2 * peekAfterIdle)
	if got, check := p.get(addr); got != pc || !check {
		t.Fatalf("connection idle past peekAfterIdle: got %p, check %v", got, check)
	}
	p.put(addr, pc)
	// The server tracks a connection only once its accept loop has seen
	// it, which on a loaded machine can come after the dial returned:
	// close again until the close lands.
	deadline := time.Now().Add(waitDeadline)
	for !pc.peerClosed.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the watcher never marked the connection the backend closed")
		}
		m.ts.CloseClientConnections()
		time.Sleep(time.Millisecond)
	}
	if got, _ := p.get(addr); got != nil {
		t.Fatal("a connection the backend closed was handed out")
	}
}

// TestSetDeadlineSlack: a pooled connection keeps its deadline when the
// next request's ends at most the slack later, and moves it otherwise,
// earlier always.
func TestSetDeadlineSlack(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	p := newConnPool()
	defer p.closeIdle()
	pc, err := p.dial(t.Context(), m.addr.String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.close()
	t0 := time.Now().Add(time.Minute)
	for _, c := range []struct {
		t    time.Time
		want time.Time
	}{
		{t0, t0},
		{t0.Add(300 * time.Millisecond), t0}, // within the slack: kept
		{t0.Add(2 * time.Second), t0.Add(2 * time.Second)},                 // beyond it: moved
		{t0.Add(time.Second), t0.Add(time.Second)},                         // earlier: always moved
		{t0.Add(1500 * time.Millisecond), t0.Add(1500 * time.Millisecond)}, // after another deadline was set
	} {
		if c.t.Equal(t0.Add(1500 * time.Millisecond)) {
			(&pooledBody{pc: pc}).setReadDeadline(t0)
		}
		pc.setDeadline(c.t, time.Second)
		if !pc.deadline.Equal(c.want) {
			t.Fatalf("set %v: deadline %v, want %v", c.t.Sub(t0), pc.deadline.Sub(t0), c.want.Sub(t0))
		}
	}
	if s := deadlineSlack(10 * time.Minute); s != maxDeadlineSlack {
		t.Fatalf("slack of 10m: %v", s)
	}
	if s := deadlineSlack(2 * time.Second); s != 20*time.Millisecond {
		t.Fatalf("slack of 2s: %v", s)
	}
}

// TestLargeRequestBody: a request larger than the upstream socket takes
// at once, to a backend that reads late, reaches it whole (the raw write
// hands the rest to the poller's wait): the mock counts every word of it.
func TestLargeRequestBody(t *testing.T) {
	// A backend with a small receive buffer that starts reading late, so
	// the gateway's socket fills and its write has to wait.
	s := mockllm.New(mockllm.Config{MaxBodyBytes: 16 << 20})
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(50 * time.Millisecond)
		s.Handler().ServeHTTP(w, r)
	}))
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10) }); err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	t.Cleanup(ts.Close)
	m := &mock{Server: s, ts: ts, addr: netip.MustParseAddrPort(strings.TrimPrefix(ts.URL, "http://"))}
	c := basePolicy(pool("p", m))
	c.Gateway.MaxBodyBytes = 16 << 20
	h := newHarness(t, c, Options{})
	promptTokens := func(prompt string) int {
		t.Helper()
		status, _, body := h.call(testKey, "/v1/chat/completions", chatBody(prompt, ""))
		if status != 200 {
			t.Fatalf("%d %.200s", status, body)
		}
		var out struct {
			Usage struct {
				PromptTokens int `json:"prompt_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
		return out.Usage.PromptTokens
	}
	const words = 1_500_000 // 9 MB of text: more than a loopback socket's 4 MB send buffer
	small := promptTokens("hello ")
	if got, want := promptTokens(strings.Repeat("hello ", words)), small+words-1; got != want {
		t.Fatalf("backend counted %d prompt words, want %d", got, want)
	}
}
