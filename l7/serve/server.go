package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infergate/infergate/l7/gateway"
	"github.com/infergate/infergate/l7/h1"
	"github.com/infergate/infergate/l7/limit"
	"github.com/infergate/infergate/policy"
)

// DefaultShutdownGrace lets open streams finish when a gateway, listener
// or the whole server is replaced or stopped.
const DefaultShutdownGrace = 30 * time.Second

// ErrClosed is returned by Apply after Shutdown.
var ErrClosed = errors.New("serve: server shut down")

// Options configure a Server.
type Options struct {
	// Registry receives the gateway's metrics (default: a private one).
	Registry prometheus.Registerer
	// Logger receives operational messages (default slog.Default()).
	Logger *slog.Logger
	// Listen, when set, overrides the policy's gateway.listen (a command
	// line flag); DefaultListen is used when neither names an address.
	Listen, DefaultListen string
	// Loads, when set, steers the pools with loadReports on by GPU load
	// and keeps its poller aimed at them; its owner runs it (the agent,
	// whose Maglev tables read it too).
	Loads *Loads
	// PollLoadReports, when set and Loads is not, makes the Server build
	// and run its own Loads as soon as a policy has a pool with
	// loadReports on ("infergate gateway").
	PollLoadReports *LoadsConfig
	// Gateway passes the remaining gateway options through (Transport,
	// Getenv, ReadFile, NewInspector, BodyReadTimeout). Its Registry,
	// Logger, Picker, Limiter and Audit are the Server's to set.
	Gateway gateway.Options
	// ShutdownGrace bounds how long what a policy replaced may finish its
	// requests (default DefaultShutdownGrace).
	ShutdownGrace time.Duration
	// NewLimiter builds the limiter for a limit store (default: memory, or
	// Redis when the store names one).
	NewLimiter func(policy.LimitStore) (limit.Limiter, error)
}

// Server is a running L7 gateway and what it needs: listener, stage
// chain, picker, limiter and audit log. It starts with the first Apply.
type Server struct {
	o       Options
	log     *slog.Logger
	reg     prometheus.Registerer
	handler http.Handler // dispatches to active
	active  atomic.Pointer[http.Handler]
	errc    chan error

	mu     sync.Mutex // serialises Apply and Shutdown; guards what follows
	closed bool
	c      *policy.Compiled
	// The running parts and the policy fields they were built from.
	g         *gateway.Gateway
	metrics   *recorder
	limiter   limit.Limiter
	limitKey  policy.LimitStore
	audit     *auditFile
	picked    bool
	loads     *Loads
	stopLoads context.CancelFunc
	ln        net.Listener
	gl        *gateway.Listener // plain (l7/h1) or TLS server of ln
	listen    string
	retirings sync.WaitGroup
	// ledger is handed to every gateway; it forwards to the ledger in
	// force (ledger.go).
	ledger        ledgerSlot
	ledgerMetrics sync.Once
}

// New returns a Server that starts serving with its first Apply.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = DefaultShutdownGrace
	}
	if o.NewLimiter == nil {
		o.NewLimiter = newLimiter
	}
	s := &Server{o: o, log: o.Logger, reg: o.Registry, errc: make(chan error, 1), loads: o.Loads}
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := s.active.Load()
		if h == nil {
			http.Error(w, "no policy applied yet", http.StatusServiceUnavailable)
			return
		}
		(*h).ServeHTTP(w, r)
	})
	return s
}

// newLimiter picks the limit store the policy names: memory, or a
// redis-server shared by every replica.
func newLimiter(ls policy.LimitStore) (limit.Limiter, error) {
	if ls.Redis == "" {
		return limit.NewMemory(), nil
	}
	return limit.NewRedisFromPolicy(ls)
}

// Handler serves the API through whichever gateway is in force (for tests
// and embedding; the Server's own listener uses it too).
func (s *Server) Handler() http.Handler { return s.handler }

// Addr is the address the listener is bound to ("" before the first
// Apply).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Loads is the load source steering the gateway's picker (nil while none
// is needed or configured).
func (s *Server) Loads() *Loads {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loads
}

// Errors delivers the first error a listener stopped serving with.
func (s *Server) Errors() <-chan error { return s.errc }

// Err is why the listener in force stopped serving (nil while it serves,
// and before the first Apply): health reports a gateway that no longer
// accepts.
func (s *Server) Err() error {
	s.mu.Lock()
	gl := s.gl
	s.mu.Unlock()
	if gl == nil {
		return nil
	}
	return gl.Server.Err()
}

// BackendStats reports the running gateway's per-backend counters (nil
// before the first Apply).
func (s *Server) BackendStats() map[string]gateway.BackendStats {
	s.mu.Lock()
	g := s.g
	s.mu.Unlock()
	if g == nil {
		return nil
	}
	return g.BackendStats()
}

// ReinstateBackend ends the running gateway's passive marking of the
// backend at addr (an active health check of it passed); nothing before
// the first Apply.
func (s *Server) ReinstateBackend(addr netip.AddrPort) {
	s.mu.Lock()
	g := s.g
	s.mu.Unlock()
	if g != nil {
		g.Reinstate(addr)
	}
}

func (s *Server) listenAddr(c *policy.Compiled) string {
	switch {
	case s.o.Listen != "":
		return s.o.Listen
	case c.Gateway.Listen != "":
		return c.Gateway.Listen
	}
	return s.o.DefaultListen
}

// Apply puts c in force, all or nothing: a field that cannot be applied
// (the listen address does not bind, the limit store or audit log cannot
// be opened, the stages refuse it) refuses the whole policy and the one in
// force keeps serving untouched.
func (s *Server) Apply(c *policy.Compiled) (err error) {
	if c == nil {
		return errors.New("serve: nil policy")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	// undo closes, in reverse, what this Apply built before it failed.
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	addr := s.listenAddr(c)
	ln, gl := s.ln, s.gl
	installTLS := func() {}
	if ln == nil || addr != s.listen {
		if ln, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("gateway.listen %s: %w", addr, err)
		}
		undo = append(undo, func() { _ = ln.Close() })
		// A new listener takes the policy's TLS settings, whatever the
		// old one had.
		if gl, err = gateway.NewListener(c, s.handler, s.log); err != nil {
			return err
		}
		undo = append(undo, gl.Close)
	} else if installTLS, err = gl.PrepareTLS(c); err != nil {
		// The files are loaded now, so that a certificate that does not
		// load refuses the policy; they go in force with the rest below.
		// The same address cannot be bound twice, so turning TLS on or
		// off in place (ErrTLSToggle) would drop the listener between
		// close and bind: it is refused too.
		return err
	}
	if s.o.Listen != "" && c.Gateway.Listen != "" && c.Gateway.Listen != s.o.Listen {
		s.log.Warn("the listen address on the command line overrides the policy's gateway.listen", "listen", s.o.Listen, "policy", c.Gateway.Listen)
	}

	lim := s.limiter
	newLim := lim == nil || c.Gateway.LimitStore != s.limitKey
	if newLim {
		if lim, err = s.o.NewLimiter(c.Gateway.LimitStore); err != nil {
			return fmt.Errorf("gateway.limitStore: %w", err)
		}
		undo = append(undo, func() { _ = lim.Close() })
	}

	af := s.audit
	newAudit := c.Gateway.Audit.Path != s.audit.path()
	if newAudit {
		af = nil
		if c.Gateway.Audit.Path != "" {
			if af, err = openAudit(c.Gateway.Audit.Path); err != nil {
				return fmt.Errorf("gateway.audit.path: %w", err)
			}
			undo = append(undo, func() { _ = af.release() })
		}
	}

	lch, err := s.prepareLedger(c.Gateway.Ledger)
	if err != nil {
		return err
	}
	undo = append(undo, lch.abort)

	loads := s.loads
	var newLoads *Loads
	if loads == nil && s.o.PollLoadReports != nil && usesLoadReports(c) {
		if newLoads, err = NewLoads(*s.o.PollLoadReports); err != nil {
			return err
		}
		loads = newLoads
	}
	picked := loads != nil && usesLoadReports(c)
	g := s.g
	var rec *recorder
	rebuild := g == nil || newLim || newAudit || picked != s.picked
	if rebuild {
		// The new gateway registers the same metric names: take the old
		// one's series out first, and put them back if it fails.
		s.metrics.unregister()
		undo = append(undo, func() { s.metrics.register() })
		rec = &recorder{reg: s.reg}
		opts := s.o.Gateway
		opts.Registry, opts.Logger, opts.Limiter, opts.Picker, opts.Audit = rec, s.log, lim, nil, nil
		opts.Ledger, opts.Feedback = &s.ledger, &s.ledger
		if picked {
			opts.Picker = loads.Picker()
		}
		var aw *lineWriter
		if af != nil {
			aw = af.writer()
			opts.Audit = aw
		}
		if g, err = gateway.New(c, opts); err != nil {
			rec.unregister()
			if aw != nil {
				_ = aw.Close()
			}
			return err
		}
		undo = append(undo, func() { rec.unregister(); _ = g.Shutdown(context.Background()) })
	}
	if loads != nil {
		if err = loads.SetTargets(c); err != nil {
			return err
		}
		undo = append(undo, func() {
			if rerr := loads.SetTargets(s.c); rerr != nil {
				s.log.Error("restoring the load report targets failed", "err", rerr)
			}
		})
	}
	if !rebuild {
		// The last step that can fail: it swaps atomically or not at all.
		if err = g.Apply(c); err != nil {
			return err
		}
	}

	// Everything is built: switch, then retire what was replaced.
	oldG, oldLim, oldAudit, oldGL := s.g, s.limiter, s.audit, s.gl
	if rebuild {
		h := g.Handler()
		s.active.Store(&h)
		s.g, s.metrics = g, rec
	}
	s.c, s.picked = c, picked
	lch.commit(s)
	if newLoads != nil {
		ctx, cancel := context.WithCancel(context.Background())
		s.loads, s.stopLoads = newLoads, cancel
		s.retirings.Add(1)
		go func() { defer s.retirings.Done(); _ = newLoads.Run(ctx) }()
		s.log.Info("polling GPU load reports")
	}
	if newLim {
		s.limiter, s.limitKey = lim, c.Gateway.LimitStore
	} else {
		oldLim = nil
	}
	if newAudit {
		s.audit = af
	} else {
		oldAudit = nil
	}
	if ln != s.ln {
		s.ln, s.listen, s.gl = ln, addr, gl
		go s.serve(gl.Server, ln)
		s.log.Info("L7 gateway listening", "addr", ln.Addr().String(), "tls", gl.TLS != nil)
	} else {
		oldGL = nil
		installTLS()
	}
	if !rebuild {
		oldG = nil
	}
	s.retire(oldGL, oldG, oldLim, oldAudit)
	return nil
}

func (s *Server) serve(srv gateway.ListenerServer, ln net.Listener) {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, h1.ErrServerClosed) && !errors.Is(err, http.ErrServerClosed) {
		s.log.Error("gateway server", "err", err)
		select {
		case s.errc <- fmt.Errorf("serve %s: %w", ln.Addr(), err):
		default:
		}
	}
}

// retire lets what a policy replaced finish its requests in flight, then
// closes it: the listener's server first (its connections now reach the
// new gateway), the gateway, and last what the gateway used.
func (s *Server) retire(gl *gateway.Listener, g *gateway.Gateway, lim limit.Limiter, af *auditFile) {
	if gl == nil && g == nil && lim == nil && af == nil {
		return
	}
	s.retirings.Add(1)
	go func() {
		defer s.retirings.Done()
		ctx, cancel := context.WithTimeout(context.Background(), s.o.ShutdownGrace)
		defer cancel()
		if gl != nil {
			_ = gl.Server.Shutdown(ctx)
			gl.Close()
		}
		if g != nil {
			if err := g.Shutdown(ctx); err != nil {
				s.log.Warn("replaced gateway", "err", err)
			}
		}
		if lim != nil {
			if err := lim.Close(); err != nil {
				s.log.Warn("closing the replaced limiter", "err", err)
			}
		}
		if af != nil {
			if err := af.release(); err != nil {
				s.log.Warn("closing the replaced audit log", "err", err)
			}
		}
	}()
}

// Shutdown stops taking connections, lets requests in flight (streams
// included) finish until ctx ends, and closes everything.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	gl, g, lim, af := s.gl, s.g, s.limiter, s.audit
	if s.stopLoads != nil {
		s.stopLoads()
	}
	s.mu.Unlock()
	var err error
	if gl != nil {
		err = gl.Server.Shutdown(ctx)
		gl.Close()
	}
	if g != nil {
		err = errors.Join(err, g.Shutdown(ctx))
	}
	if lim != nil {
		if lerr := lim.Close(); lerr != nil {
			err = errors.Join(err, fmt.Errorf("close limiter: %w", lerr))
		}
	}
	if af != nil {
		err = errors.Join(err, af.release())
	}
	// After the gateway: its last requests are in the spool.
	err = errors.Join(err, s.closeLedger(ctx))
	done := make(chan struct{})
	go func() { s.retirings.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("replaced gateways still draining: %w", ctx.Err()))
	}
	return err
}

// Picking reports whether the gateway in force picks backends by load
// (a load source is there and a pool has loadReports on).
func (s *Server) Picking() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.picked
}
