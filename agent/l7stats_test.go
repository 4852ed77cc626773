package agent

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infergate/infergate/agent/api"
	"github.com/infergate/infergate/l7/auth"
	"github.com/infergate/infergate/l7/serve"
	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/mockllm"
)

// statsGateway is a fake Gateway that also reports per-backend counters.
type statsGateway struct {
	fakeGateway
	stats map[string]api.BackendL7
}

func (g *statsGateway) BackendL7() map[string]api.BackendL7 { return g.stats }

func newAgentWithGateway(t *testing.T, gw Gateway) *Agent {
	t.Helper()
	a, err := New(Options{Role: RoleBalancer, Version: "test", Dataplane: newFakeDataplane(), Resolver: onLinkResolver(testBackends...),
		Store: newMemStore(), Gateway: gw, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	t.Cleanup(a.Close)
	if err := a.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(ctx, policyDoc(100), false); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestBackendsCarryGatewayL7: a gateway that reports counters gets them
// onto the backends they name (and only those); one that does not leaves
// L7 unset.
func TestBackendsCarryGatewayL7(t *testing.T) {
	gpu1 := api.BackendL7{Requests: 12, Errors: 1, PromptTokens: 300, CompletionTokens: 90, TTFTSecondsSum: 0.75, TTFTCount: 3}
	gw := &statsGateway{stats: map[string]api.BackendL7{BackendID("gpus", "gpu1"): gpu1, "gone/old": {Requests: 5}}}
	bs := newAgentWithGateway(t, gw).Backends()
	if len(bs) != 3 {
		t.Fatalf("%d backends, want 3", len(bs))
	}
	for _, b := range bs {
		switch {
		case b.Name == "gpu1" && (b.L7 == nil || *b.L7 != gpu1):
			t.Fatalf("gpu1 L7 %+v, want %+v", b.L7, gpu1)
		case b.Name != "gpu1" && b.L7 != nil:
			t.Fatalf("%s has L7 %+v though the gateway reported none", b.Name, b.L7)
		}
	}
	// The JSON the CLI reads carries it too.
	raw, err := json.Marshal(bs)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"l7":{"requests":12,`) {
		t.Fatalf("backends JSON lacks l7: %s", raw)
	}

	for _, b := range newAgentWithGateway(t, &fakeGateway{}).Backends() {
		if b.L7 != nil {
			t.Fatalf("%s has L7 %+v with a gateway that keeps no counters", b.Name, b.L7)
		}
	}
}

// TestLazyGatewayBackendL7 runs the real gateway the agent starts, sends
// one request over loopback to a mockllm backend and reads the counters
// back in the agent's wire form.
func TestLazyGatewayBackendL7(t *testing.T) {
	const key = "sk-agent-test-0123456789"
	m := mockllm.New(mockllm.Config{MaxTokens: 4})
	ts := httptest.NewServer(m.Handler())
	t.Cleanup(ts.Close)
	ap := netip.MustParseAddrPort(strings.TrimPrefix(ts.URL, "http://"))

	c := &policy.Compiled{Name: "l7", Version: "1", Pools: []policy.CompiledPool{{Name: "gpus",
		Backends: []policy.CompiledBackend{{Name: "gpu1", Address: ap.Addr(), Port: ap.Port(), Weight: 100}}}}}
	c.Gateway.Listen = "127.0.0.1:0"
	c.Gateway.Tenants = []policy.Tenant{{Name: "acme"}}
	c.Gateway.Keys = []policy.CompiledKey{{Name: "acme-key", Tenant: 0, Hash: auth.HashKey(key)}}
	c.Gateway.Models = []policy.CompiledModel{{Name: "m", Encoding: "o200k_base",
		Routes: []policy.CompiledRoute{{Pool: 0, Provider: -1, Weight: 100}}}}

	gw := newL7Gateway(serve.Options{Listen: "127.0.0.1:0", Registry: prometheus.NewRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(gw.shutdown)
	if got := gw.BackendL7(); got != nil {
		t.Fatalf("before the first policy: %+v", got)
	}
	if err := gw.Apply(c); err != nil {
		t.Fatal(err)
	}
	addr := gw.Addr()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hello"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d %s", resp.StatusCode, body)
	}
	var usage struct {
		Usage struct {
			PromptTokens     uint64 `json:"prompt_tokens"`
			CompletionTokens uint64 `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(body, &usage); err != nil {
		t.Fatal(err)
	}
	// The gateway counts after the response is written: wait for it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := gw.BackendL7()[BackendID("gpus", "gpu1")]
		if got.Requests == 1 {
			if got.Errors != 0 || got.CompletionTokens != usage.Usage.CompletionTokens ||
				got.PromptTokens != usage.Usage.PromptTokens || got.PromptTokens == 0 || got.TTFTCount != 0 {
				t.Fatalf("counters %+v after one whole request", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counters %+v, want one request", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
