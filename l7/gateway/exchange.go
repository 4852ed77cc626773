package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"slices"
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
	"github.com/infergate/infergate/policy"
)

// statusClientClosed is logged (never sent) when the client left first.
const statusClientClosed = 499

// exchange is one request's state as it moves through the stages. They are
// pooled: every field is reset in reset.
type exchange struct {
	g   *Gateway
	cfg *config
	w   http.ResponseWriter
	// raw is w's raw header lines (l7/h1's RawHeader), nil if it has none.
	raw   *[]byte
	r     *http.Request
	ep    openai.Endpoint
	start time.Time
	id    string

	principal auth.Principal
	body      []byte
	bodyBuf   bytes.Buffer
	req       openai.Request
	model     *route.Model
	counter   *tokens.Counter
	inspected InspectResult
	rewrite   openai.Rewrite

	promptTokens int64
	ticket       limit.Ticket

	// Outcome.
	status       int
	errMsg       string
	backend      string
	attempts     int
	wroteHeader  bool
	ttft         time.Duration
	usage        *openai.Usage
	usageStore   openai.Usage
	completion   []byte
	completionCC *tokens.CompletionCounter
	clientGone   bool
	plan         []*route.Route
	chunk        openai.Chunk
	// limited bounds the request and response body reads; it lives in
	// the pooled exchange so each read does not allocate one.
	limited io.LimitedReader
	// Scratch for the inspector's texts and the counter's messages,
	// kept across pooled requests (cleared after each).
	texts []string
	msgs  []tokens.Message
}

var exchangePool = sync.Pool{New: func() any { return new(exchange) }}

// maxPooledBody bounds the body buffer a pooled exchange keeps.
const maxPooledBody = 256 << 10

func (x *exchange) reset() {
	body := x.bodyBuf
	body.Reset()
	if body.Cap() > maxPooledBody {
		body = bytes.Buffer{} // a rare large body does not stay in the pool
	}
	req := x.req
	comp := x.completion[:0]
	plan := x.plan[:0]
	chunk := x.chunk
	clear(x.texts)
	clear(x.msgs)
	texts, msgs := x.texts[:0], x.msgs[:0]
	*x = exchange{bodyBuf: body, req: req, completion: comp, plan: plan, chunk: chunk, texts: texts, msgs: msgs}
}

// stage is one step of the chain; a non-nil error ends the chain and is
// sent to the client.
type stage struct {
	name string
	run  func(*exchange) *openai.Error
}

var chain = []stage{
	{"auth", (*exchange).authenticate},
	{"parse", (*exchange).parse},
	{"model", (*exchange).resolveModel},
	{"inspect", (*exchange).inspect},
	{"count", (*exchange).count},
	{"limit", (*exchange).admit},
	{"proxy", (*exchange).proxy},
}

func (g *Gateway) endpoint(ep openai.Endpoint) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.enter() {
			w.Header().Set("Connection", "close")
			(&openai.Error{Status: http.StatusServiceUnavailable, Type: openai.TypeServer, Code: "shutting_down",
				Message: "the gateway is shutting down"}).Write(w)
			return
		}
		defer g.active.Done()
		x := exchangePool.Get().(*exchange)
		x.g, x.cfg, x.w, x.r, x.ep, x.start = g, g.cfg.Load(), w, r, ep, time.Now()
		x.id = newID()
		if rh, ok := w.(rawHeaderer); ok {
			x.raw = rh.RawHeader()
		}
		x.setHeader("X-Request-Id", x.id)
		defer x.recoverPanic()
		for _, s := range chain {
			if err := s.run(x); err != nil {
				x.fail(err)
				break
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
	if x.raw == nil || strings.ContainsAny(value, "\r\n") {
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
	x.g.log.Error("gateway stage panicked", "request", x.id, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
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
		err.Write(x.w)
	}
}

func (x *exchange) authenticate() *openai.Error {
	p, err := x.cfg.auth.Authenticate(x.r)
	if err != nil {
		return authError(err)
	}
	x.principal = p
	return nil
}

// authError is the client's answer to a failed authentication: the auth
// stage's own status and message, or a plain 401.
func authError(err error) *openai.Error {
	var ae *auth.Error
	if errors.As(err, &ae) {
		return &openai.Error{Status: ae.Status, Type: openai.TypeAuthentication, Code: ae.Code, Message: ae.Message}
	}
	return &openai.Error{Status: http.StatusUnauthorized, Type: openai.TypeAuthentication, Code: "invalid_credentials", Message: "authentication failed"}
}

// bufferedBody is a request body that can tell it is already in memory.
type bufferedBody interface{ Buffered() bool }

func (x *exchange) parse() *openai.Error {
	// Slow-client protection: the whole body must arrive in time. A body
	// that came with the head (l7/h1 says so) needs no deadline, which
	// spares two timer updates on most requests.
	var rc *http.ResponseController
	if bb, ok := x.r.Body.(bufferedBody); !ok || !bb.Buffered() {
		rc = http.NewResponseController(x.w)
		_ = rc.SetReadDeadline(time.Now().Add(x.g.opts.BodyReadTimeout))
	}
	if x.r.ContentLength > x.cfg.maxBody {
		x.w.Header().Set("Connection", "close")
		return tooLarge(x.cfg.maxBody)
	}
	if x.r.ContentLength > 0 && rc == nil {
		// Sized at once only for a body already in the server's buffer; one
		// still to come grows as it arrives (ReadFrom doubles), so a
		// declared length costs nothing until it is sent.
		x.bodyBuf.Grow(int(x.r.ContentLength) + 1)
	}
	_, err := x.bodyBuf.ReadFrom(x.limit(x.r.Body, x.cfg.maxBody+1))
	if err != nil {
		// The deadline stays: the server must not wait for the rest of
		// the body before answering, and the connection is not reused.
		x.w.Header().Set("Connection", "close")
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return &openai.Error{Status: http.StatusRequestTimeout, Type: openai.TypeInvalidRequest, Code: "body_timeout", Message: "the request body did not arrive in time"}
		}
		return openai.BadRequest("body_read_error", "could not read the request body", "")
	}
	if int64(x.bodyBuf.Len()) > x.cfg.maxBody {
		x.w.Header().Set("Connection", "close")
		return tooLarge(x.cfg.maxBody)
	}
	if rc != nil {
		_ = rc.SetReadDeadline(time.Time{})
	}
	x.body = x.bodyBuf.Bytes()
	if err := openai.ParseInto(&x.req, x.ep, x.body); err != nil {
		var oe *openai.Error
		if errors.As(err, &oe) {
			return oe
		}
		return openai.BadRequest("invalid_request", err.Error(), "")
	}
	return nil
}

func tooLarge(limit int64) *openai.Error {
	return &openai.Error{Status: http.StatusRequestEntityTooLarge, Type: openai.TypeInvalidRequest, Code: "request_too_large",
		Message: "the request body is larger than " + strconv.FormatInt(limit, 10) + " bytes"}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

func (x *exchange) resolveModel() *openai.Error {
	m, ok := x.cfg.routes.Lookup(x.req.Model)
	if !ok {
		return &openai.Error{Status: http.StatusNotFound, Type: openai.TypeInvalidRequest, Code: "model_not_found",
			Message: "the model `" + truncate(x.req.Model, 128) + "` does not exist or you do not have access to it", Param: "model"}
	}
	x.model = m
	x.counter = x.cfg.counters[m]
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (x *exchange) inspect() *openai.Error {
	if x.cfg.inspector == nil || len(x.req.Texts) == 0 {
		return nil
	}
	texts := x.texts[:0]
	for i := range x.req.Texts {
		texts = append(texts, x.req.Texts[i].Value)
	}
	x.texts = texts
	res, err := x.cfg.inspector.Inspect(texts)
	if err != nil {
		return &openai.Error{Status: http.StatusInternalServerError, Type: openai.TypeServer, Code: "inspection_failed", Message: "prompt inspection failed"}
	}
	x.inspected = res
	for _, m := range res.Matches {
		x.g.metrics.verdicts.WithLabelValues(x.principal.Tenant, m.Rule, m.Action).Inc()
	}
	if res.Block != nil {
		return &openai.Error{Status: http.StatusBadRequest, Type: openai.TypeInvalidRequest, Code: "content_blocked",
			Message: "the prompt was blocked by policy rule " + res.Block.Rule, Param: res.Block.Rule}
	}
	if res.Redacted != nil && len(res.Redacted) == len(texts) {
		x.rewrite.Texts = res.Redacted
		for i := range x.req.Texts {
			x.req.Texts[i].Value = res.Redacted[i]
		}
	}
	return nil
}

func (x *exchange) count() *openai.Error {
	x.promptTokens = int64(countPrompt(x.counter, &x.req, &x.msgs))
	return nil
}

// countPrompt counts what the model reads, after redaction.
func countPrompt(c *tokens.Counter, r *openai.Request, scratch *[]tokens.Message) int {
	n := r.TokenInputs
	if r.Endpoint != openai.ChatCompletions {
		for i := range r.Texts {
			n += c.Count(r.Texts[i].Value)
		}
		return n
	}
	msgs := slices.Grow((*scratch)[:0], len(r.Messages))[:len(r.Messages)]
	*scratch = msgs
	for i := range r.Messages {
		m := &r.Messages[i]
		msgs[i] = tokens.Message{Role: m.Role, Name: m.Name}
		if len(m.ToolCalls) > 0 && string(m.ToolCalls) != "null" {
			msgs[i].Extra = append(msgs[i].Extra, string(m.ToolCalls))
		}
		if m.ToolCallID != "" {
			msgs[i].Extra = append(msgs[i].Extra, m.ToolCallID)
		}
	}
	for i := range r.Texts {
		t := &r.Texts[i]
		if t.Part < 0 {
			msgs[t.Message].Content = t.Value
		} else {
			msgs[t.Message].Parts = append(msgs[t.Message].Parts, t.Value)
		}
	}
	return n + c.CountChat(msgs)
}

func (x *exchange) price(prompt, completion int64) float64 {
	if x.model == nil {
		return 0
	}
	p := x.model.Policy.Price
	return (float64(prompt)*p.InputPerMTok + float64(completion)*p.OutputPerMTok) / 1e6
}

func (x *exchange) admit() *openai.Error {
	var completion int64
	if x.ep != openai.Embeddings {
		completion = x.req.CompletionBudget(defaultCompletionReserve)
	}
	gw := &x.cfg.c.Gateway
	lr := limit.Request{Tenant: x.principal.Tenant, ReserveTokens: x.promptTokens + completion,
		EstimatedCostUSD: x.price(x.promptTokens, completion)}
	if i := x.principal.TenantIndex; i >= 0 && i < len(gw.Tenants) {
		lr.TenantLimits = gw.Tenants[i].Limits
	}
	if i := x.principal.KeyIndex; i >= 0 && i < len(gw.Keys) {
		lr.Key = x.principal.KeyName
		lr.KeyLimits = gw.Keys[i].Limits
	}
	t, d, err := x.g.limiter.Admit(x.r.Context(), lr)
	if x.raw != nil {
		*x.raw = d.AppendHeaderLines(*x.raw)
	} else {
		d.WriteHeaders(x.w.Header())
	}
	if err != nil {
		return &openai.Error{Status: http.StatusServiceUnavailable, Type: openai.TypeServer, Code: "limit_store_unavailable",
			Message: "rate limits cannot be checked right now; retry later"}
	}
	if !d.Allowed {
		x.g.metrics.limited.WithLabelValues(x.principal.Tenant, d.Reason).Inc()
		code := "rate_limit_exceeded"
		if d.Reason == limit.ReasonTenantBudget || d.Reason == limit.ReasonKeyBudget {
			code = "insufficient_quota"
		}
		return &openai.Error{Status: http.StatusTooManyRequests, Type: openai.TypeRateLimit, Code: code,
			Message: "limit reached (" + d.Reason + ")"}
	}
	x.ticket = t
	return nil
}

// finish settles the ticket with what was really used, then records
// metrics and the audit line. It runs for every request.
func (x *exchange) finish() {
	elapsed := time.Since(x.start)
	var prompt, completion int64
	source := ""
	if x.attempts > 0 {
		prompt = x.promptTokens
		if x.usage != nil {
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
	cost := x.price(prompt, completion)
	if err := x.settle(prompt+completion, cost); err != nil {
		x.g.log.Warn("settle limit ticket", "request", x.id, "err", err)
	}
	if x.status == 0 {
		x.status = http.StatusOK
	}
	status := x.status
	if x.clientGone {
		status = statusClientClosed
	}
	x.g.recordBackend(x.backend, status, prompt, completion, x.ttft)
	modelName := ""
	if x.model != nil {
		modelName = x.model.Name
	}
	m := x.g.metrics
	if x.model != nil {
		s := m.series(seriesKey{tenant: x.principal.Tenant, model: modelName, backend: x.backend, status: status})
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
	if x.g.audit == nil {
		return
	}
	rec := &audit.Record{ID: x.id, Time: x.start.UTC(), Tenant: x.principal.Tenant, Key: x.principal.KeyName,
		Subject: x.principal.Subject, Endpoint: x.ep.Path(), Model: modelName, Backend: x.backend, Status: status,
		Stream: x.req.Stream, PromptTokens: prompt, CompletionTokens: completion, UsageSource: source, CostUSD: cost,
		Attempts: x.attempts, LatencyMS: ms(elapsed), TTFTMS: ms(x.ttft), Error: x.errMsg}
	for _, v := range x.inspected.Matches {
		rec.Verdicts = append(rec.Verdicts, v.Rule)
	}
	if x.cfg.c.Gateway.Audit.LogPrompts && len(x.req.Texts) > 0 {
		rec.Prompt = make([]string, len(x.req.Texts))
		for i := range x.req.Texts {
			rec.Prompt[i] = x.req.Texts[i].Value
		}
	}
	if err := x.g.audit.Log(rec); err != nil {
		x.g.log.Error("audit log", "err", err)
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

// listModels serves /v1/models to authenticated clients.
func (g *Gateway) listModels(w http.ResponseWriter, r *http.Request) {
	cfg := g.cfg.Load()
	if _, err := cfg.auth.Authenticate(r); err != nil {
		authError(err).Write(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(cfg.models)
}

func modelsBody(c *policy.Compiled) []byte {
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	list := struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{Object: "list", Data: []model{}}
	for _, m := range c.Gateway.Models {
		for _, n := range append([]string{m.Name}, m.Aliases...) {
			list.Data = append(list.Data, model{ID: n, Object: "model", OwnedBy: "infergate"})
		}
	}
	b, _ := json.Marshal(list)
	return b
}
