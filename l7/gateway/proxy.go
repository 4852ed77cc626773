package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/l7/route"
	"github.com/infergate/infergate/l7/translate/outbound"
)

// upstreamReadBuffer sizes the reader over a streamed response.
const upstreamReadBuffer = 32 << 10

// maxRetryAfterLen bounds an upstream Retry-After value passed on.
const maxRetryAfterLen = 64

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, upstreamReadBuffer) }}

// attemptResult says what the next step is after one upstream attempt.
type attemptResult int

const (
	attemptDone  attemptResult = iota // response (success or final error) handled
	attemptRetry                      // nothing sent to the client; try the next route
)

func (x *exchange) timeouts() (connect, ttft, total time.Duration) {
	t := x.model.Policy.Timeouts
	gt := x.cfg.c.Gateway.Timeouts
	pick := func(a, b, def time.Duration) time.Duration {
		if a > 0 {
			return a
		}
		if b > 0 {
			return b
		}
		return def
	}
	return pick(t.Connect, gt.Connect, defaultConnectTimeout), pick(t.TimeToFirstToken, gt.TimeToFirstToken, defaultTTFTTimeout),
		pick(t.Total, gt.Total, defaultTotalTimeout)
}

// proxyStage tries the model's routes in order until one answers, within
// the retry budget, and relays the answer. It is the chain's last stage.
//
// Reads: everything the earlier stages wrote. Writes: the outcome (status,
// backend, attempts, usage, streamed text) and the response.
type proxyStage struct{}

func newProxyStage(*Gateway, *config) (stage, error) { return proxyStage{}, nil }

func (proxyStage) serve(x *exchange) *openai.Error { return x.proxy() }

// proxy runs the attempts along the model's plan.
func (x *exchange) proxy() *openai.Error {
	retries := x.model.Policy.Retries
	x.plan = x.model.Plan(x.plan, retries)
	if n := x.model.Policy.SpillOverInFlight; n > 0 && len(x.plan) > 1 && x.plan[0].Pool != nil && x.plan[0].Pool.Saturated(int64(n)) {
		// The pool is saturated: start at the fallback (spill-over), the
		// pool after it.
		x.plan[0], x.plan[1] = x.plan[1], x.plan[0]
	}
	// Upstream is always asked for usage on streams so billing is exact.
	if x.req.Stream && !x.req.WantsUsage() && x.ep != openai.Embeddings {
		x.rewrite.IncludeUsage = true
	}
	// Keys the gateway did not read must not reach an upstream that
	// would read them.
	x.rewrite.StripVariants = x.req.Variants
	var last *openai.Error
	for _, rt := range x.plan {
		res, err := x.attempt(rt)
		if res == attemptDone {
			return err
		}
		last = err
		if x.r.Context().Err() != nil {
			x.clientGone = true
			return err
		}
	}
	return last
}

// attempt sends the request along one route.
func (x *exchange) attempt(rt *route.Route) (attemptResult, *openai.Error) {
	x.attempts++
	rw := x.rewrite
	rw.Model = rt.UpstreamModel
	body, err := rw.Apply(&x.req, x.body)
	if err != nil {
		return attemptDone, &openai.Error{Status: http.StatusBadRequest, Type: openai.TypeInvalidRequest, Code: "invalid_request", Message: "the request could not be rewritten"}
	}
	backend := x.pickBackend(rt)
	x.provider, x.providerPrice, x.meter = genAIOpenAI, nil, outbound.Meter{}
	if backend != nil {
		x.backend = backend.Label
		return x.sendToBackend(rt, backend, body)
	}
	x.backend = rt.Provider.Label
	x.provider = rt.Provider.GenAIName
	x.providerPrice = rt.Provider.Price(rt.UpstreamModel, x.model.Name)
	return x.send(rt, nil, rt.Provider.BaseURL, body)
}

// sendToBackend is send to a pool backend, counted in its requests in
// flight and its pending prompt tokens while it runs, its outcome observed
// for outlier detection. (One deferred call and one return: the defer is
// open-coded, where send's many returns would make each of its defers a
// record on the stack.)
func (x *exchange) sendToBackend(rt *route.Route, b *route.Backend, body []byte) (res attemptResult, oerr *openai.Error) {
	release := b.Acquire()
	x.startPending(b)
	defer func() {
		x.endPending()
		b.Observe(x.outcome(oerr))
		release()
	}()
	res, oerr = x.send(rt, b, b.BaseURL, body)
	return res, oerr
}

// send makes the request to backend (nil for a provider) at base and
// relays its answer.
func (x *exchange) send(rt *route.Route, backend *route.Backend, base string, body []byte) (attemptResult, *openai.Error) {
	connect, ttft, total := x.timeouts()
	// For streams, the time-to-first-token limit cancels the attempt
	// unless the first event arrives in time; a whole response only has
	// the total timeout, as its first token is not observable.
	var ttftExpired atomic.Bool
	var timer *time.Timer
	// totalEnd is where the read deadline of a pooled connection moves
	// once the first event of a stream arrived (zero otherwise).
	var totalEnd time.Time
	var resp *http.Response
	var err error
	if backend != nil && x.g.pool != nil && !backend.TLS {
		// The pooled connection's own deadline carries the total and
		// first-token timeouts, and the client leaving expires it: no
		// context or timer per attempt.
		now := time.Now()
		timeout := total
		deadline := now.Add(total)
		if x.req.Stream && ttft < total {
			totalEnd = deadline
			timeout, deadline = ttft, now.Add(ttft)
		}
		hdrs := [...][2]string{{"Content-Type", "application/json"}, {"Accept", "application/json, text/event-stream"},
			{"x-request-id", x.id}, {hopsHeader, hopValues[x.hops]}, {"traceparent", x.traceparent}, {"tracestate", x.tracestate}}
		n := 4
		if x.traceparent != "" {
			n = 5
			if x.tracestate != "" {
				n = 6
			}
		}
		dn, _ := x.w.(disconnectNotifier)
		resp, err = x.g.pool.roundTrip(x.r.Context(), dn, backend.HostPort, x.ep.V1Path(), hdrs[:n], body, connect, deadline, deadlineSlack(timeout))
	} else {
		ctx, cancel := context.WithTimeout(x.r.Context(), total)
		defer cancel()
		if x.req.Stream {
			timer = time.AfterFunc(ttft, func() { ttftExpired.Store(true); cancel() })
			defer timer.Stop()
		}
		// Only the transport's dialer reads the connect timeout from the
		// context; the pool is given it directly.
		upCtx := context.WithValue(ctx, connectTimeoutKey{}, connect)
		if rt.Provider != nil && rt.Provider.GenAIName != genAIOpenAI {
			// The translation reports cache reads for the price (providerkind.go).
			upCtx = outbound.WithMeter(upCtx, &x.meter)
		}
		up, rerr := http.NewRequestWithContext(upCtx, http.MethodPost, base+x.ep.Path(), bytes.NewReader(body))
		if rerr != nil {
			return attemptRetry, upstreamError(http.StatusBadGateway, "upstream_unavailable", "invalid upstream URL")
		}
		up.ContentLength = int64(len(body))
		h := up.Header
		h.Set("Content-Type", "application/json")
		h.Set("Accept", "application/json, text/event-stream")
		h.Set("x-request-id", x.id)
		h.Set(hopsHeader, hopValues[x.hops])
		if x.traceparent != "" {
			h.Set("Traceparent", x.traceparent)
			if x.tracestate != "" {
				h.Set("Tracestate", x.tracestate)
			}
		}
		if rt.Provider != nil && rt.Provider.Key() != "" {
			h.Set("Authorization", "Bearer "+rt.Provider.Key())
		}
		// RoundTrip, not Client.Do: no redirects to follow, so no
		// per-request header copier.
		resp, err = x.upstreamTransport(rt).RoundTrip(up)
	}
	if err != nil {
		return x.transportError(err, &ttftExpired, "upstream_unavailable", "the upstream could not be reached")
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusLoopDetected {
		// A gateway further on saw too many hops: every other route
		// would loop the same way, so the request ends here.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxUpstreamErrorBytes))
		return attemptDone, upstreamError(http.StatusLoopDetected, "loop_detected", "the request looped through gateways")
	}
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		e := upstreamError(http.StatusBadGateway, "upstream_error", "the upstream failed")
		if resp.StatusCode == http.StatusTooManyRequests {
			e = &openai.Error{Status: http.StatusTooManyRequests, Type: openai.TypeRateLimit, Code: "upstream_rate_limited", Message: "the upstream is rate limiting"}
			// Kept for the client in case no fallback answers.
			if ra := resp.Header.Get("Retry-After"); ra != "" && len(ra) < maxRetryAfterLen {
				x.w.Header().Set("Retry-After", ra)
			}
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxUpstreamErrorBytes))
		return attemptRetry, e
	}
	switch sc := resp.StatusCode; {
	case sc == http.StatusOK:
	case sc == http.StatusUnauthorized || sc == http.StatusForbidden || sc == http.StatusProxyAuthRequired:
		// The gateway's own upstream credential failed: the client's
		// credential is fine, so it must not see a 401.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxUpstreamErrorBytes))
		return attemptRetry, upstreamError(http.StatusBadGateway, "upstream_auth_failed", "the gateway could not authenticate to the upstream")
	case sc >= 400 && sc < 500:
		// A client error upstream (400, 404, 422…): pass it through, bounded.
		x.relayError(resp)
		return attemptDone, nil
	default:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxUpstreamErrorBytes))
		return attemptRetry, upstreamError(http.StatusBadGateway, "upstream_error", "unexpected upstream status "+strconv.Itoa(sc))
	}
	if x.req.Stream && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return x.relayStream(resp, timer, &ttftExpired, totalEnd)
	}
	if timer != nil {
		timer.Stop()
	}
	return x.relayWhole(resp, &ttftExpired)
}

// transportError classifies a failed round trip or body read: the client
// left (done), a timeout (retry, 504), or otherwise code and msg (retry, 502).
func (x *exchange) transportError(err error, ttftExpired *atomic.Bool, code, msg string) (attemptResult, *openai.Error) {
	if x.r.Context().Err() != nil {
		x.clientGone = true
		return attemptDone, upstreamError(statusClientClosed, "client_closed", "client closed the request")
	}
	if ttftExpired.Load() || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		return attemptRetry, upstreamError(http.StatusGatewayTimeout, "upstream_timeout", "the upstream did not answer in time")
	}
	return attemptRetry, upstreamError(http.StatusBadGateway, code, msg)
}

func upstreamError(status int, code, msg string) *openai.Error {
	typ := openai.TypeUpstream
	if status == statusClientClosed {
		typ = openai.TypeInvalidRequest
	}
	return &openai.Error{Status: status, Type: typ, Code: code, Message: msg}
}

// passUpstreamID gives the client the upstream's own request id (as
// X-Upstream-Request-Id; X-Request-Id stays the gateway's), so that a
// provider's support can find the request.
func (x *exchange) passUpstreamID(resp *http.Response) {
	if v := resp.Header["X-Request-Id"]; len(v) == 1 && validRequestID(v[0]) {
		x.setHeader("X-Upstream-Request-Id", v[0])
	}
}

func (x *exchange) relayError(resp *http.Response) {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxUpstreamErrorBytes))
	x.status = resp.StatusCode
	x.errMsg = "upstream_status"
	x.wroteHeader = true
	x.passUpstreamID(resp)
	h := x.w.Header()
	h.Set("Content-Type", resp.Header.Get("Content-Type"))
	if x.api != apiOpenAI {
		b = x.upstreamErrorBody(resp.StatusCode, b)
		h.Set("Content-Type", "application/json")
	}
	x.w.WriteHeader(resp.StatusCode)
	_, _ = x.w.Write(b)
}

// maxPooledBuffer keeps huge response buffers out of the pool.
const maxPooledBuffer = 1 << 20

var bufferPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (x *exchange) relayWhole(resp *http.Response, ttftExpired *atomic.Bool) (attemptResult, *openai.Error) {
	buf := bufferPool.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledBuffer {
			buf.Reset()
			bufferPool.Put(buf)
		}
	}()
	if n := resp.ContentLength; n > 0 && n <= maxUpstreamBodyBytes {
		buf.Grow(int(n) + 1)
	}
	if _, err := buf.ReadFrom(x.limit(resp.Body, maxUpstreamBodyBytes+1)); err != nil {
		return x.transportError(err, ttftExpired, "upstream_error", "the upstream response broke off")
	}
	if buf.Len() > maxUpstreamBodyBytes {
		return attemptDone, upstreamError(http.StatusBadGateway, "upstream_response_too_large", "the upstream response is too large")
	}
	out := buf.Bytes()
	counted := false
	if x.span != nil {
		x.finishReason = openai.FindFinishReason(out)
	}
	if u, ok := openai.FindUsage(out); ok {
		x.usageStore = u
		x.usage = &x.usageStore
		x.meterCached(out)
	} else {
		if x.ep != openai.Embeddings {
			var parsed openai.Response
			if err := json.Unmarshal(out, &parsed); err == nil {
				x.addCompletion(parsed.Text())
			}
		}
		// The upstream gave no usage: the client gets the gateway's own
		// count, marked as such.
		if withUsage, ok := appendUsage(out, x.countedUsage()); ok {
			out, counted = withUsage, true
		}
	}
	x.scratch.cache.keepWhole(out)
	ctype := resp.Header["Content-Type"]
	if x.in != nil {
		// The client's API's answer, from the chat answer.
		var terr error
		if x.req.Stream {
			x.in.startStream(x.promptTokens)
			out, terr = wholeAsStream(x.in, out, nil)
			ctype = []string{"text/event-stream"}
		} else {
			out, terr = x.in.whole(out)
			ctype = []string{"application/json"}
		}
		if terr != nil {
			return attemptDone, upstreamError(http.StatusBadGateway, "upstream_untranslatable", errNotTranslatable.Error()+": "+terr.Error())
		}
	}
	x.status = http.StatusOK
	x.answered = true
	x.wroteHeader = true
	if ct := ctype; len(ct) > 0 {
		// Copied into the head now, or (map path) an interned or
		// cloned string: never the pooled connection's read buffer.
		x.setHeader("Content-Type", ct[0])
	}
	if counted {
		x.setHeader(usageSourceHeader, usageGatewayCounted)
	}
	x.passUpstreamID(resp)
	x.w.WriteHeader(http.StatusOK)
	if _, err := x.w.Write(out); err != nil {
		x.clientGone = x.r.Context().Err() != nil
	}
	return attemptDone, nil
}

// relayStream passes the event stream through one event at a time, flushing
// after each, and notes usage and streamed text on the way.
func (x *exchange) relayStream(resp *http.Response, timer *time.Timer, ttftExpired *atomic.Bool, totalEnd time.Time) (attemptResult, *openai.Error) {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(resp.Body)
	defer func() { br.Reset(nil); readerPool.Put(br) }()
	er := openai.NewEventReader(br)
	rc := http.NewResponseController(x.w)
	wantUsage := x.req.WantsUsage()
	first, done := true, false
	var translated []byte // the client's events for one chat event (inbound.go)
	if x.in != nil {
		x.in.startStream(x.promptTokens)
	}
	for {
		raw, data, err := er.Next()
		if err != nil {
			switch {
			case first && (ttftExpired.Load() || isTimeout(err)):
				return attemptRetry, upstreamError(http.StatusGatewayTimeout, "upstream_timeout", "no first token in time")
			case x.r.Context().Err() != nil:
				x.clientGone = true
				return attemptDone, nil
			}
			if first {
				return attemptRetry, upstreamError(http.StatusBadGateway, "upstream_error", "the upstream stream broke off")
			}
			if err != io.EOF || !done {
				// The stream broke (or ended without [DONE]): the client
				// keeps what it got, then an error event its SDK raises;
				// billing counts what was streamed.
				x.streamBroken(rc)
			}
			return attemptDone, nil
		}
		if first {
			x.endPending()
			if timer != nil {
				timer.Stop()
			}
			if pb, ok := resp.Body.(*pooledBody); ok && !totalEnd.IsZero() {
				// In time: from here only the total timeout applies.
				pb.setReadDeadline(totalEnd)
			}
			if ttftExpired.Load() {
				return attemptRetry, upstreamError(http.StatusGatewayTimeout, "upstream_timeout", "no first token in time")
			}
			first = false
			x.ttft = time.Since(x.start)
			x.status = http.StatusOK
			x.answered = true
			x.wroteHeader = true
			h := x.w.Header()
			h.Set("Content-Type", "text/event-stream")
			h.Set("Cache-Control", "no-cache")
			h.Set("X-Accel-Buffering", "no")
			x.passUpstreamID(resp)
			x.w.WriteHeader(http.StatusOK)
		}
		if data != nil {
			x.scratch.cache.event(data)
		}
		if data != nil && bytes.Equal(data, openai.Done) {
			done = true
			if x.in != nil {
				if x.usage == nil {
					x.countedUsage()
				}
				translated = x.in.end(pivotUsage(x.usage), translated[:0])
				raw = translated
			} else if wantUsage && x.usage == nil && x.ep != openai.Embeddings {
				// Asked for, but the upstream sent none: the gateway's
				// count goes in a last chunk of its own.
				if _, err := x.w.Write(x.usageChunk()); err != nil {
					x.clientGone = true
					return attemptDone, nil
				}
			}
		} else if data != nil {
			if x.span != nil {
				if fr := openai.FindFinishReason(data); fr != "" {
					x.finishReason = fr
				}
			}
			if err := openai.ParseChunk(data, &x.chunk); err == nil {
				if x.chunk.Usage != nil {
					x.usageStore = *x.chunk.Usage
					x.usage = &x.usageStore
					x.meterCached(data)
					if len(x.chunk.Choices) == 0 && !wantUsage && x.in == nil {
						continue // the usage chunk only the gateway asked for
					}
				}
				for i := range x.chunk.Choices {
					c := &x.chunk.Choices[i]
					x.addCompletion(c.Delta.Content)
					x.addCompletion(c.Text)
				}
			}
			if x.in != nil {
				var terr error
				if translated, terr = x.in.chunk(data, translated[:0]); terr != nil {
					x.streamUntranslatable(rc, terr)
					return attemptDone, nil
				}
				if len(translated) == 0 {
					continue // nothing for the client in this chunk (a usage chunk)
				}
				raw = translated
			}
		}
		if _, err := x.w.Write(raw); err != nil {
			x.clientGone = true
			return attemptDone, nil
		}
		if err := rc.Flush(); err != nil {
			x.clientGone = true
			return attemptDone, nil
		}
	}
}
