package pick_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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

// Through a real gateway: a request for a LoRA adapter (a model name the
// upstream serves, asked for directly or through a route's upstreamModel)
// goes to the backend whose report has the adapter in use, not to the
// one whose adapter slots are all taken, whatever its prompt.
func TestGatewayAdapterAffinity(t *testing.T) {
	a, b := newBackend(t, mockllm.Config{Name: model}), newBackend(t, mockllm.Config{Name: model})
	c := &policy.Compiled{Name: "adapter-test", Version: "1"}
	p := policy.CompiledPool{Name: "gpu"}
	p.Backends = []policy.CompiledBackend{
		{Name: "a", Address: a.addr.Addr(), Port: a.addr.Port(), Weight: 100},
		{Name: "b", Address: b.addr.Addr(), Port: b.addr.Port(), Weight: 100},
	}
	c.Pools = []policy.CompiledPool{p}
	c.Gateway.Tenants = []policy.Tenant{{Name: "acme"}}
	c.Gateway.Keys = []policy.CompiledKey{{Name: "k", Tenant: 0, Hash: auth.HashKey(apiKey)}}
	route := func(name, upstream string) policy.CompiledModel {
		return policy.CompiledModel{Name: name, Encoding: "o200k_base",
			Routes: []policy.CompiledRoute{{Pool: 0, Provider: -1, Weight: 100, UpstreamModel: upstream}}}
	}
	c.Gateway.Models = []policy.CompiledModel{route("sql-lora", ""), route("acme-sql", "sql-lora")}
	w, err := score.NewWeighter(score.Config{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for name, l := range map[string]*score.LoRA{
		"a": {Running: []string{"chat-de", "summarize"}, Waiting: []string{}, Max: 2},
		"b": {Running: []string{"sql-lora"}, Waiting: []string{}, Max: 2},
	} {
		r := score.Report{Healthy: true, Time: now, Signals: score.HasKVCache, LoRA: l}
		if err := w.Observe("gpu/"+name, r, now); err != nil {
			t.Fatal(err)
		}
	}
	pk, err := pick.New(pick.Config{Weights: w.Current, WeightsTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(c, gateway.Options{Registry: prometheus.NewRegistry(), Picker: pk})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(g.Handler())
	t.Cleanup(ts.Close)
	for i := range 12 {
		name := "sql-lora"
		if i%2 == 1 {
			name = "acme-sql"
		}
		body, _ := json.Marshal(map[string]any{"model": name, "max_tokens": 2, "messages": []map[string]string{
			{"role": "system", "content": systemPrompt("topic " + string(rune('a'+i)))}, {"role": "user", "content": "hi"}}})
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/chat/completions", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+apiKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, out)
		}
	}
	if na, nb := a.Stats().Total, b.Stats().Total; na != 0 || nb != 12 {
		t.Fatalf("adapter requests went a=%d b=%d, want all 12 on b, where sql-lora is in use", na, nb)
	}
	rec, ok := b.LastRequest()
	if !ok || !strings.Contains(rec.Body, `"model":"sql-lora"`) {
		t.Fatalf("upstream asked for %q", rec.Body)
	}
}
