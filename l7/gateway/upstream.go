package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/infergate/infergate/l7/rawsock"
)

// Upstream connection pool for self-hosted backends (plain HTTP/1.1).
//
// net/http's Transport runs two goroutines per connection and hands every
// request and response between them and the caller; on a small machine
// those wake-ups cost more than the gateway's own stages. Here the
// request's goroutine writes the request and reads the response on the
// connection itself. A connection goes back to the pool only when its
// response was read to the end; a pooled connection is checked for a close
// by the server before it is reused, so a request is never sent on a
// connection the server already dropped (and never retried blindly: a POST
// that reached the server must not run twice).
const (
	// peekAfterIdle: a pooled connection idle longer than this is peeked
	// before reuse even though the close watcher would report its
	// backend's close, since the report lands a moment late and a
	// backend's idle timeout (seconds: uvicorn's, vLLM's, is 5 s) may be
	// closing it right now. A busy connection, which a backend closes only
	// when it shuts down, is trusted to the watcher: no system call.
	peekAfterIdle = time.Second
	// maxDeadlineSlack bounds how much earlier than its timeout an
	// upstream exchange may end (pconn.setDeadline).
	maxDeadlineSlack = time.Second

	maxIdlePerBackend  = 256
	poolIdleTimeout    = 50 * time.Second
	connReadBufferSize = 16 << 10
	connWriteBufSize   = 16 << 10
)

var errConnCanceled = errors.New("upstream request canceled")

type pconn struct {
	c        net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	idleFrom time.Time
	// deadline is the read and write deadline last set by setDeadline
	// (zero once another was set).
	deadline time.Time
	// peerClosed is set by the close watcher (rawsock.Watcher) when the
	// backend closes the connection; watchID is its registration (0: not
	// watched, so every reuse peeks).
	peerClosed atomic.Bool
	watchID    uint64
	// expire fails the read or write in progress; made once per
	// connection so arming it for each request does not allocate.
	expire func()
	// num is scratch for formatting the Content-Length (a local array
	// would escape through bufio.Writer.Write).
	num [20]byte
	// The raw connection for send (nil where the conn has no file
	// descriptor; rawErr set where SyscallConn failed).
	raw    syscall.RawConn
	rawErr error
	// sendWait is the RawConn callback that checks an idle connection,
	// sends the request and then waits for the reply to become readable
	// (see send); made once per connection, its state below is per request.
	sendWait  func(fd uintptr) bool
	sendBody  []byte
	sendFD    uintptr
	sending   bool // send's callback runs: dst writes sendFD raw
	dst       sink
	sendCheck bool // the connection was idle: peek before sending
	sendCalls int
	sendDead  bool
	sendErr   error
	// The response being read and its pooled body: one request at a
	// time uses a connection, and neither is touched after the body's
	// Close hands the connection back.
	up    upResponse
	pbody pooledBody
}

type connPool struct {
	mu        sync.Mutex
	idle      map[string][]*pconn
	lastSweep time.Time
}

func newConnPool() *connPool { return &connPool{idle: map[string][]*pconn{}} }

// get returns an idle connection to addr that has not outlived the idle
// timeout and that the close watcher has not seen the backend close, or
// nil. check says whether send must still peek at it before sending: it is
// not watched, or it was idle long enough for a backend's idle timeout to
// be closing it right now.
func (p *connPool) get(addr string) (pc *pconn, check bool) {
	for {
		p.mu.Lock()
		list := p.idle[addr]
		if len(list) == 0 {
			p.mu.Unlock()
			return nil, false
		}
		pc := list[len(list)-1]
		list[len(list)-1] = nil
		p.idle[addr] = list[:len(list)-1]
		p.mu.Unlock()
		idle := time.Since(pc.idleFrom)
		if idle < poolIdleTimeout && pc.br.Buffered() == 0 && !pc.peerClosed.Load() {
			return pc, idle > peekAfterIdle || !rawsock.CloseWatcher().Trusted(pc.watchID)
		}
		pc.close()
	}
}

// close closes the connection and recycles its buffers.
func (pc *pconn) close() error {
	rawsock.CloseWatcher().Unwatch(pc.watchID)
	err := pc.c.Close()
	pc.br.Reset(nil)
	readerPoolConn.Put(pc.br)
	pc.bw.Reset(nil)
	writerPoolConn.Put(pc.bw)
	return err
}

// send writes the request (head in bw, then body) and waits for the
// socket to become readable. On a connection taken idle from the pool
// that get says to check, it first peeks at the socket without blocking:
// EAGAIN on a live connection; end of stream, stray bytes or an error on
// one the server has given up, which is then reported dead (nothing was
// sent) so the caller can take another. A read with an expired deadline would not do
// for the check: the runtime fails it before asking the kernel.
//
// All of it runs inside one RawConn.Read, whose readiness reset comes
// before the peek: bytes that arrive after the socket was seen empty raise
// an edge that the wait keeps, so the reply is awaited without the read
// that would fail with EAGAIN (net.Conn's way), one system call less per
// request. Without a file descriptor it writes and leaves reading to bw.
func (pc *pconn) send(body []byte, checkIdle bool) (dead bool, err error) {
	if pc.raw == nil || pc.rawErr != nil {
		if pc.rawErr != nil && checkIdle {
			return true, nil
		}
		_, _ = pc.bw.Write(body)
		return false, pc.bw.Flush()
	}
	pc.sendBody, pc.sendCheck, pc.sendCalls, pc.sendDead, pc.sendErr = body, checkIdle, 0, false, nil
	rerr := pc.raw.Read(pc.sendWait)
	pc.sendBody = nil
	if pc.sendDead {
		return true, nil
	}
	if pc.sendErr != nil {
		return false, pc.sendErr
	}
	return false, rerr
}

func (pc *pconn) sendStep(fd uintptr) bool {
	pc.sendCalls++
	if pc.sendCalls > 1 {
		return true // readable (or a stale edge: the read then waits)
	}
	if pc.sendCheck {
		if rawsock.Readable(fd) {
			pc.sendDead = true
			return true
		}
	}
	pc.sendFD, pc.sending = fd, true
	_, err := pc.bw.Write(pc.sendBody)
	if err == nil {
		err = pc.bw.Flush()
	}
	pc.sending = false
	if err != nil {
		pc.sendErr = err
		return true
	}
	return false
}

// sink is a pooled connection's write buffer's writer: the connection, or
// while send runs (inside its RawConn.Read) raw writes of the descriptor
// (rawsock.WriteOr).
type sink struct{ pc *pconn }

func (s *sink) Write(p []byte) (int, error) {
	pc := s.pc
	if !pc.sending || len(p) == 0 {
		return pc.c.Write(p)
	}
	return rawsock.WriteOr(pc.sendFD, p, pc.c)
}

func (p *connPool) put(addr string, pc *pconn) {
	now := time.Now()
	pc.idleFrom = now
	var stale []*pconn
	p.mu.Lock()
	if now.Sub(p.lastSweep) > poolIdleTimeout {
		// Backends that get no more requests (removed by a policy
		// change, or idle) must not keep connections open forever.
		p.lastSweep = now
		for a, list := range p.idle {
			kept := list[:0]
			for _, c := range list {
				if now.Sub(c.idleFrom) > poolIdleTimeout {
					stale = append(stale, c)
				} else {
					kept = append(kept, c)
				}
			}
			clear(list[len(kept):])
			if len(kept) == 0 {
				delete(p.idle, a)
			} else {
				p.idle[a] = kept
			}
		}
	}
	keep := len(p.idle[addr]) < maxIdlePerBackend && !pc.peerClosed.Load()
	if keep {
		p.idle[addr] = append(p.idle[addr], pc)
	}
	p.mu.Unlock()
	for _, c := range stale {
		_ = c.close()
	}
	if !keep {
		_ = pc.close()
	}
}

func (p *connPool) closeIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, list := range p.idle {
		for _, pc := range list {
			_ = pc.close()
		}
		delete(p.idle, addr)
	}
}

var readerPoolConn = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, connReadBufferSize) }}
var writerPoolConn = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, connWriteBufSize) }}

func (p *connPool) dial(ctx context.Context, addr string, timeout time.Duration) (*pconn, error) {
	d := net.Dialer{Timeout: timeout, KeepAlive: upstreamKeepAlive}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c = rawsock.Wrap(c)
	br := readerPoolConn.Get().(*bufio.Reader)
	br.Reset(c)
	bw := writerPoolConn.Get().(*bufio.Writer)
	pc := &pconn{c: c, br: br, bw: bw}
	pc.dst.pc = pc
	bw.Reset(&pc.dst)
	pc.expire = func() { _ = c.SetDeadline(time.Unix(1, 0)) }
	if sc, ok := c.(syscall.Conn); ok {
		pc.raw, pc.rawErr = sc.SyscallConn()
		pc.sendWait = pc.sendStep
		if pc.rawErr == nil {
			pc.watchID = rawsock.CloseWatcher().Watch(pc.raw, func() { pc.peerClosed.Store(true) })
		}
	}
	return pc, nil
}

// roundTrip sends one POST to addr and returns the response. ctx ending
// (client gone, a timeout) interrupts any read or write in progress. The
// body must be read to the end and closed for the connection to be reused.
//
// deadline bounds the whole exchange on the connection (write, head and
// body), or up to slack earlier (pconn.setDeadline); a timeout shows as an
// error whose Timeout() is true.
func (p *connPool) roundTrip(ctx context.Context, dn disconnectNotifier, addr, path string, headers [][2]string, body []byte, connectTimeout time.Duration, deadline time.Time, slack time.Duration) (*http.Response, error) {
	var pc *pconn
	var watch disconnectWatch
	for {
		var check bool
		pc, check = p.get(addr)
		if pc == nil {
			var err error
			if pc, err = p.dial(ctx, addr, connectTimeout); err != nil {
				return nil, err
			}
		}
		pc.setDeadline(deadline, slack)
		// Cancelling ctx expires the connection's deadlines, which fails
		// the read or write in progress; such a connection is never reused.
		watch = watchDisconnect(ctx, dn, pc.expire)
		bw := pc.bw
		bw.WriteString("POST ")
		bw.WriteString(path)
		bw.WriteString(" HTTP/1.1\r\nHost: ")
		bw.WriteString(addr)
		bw.WriteString("\r\nContent-Length: ")
		bw.Write(strconv.AppendInt(pc.num[:0], int64(len(body)), 10))
		for _, h := range headers {
			bw.WriteString("\r\n")
			bw.WriteString(h[0])
			bw.WriteString(": ")
			bw.WriteString(h[1])
		}
		bw.WriteString("\r\n\r\n")
		dead, err := pc.send(body, check)
		if dead {
			// The server closed it while idle; nothing was sent.
			watch.release()
			_ = pc.close()
			continue
		}
		if err != nil {
			return failConn(ctx, pc, watch, err)
		}
		break
	}
	resp, rb, reusable, err := pc.up.readResponse(pc.br)
	if err != nil {
		return failConn(ctx, pc, watch, err)
	}
	pc.pbody = pooledBody{rc: rb, pc: pc, pool: p, addr: addr, watch: watch, reusable: reusable, ctx: ctx}
	resp.Body = &pc.pbody
	return resp, nil
}

// disconnectNotifier is implemented by response writers that can run a
// function when the client goes away without context.AfterFunc's
// allocations (l7/h1's).
type disconnectNotifier interface {
	OnDisconnect(f func())
	StopDisconnect() bool
}

// disconnectWatch is an armed "expire the upstream connection when the
// client leaves": through the server's disconnectNotifier, else a
// context.AfterFunc on the request's context.
type disconnectWatch struct {
	dn   disconnectNotifier
	stop func() bool
}

func watchDisconnect(ctx context.Context, dn disconnectNotifier, f func()) disconnectWatch {
	if dn != nil {
		dn.OnDisconnect(f)
		return disconnectWatch{dn: dn}
	}
	return disconnectWatch{stop: context.AfterFunc(ctx, f)}
}

// release disarms the watch; false if f already ran (or is running).
func (w disconnectWatch) release() bool {
	if w.dn != nil {
		return w.dn.StopDisconnect()
	}
	return w.stop()
}

// failConn ends a round trip that failed on pc: the connection is closed,
// and a failure caused by ctx ending says so.
func failConn(ctx context.Context, pc *pconn, watch disconnectWatch, err error) (*http.Response, error) {
	watch.release()
	_ = pc.close()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%w: %w", errConnCanceled, context.Cause(ctx))
	}
	return nil, err
}

// pooledBody returns its connection to the pool once read to the end. It
// lives in the connection: Close must be called once.
type pooledBody struct {
	rc       io.Reader
	pc       *pconn
	pool     *connPool
	addr     string
	watch    disconnectWatch
	ctx      context.Context
	eof      bool
	closed   bool
	reusable bool
}

func (b *pooledBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	} else if err != nil && b.ctx.Err() != nil {
		err = fmt.Errorf("%w: %w", errConnCanceled, context.Cause(b.ctx))
	}
	return n, err
}

// setReadDeadline moves the read deadline of the body's connection.
func (b *pooledBody) setReadDeadline(t time.Time) {
	b.pc.deadline = time.Time{}
	_ = b.pc.c.SetReadDeadline(t)
}

// setDeadline bounds the exchange on the connection by t. A deadline set
// by the previous request is kept when it ends at most slack before t:
// then requests that follow each other with the same timeout do not move
// the connection's two timers every time.
func (pc *pconn) setDeadline(t time.Time, slack time.Duration) {
	if !pc.deadline.IsZero() && !pc.deadline.After(t) && t.Sub(pc.deadline) <= slack {
		return
	}
	pc.deadline = t
	_ = pc.c.SetDeadline(t)
}

// deadlineSlack is how much earlier than asked an exchange with timeout d
// may be cut off: 1%, at most maxDeadlineSlack.
func deadlineSlack(d time.Duration) time.Duration { return min(d/100, maxDeadlineSlack) }

func (b *pooledBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	// release() is false when the deadline trap already fired.
	if b.watch.release() && b.eof && b.reusable {
		b.pool.put(b.addr, b.pc)
		return nil
	}
	return b.pc.close()
}
