package gateway

import (
	"context"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/infergate/infergate/l7/trace/tracetest"
	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/mockllm"
)

// TestTracing: with spec.gateway.tracing, a request's span reaches the
// collector with the GenAI attributes, in the client's trace, with the
// stages as child spans, and the upstream sees the gateway's span as its
// parent.
func TestTracing(t *testing.T) {
	endpoint, spans := tracetest.Receiver(t)
	m := newMock(t, mockllm.Config{KeepRequests: 4})
	c := basePolicy(pool("p", m))
	c.Gateway.Tracing = policy.Tracing{Endpoint: endpoint, SampleRatio: 1}
	h := newHarness(t, c, Options{})
	status, _, body := h.callWith(testKey, "/v1/chat/completions", chatBody("hello there", ""),
		map[string]string{"Traceparent": testTraceparent})
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	if err := h.g.cfg.Load().tracer.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := map[string]*tracepb.Span{}
	deadline := time.After(10 * time.Second)
	for got["chat "+testModel] == nil || got["proxy"] == nil {
		select {
		case s := <-spans:
			got[s.Name] = s
		case <-deadline:
			t.Fatalf("spans received: %v", names(got))
		}
	}
	req := got["chat "+testModel]
	if hex.EncodeToString(req.TraceId) != testTraceparent[3:35] || hex.EncodeToString(req.ParentSpanId) != testTraceparent[36:52] {
		t.Errorf("request span not in the client's trace: %x parent %x", req.TraceId, req.ParentSpanId)
	}
	a := map[string]string{}
	for _, kv := range req.Attributes {
		a[kv.Key] = strings.Trim(kv.Value.String(), " ")
	}
	for _, k := range []string{"gen_ai.operation.name", "gen_ai.request.model", "gen_ai.provider.name", "gen_ai.response.finish_reasons",
		"gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "http.response.status_code", "infergate.tenant"} {
		if a[k] == "" {
			t.Errorf("request span lacks %s: %v", k, a)
		}
	}
	for _, st := range []string{"auth", "parse", "model", "count", "limit", "proxy"} {
		if s := got[st]; s != nil && string(s.ParentSpanId) != string(req.SpanId) {
			t.Errorf("stage span %s is not a child of the request span", st)
		}
	}
	if got["proxy"] == nil {
		t.Error("no span for the proxy stage")
	}
	up, _ := m.LastRequest()
	want := "00-" + testTraceparent[3:35] + "-" + hex.EncodeToString(req.SpanId) + "-01"
	if up.Header.Get("Traceparent") != want {
		t.Errorf("upstream traceparent %q, want the gateway's span %q", up.Header.Get("Traceparent"), want)
	}
}

// TestTracingOffBuildsNoStage: without tracing the chain has no trace stage
// and the request path pays nothing for it.
func TestTracingOffBuildsNoStage(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	cfg := h.g.cfg.Load()
	if cfg.tracer != nil {
		t.Fatal("a tracer without spec.gateway.tracing")
	}
	for _, n := range cfg.chainNames {
		if n == "trace" {
			t.Fatal("the trace stage is in the chain while tracing is off")
		}
	}
}

func names(m map[string]*tracepb.Span) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// BenchmarkChatTracing: the 68-byte chat path with tracing off (no trace
// stage), on but not sampled, and on with every request exported to a
// loopback collector.
func BenchmarkChatTracing(b *testing.B) {
	for _, mode := range []struct {
		name  string
		ratio float64
	}{{"off", 0}, {"unsampled", 1e-12}, {"sampled", 1}} {
		b.Run(mode.name, func(b *testing.B) {
			m := newMock(b, mockllm.Config{})
			c := inspectionPolicy(m)
			c.Gateway.Audit.LogPrompts = false
			if mode.ratio > 0 {
				endpoint, spans := tracetest.Receiver(b)
				go func() {
					for range spans {
					}
				}()
				c.Gateway.Tracing = policy.Tracing{Endpoint: endpoint, SampleRatio: mode.ratio}
			}
			h := newHarness(b, c, Options{})
			postParallel(b, h, chatBody("The quarterly report shows steady growth.", ""))
		})
	}
}
