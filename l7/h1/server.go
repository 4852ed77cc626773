package h1

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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
	// DefaultMaxConns caps the connections one Server serves at once.
	DefaultMaxConns = 16384
	// DefaultMaxConnsPerAddr caps the connections from one client
	// address (an IPv6 client by its /64): one unauthenticated client
	// must not take every descriptor, yet clients behind one NAT keep
	// ample room.
	DefaultMaxConnsPerAddr = 512
	// DefaultMaxBodyBytesInFlight bounds the request bodies a Server is
	// receiving at once, by their declared lengths.
	DefaultMaxBodyBytesInFlight = 64 << 20
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
	// lingerTimeout and lingerBytes bound how long, and how much of what
	// the client still sends, a connection closed with its request unread
	// reads and drops so the client can read its response (lingerClose).
	// A client uploading a few MiB at a normal pace finishes within them.
	lingerTimeout = time.Second
	lingerBytes   = 4 << 20
	// shutdownPollInterval is how often Shutdown looks for idle
	// connections to close.
	shutdownPollInterval = 10 * time.Millisecond
	// acceptBackoffMin and acceptBackoffMax bound the wait after a
	// temporary accept error (it doubles while the errors go on).
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
	// idleRearm: the idle deadline is moved only when it was last set
	// longer ago than this, so a busy connection does not move its timer
	// on every request; a connection is then closed after IdleTimeout
	// less up to idleRearm of idleness.
	idleRearm = time.Second
)

// Server serves HTTP/1.x on listeners. Its zero timeouts and limits take
// the defaults.
type Server struct {
	Handler           http.Handler
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// FirstRequestTimeout bounds how long a new connection may stay
	// silent before its first request begins (0: ReadHeaderTimeout's
	// value). IdleTimeout applies only between requests, so a client
	// cannot hold a descriptor for the long keep-alive time without ever
	// asking anything.
	FirstRequestTimeout time.Duration
	MaxHeaderBytes      int
	// MaxConns caps the connections served at once, MaxConnsPerAddr those
	// from one client address (an IPv6 client counts by its /64). A
	// connection accepted beyond a cap is closed at once with a reset and
	// counted (Stats). 0 takes DefaultMaxConns or DefaultMaxConnsPerAddr;
	// a negative value means no cap.
	MaxConns        int
	MaxConnsPerAddr int
	// MaxBodyBytesInFlight bounds the request bodies being received at
	// once (0: DefaultMaxBodyBytesInFlight; negative: no bound). A body
	// counts by its Content-Length from its head until it has been read
	// to its end or the handler returns; a chunked one by what has been
	// read of it. A request whose body does not fit is answered 503 with
	// Retry-After (413 if it could never fit) without running the
	// handler; a chunked body that outgrows it fails its Read with
	// ErrBodyBudget. A body that arrived whole with its head is not
	// counted: the read buffer holds it.
	MaxBodyBytesInFlight int64
	// Logger receives handler panics (default slog.Default()).
	Logger *slog.Logger

	inShutdown atomic.Bool
	mu         sync.Mutex
	listeners  map[*net.Listener]struct{}
	conns      map[*conn]struct{}
	// count holds the connections admitted and not yet forgotten, per
	// client address too (guarded by mu).
	count connCount
	done  chan struct{}
	date  atomic.Pointer[dateValue]
	// serving counts the Serve calls accepting now; serveErr is the
	// error the last of them that failed stopped with (guarded by mu).
	serving  atomic.Int32
	serveErr error
	// Counters (Stats).
	refusedConns  atomic.Uint64
	acceptRetries atomic.Uint64
	bodyRefused   atomic.Uint64
	// bodyInFlight is what the bodies being received count for.
	bodyInFlight atomic.Int64
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

func (s *Server) firstRequestTimeout() time.Duration {
	if s.FirstRequestTimeout > 0 {
		return s.FirstRequestTimeout
	}
	return s.headerTimeout()
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
// Running out of descriptors (or kernel memory) does not end it: it waits,
// 5 ms and doubling up to a second, and accepts again (as net/http does).
func (s *Server) Serve(ln net.Listener) (err error) {
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
	s.serving.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, &ln)
		if !errors.Is(err, ErrServerClosed) {
			s.serveErr = err
		}
		s.serving.Add(-1)
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
			if retryAccept(err) {
				if backoff == 0 {
					s.logger().Warn("h1: accept failed; retrying", "err", err)
				}
				s.acceptRetries.Add(1)
				backoff = min(max(2*backoff, acceptBackoffMin), acceptBackoffMax)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("h1: accept: %w", err)
		}
		backoff = 0
		key := clientKey(rwc.RemoteAddr())
		s.mu.Lock()
		if s.inShutdown.Load() {
			s.mu.Unlock()
			_ = rwc.Close()
			return ErrServerClosed
		}
		if !s.count.admit(key, s.maxConns(), s.maxConnsPerAddr()) {
			s.mu.Unlock()
			s.refusedConns.Add(1)
			refuse(rwc)
			continue
		}
		s.mu.Unlock()
		rwc = rawsock.Wrap(rwc)
		c := newConn(s, rwc)
		c.addr = key
		s.mu.Lock()
		if s.inShutdown.Load() {
			s.count.release(key)
			s.mu.Unlock()
			rawsock.CloseWatcher().Unwatch(c.watchID)
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
	s.count.release(c.addr)
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
