// Package sdk_test drives the shipped gateway binary with OpenAI's official
// Node client (installed by scripts/deps.sh into test/sdk/node): the calls
// an application makes must come back as that SDK's results and error
// classes, never as connection errors.
package sdk_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/privtest"
	"github.com/infergate/infergate/test/mockllm"
)

const (
	key   = "ig-sdk-test-key-0123456789"
	model = "sdk-model"
)

type result struct {
	OK      bool            `json:"ok"`
	Value   json.RawMessage `json:"value"`
	Error   string          `json:"error"`
	Status  *int            `json:"status"`
	Message string          `json:"message"`
	Type    *string         `json:"type"`
	Code    *string         `json:"code"`
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestOpenAINodeSDK(t *testing.T) {
	privtest.Tools(t, "node")
	root := repoRoot(t)
	sdk := filepath.Join(root, "test", "sdk", "node", "node_modules", "openai", "package.json")
	if _, err := os.Stat(sdk); err != nil {
		privtest.Skip(t, "the openai npm package is not installed (scripts/deps.sh test installs it): %v", err)
	}

	mock := httptest.NewServer(mockllm.New(mockllm.Config{Name: model}).Handler())
	defer mock.Close()
	mockAddr := strings.TrimPrefix(mock.URL, "http://")
	host, port, _ := net.SplitHostPort(mockAddr)

	sum := sha256.Sum256([]byte(key))
	dir := t.TempDir()
	pol := fmt.Sprintf(`apiVersion: infergate.dev/v1alpha1
kind: Policy
metadata:
  name: sdk
spec:
  pools:
    - name: local
      backends:
        - name: mock
          address: %s
          port: %s
  gateway:
    tenants:
      - name: acme
    keys:
      - name: acme-sdk
        tenant: acme
        hash: sha256:%s
    models:
      - name: %s
        encoding: o200k_base
        routes:
          - pool: local
    cache:
      ttl: 5m
`, host, port, hex.EncodeToString(sum[:]), model)
	gw := startGateway(t, root, dir, pol)
	listen := gw.listen

	node := exec.Command("node", filepath.Join(root, "test", "sdk", "conformance.mjs"))
	node.Env = append(os.Environ(), "IG_BASE_URL=http://"+listen+"/v1", "IG_KEY="+key, "IG_MODEL="+model,
		"IG_NODE_MODULES="+filepath.Join(root, "test", "sdk", "node", "node_modules"))
	var stderr bytes.Buffer
	node.Stderr = &stderr
	out, err := node.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s\ngateway log:\n%s", err, stderr.String(), gw.log.String())
	}
	var res map[string]result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node printed %q: %v", out, err)
	}
	for name, r := range res {
		t.Logf("%s: ok=%v %s %s %s", name, r.OK, r.Value, r.Error, r.Message)
	}

	ok := func(name string, v any) {
		t.Helper()
		r, found := res[name]
		if !found || !r.OK {
			t.Errorf("%s: failed: %+v", name, r)
			return
		}
		if err := json.Unmarshal(r.Value, v); err != nil {
			t.Errorf("%s: %v in %s", name, err, r.Value)
		}
	}

	var ids []string
	ok("models.list", &ids)
	if len(ids) == 0 || !contains(ids, model) {
		t.Errorf("models.list = %v, want %s in it", ids, model)
	}
	var m struct{ ID, Object string }
	ok("models.retrieve", &m)
	if m.ID != model || m.Object != "model" {
		t.Errorf("models.retrieve = %+v", m)
	}

	var chat struct {
		Content, Finish string
		Usage           *usage
	}
	ok("chat", &chat)
	if chat.Content == "" || chat.Finish == "" || chat.Usage == nil || chat.Usage.PromptTokens == 0 || chat.Usage.CompletionTokens == 0 {
		t.Errorf("chat = %+v", chat)
	}

	var st struct {
		Text   string
		Chunks int
		Usage  *usage
		Finish string
	}
	ok("chat.stream", &st)
	if st.Text == "" || st.Chunks < 2 || st.Finish == "" {
		t.Errorf("chat.stream = %+v", st)
	}
	if st.Usage != nil {
		t.Errorf("chat.stream without include_usage carried usage %+v", st.Usage)
	}
	st = struct {
		Text   string
		Chunks int
		Usage  *usage
		Finish string
	}{}
	ok("chat.stream.usage", &st)
	if st.Text == "" || st.Usage == nil || st.Usage.PromptTokens == 0 || st.Usage.CompletionTokens == 0 ||
		st.Usage.TotalTokens != st.Usage.PromptTokens+st.Usage.CompletionTokens {
		t.Errorf("chat.stream with include_usage = %+v (usage %+v)", st, st.Usage)
	}

	var comp struct {
		Text  string
		Usage *usage
	}
	ok("completions", &comp)
	if comp.Text == "" || comp.Usage == nil || comp.Usage.PromptTokens == 0 {
		t.Errorf("completions = %+v", comp)
	}

	var emb struct {
		N, Dims int
		First   float64
		Numbers bool
	}
	ok("embeddings", &emb)
	// The mock's embedding of "hello" (mockllm.Embed) as float32s:
	// decoded from base64 by the SDK, its first component must come back.
	want := mockllm.Embed("hello")
	if emb.N != 2 || emb.Dims != len(want) || !emb.Numbers || math.Abs(emb.First-want[0]) > 1e-6 {
		t.Errorf("embeddings = %+v (first want %v)", emb, want[0])
	}

	// A repeated deterministic stream is answered from the response cache
	// and replayed as SSE the SDK reads like the upstream's.
	var cached struct {
		First, Second struct {
			Text, Finish, Cache string
			Chunks              int
			Usage               *usage
		}
	}
	ok("chat.stream.cached", &cached)
	f, sc := cached.First, cached.Second
	if f.Cache != "miss" || sc.Cache != "hit-exact" {
		t.Errorf("cache answers: first %q, second %q; want miss then hit-exact", f.Cache, sc.Cache)
	}
	if sc.Text == "" || sc.Text != f.Text || sc.Finish != f.Finish || sc.Usage == nil || f.Usage == nil || *sc.Usage != *f.Usage {
		t.Errorf("replayed stream %+v, original %+v", sc, f)
	}

	sdkError := func(name, class string, status int) {
		t.Helper()
		r := res[name]
		if r.OK || r.Error != class || r.Status == nil || *r.Status != status {
			t.Errorf("%s: got ok=%v %s status %v (%s), want the SDK's %s with status %d", name, r.OK, r.Error, deref(r.Status), r.Message, class, status)
		}
		if r.Type == nil || *r.Type == "" {
			t.Errorf("%s: the error has no OpenAI error type: %+v", name, r)
		}
	}
	sdkError("badKey", "AuthenticationError", 401)
	sdkError("badRequest", "BadRequestError", 400)
}

func waitPort(t *testing.T, addr string, log *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the gateway never listened on %s:\n%s", addr, log.String())
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}
