// Package trace exports one OpenTelemetry span per gateway request, named
// and attributed after OpenTelemetry's GenAI semantic conventions (model,
// provider, input and output tokens, finish reason, time to first token as
// an event), with the request's stages as child spans. Trace context comes
// from the client's W3C traceparent and goes on to the upstream.
//
// Tracing is off unless an OTLP endpoint is configured, and off costs one
// nil check per request: New returns a nil *Tracer, whose methods do
// nothing. Spans are sampled parent-based with a trace-id ratio, so a
// client's sampled decision is kept and the gateway samples the rest.
package trace

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	oteltrace "go.opentelemetry.io/otel/trace"
)

// Defaults and bounds.
const (
	// DefaultSampleRatio is the share of traces the gateway starts itself
	// (a client's sampled traceparent is always followed).
	DefaultSampleRatio = 0.1
	// DefaultServiceName names the gateway in the traces.
	DefaultServiceName = "infergate"
	// exportTimeout bounds one export; a slow collector never slows requests
	// (the batch processor drops spans when its queue is full).
	exportTimeout = 10 * time.Second
	// maxQueue bounds spans waiting for export.
	maxQueue = 4096
	// instrumentation is the tracer's name.
	instrumentation = "github.com/infergate/infergate/l7/trace"
)

// Config turns tracing on.
type Config struct {
	// Endpoint is the OTLP/HTTP traces URL, e.g.
	// https://collector:4318/v1/traces. Empty turns tracing off.
	Endpoint string
	// SampleRatio of new traces, 0..1 (0: DefaultSampleRatio).
	SampleRatio float64
	// CAFile verifies an https endpoint instead of the system roots.
	CAFile string
	// ServiceName (empty: DefaultServiceName).
	ServiceName string
}

// Tracer starts request spans; a nil *Tracer is tracing off.
type Tracer struct {
	tp   *sdktrace.TracerProvider
	tr   oteltrace.Tracer
	prop propagation.TraceContext
}

// New builds a Tracer exporting to cfg.Endpoint, or returns nil when tracing
// is off.
func New(cfg Config) (*Tracer, error) {
	if cfg.Endpoint == "" {
		return nil, nil
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("trace: endpoint %q: want an http:// or https:// URL", cfg.Endpoint)
	}
	ratio := cfg.SampleRatio
	if ratio == 0 {
		ratio = DefaultSampleRatio
	}
	if ratio < 0 || ratio > 1 {
		return nil, fmt.Errorf("trace: sample ratio %v outside 0..1", ratio)
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(cfg.Endpoint), otlptracehttp.WithTimeout(exportTimeout)}
	if u.Scheme == "https" && cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("trace: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("trace: CA file %s holds no PEM certificate", cfg.CAFile)
		}
		opts = append(opts, otlptracehttp.WithTLSClientConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("trace: exporter: %w", err)
	}
	name := cfg.ServiceName
	if name == "" {
		name = DefaultServiceName
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithMaxQueueSize(maxQueue)),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(name))),
	)
	return &Tracer{tp: tp, tr: tp.Tracer(instrumentation)}, nil
}

// Shutdown flushes the spans still queued and stops the exporter.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// ForceFlush exports the spans queued now.
func (t *Tracer) ForceFlush(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.ForceFlush(ctx)
}

// Request starts the server span of one request, the child of the
// client's traceparent when it sent one. The span is named after the
// operation until Finish renames it with the model.
func (t *Tracer) Request(ctx context.Context, h http.Header, operation string, start time.Time) (context.Context, oteltrace.Span) {
	ctx = t.prop.Extract(ctx, propagation.HeaderCarrier(h))
	return t.tr.Start(ctx, operation, oteltrace.WithSpanKind(oteltrace.SpanKindServer), oteltrace.WithTimestamp(start),
		oteltrace.WithAttributes(semconv.GenAIOperationNameKey.String(operation)))
}

// Inject writes the span of ctx as the traceparent (and tracestate) the
// upstream receives, replacing the client's.
func (t *Tracer) Inject(ctx context.Context, h http.Header) {
	t.prop.Inject(ctx, propagation.HeaderCarrier(h))
}

// Stage records one stage as a child span from start to end.
func Stage(ctx context.Context, tr *Tracer, name string, start, end time.Time, failed bool) {
	if tr == nil {
		return
	}
	_, s := tr.tr.Start(ctx, name, oteltrace.WithTimestamp(start), oteltrace.WithSpanKind(oteltrace.SpanKindInternal))
	if failed {
		s.SetStatus(codes.Error, "the stage ended the request")
	}
	s.End(oteltrace.WithTimestamp(end))
}

// Outcome is what the gateway learnt of one request.
type Outcome struct {
	Operation     string // chat, text_completion, embeddings
	RequestModel  string
	ResponseModel string
	// Provider is gen_ai.provider.name: "openai" for OpenAI-compatible
	// upstreams (self-hosted pools included), else the provider's kind.
	Provider     string
	InputTokens  int64
	OutputTokens int64
	FinishReason string
	Status       int
	ErrorType    string
	Stream       bool
	Tenant       string
	Backend      string
	TTFT         time.Duration
	Start, End   time.Time
}

// Finish sets the GenAI attributes of the request span and ends it.
func Finish(s oteltrace.Span, o Outcome) {
	if !s.IsRecording() {
		s.End()
		return
	}
	if o.RequestModel != "" {
		s.SetName(o.Operation + " " + o.RequestModel)
	}
	attrs := []attribute.KeyValue{
		semconv.GenAIOperationNameKey.String(o.Operation),
		semconv.GenAIRequestModel(o.RequestModel),
		semconv.GenAIRequestStream(o.Stream),
		semconv.HTTPResponseStatusCode(o.Status),
		attribute.String("infergate.tenant", o.Tenant),
	}
	if o.Provider != "" {
		attrs = append(attrs, semconv.GenAIProviderNameKey.String(o.Provider))
	}
	if o.ResponseModel != "" {
		attrs = append(attrs, semconv.GenAIResponseModel(o.ResponseModel))
	}
	if o.InputTokens > 0 || o.OutputTokens > 0 {
		attrs = append(attrs, semconv.GenAIUsageInputTokens(int(o.InputTokens)), semconv.GenAIUsageOutputTokens(int(o.OutputTokens)))
	}
	if o.FinishReason != "" {
		attrs = append(attrs, semconv.GenAIResponseFinishReasons(o.FinishReason))
	}
	if o.Backend != "" {
		attrs = append(attrs, semconv.ServerAddress(o.Backend))
	}
	s.SetAttributes(attrs...)
	if o.TTFT > 0 {
		s.AddEvent("gen_ai.first_token", oteltrace.WithTimestamp(o.Start.Add(o.TTFT)),
			oteltrace.WithAttributes(attribute.Float64("gen_ai.server.time_to_first_token", o.TTFT.Seconds())))
	}
	if o.Status >= 400 || o.ErrorType != "" {
		et := o.ErrorType
		if et == "" {
			et = fmt.Sprint(o.Status)
		}
		s.SetAttributes(semconv.ErrorTypeKey.String(et))
		s.SetStatus(codes.Error, et)
	}
	s.End(oteltrace.WithTimestamp(o.End))
}
