package sdk_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/infergate/infergate/internal/privtest"
	"github.com/infergate/infergate/test/mockllm"
)

const limitedKey = "ig-sdk-limited-key-0123456789"

func keyHash(k string) string {
	sum := sha256.Sum256([]byte(k))
	return hex.EncodeToString(sum[:])
}

// TestInboundNodeSDKs drives the shipped binary (infergate gateway -f)
// with Anthropic's official Node client against /v1/messages and
// OpenAI's client.responses against /v1/responses, both in front of the
// mock inference server (chat completions): messages, streams, tools in
// two turns, images, count_tokens, structured output and errors must come
// back as those SDKs' results and error classes, and one tenant's request
// limit must count the three APIs together.
func TestInboundNodeSDKs(t *testing.T) {
	privtest.Tools(t, "node")
	root := repoRoot(t)
	modules := filepath.Join(root, "test", "sdk", "node", "node_modules")
	for _, pkg := range []string{"openai", "@anthropic-ai/sdk"} {
		if _, err := os.Stat(filepath.Join(modules, pkg, "package.json")); err != nil {
			privtest.Skip(t, "the %s npm package is not installed (scripts/deps.sh test installs it): %v", pkg, err)
		}
	}
	mock := httptest.NewServer(mockllm.New(mockllm.Config{Name: model}).Handler())
	defer mock.Close()
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(mock.URL, "http://"))
	dir := t.TempDir()
	pol := fmt.Sprintf(`apiVersion: infergate.dev/v1alpha1
kind: Policy
metadata:
  name: sdk-inbound
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
      - name: limited
        limits:
          requestsPerMinute: 3
    keys:
      - name: acme-sdk
        tenant: acme
        hash: sha256:%s
      - name: limited-sdk
        tenant: limited
        hash: sha256:%s
    models:
      - name: %s
        encoding: o200k_base
        routes:
          - pool: local
`, host, port, keyHash(key), keyHash(limitedKey), model)
	gw := startGateway(t, root, dir, pol)
	listen := gw.listen

	node := exec.Command("node", filepath.Join(root, "test", "sdk", "inbound.mjs"))
	node.Env = append(os.Environ(), "IG_ROOT_URL=http://"+listen, "IG_KEY="+key, "IG_LIMITED_KEY="+limitedKey,
		"IG_MODEL="+model, "IG_NODE_MODULES="+modules)
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
	sdkError := func(name, class string, status int, typ string) {
		t.Helper()
		r := res[name]
		if r.OK || r.Error != class || r.Status == nil || *r.Status != status || (typ != "" && (r.Type == nil || *r.Type != typ)) {
			t.Errorf("%s: got ok=%v %s status %v type %v (%s), want the SDK's %s with status %d", name, r.OK, r.Error, deref(r.Status), r.Type, r.Message, class, status)
		}
	}
	type anthropicUsage struct {
		InputTokens  int `json:"input_tokens"`
		OutputTokens int `json:"output_tokens"`
	}

	var msg struct {
		Type, Role, Text string
		StopReason       string `json:"stop_reason"`
		Usage            anthropicUsage
	}
	ok("messages", &msg)
	if msg.Type != "message" || msg.Role != "assistant" || msg.Text != mockllm.Text(6) || msg.StopReason != "max_tokens" ||
		msg.Usage.InputTokens == 0 || msg.Usage.OutputTokens != 6 {
		t.Errorf("messages = %+v", msg)
	}
	var st struct {
		Types      []string
		Text       string
		FinalText  string
		StopReason string `json:"stop_reason"`
		Usage      anthropicUsage
	}
	ok("messages.stream", &st)
	if st.Text != mockllm.Text(5) || st.FinalText != st.Text || st.StopReason != "max_tokens" || st.Usage.OutputTokens != 5 ||
		len(st.Types) < 4 || st.Types[0] != "message_start" || st.Types[len(st.Types)-1] != "message_stop" {
		t.Errorf("messages.stream = %+v", st)
	}
	wantInput := map[string]any{}
	_ = json.Unmarshal([]byte(mockllm.ToolArguments("get_weather")), &wantInput)
	var tools struct {
		StopReason string `json:"stop_reason"`
		Name, ID   string
		Input      map[string]any
		Second     struct {
			StopReason string `json:"stop_reason"`
			Type       string
		}
	}
	ok("messages.tools", &tools)
	if tools.StopReason != "tool_use" || tools.Name != "get_weather" || fmt.Sprint(tools.Input) != fmt.Sprint(wantInput) ||
		tools.Second.Type != "text" || tools.Second.StopReason != "max_tokens" {
		t.Errorf("messages.tools = %+v", tools)
	}
	var ts struct {
		StopReason string `json:"stop_reason"`
		Name       string
		Input      map[string]any
	}
	ok("messages.tools.stream", &ts)
	if ts.StopReason != "tool_use" || ts.Name != "get_weather" || fmt.Sprint(ts.Input) != fmt.Sprint(wantInput) {
		t.Errorf("messages.tools.stream = %+v", ts)
	}
	var img struct{ Text string }
	ok("messages.image", &img)
	if img.Text != mockllm.Text(3) {
		t.Errorf("messages.image = %+v", img)
	}
	var count struct {
		InputTokens int `json:"input_tokens"`
	}
	ok("messages.countTokens", &count)
	if count.InputTokens < 5 {
		t.Errorf("messages.countTokens = %+v", count)
	}
	sdkError("messages.badKey", "AuthenticationError", 401, "authentication_error")
	sdkError("messages.unknownModel", "NotFoundError", 404, "not_found_error")

	type respUsage struct {
		InputTokens  int `json:"input_tokens"`
		OutputTokens int `json:"output_tokens"`
		TotalTokens  int `json:"total_tokens"`
	}
	var r struct {
		Object, Status string
		OutputText     string `json:"output_text"`
		Usage          respUsage
	}
	ok("responses", &r)
	if r.Object != "response" || r.Status != "incomplete" || r.OutputText != mockllm.Text(4) || r.Usage.OutputTokens != 4 ||
		r.Usage.TotalTokens != r.Usage.InputTokens+4 {
		t.Errorf("responses = %+v", r)
	}
	var rs struct {
		Types  []string
		Text   string
		SeqOK  bool
		Status string
		Usage  respUsage
	}
	ok("responses.stream", &rs)
	if rs.Text != mockllm.Text(3) || !rs.SeqOK || rs.Status != "incomplete" || rs.Usage.OutputTokens != 3 ||
		!slices.Contains(rs.Types, "response.output_text.done") || rs.Types[0] != "response.created" {
		t.Errorf("responses.stream = %+v", rs)
	}
	var rt struct {
		Name, Arguments, Status, Second string
	}
	ok("responses.tools", &rt)
	if rt.Name != "get_weather" || rt.Arguments != mockllm.ToolArguments("get_weather") || rt.Status != "completed" || rt.Second != mockllm.Text(4) {
		t.Errorf("responses.tools = %+v", rt)
	}
	var rts struct{ Args, Done string }
	ok("responses.tools.stream", &rts)
	if rts.Args != mockllm.ToolArguments("get_weather") || rts.Done != rts.Args {
		t.Errorf("responses.tools.stream = %+v", rts)
	}
	var structured struct{ Status string }
	ok("responses.structured", &structured)
	if structured.Status == "" {
		t.Errorf("responses.structured = %+v", structured)
	}
	sdkError("responses.previous", "BadRequestError", 400, "")

	var s string
	for _, name := range []string{"limit.chat", "limit.messages", "limit.responses"} {
		ok(name, &s)
	}
	sdkError("limit.messages.over", "RateLimitError", 429, "rate_limit_error")
	sdkError("limit.responses.over", "RateLimitError", 429, "")
}
