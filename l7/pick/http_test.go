package pick_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/l7/auth"
	"github.com/infergate/infergate/l7/gateway"
	"github.com/infergate/infergate/l7/pick"
	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/mockllm"
)

const (
	apiKey = "sk-pick-test-0123456789"
	model  = "llama-3.1-8b"
)

type backend struct {
	*mockllm.Server
	addr netip.AddrPort
}

func newBackend(t *testing.T, cfg mockllm.Config) backend {
	t.Helper()
	s := mockllm.New(cfg)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return backend{s, netip.MustParseAddrPort(strings.TrimPrefix(ts.URL, "http://"))}
}

// lab is a real gateway on loopback in front of two mock inference
// servers (pool "gpu", backends "a" and "b"), routing through a Picker fed
// by a real score.Weighter.
type lab struct {
	url  string
	a, b backend
	w    *score.Weighter
}

func newLab(t *testing.T, cfg mockllm.Config) *lab {
	t.Helper()
	l := &lab{a: newBackend(t, cfg), b: newBackend(t, cfg)}
	c := &policy.Compiled{Name: "pick-test", Version: "1"}
	p := policy.CompiledPool{Name: "gpu"}
	for _, x := range []struct {
		name string
		b    backend
	}{{"a", l.a}, {"b", l.b}} {
		p.Backends = append(p.Backends, policy.CompiledBackend{Name: x.name, Address: x.b.addr.Addr(), Port: x.b.addr.Port(), Weight: 100})
	}
	c.Pools = []policy.CompiledPool{p}
	c.Gateway.Tenants = []policy.Tenant{{Name: "acme"}}
	c.Gateway.Keys = []policy.CompiledKey{{Name: "k", Tenant: 0, Hash: auth.HashKey(apiKey)}}
	c.Gateway.Models = []policy.CompiledModel{{Name: model, Encoding: "o200k_base",
		Routes: []policy.CompiledRoute{{Pool: 0, Provider: -1, Weight: 100}}}}

	w, err := score.NewWeighter(score.Config{})
	if err != nil {
		t.Fatal(err)
	}
	l.w = w
	pk, err := pick.New(pick.Config{Weights: w.Current, WeightsTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(c, gateway.Options{Registry: prometheus.NewRegistry(), Picker: pk})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(g.Handler())
	t.Cleanup(func() {
		ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = g.Shutdown(ctx)
	})
	l.url = ts.URL
	return l
}

func (l *lab) report(t *testing.T, name string, r score.Report) {
	t.Helper()
	r.Time = time.Now()
	if err := l.w.Observe("gpu/"+name, r, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func (l *lab) chat(t *testing.T, system, user string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"model": model, "max_tokens": 4, "messages": []map[string]string{
		{"role": "system", "content": system}, {"role": "user", "content": user}}})
	req, _ := http.NewRequest(http.MethodPost, l.url+"/v1/chat/completions", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d: %s", resp.StatusCode, b)
	}
}

func (l *lab) totals() (a, b int64) { return l.a.Stats().Total, l.b.Stats().Total }

func systemPrompt(topic string) string {
	return strings.Repeat("You answer questions about "+topic+" for our customers, briefly and politely. ", 30)
}

// Requests sharing a system prompt go to one backend while it is within
// its load bound; another system prompt may live elsewhere; and when the
// prefix's home is loaded past its bound, new requests spill over.
func TestGatewayPrefixAffinity(t *testing.T) {
	l := newLab(t, mockllm.Config{Name: model, TokensPerSecond: 40, GPUs: 1, Batch: 64})
	idle := score.Report{Healthy: true, Signals: score.HasKVCache | score.HasWaiting, Capacity: 1}
	l.report(t, "a", idle)
	l.report(t, "b", idle)

	sys := systemPrompt("billing")
	for i := range 8 {
		l.chat(t, sys, "question number "+string(rune('a'+i)))
	}
	a, b := l.totals()
	if !(a == 8 && b == 0 || a == 0 && b == 8) {
		t.Fatalf("8 sequential requests with one system prompt split a=%d b=%d, want all on one", a, b)
	}
	home := "a"
	if b == 8 {
		home = "b"
	}

	// Concurrent requests with the same prompt: the home takes them while
	// within 1.25x its share of what is in flight, then the other backend
	// does. At 40 tokens/s and 4 tokens each, requests overlap.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.chat(t, sys, "burst "+string(rune('a'+i)))
		}()
	}
	wg.Wait()
	a2, b2 := l.totals()
	da, db := a2-a, b2-b
	if da == 0 || db == 0 {
		t.Fatalf("8 concurrent requests with one prompt went a=%d b=%d: the load bound did not spread them", da, db)
	}
	homeGot := da
	if home == "b" {
		homeGot = db
	}
	if homeGot < 4 {
		t.Fatalf("the prefix's home %s took %d of 8 concurrent requests, want at least half", home, homeGot)
	}
}

// Weights come from load reports: a host whose report says a GPU is
// unhealthy gets nothing, with or without a shared prefix.
func TestGatewayDrainFromReport(t *testing.T) {
	l := newLab(t, mockllm.Config{Name: model})
	l.report(t, "a", score.Report{Healthy: false, Reason: "XID 79"})
	l.report(t, "b", score.Report{Healthy: true, Signals: score.HasKVCache, KVCacheUsage: 0.9})
	for i := range 6 {
		l.chat(t, systemPrompt("topic "+string(rune('a'+i))), "hi")
		l.chat(t, "short", "hi")
	}
	if a, b := l.totals(); a != 0 || b != 12 {
		t.Fatalf("drained host a got %d requests, b %d", a, b)
	}
}
