package trace

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/infergate/infergate/l7/trace/tracetest"
)

// receiver is an OTLP/HTTP traces endpoint that keeps what it is sent.
type receiver struct {
	URL   string
	spans <-chan *tracepb.Span
}

func newReceiver(t *testing.T) *receiver {
	endpoint, spans := tracetest.Receiver(t)
	return &receiver{URL: strings.TrimSuffix(endpoint, "/v1/traces"), spans: spans}
}

func (r *receiver) collect(t *testing.T, n int) map[string]*tracepb.Span {
	t.Helper()
	got := map[string]*tracepb.Span{}
	deadline := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case s := <-r.spans:
			got[s.Name] = s
		case <-deadline:
			t.Fatalf("received %d spans, want %d", len(got), n)
		}
	}
	return got
}

func attrs(s *tracepb.Span) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes {
		m[kv.Key] = value(kv.Value)
	}
	return m
}

func value(v *commonpb.AnyValue) string {
	switch x := v.Value.(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	case *commonpb.AnyValue_ArrayValue:
		var parts []string
		for _, e := range x.ArrayValue.Values {
			parts = append(parts, value(e))
		}
		return strings.Join(parts, ",")
	}
	return ""
}

const (
	clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpan  = "00f067aa0ba902b7"
)

func TestRequestSpan(t *testing.T) {
	rcv := newReceiver(t)
	tr, err := New(Config{Endpoint: rcv.URL + "/v1/traces", SampleRatio: 1e-9})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	in := http.Header{}
	in.Set("Traceparent", "00-"+clientTrace+"-"+clientSpan+"-01")
	start := time.Now()
	ctx, span := tr.Request(context.Background(), in, "chat", start)
	Stage(ctx, tr, "auth", start, start.Add(time.Millisecond), false)
	Stage(ctx, tr, "limit", start.Add(time.Millisecond), start.Add(2*time.Millisecond), false)
	up := http.Header{}
	up.Set("Traceparent", in.Get("Traceparent"))
	tr.Inject(ctx, up)
	Finish(span, Outcome{Operation: "chat", RequestModel: "gpt-4o-mini", ResponseModel: "gpt-4o-mini-2024",
		Provider: "openai", InputTokens: 12, OutputTokens: 34, FinishReason: "stop", Status: 200, Stream: true,
		Tenant: "acme", Backend: "gpu-1", TTFT: 50 * time.Millisecond, Start: start, End: start.Add(time.Second)})
	if err := tr.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := rcv.collect(t, 3)
	req := got["chat gpt-4o-mini"]
	if req == nil {
		t.Fatalf("no request span named after the operation and model: %v", got)
	}
	// The client's sampled traceparent is followed even at a tiny ratio.
	if hex.EncodeToString(req.TraceId) != clientTrace || hex.EncodeToString(req.ParentSpanId) != clientSpan {
		t.Errorf("request span trace %x parent %x, want the client's %s/%s", req.TraceId, req.ParentSpanId, clientTrace, clientSpan)
	}
	if req.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("kind %v", req.Kind)
	}
	a := attrs(req)
	for k, want := range map[string]string{
		"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini-2024",
		"gen_ai.provider.name": "openai", "gen_ai.usage.input_tokens": "12", "gen_ai.usage.output_tokens": "34",
		"gen_ai.response.finish_reasons": "stop", "http.response.status_code": "200", "gen_ai.request.stream": "true",
	} {
		if a[k] != want {
			t.Errorf("%s = %q, want %q", k, a[k], want)
		}
	}
	if len(req.Events) != 1 || req.Events[0].Name != "gen_ai.first_token" ||
		req.Events[0].TimeUnixNano != uint64(start.Add(50*time.Millisecond).UnixNano()) {
		t.Errorf("events %v, want gen_ai.first_token at start+TTFT", req.Events)
	}
	for _, name := range []string{"auth", "limit"} {
		s := got[name]
		if s == nil || string(s.ParentSpanId) != string(req.SpanId) {
			t.Errorf("stage span %s missing or not a child of the request span", name)
		}
	}
	// The upstream gets the gateway's span as its parent, in the client's trace.
	want := "00-" + clientTrace + "-" + hex.EncodeToString(req.SpanId) + "-01"
	if up.Get("Traceparent") != want {
		t.Errorf("upstream traceparent %q, want %q", up.Get("Traceparent"), want)
	}
}

func TestErrorSpanAndSampling(t *testing.T) {
	rcv := newReceiver(t)
	tr, err := New(Config{Endpoint: rcv.URL + "/v1/traces", SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	start := time.Now()
	_, span := tr.Request(context.Background(), http.Header{}, "chat", start)
	Finish(span, Outcome{Operation: "chat", RequestModel: "m", Status: 429, ErrorType: "rate_limit_exceeded", Start: start, End: start})
	_ = tr.ForceFlush(context.Background())
	s := rcv.collect(t, 1)["chat m"]
	if s == nil || s.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || attrs(s)["error.type"] != "rate_limit_exceeded" {
		t.Fatalf("a refused request's span: %v", s)
	}

	// A ratio that samples nothing records nothing without a sampled parent.
	none, err := New(Config{Endpoint: rcv.URL + "/v1/traces", SampleRatio: 1e-12})
	if err != nil {
		t.Fatal(err)
	}
	defer none.Shutdown(context.Background())
	if _, s := none.Request(context.Background(), http.Header{}, "chat", start); s.IsRecording() {
		t.Error("an unsampled request records a span")
	}
}

func TestOff(t *testing.T) {
	tr, err := New(Config{})
	if err != nil || tr != nil {
		t.Fatalf("no endpoint: %v %v, want tracing off (nil)", tr, err)
	}
	Stage(context.Background(), tr, "auth", time.Now(), time.Now(), false) // a nil tracer does nothing
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Config{{Endpoint: "collector:4318"}, {Endpoint: "ftp://x/v1/traces"}, {Endpoint: "http://x/v1/traces", SampleRatio: 2}} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
}
