package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infergate/infergate/l7/audit"
	"github.com/infergate/infergate/l7/auth"
	"github.com/infergate/infergate/l7/h1"
	"github.com/infergate/infergate/l7/limit"
	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/l7/route"
	"github.com/infergate/infergate/l7/tokens"
	"github.com/infergate/infergate/l7/trace"
	"github.com/infergate/infergate/policy"
)

// Tunables.
const (
	// DefaultMaxBodyBytes bounds a request body when the policy sets none.
	DefaultMaxBodyBytes = 4 << 20
	// defaultBodyReadTimeout bounds how long a client may take to send its
	// body (slow-client protection; the header has ReadHeaderTimeout).
	defaultBodyReadTimeout = 30 * time.Second
	// maxUpstreamBodyBytes bounds a non-streamed upstream response.
	maxUpstreamBodyBytes = 32 << 20
	// maxUpstreamErrorBytes bounds an upstream error body passed through.
	maxUpstreamErrorBytes = 64 << 10
	// defaultCompletionReserve is reserved against tokens/minute when a
	// request sets no max_tokens.
	defaultCompletionReserve = 1024
	// Timeouts used when the compiled policy leaves one at zero.
	defaultConnectTimeout = 5 * time.Second
	defaultTTFTTimeout    = 60 * time.Second
	defaultTotalTimeout   = 10 * time.Minute
	// authCloseDelay keeps a replaced authenticator alive for requests that
	// loaded the old snapshot just before Apply.
	authCloseDelay = time.Minute
	// Upstream connection pool.
	maxIdleConnsPerHost = 1024
	upstreamIdleTimeout = 90 * time.Second
	// upstreamKeepAlive is the TCP keep-alive period of upstream
	// connections (Transport and own pool alike).
	upstreamKeepAlive = 30 * time.Second
	// settleTimeout bounds settling a ticket after the client is gone.
	settleTimeout = 5 * time.Second
	// maxBufferedCompletion is how much streamed text is kept for counting
	// at the end; beyond it the text is counted as it streams.
	maxBufferedCompletion = 1 << 20
)

// Inspector scans a request's prompt texts, all rules in one pass. The
// gateway adapts l7/inspect to it; tests may supply their own.
type Inspector interface {
	Inspect(texts []string) (InspectResult, error)
}

// InspectResult is an inspection's outcome.
type InspectResult struct {
	// Block is the first matching rule whose action is block, if any.
	Block *Match
	// Matches lists every matching rule (block, redact and flag).
	Matches []Match
	// Redacted, when non-nil, is the texts with redact rules applied (same
	// length as the input).
	Redacted []string
}

// Match is one rule that matched.
type Match struct {
	Rule   string
	Action string // block | redact | flag
}

// Options for New.
type Options struct {
	// Registry receives the metrics (default: a private registry).
	Registry prometheus.Registerer
	// Logger receives operational messages (default slog.Default()); it
	// never gets prompt text.
	Logger *slog.Logger
	// Picker chooses backends by GPU load (optional).
	Picker route.Picker
	// Outliers tunes passive failure marking (route.Outliers): on by
	// default, fed by every attempt's outcome (outlier.go).
	Outliers route.OutlierConfig
	// Limiter overrides the limiter the policy's LimitStore selects.
	Limiter limit.Limiter
	// Audit overrides the policy's audit log path.
	Audit io.Writer
	// Ledger receives every finished request's record after the audit
	// log, before the handler returns (l7/ledger's spool); the caller owns
	// it and closes it after Shutdown.
	Ledger Ledger
	// Feedback stores POST /v1/feedback (l7/ledger); without it the
	// endpoint answers 501.
	Feedback FeedbackStore
	// Transport overrides the upstream transport.
	Transport http.RoundTripper
	// NewInspector builds the inspector for a policy's inspection rules
	// (default: l7/inspect).
	NewInspector func(policy.Inspection) (Inspector, error)
	// BodyReadTimeout bounds how long a client may take to send its body
	// (default 30 s).
	BodyReadTimeout time.Duration
	// Getenv and ReadFile read provider keys and HS256 secrets (defaults
	// from os).
	Getenv   func(string) string
	ReadFile func(string) ([]byte, error)
}

// Ledger takes finished requests' records for billing (l7/ledger). Append
// returns once the record is durable.
type Ledger interface {
	Append(*audit.Record) error
}

// Gateway serves the OpenAI-compatible API.
type Gateway struct {
	opts     Options
	log      *slog.Logger
	cfg      atomic.Pointer[config]
	limiter  limit.Limiter
	ownLimit bool
	audit    *audit.Logger
	ledger   Ledger
	metrics  *metrics
	// apiMetrics counts requests by inbound API (inbound.go).
	apiMetrics *apiMetrics
	rt         http.RoundTripper
	pool       *connPool // self-hosted backends; nil when Options.Transport is set
	inflight   *route.InFlight
	outliers   *route.Outliers
	mux        *http.ServeMux
	// chat, completions and embeddings are the POST endpoints' handlers,
	// also reached through mux; Handler dispatches them directly.
	chat, completions, embeddings http.Handler
	// messages, countTokens and responses serve the translated APIs
	// (inbound.go).
	messages, countTokens, responses http.Handler
	// backendStats counts finished requests per pool backend.
	backendStats backendStatsTable
	// caTransports reach providers that have their own CA (upstreamtls.go).
	caTransports caTransports

	admission admission // requests in flight; refused once shutting down
	closed    chan struct{}
	shutOnce  sync.Once
}

// config is one applied policy's snapshot: everything a request reads.
type config struct {
	c        *policy.Compiled
	routes   *route.Table
	auth     *auth.Authenticator
	counters map[*route.Model]*tokens.Counter
	maxBody  int64
	models   []byte // the /v1/models body
	// model is each /v1/models/{id} body by id (names and aliases).
	model map[string][]byte
	// chain is the POST endpoints' stages in order (stage.go), with
	// their names (for logs) and those that also act at finish.
	chain      []stage
	chainNames []string
	finishers  []stageFinisher
	// tracer exports request spans (nil: tracing off); kept across
	// applies while spec.gateway.tracing is unchanged.
	tracer *trace.Tracer
	// providerRT is the transport of each provider with its own CA, and
	// poolRT that of each pool reached over TLS.
	providerRT, poolRT map[string]http.RoundTripper
}

// New builds a gateway for c.
func New(c *policy.Compiled, opts Options) (*Gateway, error) {
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.BodyReadTimeout <= 0 {
		opts.BodyReadTimeout = defaultBodyReadTimeout
	}
	if opts.NewInspector == nil {
		opts.NewInspector = newInspector
	}
	if c == nil {
		return nil, errors.New("gateway: nil policy")
	}
	g := &Gateway{opts: opts, log: opts.Logger, inflight: &route.InFlight{}, closed: make(chan struct{})}
	var err error
	if g.outliers, err = route.NewOutliers(opts.Outliers); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if g.metrics, err = newMetrics(opts.Registry); err != nil {
		return nil, fmt.Errorf("register gateway metrics: %w", err)
	}
	if g.apiMetrics, err = newAPIMetrics(opts.Registry); err != nil {
		return nil, fmt.Errorf("register gateway metrics: %w", err)
	}
	// The limiter comes first: the limit stage holds it.
	g.limiter = opts.Limiter
	if g.limiter == nil {
		if g.limiter, err = newLimiter(c.Gateway.LimitStore); err != nil {
			return nil, err
		}
		g.ownLimit = true
	}
	cfg, err := g.build(c)
	if err != nil {
		if g.ownLimit {
			_ = g.limiter.Close()
		}
		return nil, err
	}
	g.ledger = opts.Ledger
	switch {
	case opts.Audit != nil:
		g.audit = audit.New(opts.Audit)
	case c.Gateway.Audit.Path != "":
		if g.audit, err = audit.Open(c.Gateway.Audit.Path); err != nil {
			return nil, err
		}
	}
	rt := opts.Transport
	if rt == nil {
		rt = newTransport()
		g.pool = newConnPool()
	}
	g.rt = rt
	g.cfg.Store(cfg)
	g.chat, g.completions, g.embeddings = g.endpoint(openai.ChatCompletions), g.endpoint(openai.Completions), g.endpoint(openai.Embeddings)
	g.mux = http.NewServeMux()
	g.mux.Handle("POST /v1/chat/completions", g.chat)
	g.mux.Handle("POST /v1/completions", g.completions)
	g.mux.Handle("POST /v1/embeddings", g.embeddings)
	g.messages = g.endpointAPI(openai.ChatCompletions, apiMessages)
	g.countTokens = g.endpointAPI(openai.ChatCompletions, apiMessagesCount)
	g.responses = g.endpointAPI(openai.ChatCompletions, apiResponses)
	g.mux.Handle("POST /v1/messages", g.messages)
	g.mux.Handle("POST /v1/messages/count_tokens", g.countTokens)
	g.mux.Handle("POST /v1/responses", g.responses)
	g.mux.HandleFunc("GET /v1/models", g.listModels)
	g.mux.HandleFunc("GET /v1/models/{id...}", g.retrieveModel)
	g.mux.HandleFunc("POST /v1/feedback", g.feedback)
	g.mux.HandleFunc("GET /healthz", g.healthz)
	g.mux.HandleFunc("GET /readyz", g.readyz)
	g.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		(&openai.Error{Status: http.StatusNotFound, Type: openai.TypeInvalidRequest, Code: "unknown_url",
			Message: "unknown request URL: " + r.Method + " " + r.URL.Path}).Write(w)
	})
	return g, nil
}

type connectTimeoutKey struct{}

func newTransport() *http.Transport {
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: defaultConnectTimeout, KeepAlive: upstreamKeepAlive}
			if v, ok := ctx.Value(connectTimeoutKey{}).(time.Duration); ok && v > 0 {
				d.Timeout = v
			}
			return d.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: maxIdleConnsPerHost,
		IdleConnTimeout:     upstreamIdleTimeout,
		TLSHandshakeTimeout: defaultConnectTimeout,
		// Bodies pass through as they come; asking for gzip would make the
		// transport decompress streams and hide their framing.
		DisableCompression: true,
	}
}

// build turns a compiled policy into a snapshot.
func (g *Gateway) build(c *policy.Compiled) (*config, error) {
	if c == nil {
		return nil, errors.New("gateway: nil policy")
	}
	cfg := &config{c: c, maxBody: c.Gateway.MaxBodyBytes, counters: map[*route.Model]*tokens.Counter{}}
	if cfg.maxBody <= 0 {
		cfg.maxBody = DefaultMaxBodyBytes
	}
	var err error
	if cfg.routes, err = route.New(c, route.Options{Picker: g.opts.Picker, InFlight: g.inflight, Outliers: g.outliers,
		Getenv: g.opts.Getenv, ReadFile: g.opts.ReadFile}); err != nil {
		return nil, fmt.Errorf("gateway routes: %w", err)
	}
	for _, m := range cfg.routes.Models() {
		tc, err := tokens.ForModelEncoding(m.Name, m.Policy.Encoding)
		if err != nil {
			return nil, fmt.Errorf("gateway model %s: %w", m.Name, err)
		}
		cfg.counters[m] = tc
	}
	var prevAuth *auth.Authenticator // its unchanged issuers keep their JWKS caches
	if old := g.cfg.Load(); old != nil {
		prevAuth = old.auth
	}
	if cfg.auth, err = auth.New(&c.Gateway, auth.Options{Logger: g.log, Getenv: g.opts.Getenv, Previous: prevAuth}); err != nil {
		return nil, fmt.Errorf("gateway auth: %w", err)
	}
	cfg.models, cfg.model = modelsBody(c)
	if old := g.cfg.Load(); old != nil && old.c.Gateway.Tracing == c.Gateway.Tracing {
		cfg.tracer = old.tracer
	} else if cfg.tracer, err = trace.New(traceConfig(c.Gateway.Tracing)); err != nil {
		_ = cfg.auth.Close()
		return nil, fmt.Errorf("gateway tracing: %w", err)
	}
	if err := g.buildChain(cfg); err != nil {
		_ = cfg.auth.Close()
		return nil, err
	}
	if cfg.providerRT, err = g.providerTransports(c); err != nil {
		_ = cfg.auth.Close()
		return nil, fmt.Errorf("gateway providers: %w", err)
	}
	if cfg.poolRT, err = g.poolTransports(c); err != nil {
		_ = cfg.auth.Close()
		return nil, fmt.Errorf("gateway upstream TLS: %w", err)
	}
	return cfg, nil
}

// Apply swaps in a new policy; requests in flight finish on the old one.
func (g *Gateway) Apply(c *policy.Compiled) error {
	cfg, err := g.build(c)
	if err != nil {
		return err
	}
	old := g.cfg.Swap(cfg)
	closeReplacedCache(old, cfg)
	if g.pool != nil {
		// Idle connections may lead to backends the new policy dropped.
		g.pool.closeIdle()
	}
	if old != nil && old.auth != nil {
		time.AfterFunc(authCloseDelay, func() { _ = old.auth.Close() })
	}
	if old != nil && old.tracer != nil && old.tracer != cfg.tracer {
		// Requests still on the old policy end their spans meanwhile.
		time.AfterFunc(authCloseDelay, func() { _ = old.tracer.Shutdown(context.Background()) })
	}
	return nil
}

func traceConfig(t policy.Tracing) trace.Config {
	return trace.Config{Endpoint: t.Endpoint, SampleRatio: t.SampleRatio, CAFile: t.CAFile}
}

// Handler is the HTTP handler of the OpenAI-compatible API.
func (g *Gateway) Handler() http.Handler { return http.HandlerFunc(g.serveHTTP) }

// serveHTTP sends a POST to an API path (exactly, as the mux would match
// it) straight to its endpoint, and everything else through the mux: the
// mux's pattern matching costs more per request than this switch.
func (g *Gateway) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.RawPath == "" {
		switch r.URL.Path {
		case "/v1/chat/completions":
			g.chat.ServeHTTP(w, r)
			return
		case "/v1/completions":
			g.completions.ServeHTTP(w, r)
			return
		case "/v1/embeddings":
			g.embeddings.ServeHTTP(w, r)
			return
		case "/v1/messages":
			g.messages.ServeHTTP(w, r)
			return
		case "/v1/responses":
			g.responses.ServeHTTP(w, r)
			return
		}
	}
	g.mux.ServeHTTP(w, r)
}

// Shutdown stops taking requests, waits for those in flight (streams
// included) until ctx ends, then flushes the audit log and closes what the
// gateway owns.
func (g *Gateway) Shutdown(ctx context.Context) error {
	done := g.admission.shut()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("gateway shutdown: %w", ctx.Err())
	}
	g.shutOnce.Do(func() {
		if g.audit != nil {
			if aerr := g.audit.Close(); aerr != nil && err == nil {
				err = aerr
			}
		}
		if g.ownLimit {
			if lerr := g.limiter.Close(); lerr != nil && err == nil {
				err = fmt.Errorf("close limiter: %w", lerr)
			}
		}
		if cfg := g.cfg.Load(); cfg != nil {
			_ = cfg.auth.Close()
			closeReplacedCache(cfg, nil)
			// Flush the last spans within what is left of ctx.
			if terr := cfg.tracer.Shutdown(ctx); terr != nil && err == nil {
				err = fmt.Errorf("close tracer: %w", terr)
			}
		}
		if t, ok := g.rt.(*http.Transport); ok {
			t.CloseIdleConnections()
		}
		if g.pool != nil {
			g.pool.closeIdle()
		}
		g.caTransports.closeIdle()
		close(g.closed)
	})
	return err
}

// NewServer wraps h in an http.Server with the gateway's connection
// timeouts: header read, idle keep-alive, and no write timeout (streams
// may be long; their length is bounded by the per-model total timeout).
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// NewListenerServer wraps h in the lean HTTP/1.1 server (l7/h1) with the
// same limits as NewServer: 64 KiB heads, header read and idle timeouts,
// no write timeout. It is the gateway listener's server; NewServer stays
// for listeners that need net/http (TLS, HTTP/2).
func NewListenerServer(h http.Handler, log *slog.Logger) *h1.Server {
	return &h1.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		Logger:            log,
	}
}

// Server timeouts.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
)
