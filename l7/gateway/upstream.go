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
	"syscall"
	"time"
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
	// expire fails the read or write in progress; made once per
	// connection so arming it for each request does not allocate.
	expire func()
	// num is scratch for formatting the Content-Length (a local array
	// would escape through bufio.Writer.Write).
	num [20]byte
	// The liveness peek's pieces, made once per connection: the raw
	// connection (nil with rawErr set where SyscallConn failed; peek nil
	// where the conn has no file descriptor), the callback and its result.
	raw       syscall.RawConn
	rawErr    error
	peek      func(fd uintptr) bool
	peekAlive bool
	peekBuf   [1]byte
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

// get returns a live idle connection to addr, or nil.
func (p *connPool) get(addr string) *pconn {
	for {
		p.mu.Lock()
		list := p.idle[addr]
		if len(list) == 0 {
			p.mu.Unlock()
			return nil
		}
		pc := list[len(list)-1]
		list[len(list)-1] = nil
		p.idle[addr] = list[:len(list)-1]
		p.mu.Unlock()
		if time.Since(pc.idleFrom) < poolIdleTimeout && pc.alive() {
			return pc
		}
		pc.close()
	}
}

// close closes the connection and recycles its buffers.
func (pc *pconn) close() error {
	err := pc.c.Close()
	pc.br.Reset(nil)
	readerPoolConn.Put(pc.br)
	pc.bw.Reset(nil)
	writerPoolConn.Put(pc.bw)
	return err
}

// alive reports whether the server has not closed the idle connection. A
// non-blocking peek at the socket answers without waiting: EAGAIN on a
// live connection, end of stream (or stray bytes, a protocol error here)
// on one the server has given up. A read with an expired deadline would
// not do: the runtime fails it before asking the kernel.
func (pc *pconn) alive() bool {
	if pc.br.Buffered() > 0 {
		return false
	}
	if pc.peek == nil {
		return true
	}
	if pc.rawErr != nil {
		return false
	}
	pc.peekAlive = false
	err := pc.raw.Read(pc.peek)
	return err == nil && pc.peekAlive
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
	keep := len(p.idle[addr]) < maxIdlePerBackend
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
	br := readerPoolConn.Get().(*bufio.Reader)
	br.Reset(c)
	bw := writerPoolConn.Get().(*bufio.Writer)
	bw.Reset(c)
	pc := &pconn{c: c, br: br, bw: bw}
	pc.expire = func() { _ = c.SetDeadline(time.Unix(1, 0)) }
	if sc, ok := c.(syscall.Conn); ok {
		pc.raw, pc.rawErr = sc.SyscallConn()
		pc.peek = func(fd uintptr) bool {
			_, _, rerr := syscall.Recvfrom(int(fd), pc.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			pc.peekAlive = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
			return true // never wait
		}
	}
	return pc, nil
}

// roundTrip sends one POST to addr and returns the response. ctx ending
// (client gone, a timeout) interrupts any read or write in progress. The
// body must be read to the end and closed for the connection to be reused.
//
// deadline bounds the whole exchange on the connection (write, head and
// body); a timeout shows as an error whose Timeout() is true.
func (p *connPool) roundTrip(ctx context.Context, addr, path string, headers [][2]string, body []byte, connectTimeout time.Duration, deadline time.Time) (*http.Response, error) {
	pc := p.get(addr)
	if pc == nil {
		var err error
		if pc, err = p.dial(ctx, addr, connectTimeout); err != nil {
			return nil, err
		}
	}
	_ = pc.c.SetDeadline(deadline)
	// Cancelling ctx expires the connection's deadlines, which fails the
	// read or write in progress; such a connection is never reused.
	stop := context.AfterFunc(ctx, pc.expire)
	fail := func(err error) (*http.Response, error) {
		stop()
		_ = pc.close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %w", errConnCanceled, context.Cause(ctx))
		}
		return nil, err
	}
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
	bw.Write(body)
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	resp, rb, reusable, err := pc.up.readResponse(pc.br)
	if err != nil {
		return fail(err)
	}
	pc.pbody = pooledBody{rc: rb, pc: pc, pool: p, addr: addr, stop: stop, reusable: reusable, ctx: ctx}
	resp.Body = &pc.pbody
	return resp, nil
}

// pooledBody returns its connection to the pool once read to the end. It
// lives in the connection: Close must be called once.
type pooledBody struct {
	rc       io.Reader
	pc       *pconn
	pool     *connPool
	addr     string
	stop     func() bool
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
func (b *pooledBody) setReadDeadline(t time.Time) { _ = b.pc.c.SetReadDeadline(t) }

func (b *pooledBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	// stop() is false when the deadline trap already fired.
	if b.stop() && b.eof && b.reusable {
		b.pool.put(b.addr, b.pc)
		return nil
	}
	return b.pc.close()
}
