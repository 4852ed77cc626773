package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/infergate/infergate/l7/audit"
	"github.com/infergate/infergate/l7/auth"
	"github.com/infergate/infergate/l7/limit"
	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/l7/route"
	"github.com/infergate/infergate/l7/tokens"
	"github.com/infergate/infergate/l7/translate/outbound"
	"github.com/infergate/infergate/policy"
	oteltrace "go.opentelemetry.io/otel/trace"
)

// statusClientClosed is logged (never sent) when the client left first.
const statusClientClosed = 499

// exchange is one request's state as it moves through the stages: what
// the stages hand each other (the fields of exchangeState, each written by
// the stage named and read by the later ones), the outcome that finish
// records, and the stages' own scratch. Exchanges are pooled: reset zeroes
// exchangeState whole and keeps exchangeKept's storage for the next
// request, so neither is copied.
type exchange struct {
	exchangeKept
	exchangeState
}

// exchangeKept is what a pooled exchange keeps across requests: buffers
// whose storage is reused (each emptied by reset), and the last metric
// series and backend counters it recorded into (metrics.go).
type exchangeKept struct {
	bodyBuf    bytes.Buffer   // parse: body's storage
	req        openai.Request // parse or translate (inspect rewrites redacted Texts)
	completion []byte
	plan       []*route.Route
	chunk      openai.Chunk
	// scratch is the stages' own per-request scratch (stage.go).
	scratch stageScratch
	last    lastRecorded
}

// exchangeState is one request's state; reset zeroes it.
type exchangeState struct {
	// Set before the chain runs; read-only for stages.
	g   *Gateway
	cfg *config
	w   http.ResponseWriter
	// raw is w's raw header lines (l7/h1's RawHeader), nil if it has none.
	raw   *[]byte
	r     *http.Request
	ep    openai.Endpoint
	api   apiKind // the client's API (inbound.go)
	start time.Time

	id          string // requestid
	traceparent string // requestid: the client's, passed upstream
	tracestate  string
	hops        int // hops: gateways passed before this one
	// trace: the request's span and its context (nil while tracing is off).
	span    oteltrace.Span
	spanCtx context.Context
	// finishReason is read from the upstream's answer only while a span
	// records (proxy).
	finishReason string

	principal auth.Principal // auth
	body      []byte         // parse: the body as received
	in        inbound        // translate: the answer's way back to the client's API
	model     *route.Model   // model
	counter   *tokens.Counter
	inspected InspectResult  // inspect
	rewrite   openai.Rewrite // inspect (Texts), proxy (the rest)

	promptTokens int64          // count
	ticket       limit.Ticket   // limit; settled by finish
	decision     limit.Decision // limit

	// Outcome, written by the stage that ends the exchange (fail for an
	// error, proxy for an answer) and recorded by finish.
	status  int
	errMsg  string
	backend string
	// provider is the answering upstream's gen_ai.provider.name;
	// providerPrice its price for the model, and meter the usage details
	// its translation reported (proxy).
	provider      string
	providerPrice *policy.ProviderModel
	meter         outbound.Meter
	attempts      int
	wroteHeader   bool
	ttft          time.Duration
	usage         *openai.Usage
	usageStore    openai.Usage
	usageCounted  bool // usage is the gateway's count (usage.go)
	answered      bool // a 200 head went to the client
	completionCC  *tokens.CompletionCounter
	clientGone    bool
	// limited bounds the request and response body reads; it lives in
	// the pooled exchange so each read does not allocate one.
	limited io.LimitedReader
	// at is the index in cfg.chain of the stage running.
	at int

	// pendBackend holds pendTokens of this request's prompt as awaiting
	// prefill until its first token (pending.go).
	pendBackend *route.Backend
	pendTokens  int64
	// pickHit is the fraction of the prompt the picked backend holds in
	// its prefix cache, as the picker knows it (prefix.go).
	pickHit float64
	// cacheHit is "exact" or "semantic" when the cache stage answered;
	// cacheBilled: the policy bills such hits as upstream answers.
	cacheHit    string
	cacheBilled bool
}

var exchangePool = sync.Pool{New: func() any { return new(exchange) }}

// maxPooledBody bounds the body buffer a pooled exchange keeps.
const maxPooledBody = 256 << 10

func (x *exchange) reset() {
	k := &x.exchangeKept
	k.bodyBuf.Reset()
	if k.bodyBuf.Cap() > maxPooledBody {
		k.bodyBuf = bytes.Buffer{} // a rare large body does not stay in the pool
	}
	k.completion = k.completion[:0]
	clear(k.plan)
	k.plan = k.plan[:0]
	k.scratch.reset()
	x.exchangeState = exchangeState{}
}

func (g *Gateway) endpoint(ep openai.Endpoint) http.Handler { return g.endpointAPI(ep, apiOpenAI) }

// endpointAPI is the handler of an endpoint whose client speaks api; ep
// is what goes upstream (chat completions for a translated API).
func (g *Gateway) endpointAPI(ep openai.Endpoint, api apiKind) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.admission.enter() {
			w.Header().Set("Connection", "close")
			writeAPIError(w, api, &openai.Error{Status: http.StatusServiceUnavailable, Type: openai.TypeServer, Code: "shutting_down",
				Message: "the gateway is shutting down"})
			return
		}
		defer g.admission.leave()
		x := exchangePool.Get().(*exchange)
		x.g, x.cfg, x.w, x.r, x.ep, x.api, x.start = g, g.cfg.Load(), w, r, ep, api, time.Now()
		if rh, ok := w.(rawHeaderer); ok {
			x.raw = rh.RawHeader()
		}
		defer x.recoverPanic()
		for i, s := range x.cfg.chain {
			x.at = i
			var t0 time.Time
			if x.span != nil {
				t0 = time.Now()
			}
			err := s.serve(x)
			if x.span != nil && !t0.IsZero() {
				x.traceStageSpan(i, t0, err != nil)
			}
			if err != nil {
				x.fail(err)
				break
			}
			if x.wroteHeader {
				break // a stage answered (a cache hit): the rest do not run
			}
		}
		x.finish()
		x.reset()
		exchangePool.Put(x)
	})
}

// rawHeaderer is a response writer that takes header lines without its
// header map (l7/h1's): the fields every response carries go there.
type rawHeaderer interface{ RawHeader() *[]byte }

// setHeader sets a response field, as a raw header line where the writer
// takes them. name must be canonical and not a framing field.
func (x *exchange) setHeader(name, value string) {
	if x.raw == nil || strings.IndexByte(value, '\r') >= 0 || strings.IndexByte(value, '\n') >= 0 {
		x.w.Header()[name] = []string{value} // the map path sanitises
		return
	}
	b := append(*x.raw, name...)
	b = append(b, ": "...)
	b = append(b, value...)
	*x.raw = append(b, "\r\n"...)
}

// recoverPanic turns a bug in a stage into a 500 for this request only,
// and still settles its limit ticket (so a concurrency slot is not held
// until its lease ends). The exchange is not pooled again.
func (x *exchange) recoverPanic() {
	p := recover()
	if p == nil {
		return
	}
	if p == http.ErrAbortHandler {
		panic(p)
	}
	x.g.log.Error("gateway stage panicked", "request", x.id, "stage", x.cfg.chainNames[x.at], "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	x.fail(&openai.Error{Status: http.StatusInternalServerError, Type: openai.TypeServer, Code: "internal_error", Message: "internal error"})
	_ = x.settle(x.promptTokens, x.price(x.promptTokens, 0))
}

// settle returns the limit ticket, if one is held, with what was used. It
// outlives the client's context (the client may be gone) but not
// settleTimeout.
func (x *exchange) settle(tokens int64, cost float64) error {
	t := x.ticket
	if t == nil {
		return nil
	}
	x.ticket = nil
	if _, inMemory := x.g.limiter.(*limit.Memory); inMemory {
		// Settles at once and never reads its context.
		return t.Settle(context.Background(), tokens, cost)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(x.r.Context()), settleTimeout)
	defer cancel()
	return t.Settle(ctx, tokens, cost)
}

// limit is io.LimitReader without the allocation. One bounded read at a
// time per exchange.
func (x *exchange) limit(r io.Reader, n int64) io.Reader {
	x.limited = io.LimitedReader{R: r, N: n}
	return &x.limited
}

func newID() string {
	var b [20]byte
	n := copy(b[:], "req-")
	return string(strconv.AppendUint(b[:n], rand.Uint64(), 36))
}

// fail sends err unless a response has started (then it is only recorded).
func (x *exchange) fail(err *openai.Error) {
	if x.status == 0 {
		x.status = err.Status
	}
	if x.errMsg == "" {
		x.errMsg = err.Code
	}
	if !x.wroteHeader {
		x.wroteHeader = true
		x.writeError(err)
	}
}

func (x *exchange) price(prompt, completion int64) float64 {
	if x.model == nil {
		return 0
	}
	if pp := x.providerPrice; pp != nil {
		// The provider's own price; its cache reads at the cached-input
		// price (absent: the input price).
		cached := min(max(x.meter.CachedTokens, 0), prompt)
		cachedPrice := pp.CachedInputPerMTok
		if cachedPrice == 0 {
			cachedPrice = pp.InputPerMTok
		}
		return (float64(prompt-cached)*pp.InputPerMTok + float64(cached)*cachedPrice + float64(completion)*pp.OutputPerMTok) / 1e6
	}
	p := x.model.Policy.Price
	return (float64(prompt)*p.InputPerMTok + float64(completion)*p.OutputPerMTok) / 1e6
}

// finish settles the ticket with what was really used, then records
// metrics and the audit line. It runs for every request.
func (x *exchange) finish() {
	elapsed := time.Since(x.start)
	var prompt, completion int64
	source := ""
	// A request the upstream failed (it answered an error, or none
	// answered) costs nothing; one it answered, or that the client left
	// while waiting, costs what it used.
	if x.attempts > 0 && (x.answered || x.clientGone) {
		prompt = x.promptTokens
		if x.usage != nil && x.usageCounted {
			source = "counted"
			completion = x.usage.CompletionTokens
		} else if x.usage != nil {
			source = "upstream"
			if x.usage.PromptTokens > 0 {
				prompt = x.usage.PromptTokens
			}
			completion = x.usage.CompletionTokens
		} else if x.ep != openai.Embeddings {
			source = "counted"
			completion = x.countedCompletion()
		}
	}
	var cachedTokens int64
	if x.cacheHit != "" && x.usage != nil {
		source = "cache"
		cachedTokens = x.usage.PromptTokens + x.usage.CompletionTokens
		if x.cacheBilled {
			prompt, completion = x.usage.PromptTokens, x.usage.CompletionTokens
		}
	}
	cost := x.price(prompt, completion)
	if err := x.settle(prompt+completion, cost); err != nil {
		x.g.log.Warn("settle limit ticket", "request", x.id, "err", err)
	}
	for _, f := range x.cfg.finishers {
		f.finish(x)
	}
	if x.status == 0 {
		x.status = http.StatusOK
	}
	status := x.status
	if x.clientGone {
		status = statusClientClosed
	}
	x.g.recordBackend(&x.last, x.backend, status, prompt, completion, x.ttft)
	x.g.apiMetrics.observe(x.api, status)
	modelName := ""
	if x.model != nil {
		modelName = x.model.Name
	}
	m := x.g.metrics
	if x.model != nil {
		s := x.last.seriesFor(m, seriesKey{tenant: x.principal.Tenant, model: modelName, backend: x.backend, status: status})
		s.observeDuration(m, elapsed.Seconds())
		if x.attempts > 0 {
			s.observeTokens(m, tokenTypeInput, float64(prompt))
			if x.ep != openai.Embeddings {
				s.observeTokens(m, tokenTypeOutput, float64(completion))
			}
			if cost > 0 {
				s.addCost(m, cost)
			}
		}
		if x.ttft > 0 {
			s.observeTTFT(m, x.ttft.Seconds())
			if completion > 1 {
				s.observeTPOT(m, (elapsed-x.ttft).Seconds()/float64(completion-1))
			}
		}
	}
	// The record is built only for a reader: the ledger slot is always
	// installed, so it is asked for by the policy in force, not by its
	// presence (a record per request is an allocation on the hot path).
	ledger := x.g.ledger != nil && x.cfg.c.Gateway.Ledger.Spool != ""
	if x.g.audit == nil && !ledger {
		return
	}
	rec := &audit.Record{ID: x.id, Time: x.start.UTC(), Tenant: x.principal.Tenant, Key: x.principal.KeyName,
		Subject: x.principal.Subject, Endpoint: x.ep.Path(), Model: modelName, Backend: x.backend, Provider: x.provider, Status: status,
		Stream: x.req.Stream, PromptTokens: prompt, CompletionTokens: completion, UsageSource: source, CostUSD: cost,
		Attempts: x.attempts, LatencyMS: ms(elapsed), TTFTMS: ms(x.ttft), Error: x.errMsg, Cache: x.cacheHit, CachedTokens: cachedTokens}
	rec.Endpoint = x.endpointPath()
	for _, v := range x.inspected.Matches {
		rec.Verdicts = append(rec.Verdicts, v.Rule)
	}
	if x.g.audit != nil && x.cfg.c.Gateway.Audit.LogPrompts && len(x.req.Texts) > 0 {
		rec.Prompt = make([]string, len(x.req.Texts))
		for i := range x.req.Texts {
			rec.Prompt[i] = x.req.Texts[i].Value
		}
	}
	if x.g.audit != nil {
		if err := x.g.audit.Log(rec); err != nil {
			x.g.log.Error("audit log", "err", err)
		}
	}
	if ledger {
		if err := x.g.ledger.Append(rec); err != nil {
			x.g.log.Error("usage ledger: request not recorded", "request", x.id, "err", err)
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// addCompletion keeps streamed text for counting when upstream gives no usage.
func (x *exchange) addCompletion(text string) {
	if text == "" {
		return
	}
	if x.completionCC != nil {
		x.completionCC.WriteString(text)
		return
	}
	x.completion = append(x.completion, text...)
	if len(x.completion) > maxBufferedCompletion {
		x.completionCC = x.counter.CountCompletionText()
		_, _ = x.completionCC.Write(x.completion)
		x.completion = x.completion[:0]
	}
}

func (x *exchange) countedCompletion() int64 {
	if x.completionCC != nil {
		return int64(x.completionCC.Tokens())
	}
	return int64(x.counter.Count(string(x.completion)))
}
