package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/infergate/infergate/l7/rawsock"
)

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
	// addr is the client address the connection counts under (clientKey).
	addr  netip.Addr
	br    *bufio.Reader
	bw    *bufio.Writer
	state atomic.Int32

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
	// idleFirst: the idle deadline set is FirstRequestTimeout's.
	idleFirst bool
	// requested: a request has begun on the connection.
	requested bool
	// reserved is what the request's body counts for in the server's
	// body budget (reserveBody).
	reserved int64
	// linger: the connection ends after a response with request bytes
	// perhaps still to come (lingerClose).
	linger bool
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
		if c.linger {
			c.lingerClose()
		}
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

// armIdle bounds the wait for a next request by the idle timeout, or for
// the first one by FirstRequestTimeout.
func (c *conn) armIdle() {
	now := time.Now()
	first := !c.requested
	if !c.idleFrom.IsZero() && c.idleFirst == first && now.Sub(c.idleFrom) < idleRearm {
		return
	}
	c.idleFrom, c.idleFirst = now, first
	d := c.srv.idleTimeout()
	if first {
		d = c.srv.firstRequestTimeout()
	}
	_ = c.rwc.SetReadDeadline(now.Add(d))
}

// setReadDeadline sets a deadline other than the idle one.
func (c *conn) setReadDeadline(t time.Time) error {
	c.idleFrom = time.Time{}
	return c.rwc.SetReadDeadline(t)
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
	c.requested = true
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
	if !c.admitBody() {
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
	c.releaseBody()
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
		// A body left unread: the client may still be sending it.
		c.linger = !c.body.done && !w.broken
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
	c.linger = true // the rest of what the client sent is unread
	c.bw.Reset(&c.dst)
	_, _ = c.bw.WriteString("HTTP/1.1 ")
	_, _ = c.bw.WriteString(statusLine(status))
	_, _ = c.bw.WriteString("Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n")
	if status == http.StatusServiceUnavailable {
		_, _ = c.bw.WriteString("Retry-After: 1\r\n")
	}
	_, _ = c.bw.WriteString("Content-Length: ")
	var num [20]byte
	_, _ = c.bw.Write(appendInt(num[:0], int64(len(msg))))
	_, _ = c.bw.WriteString("\r\n\r\n")
	_, _ = c.bw.WriteString(msg)
	_ = c.bw.Flush()
}

// lingerClose lets the client read a response sent before its request was
// read whole (a 401 or 413 given before the body, a parse error). Closing
// a socket with unread bytes, or bytes still arriving, makes the kernel
// answer with a reset, and a reset that reaches the client before it reads
// the response destroys it: the client sees ECONNRESET, not its 401. So
// the server half-closes (the response and a FIN go out) and reads and
// drops what the client still sends, until the client closes, lingerTimeout
// passes or lingerBytes are dropped; only then does it close.
func (c *conn) lingerClose() {
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() != nil {
			return
		}
	}
	_ = c.setReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.CopyN(io.Discard, c.br, lingerBytes)
}

// headBuffered reports whether br holds a complete request head.
func headBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.Contains(b, headEnd)
}

var headEnd = []byte("\r\n\r\n")
