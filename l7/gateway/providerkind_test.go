package gateway

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/mockllm"
	"github.com/infergate/infergate/test/providers"
)

// standIns starts one stand-in per translated provider kind and returns
// the providers of a policy pointing at them (anthropic's key in a file,
// the others from the environment that env serves).
type standIns struct {
	anthropic *providers.Anthropic
	bedrock   *providers.Bedrock
	gemini    *providers.Gemini
	azure     *providers.Azure
	keyFile   string
	list      []policy.Provider
}

const (
	standInAKID   = "AKIDSTANDIN"
	standInSecret = "standin/secret/key"
)

func newStandIns(t *testing.T) *standIns {
	t.Helper()
	s := &standIns{anthropic: providers.NewAnthropic("sk-ant-1"), bedrock: providers.NewBedrock(standInAKID, standInSecret, "eu-central-1"),
		gemini: providers.NewGemini("AIza-1"), azure: providers.NewAzure("az-1", false, "gpt4o-deploy")}
	serve := func(h http.Handler) string {
		ts := httptest.NewServer(h)
		t.Cleanup(ts.Close)
		return ts.URL
	}
	s.keyFile = filepath.Join(t.TempDir(), "anthropic-key")
	if err := os.WriteFile(s.keyFile, []byte("sk-ant-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.list = []policy.Provider{
		{Name: "claude", Kind: policy.ProviderAnthropic, BaseURL: serve(s.anthropic), APIKeyFile: s.keyFile,
			Models: []policy.ProviderModel{{Name: "claude-sonnet", InputPerMTok: 3, CachedInputPerMTok: 0.3, OutputPerMTok: 15}}},
		{Name: "bedrock", Kind: policy.ProviderBedrock, BaseURL: serve(s.bedrock), Region: "eu-central-1"},
		{Name: "gemini", Kind: policy.ProviderGemini, BaseURL: serve(s.gemini), APIKeyEnv: "GEMINI_KEY"},
		{Name: "azure", Kind: policy.ProviderAzure, BaseURL: serve(s.azure), APIKeyEnv: "AZURE_KEY", APIVersion: "2024-10-21"},
	}
	return s
}

func standInEnv(k string) string {
	return map[string]string{"GEMINI_KEY": "AIza-1", "AZURE_KEY": "az-1", "AWS_ACCESS_KEY_ID": standInAKID, "AWS_SECRET_ACCESS_KEY": standInSecret}[k]
}

// providerPolicy routes model i to provider i with its upstream model.
func providerPolicy(s *standIns, pools ...policy.CompiledPool) *policy.Compiled {
	c := basePolicy(pools...)
	c.Gateway.Providers = s.list
	upstream := []string{"claude-sonnet", "anthropic.claude-3-haiku-20240307-v1:0", "gemini-2.5-flash", "gpt4o-deploy"}
	base := c.Gateway.Models[0]
	c.Gateway.Models = nil
	for i, p := range s.list {
		m := base
		m.Name, m.Aliases, m.Fallback = "via-"+p.Name, nil, nil
		m.Routes = []policy.CompiledRoute{{Pool: -1, Provider: i, Weight: 100, UpstreamModel: upstream[i]}}
		c.Gateway.Models = append(c.Gateway.Models, m)
	}
	return c
}

func kindBody(model, extra string) string {
	return `{"model":"` + model + `","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Say hi"}]` + extra + `}`
}

// TestProviderKindsThroughGateway: a client speaking chat completions gets
// the same answers, whole and streamed, whichever kind serves; the audit
// line names the provider (gen_ai.provider.name) and bills the provider's
// usage; the metrics join backend to provider.
func TestProviderKindsThroughGateway(t *testing.T) {
	s := newStandIns(t)
	for _, st := range []providers.Scripted{s.anthropic, s.bedrock, s.gemini, s.azure} {
		st.Always(providers.Reply{Text: "Hi from the provider.", Pieces: 4, Usage: providers.Usage{Input: 21, Output: 5}})
	}
	h := newHarness(t, providerPolicy(s), Options{Getenv: standInEnv})
	names := map[string]string{"claude": "anthropic", "bedrock": "aws.bedrock", "gemini": "gcp.gemini", "azure": "azure.ai.openai"}
	for _, p := range s.list {
		model := "via-" + p.Name
		status, _, body := h.call(testKey, "/v1/chat/completions", kindBody(model, ""))
		var resp openai.Response
		if status != 200 || json.Unmarshal(body, &resp) != nil || resp.Text() != "Hi from the provider." {
			t.Fatalf("%s: %d %s", p.Name, status, body)
		}
		r := h.last()
		if r.Backend != "provider/"+p.Name || r.Provider != names[p.Name] || r.PromptTokens != 21 || r.CompletionTokens != 5 || r.UsageSource != "upstream" {
			t.Fatalf("%s: audit %+v", p.Name, r)
		}
		status, _, body = h.call(testKey, "/v1/chat/completions", kindBody(model, `,"stream":true`))
		var text strings.Builder
		var sawUsage bool
		for _, d := range sse(body) {
			if d == "[DONE]" {
				continue
			}
			var c openai.Chunk
			if err := openai.ParseChunk([]byte(d), &c); err != nil {
				t.Fatalf("%s chunk %s: %v", p.Name, d, err)
			}
			sawUsage = sawUsage || c.Usage != nil
			for _, ch := range c.Choices {
				text.WriteString(ch.Delta.Content)
			}
		}
		if status != 200 || text.String() != "Hi from the provider." || sawUsage {
			t.Fatalf("%s stream: %d %q usage=%v %s", p.Name, status, text.String(), sawUsage, body)
		}
		if r := h.last(); r.CompletionTokens != 5 || r.Provider != names[p.Name] {
			t.Fatalf("%s stream audit %+v", p.Name, r)
		}
	}
	out, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, mf := range out {
		if mf.GetName() == "infergate_backend_provider_info" {
			for _, m := range mf.GetMetric() {
				lv := map[string]string{}
				for _, l := range m.GetLabel() {
					lv[l.GetName()] = l.GetValue()
				}
				if n, ok := strings.CutPrefix(lv["backend"], "provider/"); ok && names[n] == lv["gen_ai_provider_name"] {
					found++
				}
			}
		}
	}
	if found != 4 {
		t.Fatalf("%d provider info series, want 4", found)
	}
}

// TestProviderPriceWithCachedInput: a provider's price table bills its
// usage, cache reads at the cached-input price.
func TestProviderPriceWithCachedInput(t *testing.T) {
	s := newStandIns(t)
	s.anthropic.Always(providers.Reply{Text: "ok", Usage: providers.Usage{Input: 1000, CacheRead: 9000, Output: 100}})
	h := newHarness(t, providerPolicy(s), Options{Getenv: standInEnv})
	if status, _, body := h.call(testKey, "/v1/chat/completions", kindBody("via-claude", "")); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	r := h.last()
	want := (1000*3 + 9000*0.3 + 100*15) / 1e6
	if r.PromptTokens != 10000 || math.Abs(r.CostUSD-want) > 1e-12 {
		t.Fatalf("prompt %d cost %v, want 10000 and %v", r.PromptTokens, r.CostUSD, want)
	}
	set := h.limiter.all()
	if len(set) == 0 || math.Abs(set[len(set)-1].cost-want) > 1e-12 {
		t.Fatalf("settled %+v, want cost %v", set, want)
	}
}

// TestProviderKeyFileReloaded: a rewritten key file is used without a
// restart (or a policy apply).
func TestProviderKeyFileReloaded(t *testing.T) {
	s := newStandIns(t)
	s.anthropic.Always(providers.Reply{Text: "ok"})
	h := newHarness(t, providerPolicy(s), Options{Getenv: standInEnv})
	if status, _, _ := h.call(testKey, "/v1/chat/completions", kindBody("via-claude", "")); status != 200 {
		t.Fatal(status)
	}
	s.anthropic.Key = "sk-ant-2" // the provider rotates the key
	if status, _, body := h.call(testKey, "/v1/chat/completions", kindBody("via-claude", "")); status != 502 || !strings.Contains(string(body), "upstream_auth_failed") {
		t.Fatalf("%d %s", status, body)
	}
	if err := os.WriteFile(s.keyFile, []byte("sk-ant-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, _, _ := h.call(testKey, "/v1/chat/completions", kindBody("via-claude", ""))
		if status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotated key never used: %d", status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestTenantLimitWhicheverProvider: one tenant's request limit counts the
// requests every provider kind served, and refuses the next whatever kind
// would serve it.
func TestTenantLimitWhicheverProvider(t *testing.T) {
	s := newStandIns(t)
	for _, st := range []providers.Scripted{s.anthropic, s.bedrock, s.gemini, s.azure} {
		st.Always(providers.Reply{Text: "ok", Usage: providers.Usage{Input: 5, Output: 1}})
	}
	c := providerPolicy(s)
	c.Gateway.Tenants[0].Limits.RequestsPerMinute = 4
	h := newHarness(t, c, Options{Getenv: standInEnv})
	for _, p := range s.list {
		if status, _, body := h.call(testKey, "/v1/chat/completions", kindBody("via-"+p.Name, "")); status != 200 {
			t.Fatalf("%s: %d %s", p.Name, status, body)
		}
	}
	for _, p := range s.list {
		if status, _, _ := h.call(testKey, "/v1/chat/completions", kindBody("via-"+p.Name, "")); status != 429 {
			t.Fatalf("%s after the limit: %d", p.Name, status)
		}
	}
}

// TestSpillOverPoolToProvider: with the self-hosted pool saturated (its
// batch and queue full: it answers 503), new requests go to the external
// provider through the fallback, none fails, and the client sees one API;
// when load falls they come back to the pool.
func TestSpillOverPoolToProvider(t *testing.T) {
	m := newMock(t, mockllm.Config{GPUs: 1, Batch: 2, Queue: 1, TokensPerSecond: 100, MaxTokens: 40})
	s := newStandIns(t)
	s.anthropic.Always(providers.Reply{Text: "spilled", Usage: providers.Usage{Input: 9, Output: 1}})
	c := providerPolicy(s, pool("gpu", m))
	c.Gateway.Models[0].Name = "llama"
	c.Gateway.Models[0].Routes = []policy.CompiledRoute{{Pool: 0, Provider: -1, Weight: 100}}
	c.Gateway.Models[0].Fallback = []policy.CompiledRoute{{Pool: -1, Provider: 0, Weight: 100, UpstreamModel: "claude-sonnet"}}
	h := newHarness(t, c, Options{Getenv: standInEnv})
	const n = 8
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Go(func() {
			statuses[i], _, _ = h.call(testKey, "/v1/chat/completions", kindBody("llama", `,"max_tokens":40`))
		})
	}
	wg.Wait()
	backends := map[string]int{}
	for _, r := range h.records(n) {
		backends[r.Backend]++
	}
	for i, st := range statuses {
		if st != 200 {
			t.Fatalf("request %d failed with %d (backends %v)", i, st, backends)
		}
	}
	if backends["provider/claude"] == 0 || backends["gpu/gpu-a"] == 0 {
		t.Fatalf("no spill-over or no pool service: %v", backends)
	}
	// Load fell: the pool serves again.
	if status, _, _ := h.call(testKey, "/v1/chat/completions", kindBody("llama", `,"max_tokens":2`)); status != 200 {
		t.Fatal(status)
	}
	if r := h.last(); r.Backend != "gpu/gpu-a" || r.Provider != "openai" {
		t.Fatalf("after load fell: %+v", r)
	}
}

// TestSpillOverInFlight: with spillOverInFlight, a request that finds the
// pool's backends at that many requests in flight goes to the provider
// first, without a round trip to the pool's queue; once they finish, the
// pool serves again.
func TestSpillOverInFlight(t *testing.T) {
	m := newMock(t, mockllm.Config{TokensPerSecond: 20, MaxTokens: 20})
	s := newStandIns(t)
	s.anthropic.Always(providers.Reply{Text: "spilled", Usage: providers.Usage{Input: 9, Output: 1}})
	c := providerPolicy(s, pool("gpu", m))
	c.Gateway.Models[0].Name = "llama"
	c.Gateway.Models[0].SpillOverInFlight = 1
	c.Gateway.Models[0].Routes = []policy.CompiledRoute{{Pool: 0, Provider: -1, Weight: 100}}
	c.Gateway.Models[0].Fallback = []policy.CompiledRoute{{Pool: -1, Provider: 0, Weight: 100, UpstreamModel: "claude-sonnet"}}
	h := newHarness(t, c, Options{Getenv: standInEnv})
	done := make(chan int)
	go func() {
		st, _, _ := h.call(testKey, "/v1/chat/completions", kindBody("llama", `,"max_tokens":20`))
		done <- st
	}()
	deadline := time.Now().Add(5 * time.Second)
	for m.Stats().Total == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first request never reached the pool")
		}
		time.Sleep(time.Millisecond)
	}
	if st, _, body := h.call(testKey, "/v1/chat/completions", kindBody("llama", "")); st != 200 || !strings.Contains(string(body), "spilled") {
		t.Fatalf("while saturated: %d %s", st, body)
	}
	if r := h.last(); r.Backend != "provider/claude" || r.Attempts != 1 || m.Stats().Total != 1 {
		t.Fatalf("while saturated: %+v, pool saw %d", r, m.Stats().Total)
	}
	if st := <-done; st != 200 {
		t.Fatal(st)
	}
	if st, _, _ := h.call(testKey, "/v1/chat/completions", kindBody("llama", `,"max_tokens":1`)); st != 200 {
		t.Fatal(st)
	}
	if r := h.last(); r.Backend != "gpu/gpu-a" {
		t.Fatalf("after load fell: %+v", r)
	}
}

// TestOpenAIProviderKeyFileReloaded: an openai-kind provider's key file is
// read again when it changes, as the translated kinds' are.
func TestOpenAIProviderKeyFileReloaded(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	file := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(file, []byte("sk-old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pc := basePolicy()
	pc.Gateway.Providers = []policy.Provider{{Name: "ext", BaseURL: m.ts.URL + "/v1", APIKeyFile: file}}
	pc.Gateway.Models[0].Routes = []policy.CompiledRoute{{Pool: -1, Provider: 0, Weight: 1}}
	h := newHarness(t, pc, Options{})
	key := func() string {
		if st, _, body := h.call(testKey, "/v1/chat/completions", chatBody("x", "")); st != 200 {
			t.Fatalf("%d %s", st, body)
		}
		up, _ := m.LastRequest()
		return up.Header.Get("Authorization")
	}
	if k := key(); k != "Bearer sk-old" {
		t.Fatal(k)
	}
	if err := os.WriteFile(file, []byte("sk-new\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for key() != "Bearer sk-new" {
		if time.Now().After(deadline) {
			t.Fatal("the rewritten key file was never read")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestProviderCredentialsMissing: a provider whose credentials cannot be
// read is refused when the policy is built, naming the provider and where
// the credential was looked for (never a value).
func TestProviderCredentialsMissing(t *testing.T) {
	for _, p := range []policy.Provider{
		{Name: "bed", Kind: policy.ProviderBedrock, Region: "us-east-1"},
		{Name: "bed2", Kind: policy.ProviderBedrock, Region: "us-east-1", AWSCredentialsFile: "/nonexistent/aws-credentials"},
		{Name: "gem", Kind: policy.ProviderGemini, APIKeyEnv: "UNSET_GEMINI_KEY"},
	} {
		c := basePolicy()
		c.Gateway.Providers = []policy.Provider{p}
		c.Gateway.Models[0].Routes = []policy.CompiledRoute{{Pool: -1, Provider: 0, Weight: 1}}
		_, err := New(c, Options{Getenv: func(string) string { return "" }})
		if err == nil || !strings.Contains(err.Error(), "provider "+p.Name) {
			t.Fatalf("%s: %v", p.Name, err)
		}
	}
}

// TestTranslatedStreamBroken: a provider stream that breaks off after it
// began (here Bedrock's event stream cut mid-answer) reaches the client as
// what it streamed and then an error event, never a clean [DONE]; it is
// recorded as a 502 and billed from the gateway's count of what streamed.
func TestTranslatedStreamBroken(t *testing.T) {
	s := newStandIns(t)
	s.bedrock.Always(providers.Reply{Text: "one two three four five six", Pieces: 6, BreakAfter: 3})
	h := newHarness(t, providerPolicy(s), Options{Getenv: standInEnv})
	status, _, body := h.call(testKey, "/v1/chat/completions", kindBody("via-bedrock", `,"stream":true`))
	events := sse(body)
	if status != 200 || len(events) < 2 || !strings.Contains(events[len(events)-1], "upstream_stream_broken") || strings.Contains(string(body), "[DONE]") {
		t.Fatalf("%d %q", status, events)
	}
	if r := h.last(); r.Status != 502 || r.UsageSource != "counted" || r.CompletionTokens == 0 || r.Provider != "aws.bedrock" {
		t.Fatalf("audit %+v", r)
	}
}
