// Package h1 serves HTTP/1.1 keep-alive connections to an http.Handler with
// less work per request than net/http's server: the connection's goroutine
// reads, runs the handler and writes; the request, its header map and the
// response writer are reused from one request to the next on a connection;
// a small response goes out in a single write with its Content-Length; a
// request that arrives whole is read with one system call and no failed
// read before it (serveRaw); and the client going away is learnt from the
// process's close watcher (rawsock.Watcher), not from a goroutine reading
// the connection (net/http starts one for every request; here that is the
// fallback for a socket the watcher cannot take, and only for a request
// still running after disconnectCheckDelay).
//
// It speaks HTTP/1.0 and HTTP/1.1 only (no TLS, HTTP/2 or Upgrade), is
// strict where leniency would allow request smuggling (both Content-Length
// and Transfer-Encoding, differing lengths, obs-fold, invalid names or
// values, bare LF line ends all get 400 and a closed connection), and
// bounds the head (MaxHeaderBytes, ReadHeaderTimeout) and idle keep-alive
// time (IdleTimeout).
package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/infergate/infergate/l7/rawsock"
)

// Defaults and tunables.
const (
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	// readBufferSize is the per-connection read buffer; a head longer
	// than this is gathered in scratch (up to MaxHeaderBytes). 8 KiB
	// takes a head and a few-KiB prompt in one read (4 KiB, net/http's
	// size, needs two for a 4 KiB prompt).
	readBufferSize = 8 << 10
	// writeBufferSize is the per-connection write buffer.
	writeBufferSize = 4 << 10
	// bodyBufferSize is how much of a response body is held back so that
	// the head can carry its Content-Length; a larger body, or a Flush,
	// switches to chunked encoding.
	bodyBufferSize = 8 << 10
	// maxKeptRawHeader bounds the raw header buffer a connection keeps
	// from one response to the next.
	maxKeptRawHeader = 4 << 10
	// disconnectCheckDelay: on a connection the close watcher does not
	// hold, a request still running this long after its body was read
	// gets a goroutine that watches for the client leaving (and then
	// cancels the request's context). Quick requests never pay for one.
	disconnectCheckDelay = 20 * time.Millisecond
	// maxPostHandlerDiscard is how much of a body the handler left unread
	// is read and dropped to keep the connection; beyond it, it closes.
	maxPostHandlerDiscard = 256 << 10
	// shutdownPollInterval is how often Shutdown looks for idle
	// connections to close.
	shutdownPollInterval = 10 * time.Millisecond
	// acceptBackoffMax bounds the wait after a temporary accept error.
	acceptBackoffMax = time.Second
	// idleRearm: the idle deadline is moved only when it was last set
	// longer ago than this, so a busy connection does not move its timer
	// on every request; a connection is then closed after IdleTimeout
	// less up to idleRearm of idleness.
	idleRearm = time.Second
)

// Server serves HTTP/1.x on listeners. Its zero timeouts take the defaults.
type Server struct {
	Handler           http.Handler
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	// Logger receives handler panics (default slog.Default()).
	Logger *slog.Logger

	inShutdown atomic.Bool
	mu         sync.Mutex
	listeners  map[*net.Listener]struct{}
	conns      map[*conn]struct{}
	done       chan struct{}
	date       atomic.Pointer[dateValue]
	// noWatch keeps connections off the close watcher and the raw path
	// (tests of the fallback for sockets the watcher cannot take).
	noWatch bool
}

// ErrServerClosed is returned by Serve after Shutdown or Close; it is
// net/http's, so callers can treat both servers alike.
var ErrServerClosed = http.ErrServerClosed

func (s *Server) headerTimeout() time.Duration {
	if s.ReadHeaderTimeout > 0 {
		return s.ReadHeaderTimeout
	}
	return DefaultReadHeaderTimeout
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return DefaultIdleTimeout
}

func (s *Server) maxHeaderBytes() int {
	if s.MaxHeaderBytes > 0 {
		return s.MaxHeaderBytes
	}
	return DefaultMaxHeaderBytes
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Serve accepts connections on ln until Shutdown or Close, serving each
// on its own goroutine. It always returns a non-nil error and closes ln.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.inShutdown.Load() {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = map[*net.Listener]struct{}{}
		s.conns = map[*conn]struct{}{}
		s.done = make(chan struct{})
	}
	s.listeners[&ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, &ln)
		s.mu.Unlock()
		_ = ln.Close()
	}()
	var backoff time.Duration
	for {
		rwc, err := ln.Accept()
		if err != nil {
			if s.inShutdown.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), acceptBackoffMax)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		rwc = rawsock.Wrap(rwc)
		c := newConn(s, rwc)
		s.mu.Lock()
		if s.inShutdown.Load() {
			s.mu.Unlock()
			_ = rwc.Close()
			return ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		go c.serve()
	}
}

// Shutdown stops accepting, closes idle connections and waits for the
// requests in flight (streams included) to finish, or ctx to end; then it
// closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.inShutdown.Store(true)
	s.closeListeners()
	t := time.NewTicker(shutdownPollInterval)
	defer t.Stop()
	for {
		if s.closeIdle() {
			return nil
		}
		select {
		case <-ctx.Done():
			s.closeAll()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.inShutdown.Store(true)
	s.closeListeners()
	s.closeAll()
	return nil
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln := range s.listeners {
		_ = (*ln).Close()
	}
}

// closeIdle closes idle connections and reports whether none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.Load() == stateIdle && c.state.CompareAndSwap(stateIdle, stateClosed) {
			c.abort()
		}
	}
	return len(s.conns) == 0
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.state.Store(stateClosed)
		c.abort()
	}
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// dateValue is the Date header for one second, formatted once.
type dateValue struct {
	sec int64
	b   []byte
}

// dateHeader returns "Date: <IMF-fixdate>\r\n" for now.
func (s *Server) dateHeader(now time.Time) []byte {
	sec := now.Unix()
	if d := s.date.Load(); d != nil && d.sec == sec {
		return d.b
	}
	b := make([]byte, 0, len("Date: Mon, 02 Jan 2006 15:04:05 GMT\r\n"))
	b = append(b, "Date: "...)
	b = now.UTC().AppendFormat(b, http.TimeFormat)
	b = append(b, "\r\n"...)
	s.date.Store(&dateValue{sec: sec, b: b})
	return b
}

// Connection states.
const (
	stateIdle int32 = iota
	stateActive
	stateClosed
)

type conn struct {
	srv        *Server
	rwc        net.Conn
	remoteAddr string
	br         *bufio.Reader
	bw         *bufio.Writer
	state      atomic.Int32

	// The raw path (serveRaw): the socket, its close watch registration
	// (0: none, and no raw path), and while serveRaw's RawConn.Read runs,
	// its descriptor and whether the last read emptied the socket.
	rc      syscall.RawConn
	watchID uint64
	src     source
	dst     sink
	rawMode bool
	// writeDeadline: the handler set a write deadline (sink then writes
	// through the poller).
	writeDeadline bool
	fd            uintptr
	drained       bool
	// Reads of the socket (tests count them): rawReads one system call
	// each, slowReads net.Conn reads (a failed read and a wait, often).
	rawReads, slowReads int
	rawNext             int
	rawStep             func(fd uintptr) bool
	idleFrom            time.Time // when the idle deadline was last set (zero: another deadline is set)
	// headReady: c.head holds a parsed head whose request serveOne is
	// still to serve (serveRaw found its body not all buffered).
	headReady bool

	// Reused for every request on the connection.
	head head
	raw  []byte
	req  http.Request
	url  url.URL
	// handling is true while the handler runs.
	handling bool
	body     body
	w        response
	cancel   context.CancelFunc

	// Disconnect watch (see armWatch).
	wmu    sync.Mutex
	wstate int
	wtimer *time.Timer
	wdone  chan struct{}
	// peerGone is set by the watcher when the client closed its side.
	peerGone atomic.Bool
	// hook is the handler's OnDisconnect function (guarded by wmu);
	// hookFired says it was called.
	hook      func()
	hookFired bool
}

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufferSize) }}
)

func newConn(s *Server, rwc net.Conn) *conn {
	c := &conn{srv: s, rwc: rwc, remoteAddr: rwc.RemoteAddr().String(), wdone: make(chan struct{}, 1)}
	c.state.Store(stateIdle)
	if rs, ok := rwc.(*rawsock.Conn); ok && !s.noWatch {
		// The watcher reports the client leaving (peerClosed), with no
		// goroutine or read per request; a watched connection also takes
		// the raw path.
		c.watchID = rawsock.CloseWatcher().Watch(rs.Raw(), c.peerClosed)
		if c.watchID != 0 {
			c.rc = rs.Raw()
			c.rawStep = c.step
		}
	}
	return c
}

// abort ends the connection at once. Close would wait while a handler runs
// inside serveRaw's read callback (the callback holds the descriptor), so
// a raw connection is shut down instead: its reads end, its writes fail,
// the close watcher cancels its request, and its goroutine closes the
// descriptor as it leaves.
func (c *conn) abort() {
	if c.rc == nil {
		_ = c.rwc.Close()
		return
	}
	_ = c.rc.Control(func(fd uintptr) { _ = syscall.Shutdown(int(fd), syscall.SHUT_RDWR) })
}

func (c *conn) serve() {
	defer c.srv.forget(c)
	c.src.c, c.dst.c = c, c
	c.br = readerPool.Get().(*bufio.Reader)
	c.br.Reset(&c.src)
	c.bw = writerPool.Get().(*bufio.Writer)
	c.bw.Reset(&c.dst)
	c.head.header = http.Header{}
	c.w.header = http.Header{}
	c.w.c = c
	c.body.c = c
	defer func() {
		rawsock.CloseWatcher().Unwatch(c.watchID)
		c.stopWatch()
		_ = c.rwc.Close()
		c.br.Reset(nil)
		readerPool.Put(c.br)
		c.bw.Reset(nil)
		writerPool.Put(c.bw)
	}()
	for {
		if c.rc != nil && !c.serveRaw() {
			return
		}
		if !c.serveOne() {
			return
		}
	}
}

// source is the read buffer's reader: the connection, or inside
// serveRaw's RawConn.Read, which holds the descriptor's read lock, one
// non-blocking read of the descriptor (syscall.EAGAIN when it has nothing).
type source struct{ c *conn }

func (s *source) Read(p []byte) (int, error) {
	c := s.c
	if !c.rawMode {
		c.slowReads++
		return c.rwc.Read(p)
	}
	c.rawReads++
	n, err := rawsock.ReadFD(c.fd, p)
	c.drained = n < len(p)
	return n, err
}

// sink is the write buffer's writer: the connection, or inside serveRaw's
// read callback raw writes of the descriptor (rawsock.WriteOr; only the
// connection's goroutine writes to it), unless the handler set a write
// deadline.
type sink struct{ c *conn }

func (s *sink) Write(p []byte) (int, error) {
	c := s.c
	if !c.rawMode || c.writeDeadline || len(p) == 0 {
		return c.rwc.Write(p)
	}
	return rawsock.WriteOr(c.fd, p, c.rwc)
}

// What serveRaw leaves to serve next.
const (
	rawDone = iota // the connection is finished
	rawSlow        // serveOne serves the next request
)

// serveRaw serves requests that arrive whole, head and body, all inside
// one RawConn.Read on the client's socket, and returns true when serveOne
// must serve the next one (its head came in pieces, or its body is still
// arriving), false when the connection is finished.
//
// Go's poller resets what it knew of a socket's readiness at the start of
// every read, so net.Conn first tries a read, which fails with EAGAIN,
// then waits: on a keep-alive connection that is one wasted system call
// per request, the client's next request never being there yet. Inside one
// RawConn.Read nothing resets: data that arrives after a read emptied the
// socket raises an edge the poller keeps, so after answering, the server
// waits for the next request straight away and reads it once it is there
// (nginx does the same with its own readiness flags). The handler runs
// inside the read callback; it reads its body from the buffer only, and
// the close watcher, not a read, tells that the client left.
func (c *conn) serveRaw() bool {
	c.rawMode, c.drained, c.rawNext = true, false, rawDone
	err := c.rc.Read(c.rawStep)
	c.rawMode = false
	return err == nil && c.rawNext == rawSlow
}

// step is serveRaw's RawConn.Read callback: true leaves the read.
func (c *conn) step(fd uintptr) bool {
	c.fd = fd
	br := c.br
	for {
		if br.Buffered() == 0 {
			if !c.drained {
				_, err := br.Peek(1)
				if err == syscall.EAGAIN {
					c.drained = true
				} else if err != nil {
					return true // end of stream or a failed read
				}
			}
			if br.Buffered() == 0 {
				// Nothing arrived since the socket was emptied, and the
				// poller keeps any edge since: wait for the next request.
				c.drained = false
				c.armIdle()
				return false
			}
		}
		b, _ := br.Peek(br.Buffered())
		if len(b) < 2 || b[0] == '\r' || b[0] == '\n' || bytes.Index(b, headEnd) < 0 {
			// A head in pieces, or leading empty lines: serveOne reads
			// it as it comes, with its deadline.
			c.rawNext = rawSlow
			return true
		}
		if !c.state.CompareAndSwap(stateIdle, stateActive) {
			return true // Shutdown closed it
		}
		if !c.readRequestHead() {
			return true
		}
		if h := &c.head; h.chunked || h.expect || h.length > int64(br.Buffered()) {
			c.headReady = true
			c.rawNext = rawSlow
			return true
		}
		if !c.serveRequest() {
			return true
		}
	}
}

// armIdle bounds the wait for a next request by the idle timeout.
func (c *conn) armIdle() {
	now := time.Now()
	if !c.idleFrom.IsZero() && now.Sub(c.idleFrom) < idleRearm {
		return
	}
	c.idleFrom = now
	_ = c.rwc.SetReadDeadline(now.Add(c.srv.idleTimeout()))
}

// setReadDeadline sets a deadline other than the idle one.
func (c *conn) setReadDeadline(t time.Time) error {
	c.idleFrom = time.Time{}
	return c.rwc.SetReadDeadline(t)
}

// peerClosed runs on the close watcher's goroutine once the client has
// closed the connection: the request in progress, if any, is cancelled and
// its OnDisconnect function called.
func (c *conn) peerClosed() {
	c.peerGone.Store(true)
	c.wmu.Lock()
	cancel := c.cancel
	hook := c.hook
	c.hook, c.hookFired = nil, hook != nil
	c.wmu.Unlock()
	if cancel != nil {
		cancel()
	}
	if hook != nil {
		hook()
	}
}

// serveOne reads and answers one request; false ends the connection.
func (c *conn) serveOne() bool {
	if c.headReady {
		c.headReady = false
		return c.serveRequest()
	}
	s := c.srv
	if c.br.Buffered() == 0 {
		c.armIdle()
		if _, err := c.br.Peek(1); err != nil {
			return false
		}
	}
	if !c.state.CompareAndSwap(stateIdle, stateActive) {
		return false // Shutdown closed it
	}
	if !headBuffered(c.br) {
		// The head is still arriving: from its first byte it has
		// ReadHeaderTimeout to complete. (A head that came whole in the
		// first read, the usual case, skips this deadline.)
		_ = c.setReadDeadline(time.Now().Add(s.headerTimeout()))
	}
	if !c.readRequestHead() {
		return false
	}
	return c.serveRequest()
}

// readRequestHead parses the head at the front of the read buffer into
// c.head; false (after a 4xx where one is due) ends the connection.
func (c *conn) readRequestHead() bool {
	h := &c.head
	clear(h.header)
	hdr := h.header
	vals := h.vals
	*h = head{header: hdr, vals: vals}
	err := readHead(c.br, c.srv.maxHeaderBytes(), &c.raw, h)
	if cap(c.raw) > 2*readBufferSize {
		c.raw = nil // a rare huge head does not stay with the connection
	}
	if err != nil {
		var pe *parseError
		if errors.As(err, &pe) {
			c.writeError(pe.status, pe.msg)
		}
		return false
	}
	return true
}

// serveRequest answers the request whose head is in c.head; false ends
// the connection.
func (c *conn) serveRequest() bool {
	s := c.srv
	h := &c.head
	if h.chunked || h.length > int64(c.br.Buffered()) {
		// The body still has to come from the socket: no deadline but the
		// handler's (ResponseController.SetReadDeadline). A body already
		// buffered needs no socket read, so the idle or header deadline
		// may stay; the disconnect watch clears it before it reads.
		_ = c.setReadDeadline(time.Time{})
	}
	r := &c.req
	if err := parseURL(h.target, h.method, &c.url); err != nil {
		c.writeError(http.StatusBadRequest, err.Error())
		return false
	}
	if c.url.Host != "" {
		// Absolute form: the target's host wins (RFC 9112 3.2.2).
		h.host = c.url.Host
	}
	*r = http.Request{
		Method:     h.method,
		URL:        &c.url,
		Proto:      h.proto,
		ProtoMajor: h.major,
		ProtoMinor: h.minor,
		Header:     h.header,
		Host:       h.host,
		RemoteAddr: c.remoteAddr,
		RequestURI: h.target,
		Close:      h.close || (h.minor == 0 && !h.keepAlive),
	}
	switch {
	case h.chunked:
		r.ContentLength = -1
		r.TransferEncoding = chunkedEncoding
		c.body.reset(-1, true, h.expect && h.minor >= 1)
		r.Body = &c.body
	case h.length > 0:
		r.ContentLength = h.length
		c.body.reset(h.length, false, h.expect && h.minor >= 1)
		r.Body = &c.body
	default:
		c.body.reset(0, false, false)
		r.Body = http.NoBody
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.wmu.Lock()
	c.cancel = cancel
	c.wmu.Unlock()
	if c.peerGone.Load() {
		cancel() // the client left before the watcher could see a request
	}
	w := &c.w
	w.reset(r)
	c.handling = true
	if c.body.done {
		c.armWatch()
	}
	c.runHandler(r.WithContext(ctx))
	c.handling = false
	c.stopWatch()
	c.wmu.Lock()
	c.hook, c.hookFired = nil, false
	c.cancel = nil
	c.wmu.Unlock()
	cancel()
	keep := w.finish()
	if keep && !c.body.done {
		keep = c.body.discard()
	}
	if !keep || r.Close || c.peerGone.Load() || s.inShutdown.Load() {
		return false
	}
	return c.state.CompareAndSwap(stateActive, stateIdle)
}

var chunkedEncoding = []string{"chunked"}

// runHandler calls the handler, turning a panic into a closed connection
// (and a 500 if nothing was sent yet).
func (c *conn) runHandler(r *http.Request) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		c.w.closeAfter = true
		if p != http.ErrAbortHandler {
			c.srv.logger().Error("h1: handler panicked", "remote", c.remoteAddr, "uri", r.RequestURI, "panic", p)
		}
		if !c.w.headSent && p != http.ErrAbortHandler {
			c.w.discardBuffered()
			c.w.WriteHeader(http.StatusInternalServerError)
		} else {
			c.w.broken = true
		}
	}()
	c.srv.Handler.ServeHTTP(&c.w, r)
}

// writeError answers a request the server could not parse, then the
// connection closes.
func (c *conn) writeError(status int, msg string) {
	c.bw.Reset(&c.dst)
	_, _ = c.bw.WriteString("HTTP/1.1 ")
	_, _ = c.bw.WriteString(statusLine(status))
	_, _ = c.bw.WriteString("Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: ")
	var num [20]byte
	_, _ = c.bw.Write(appendInt(num[:0], int64(len(msg))))
	_, _ = c.bw.WriteString("\r\n\r\n")
	_, _ = c.bw.WriteString(msg)
	_ = c.bw.Flush()
}

// Disconnect watch states.
const (
	watchIdle = iota
	watchArmed
	watchRunning
)

// armWatch starts the timer after which a goroutine watches the
// connection for the client going away, where the close watcher does not
// (peerClosed). It is called once the request body has been read to its
// end (until then a read of the connection would take body bytes). A
// client that pipelines a next request cannot be watched this way, as with
// net/http.
func (c *conn) armWatch() {
	if c.watchID != 0 {
		return // the close watcher reports it (peerClosed)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wstate != watchIdle || c.br.Buffered() > 0 {
		return
	}
	c.wstate = watchArmed
	if c.wtimer == nil {
		c.wtimer = time.AfterFunc(disconnectCheckDelay, c.watch)
	} else {
		c.wtimer.Reset(disconnectCheckDelay)
	}
}

// watch waits for the connection to become readable. End of stream or an
// error means the client is gone: the request's context is cancelled. Bytes
// (a pipelined request) stay buffered for the next request.
func (c *conn) watch() {
	c.wmu.Lock()
	if c.wstate != watchArmed {
		c.wmu.Unlock()
		return
	}
	c.wstate = watchRunning
	cancel := c.cancel
	// A deadline left from the head (or set by the handler for its body)
	// must not end the watch; stopWatch's expiry comes after this, as it
	// sees the state running only once the lock is released.
	_ = c.rwc.SetReadDeadline(time.Time{})
	c.wmu.Unlock()
	_, err := c.br.Peek(1)
	if err != nil {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			c.peerGone.Store(true)
			if cancel != nil {
				cancel()
			}
			c.wmu.Lock()
			hook := c.hook
			c.hook, c.hookFired = nil, hook != nil
			c.wmu.Unlock()
			if hook != nil {
				hook()
			}
		}
	}
	c.wdone <- struct{}{}
}

// stopWatch ends the watch, if any, before the connection is read again.
func (c *conn) stopWatch() {
	c.wmu.Lock()
	st := c.wstate
	c.wstate = watchIdle
	if st == watchArmed && c.wtimer.Stop() {
		c.wmu.Unlock()
		return
	}
	c.wmu.Unlock()
	if st != watchRunning {
		// Armed and fired, but the watcher found the state idle and left.
		return
	}
	_ = c.setReadDeadline(aLongTimeAgo)
	<-c.wdone
}

var aLongTimeAgo = time.Unix(1, 0)

// headBuffered reports whether br holds a complete request head.
func headBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.Contains(b, headEnd)
}

var headEnd = []byte("\r\n\r\n")
