package sdk_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/infergate/infergate/internal/privtest"
	"github.com/infergate/infergate/test/mockllm"
	"github.com/infergate/infergate/test/providers"
)

// usageTap records the usage an OpenAI-compatible server reports in its
// answers (the last usage object of each), as the stand-ins' Reported does.
type usageTap struct {
	h        http.Handler
	mu       sync.Mutex
	reported []providers.Usage
}

var usageRE = regexp.MustCompile(`"prompt_tokens":(\d+),"completion_tokens":(\d+)`)

func (u *usageTap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	u.h.ServeHTTP(rec, r)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
	if m := usageRE.FindAllSubmatch(rec.Body.Bytes(), -1); rec.Code == 200 && len(m) > 0 {
		in, _ := strconv.ParseInt(string(m[len(m)-1][1]), 10, 64)
		out, _ := strconv.ParseInt(string(m[len(m)-1][2]), 10, 64)
		u.mu.Lock()
		u.reported = append(u.reported, providers.Usage{Input: in, Output: out})
		u.mu.Unlock()
	}
}

func (u *usageTap) Reported() []providers.Usage {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]providers.Usage(nil), u.reported...)
}

// TestSDKMatrixEveryProviderKind: both official SDKs (OpenAI's chat
// completions and responses, Anthropic's messages), whole, streamed, with
// a tool call, its round trip and a streamed tool call, through the
// shipped binary to every provider kind (an OpenAI-compatible server,
// azure-openai, anthropic, bedrock, gemini), whose stand-ins answer
// unscripted as the real services would (calling the first offered tool
// until a tool result comes back, answering JSON when asked, reporting
// real usage). OpenAI's clients also ask for structured output, which
// must come back as JSON text whatever the provider (Anthropic and
// Bedrock have no response format: a forced tool carries it). Every call must
// come back as that SDK's result, and the usage each client saw and each
// audit line's tokens and cost must equal what the provider reported.
func TestSDKMatrixEveryProviderKind(t *testing.T) {
	privtest.Tools(t, "node")
	root := repoRoot(t)
	modules := filepath.Join(root, "test", "sdk", "node", "node_modules")
	for _, pkg := range []string{"openai", "@anthropic-ai/sdk"} {
		if _, err := os.Stat(filepath.Join(modules, pkg, "package.json")); err != nil {
			privtest.Skip(t, "the %s npm package is not installed (scripts/deps.sh test installs it): %v", pkg, err)
		}
	}
	type reporter interface{ Reported() []providers.Usage }
	kinds := []struct {
		name, kind string
		h          interface {
			http.Handler
			reporter
		}
	}{
		{"openai", "openai", &usageTap{h: mockllm.New(mockllm.Config{Name: "llama-3-8b"}).Handler()}},
		{"azure", "azure-openai", providers.NewAzure("az-mx", false, "gpt4o")},
		{"claude", "anthropic", providers.NewAnthropic("sk-ant-mx")},
		{"bedrock", "bedrock", providers.NewBedrock("AKIDMX", "mx/secret", "us-west-2")},
		{"gemini", "gemini", providers.NewGemini("AIza-mx")},
	}
	upstream := map[string]string{"openai": "llama-3-8b", "azure": "gpt4o", "claude": "claude-sonnet-4-5",
		"bedrock": "anthropic.claude-3-haiku-20240307-v1:0", "gemini": "gemini-2.5-flash"}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "anthropic-key")
	if err := os.WriteFile(keyFile, []byte("sk-ant-mx\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auditPath := filepath.Join(dir, "audit.jsonl")
	var provs, models strings.Builder
	var names []string
	for i, k := range kinds {
		ts := httptest.NewServer(k.h)
		t.Cleanup(ts.Close)
		// Each provider has its own prices, so a cost computed at another
		// provider's prices is caught.
		price := fmt.Sprintf("models: [{name: %q, inputPerMTok: %d, cachedInputPerMTok: %g, outputPerMTok: %d}]", upstream[k.name], i+1, float64(i+1)/10, 10*(i+1))
		switch k.kind {
		case "openai":
			fmt.Fprintf(&provs, "      - {name: %s, kind: openai, baseURL: %q, apiKeyEnv: MX_OPENAI_KEY, %s}\n", k.name, ts.URL+"/v1", price)
		case "azure-openai":
			fmt.Fprintf(&provs, "      - {name: %s, kind: azure-openai, baseURL: %q, apiKeyEnv: MX_AZURE_KEY, apiVersion: \"2024-10-21\", %s}\n", k.name, ts.URL, price)
		case "anthropic":
			fmt.Fprintf(&provs, "      - {name: %s, kind: anthropic, baseURL: %q, apiKeyFile: %q, %s}\n", k.name, ts.URL, keyFile, price)
		case "bedrock":
			fmt.Fprintf(&provs, "      - {name: %s, kind: bedrock, baseURL: %q, region: us-west-2, %s}\n", k.name, ts.URL, price)
		case "gemini":
			fmt.Fprintf(&provs, "      - {name: %s, kind: gemini, baseURL: %q, apiKeyEnv: MX_GEMINI_KEY, %s}\n", k.name, ts.URL, price)
		}
		fmt.Fprintf(&models, "      - {name: mx-%s, encoding: o200k_base, routes: [{provider: %s, upstreamModel: %q}]}\n", k.name, k.name, upstream[k.name])
		names = append(names, "mx-"+k.name)
	}
	pol := fmt.Sprintf(`apiVersion: infergate.dev/v1alpha1
kind: Policy
metadata:
  name: sdk-matrix
spec:
  gateway:
    audit:
      path: %q
    tenants:
      - name: acme
    keys:
      - name: acme-sdk
        tenant: acme
        hash: sha256:%s
    providers:
%s    models:
%s`, auditPath, keyHash(key), provs.String(), models.String())
	gw := startGateway(t, root, dir, pol, "MX_OPENAI_KEY=sk-mx", "MX_GEMINI_KEY=AIza-mx", "MX_AZURE_KEY=az-mx",
		"AWS_ACCESS_KEY_ID=AKIDMX", "AWS_SECRET_ACCESS_KEY=mx/secret")
	listen := gw.listen

	node := exec.Command("node", filepath.Join(root, "test", "sdk", "matrix.mjs"))
	node.Env = append(os.Environ(), "IG_ROOT_URL=http://"+listen, "IG_KEY="+key, "IG_MODELS="+strings.Join(names, ","),
		"IG_CHAT_ONLY=mx-claude,mx-bedrock,mx-gemini", "IG_EMBEDS=mx-azure", "IG_NODE_MODULES="+modules)
	var stderr bytes.Buffer
	node.Stderr = &stderr
	out, err := node.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s\ngateway log:\n%s", err, stderr.String(), gw.log.String())
	}
	type call struct {
		Name    string
		OK      bool
		Value   struct{ Text, Finish, Name, Args, Finish2 string }
		Usages  [][3]int64
		Error   string
		Status  *int
		Message string
	}
	var res map[string][]call
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node printed %q: %v", out, err)
	}
	// The audit log is written in batches: stop the gateway so it flushes.
	if err := gw.stop(); err != nil {
		t.Logf("gateway stopped: %v", err)
	}
	audits := map[string][]struct {
		PromptTokens     int64   `json:"prompt_tokens"`
		CompletionTokens int64   `json:"completion_tokens"`
		CostUSD          float64 `json:"cost_usd"`
		Status           int     `json:"status"`
	}{}
	af, err := os.Open(auditPath)
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	defer af.Close()
	sc := bufio.NewScanner(af)
	for sc.Scan() {
		var line struct {
			Model string `json:"model"`
		}
		_ = json.Unmarshal(sc.Bytes(), &line)
		a := audits[line.Model]
		a = append(a, struct {
			PromptTokens     int64   `json:"prompt_tokens"`
			CompletionTokens int64   `json:"completion_tokens"`
			CostUSD          float64 `json:"cost_usd"`
			Status           int     `json:"status"`
		}{})
		_ = json.Unmarshal(sc.Bytes(), &a[len(a)-1])
		audits[line.Model] = a
	}

	args := providers.ToolArguments("get_weather")
	for i, k := range kinds {
		model := "mx-" + k.name
		text, toolText := providers.AnswerText(k.kind), providers.ToolAnswerText
		// The finish each API reports for a plain answer: the mock
		// OpenAI-compatible server always writes max_tokens tokens.
		finish := map[string]string{"chat": "stop", "responses": "completed", "messages": "end_turn"}
		if k.kind == "openai" {
			text, toolText = mockllm.Text(64), mockllm.Text(64)
			finish = map[string]string{"chat": "length", "responses": "incomplete", "messages": "max_tokens"}
		}
		toolFinish := map[string]string{"chat": "tool_calls", "responses": "completed", "messages": "tool_use"}
		var seen [][3]int64
		calls := res[model]
		// Anthropic, Bedrock and Gemini serve chat only: completions and
		// embeddings must be refused as the OpenAI SDK's NotFoundError.
		chatOnly := k.kind == "anthropic" || k.kind == "bedrock" || k.kind == "gemini"
		want := 14
		if chatOnly {
			want += 2
		}
		if k.kind == "azure-openai" {
			want++ // embeddings through a deployment
		}
		if len(calls) != want {
			t.Errorf("%s: %d calls, want %d", model, len(calls), want)
		}
		for _, c := range calls {
			api, kind, _ := strings.Cut(c.Name, ".")
			if kind == "unsupported" {
				if c.OK || c.Error != "NotFoundError" || deref(c.Status) != 404 || !strings.Contains(c.Message, "serves chat completions only, not /v1/"+api) {
					t.Errorf("%s %s: ok=%v %s %v %q, want the SDK's NotFoundError naming the endpoint", model, c.Name, c.OK, c.Error, deref(c.Status), c.Message)
				}
				continue
			}
			if !c.OK {
				t.Errorf("%s %s: %s %v %s", model, c.Name, c.Error, deref(c.Status), c.Message)
				continue
			}
			seen = append(seen, c.Usages...)
			v := c.Value
			switch kind {
			case "", "stream":
				if api == "embeddings" {
					if v.Text != "8,8" {
						t.Errorf("%s %s: %+v, want two 8-dimension vectors", model, c.Name, v)
					}
					continue
				}
				if v.Text != text || v.Finish != finish[api] {
					t.Errorf("%s %s: %+v, want %q ending %s", model, c.Name, v, text, finish[api])
				}
			case "tools":
				if v.Name != "get_weather" || v.Args != args || v.Finish != toolFinish[api] || v.Text != toolText || v.Finish2 != finish[api] {
					t.Errorf("%s %s: %+v", model, c.Name, v)
				}
			case "structured":
				// The answer is JSON text, never a tool call, whichever way
				// the provider produces it (a response format, a JSON mime
				// type, a forced tool). The mock OpenAI-compatible server
				// does not honour response formats.
				var obj map[string]any
				if k.kind != "openai" && (json.Unmarshal([]byte(v.Text), &obj) != nil || v.Finish != finish[api] || v.Name != "0") {
					t.Errorf("%s %s: %+v, want a JSON object ending %s", model, c.Name, v, finish[api])
				}
			case "tools.stream":
				if v.Name != "get_weather" || v.Args != args || v.Finish != toolFinish[api] {
					t.Errorf("%s %s: %+v", model, c.Name, v)
				}
			}
		}
		reported := k.h.Reported()
		if len(reported) != len(seen) {
			t.Errorf("%s: the provider answered %d requests, the SDKs saw usage of %d", model, len(reported), len(seen))
		}
		for j := range min(len(reported), len(seen)) {
			r := reported[j]
			if r.Input == 0 || seen[j] != [3]int64{r.Input + r.CacheRead, r.Output, r.CacheRead} {
				t.Errorf("%s request %d: the SDK saw usage %v (prompt, output, cached), the provider reported %+v", model, j, seen[j], r)
			}
		}
		var lines []struct {
			PromptTokens     int64   `json:"prompt_tokens"`
			CompletionTokens int64   `json:"completion_tokens"`
			CostUSD          float64 `json:"cost_usd"`
			Status           int     `json:"status"`
		}
		refused := 0
		for _, a := range audits[model] {
			if a.Status == http.StatusNotFound {
				refused++
				continue
			}
			lines = append(lines, a)
		}
		if chatOnly && refused != 2 || !chatOnly && refused != 0 {
			t.Errorf("%s: %d audit lines of refused endpoints", model, refused)
		}
		if len(lines) != len(reported) {
			t.Errorf("%s: %d audit lines for %d provider answers", model, len(lines), len(reported))
		}
		for j := range min(len(reported), len(lines)) {
			r, a := reported[j], lines[j]
			cost := (float64(r.Input)*float64(i+1) + float64(r.CacheRead)*float64(i+1)/10 + float64(r.Output)*float64(10*(i+1))) / 1e6
			if a.Status != 200 || a.PromptTokens != r.Input+r.CacheRead || a.CompletionTokens != r.Output || math.Abs(a.CostUSD-cost) > 1e-12 {
				t.Errorf("%s request %d: audit %+v, the provider reported %+v (cost %g)", model, j, a, r, cost)
			}
		}
	}
	var wantIDs []string
	for _, n := range names {
		wantIDs = append(wantIDs, "model:"+n+":"+n)
	}
	if ms := res["anthropic.models"]; len(ms) != 1 || !ms[0].OK || ms[0].Value.Text != strings.Join(wantIDs, ",") || ms[0].Value.Name != "model:"+names[0] {
		t.Errorf("Anthropic's models.list and retrieve: %+v", ms)
	}
	if t.Failed() {
		t.Logf("gateway log:\n%s", gw.log.String())
	}
}
