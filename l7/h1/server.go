// Package h1 serves HTTP/1.1 keep-alive connections to an http.Handler with
// less work per request than net/http's server: the connection's goroutine
// reads, runs the handler and writes; the request, its header map and the
// response writer are reused from one request to the next on a connection;
// a small response goes out in a single write with its Content-Length; and
// no goroutine watches for the client going away unless a request is still
// running after disconnectCheckDelay (net/http starts one for every
// request).
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
	// disconnectCheckDelay: a request still running this long after its
	// body was read gets a goroutine that watches for the client leaving
	// (and then cancels the request's context). Quick requests never pay
	// for one.
	disconnectCheckDelay = 20 * time.Millisecond
	// maxPostHandlerDiscard is how much of a body the handler left unread
	// is read and dropped to keep the connection; beyond it, it closes.
	maxPostHandlerDiscard = 256 << 10
	// shutdownPollInterval is how often Shutdown looks for idle
	// connections to close.
	shutdownPollInterval = 10 * time.Millisecond
	// acceptBackoffMax bounds the wait after a temporary accept error.
	acceptBackoffMax = time.Second
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
			_ = c.rwc.Close()
		}
	}
	return len(s.conns) == 0
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.state.Store(stateClosed)
		_ = c.rwc.Close()
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
	return c
}

func (c *conn) serve() {
	defer c.srv.forget(c)
	c.br = readerPool.Get().(*bufio.Reader)
	c.br.Reset(c.rwc)
	c.bw = writerPool.Get().(*bufio.Writer)
	c.bw.Reset(c.rwc)
	c.head.header = http.Header{}
	c.w.header = http.Header{}
	c.w.c = c
	c.body.c = c
	defer func() {
		c.stopWatch()
		_ = c.rwc.Close()
		c.br.Reset(nil)
		readerPool.Put(c.br)
		c.bw.Reset(nil)
		writerPool.Put(c.bw)
	}()
	for {
		if !c.serveOne() {
			return
		}
	}
}

// serveOne reads and answers one request; false ends the connection.
func (c *conn) serveOne() bool {
	s := c.srv
	if c.br.Buffered() == 0 {
		_ = c.rwc.SetReadDeadline(time.Now().Add(s.idleTimeout()))
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
		_ = c.rwc.SetReadDeadline(time.Now().Add(s.headerTimeout()))
	}
	h := &c.head
	clear(h.header)
	hdr := h.header
	vals := h.vals
	*h = head{header: hdr, vals: vals}
	err := readHead(c.br, s.maxHeaderBytes(), &c.raw, h)
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
	if h.chunked || h.length > int64(c.br.Buffered()) {
		// The body still has to come from the socket: no deadline but the
		// handler's (ResponseController.SetReadDeadline). A body already
		// buffered needs no socket read, so the idle or header deadline
		// may stay; the disconnect watch clears it before it reads.
		_ = c.rwc.SetReadDeadline(time.Time{})
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
	c.cancel = cancel
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
	c.wmu.Unlock()
	cancel()
	c.cancel = nil
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
	c.bw.Reset(c.rwc)
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
// connection for the client going away. It is called once the request
// body has been read to its end (until then a read of the connection would
// take body bytes). A client that pipelines a next request cannot be
// watched this way, as with net/http.
func (c *conn) armWatch() {
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
	_ = c.rwc.SetReadDeadline(aLongTimeAgo)
	<-c.wdone
}

var aLongTimeAgo = time.Unix(1, 0)

// headBuffered reports whether br holds a complete request head.
func headBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.Contains(b, headEnd)
}

var headEnd = []byte("\r\n\r\n")
