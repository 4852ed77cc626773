package gateway

import (
	"encoding/hex"
	"time"

	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/l7/trace"
)

// traceStage starts the request's span (l7/trace) after requestid has
// validated the client's trace context, and makes the gateway's span the
// parent the upstream sees. At finish it records the outcome with the GenAI
// attributes and ends the span; the chain loop adds a child span per stage
// while a span is recording. Without spec.gateway.tracing the stage is not
// built, and the request path pays one nil check.
//
// Reads: x.r's head, x.traceparent. Writes: x.span, x.spanCtx,
// x.traceparent (the gateway's span).
type traceStage struct{ tr *trace.Tracer }

func newTraceStage(_ *Gateway, cfg *config) (stage, error) {
	if cfg.tracer == nil {
		return nil, nil
	}
	return traceStage{cfg.tracer}, nil
}

func (s traceStage) serve(x *exchange) *openai.Error {
	ctx := x.r.Context()
	if x.traceparent == "" {
		// Malformed or absent: start a new trace rather than extract
		// whatever the client sent.
		x.r.Header.Del("Traceparent")
	}
	x.spanCtx, x.span = s.tr.Request(ctx, x.r.Header, operation(x.ep), x.start)
	if sc := x.span.SpanContext(); sc.IsValid() {
		x.traceparent = formatTraceparent(sc)
	}
	return nil
}

func (s traceStage) finish(x *exchange) {
	if x.span == nil {
		return
	}
	o := trace.Outcome{Operation: operation(x.ep), RequestModel: x.req.Model, Provider: x.providerName(),
		Status: x.status, ErrorType: x.errMsg, Stream: x.req.Stream, Tenant: x.principal.Tenant,
		Backend: x.backend, TTFT: x.ttft, FinishReason: x.finishReason, Start: x.start, End: time.Now()}
	if x.usage != nil {
		o.InputTokens, o.OutputTokens = x.usage.PromptTokens, x.usage.CompletionTokens
	} else {
		o.InputTokens = x.promptTokens
	}
	trace.Finish(x.span, o)
	x.span = nil
}

// traceStageSpan records stage i of the chain as a child span.
func (x *exchange) traceStageSpan(i int, start time.Time, failed bool) {
	trace.Stage(x.spanCtx, x.cfg.tracer, x.cfg.chainNames[i], start, time.Now(), failed)
}

// operation is gen_ai.operation.name for an endpoint.
func operation(ep openai.Endpoint) string {
	switch ep {
	case openai.ChatCompletions:
		return "chat"
	case openai.Embeddings:
		return "embeddings"
	default:
		return "text_completion"
	}
}

func formatTraceparent(sc oteltrace.SpanContext) string {
	var b [55]byte
	copy(b[:], "00-")
	tid, sid := sc.TraceID(), sc.SpanID()
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{byte(sc.TraceFlags())})
	return string(b[:])
}
