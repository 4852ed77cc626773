package h1

import (
	"bufio"
	"errors"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

const getReq = "GET /x HTTP/1.1\r\nHost: h\r\n\r\n"

// get sends one request on r and checks it is answered 200.
func (r *rawConn) get() {
	r.t.Helper()
	r.send(getReq)
	if resp, body := r.response("GET"); resp.StatusCode != 200 {
		r.t.Fatalf("status %d (%s)", resp.StatusCode, body)
	}
}

// waitFor polls cond until it holds or testWait passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, testWait, what, cond)
}

// waitWithin polls cond until it holds or d passes.
func waitWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestAcceptSurvivesDescriptorExhaustion runs the process out of file
// descriptors (a lowered RLIMIT_NOFILE, filled with /dev/null) while a
// client's connection waits to be accepted: Serve must wait it out, not
// return, and once descriptors come back the waiting client is answered.
func TestAcceptSurvivesDescriptorExhaustion(t *testing.T) {
	s, addr := start(t, echo(), func(s *Server) { s.Logger = discardLogger() })
	dial(t, addr).get() // the close watcher and the poller are up

	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	var held []int
	releaseAll := func() {
		for _, fd := range held {
			syscall.Close(fd)
		}
		held = nil
	}
	restored := false
	restore := func() {
		releaseAll()
		if !restored {
			restored = true
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
				t.Errorf("restoring RLIMIT_NOFILE: %v", err)
			}
		}
	}
	t.Cleanup(restore)
	low := orig
	low.Cur = uint64(highestFD(t)) + 64
	if low.Cur >= orig.Cur {
		t.Fatalf("cannot lower RLIMIT_NOFILE below %d", orig.Cur)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	fill := func() {
		for {
			fd, err := syscall.Open(os.DevNull, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
			if err == syscall.EMFILE {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, fd)
		}
	}
	// dialOne frees one descriptor for a client's socket; the server's
	// accept then finds none.
	dialOne := func() net.Conn {
		for {
			if len(held) == 0 {
				t.Fatal("no descriptor left to free")
			}
			syscall.Close(held[len(held)-1])
			held = held[:len(held)-1]
			c, err := net.Dial("tcp", addr)
			if err == nil {
				_ = c.SetDeadline(time.Now().Add(testWait))
				if _, err := c.Write([]byte(getReq)); err != nil {
					t.Fatal(err)
				}
				return c
			}
			if !isEMFILE(err) {
				t.Fatal(err)
			}
		}
	}
	// Descriptors that earlier tests' connections give back as they wind
	// down can let an accept through: then the descriptors are taken
	// again and another client is sent until the server is seen waiting.
	var clients []net.Conn
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	var base, seen uint64  // retries when the last client was sent, and last seen
	var progress time.Time // when the last client was sent or a retry seen
	deadline := time.Now().Add(testWait)
	for {
		r := s.Stats().AcceptRetries
		if len(clients) > 0 && r >= base+2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server was never seen out of descriptors")
		}
		fill()
		if r != seen {
			seen, progress = r, time.Now()
		}
		if time.Since(progress) > 200*time.Millisecond {
			base = r
			clients = append(clients, dialOne())
			progress = time.Now()
		}
		time.Sleep(time.Millisecond)
	}
	if !s.Serving() || s.Err() != nil {
		t.Fatalf("while out of descriptors: Serving %v, Err %v; want true, nil", s.Serving(), s.Err())
	}
	restore()
	for _, c := range clients {
		r := &rawConn{t: t, c: c, br: bufio.NewReader(c)}
		if resp, body := r.response("GET"); resp.StatusCode != 200 {
			t.Fatalf("status %d (%s)", resp.StatusCode, body)
		}
	}
	dial(t, addr).get()
	if !s.Serving() {
		t.Fatal("not serving after descriptors came back")
	}
}

func isEMFILE(err error) bool {
	var errno syscall.Errno
	return errors.As(err, &errno) && errno == syscall.EMFILE
}

// highestFD returns the highest descriptor open in the process.
func highestFD(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	high := 0
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil && n > high {
			high = n
		}
	}
	return high
}

// TestConnCapPerAddr: beyond MaxConnsPerAddr, a client's next connection
// is closed at once and counted; another address is still served, and
// the client gets its room back as its connections end.
func TestConnCapPerAddr(t *testing.T) {
	s, addr := start(t, echo(), func(s *Server) { s.MaxConnsPerAddr = 2 })
	a, b := dial(t, addr), dial(t, addr)
	a.get()
	b.get()
	if !refused(t, "127.0.0.1", addr) {
		t.Fatal("third connection from one address was not closed")
	}
	if st := s.Stats(); st.RefusedConns != 1 || st.Conns != 2 {
		t.Fatalf("stats %+v; want 1 refused, 2 open", st)
	}
	other := dialFrom(t, "127.0.0.2", addr)
	other.get()
	a.get() // the admitted ones keep working
	a.c.Close()
	waitFor(t, "the closed connection to be forgotten", func() bool { return s.Stats().Conns == 2 })
	dial(t, addr).get()
}

// TestConnCapPerServer: beyond MaxConns, any new connection is refused.
func TestConnCapPerServer(t *testing.T) {
	s, addr := start(t, echo(), func(s *Server) { s.MaxConns = 2 })
	dial(t, addr).get()
	dialFrom(t, "127.0.0.2", addr).get()
	if !refused(t, "127.0.0.3", addr) {
		t.Fatal("connection over MaxConns was not closed")
	}
	if st := s.Stats(); st.RefusedConns != 1 {
		t.Fatalf("stats %+v; want 1 refused", st)
	}
}

// refused reports whether a connection from local was closed (or reset)
// by the server without an answer.
func refused(t *testing.T, local, addr string) bool {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return isReset(err)
	}
	defer c.Close()
	return (&rawConn{t: t, c: c, br: bufio.NewReader(c)}).closed()
}

func dialFrom(t *testing.T, local, addr string) *rawConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(testWait))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

// TestFirstRequestTimeout: a connection that never sends a request is
// closed after FirstRequestTimeout, while one that has sent a request
// waits for the next one for IdleTimeout.
func TestFirstRequestTimeout(t *testing.T) {
	const first = 100 * time.Millisecond
	s, addr := start(t, echo(), func(s *Server) { s.FirstRequestTimeout = first; s.IdleTimeout = time.Minute })
	used := dial(t, addr)
	used.get()
	began := time.Now()
	silent := dial(t, addr)
	if !silent.closed() {
		t.Fatal("a silent connection was not closed")
	}
	if waited := time.Since(began); waited > testWait/2 {
		t.Fatalf("silent connection closed after %v; FirstRequestTimeout is %v", waited, first)
	}
	time.Sleep(3 * first)
	used.get() // still open well past FirstRequestTimeout
	if st := s.Stats(); st.Conns != 1 {
		t.Fatalf("%d connections open; want the used one only", st.Conns)
	}
}

// TestServingAndErr: a listener that fails under Serve shows in Serving
// and Err; Shutdown is not a failure.
func TestServingAndErr(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: echo()}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	waitFor(t, "Serve to start", s.Serving)
	dial(t, ln.Addr().String()).get()
	ln.Close() // from under the server: the accept fails for good
	serr := <-done
	if s.Serving() || s.Err() == nil || s.Err() != serr {
		t.Fatalf("after the listener failed: Serving %v, Err %v (Serve returned %v)", s.Serving(), s.Err(), serr)
	}

	s2, _ := start(t, echo(), nil)
	waitFor(t, "Serve to start", s2.Serving)
	if err := s2.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Serve to end", func() bool { return !s2.Serving() })
	if s2.Err() != nil {
		t.Fatalf("Err after Shutdown = %v; want nil", s2.Err())
	}
}
