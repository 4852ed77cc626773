package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/l7/translate/messages"
	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/mockllm"
)

// postAPI posts body to path with the header fields given (no
// Authorization unless given).
func (h *harness) postAPI(path, body string, hdr map[string]string) (int, http.Header, []byte) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.ts.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, resp.Header, []byte(b.String())
}

func anthropicHeaders(key string) map[string]string {
	return map[string]string{"x-api-key": key, "anthropic-version": "2023-06-01"}
}

// anthropicError decodes Anthropic's error shape strictly.
func anthropicError(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Type != "error" || e.Error.Type == "" || e.Error.Message == "" {
		t.Fatalf("not an Anthropic error: %s (%v)", body, err)
	}
	return e.Error.Type
}

// event is one server-sent event.
type event struct {
	name string
	data map[string]any
}

func events(t *testing.T, body []byte) []event {
	t.Helper()
	var out []event
	for _, block := range strings.Split(strings.TrimSpace(string(body)), "\n\n") {
		var ev event
		for _, l := range strings.Split(block, "\n") {
			if v, ok := strings.CutPrefix(l, "event: "); ok {
				ev.name = v
			} else if v, ok := strings.CutPrefix(l, "data: "); ok {
				if err := json.Unmarshal([]byte(v), &ev.data); err != nil {
					t.Fatalf("event %q data is not JSON: %v", ev.name, err)
				}
			}
		}
		if ev.name == "" {
			t.Fatalf("event without a name: %q", block)
		}
		if typ, _ := ev.data["type"].(string); typ != ev.name {
			t.Fatalf("event %s has data type %q", ev.name, typ)
		}
		out = append(out, ev)
	}
	return out
}

func eventNames(evs []event) string {
	var n []string
	for _, e := range evs {
		n = append(n, e.name)
	}
	return strings.Join(n, ",")
}

const messagesBody = `{"model":"` + testModel + `","max_tokens":5,"system":[{"type":"text","text":"You are terse."}],` +
	`"messages":[{"role":"user","content":"Say hello."}]}`

// TestMessagesWhole: a Messages request is answered as a Message, with
// the stop reason and usage mapped, billed from the upstream's usage, and
// audited under its own endpoint and labelled in metrics.
func TestMessagesWhole(t *testing.T) {
	m := newMock(t, mockllm.Config{KeepRequests: 4})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	status, hdr, body := h.postAPI("/v1/messages", messagesBody, anthropicHeaders(testKey))
	if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("%d %v %s", status, hdr, body)
	}
	var msg messages.Message
	if err := json.Unmarshal(body, &msg); err != nil {
		t.Fatal(err)
	}
	if msg.Type != "message" || msg.Role != "assistant" || !strings.HasPrefix(msg.ID, "msg_") || len(msg.Content) != 1 ||
		msg.Content[0].Type != "text" || *msg.Content[0].Text != mockllm.Text(5) || *msg.StopReason != "max_tokens" {
		t.Fatalf("message %s", body)
	}
	up, _ := m.LastRequest()
	var chat struct {
		Messages  []struct{ Role, Content string }
		MaxTokens int `json:"max_tokens"`
	}
	if err := json.Unmarshal([]byte(up.Body), &chat); err != nil || len(chat.Messages) != 2 || chat.Messages[0].Role != "system" ||
		chat.Messages[0].Content != "You are terse." || chat.MaxTokens != 5 {
		t.Fatalf("upstream got %s (%v)", up.Body, err)
	}
	r := h.last()
	if r.Endpoint != "/messages" || r.UsageSource != "upstream" || r.CompletionTokens != 5 || r.PromptTokens != msg.Usage.InputTokens || msg.Usage.OutputTokens != 5 {
		t.Fatalf("audit %+v, usage %+v", r, msg.Usage)
	}
	if n := testutil.ToFloat64(h.g.apiMetrics.requests[apiMessages][2]); n != 1 {
		t.Fatalf("anthropic.messages 2xx = %v", n)
	}
}

// TestMessagesErrors: every refusal, whichever stage makes it, comes in
// Anthropic's error shape with its type for the status.
func TestMessagesErrors(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	cases := []struct {
		name   string
		hdr    map[string]string
		body   string
		status int
		typ    string
	}{
		{"no key", map[string]string{"anthropic-version": "2023-06-01"}, messagesBody, 401, "authentication_error"},
		{"bad key", anthropicHeaders("sk-wrong-000000000000"), messagesBody, 401, "authentication_error"},
		{"bearer works too", map[string]string{"Authorization": "Bearer " + testKey}, messagesBody, 400, "invalid_request_error"},
		{"no version", map[string]string{"x-api-key": testKey}, messagesBody, 400, "invalid_request_error"},
		{"no max_tokens", anthropicHeaders(testKey), `{"model":"` + testModel + `","messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request_error"},
		{"unknown field", anthropicHeaders(testKey), `{"model":"` + testModel + `","max_tokens":3,"top_k":3,"messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request_error"},
		{"unknown model", anthropicHeaders(testKey), `{"model":"nope","max_tokens":3,"messages":[{"role":"user","content":"x"}]}`, 404, "not_found_error"},
		{"not json", anthropicHeaders(testKey), `{`, 400, "invalid_request_error"},
	}
	for _, c := range cases {
		status, _, body := h.postAPI("/v1/messages", c.body, c.hdr)
		if status != c.status || anthropicError(t, body) != c.typ {
			t.Errorf("%s: %d %s, want %d %s", c.name, status, body, c.status, c.typ)
		}
	}
	if m.Stats().Total != 0 {
		t.Fatalf("upstream saw %d requests", m.Stats().Total)
	}
	// The bearer case lacked only the version: with it, Bearer is accepted.
	hdr := map[string]string{"Authorization": "Bearer " + testKey, "anthropic-version": "2023-06-01"}
	if status, _, body := h.postAPI("/v1/messages", messagesBody, hdr); status != 200 {
		t.Fatalf("bearer: %d %s", status, body)
	}
	// An upstream's client error is passed on in Anthropic's shape, with
	// its status and message.
	m.SetFailure(mockllm.Failure{Status: 422, Count: 1})
	status, _, body := h.postAPI("/v1/messages", messagesBody, anthropicHeaders(testKey))
	if status != 422 || anthropicError(t, body) != "invalid_request_error" || !strings.Contains(string(body), "mock failure 422") {
		t.Fatalf("upstream 422: %d %s", status, body)
	}
	// An upstream 5xx on every route is a 502 api_error.
	m.SetFailure(mockllm.Failure{Status: 500, Count: 10})
	status, _, body = h.postAPI("/v1/messages", messagesBody, anthropicHeaders(testKey))
	if status != 502 || anthropicError(t, body) != "api_error" {
		t.Fatalf("upstream failure: %d %s", status, body)
	}
}

// TestMessagesStream: the stream is Anthropic's event sequence, with the
// text as text_delta events and the usage in message_delta.
func TestMessagesStream(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	body := strings.Replace(messagesBody, `"max_tokens":5`, `"max_tokens":4,"stream":true`, 1)
	status, hdr, out := h.postAPI("/v1/messages", body, anthropicHeaders(testKey))
	if status != 200 || hdr.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %v %s", status, hdr, out)
	}
	evs := events(t, out)
	want := "message_start,ping,content_block_start," + strings.Repeat("content_block_delta,", 4) + "content_block_stop,message_delta,message_stop"
	if eventNames(evs) != want {
		t.Fatalf("events %s\nwant %s", eventNames(evs), want)
	}
	var text strings.Builder
	for _, e := range evs {
		if e.name == "content_block_delta" {
			d := e.data["delta"].(map[string]any)
			if d["type"] != "text_delta" {
				t.Fatalf("delta %v", d)
			}
			text.WriteString(d["text"].(string))
		}
	}
	md := evs[len(evs)-2].data
	if text.String() != mockllm.Text(4) || md["delta"].(map[string]any)["stop_reason"] != "max_tokens" ||
		md["usage"].(map[string]any)["output_tokens"].(float64) != 4 {
		t.Fatalf("text %q, message_delta %v", text.String(), md)
	}
	if r := h.last(); r.UsageSource != "upstream" || r.CompletionTokens != 4 || !r.Stream {
		t.Fatalf("audit %+v", r)
	}
}

const weatherTool = `{"name":"get_weather","description":"Weather for a city","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}`

// TestMessagesToolUse: a tool call comes back as a tool_use block (whole
// and streamed as input_json_delta), and the next turn's tool_result
// reaches the upstream as a tool message answering that call.
func TestMessagesToolUse(t *testing.T) {
	m := newMock(t, mockllm.Config{KeepRequests: 8})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	turn1 := `{"model":"` + testModel + `","max_tokens":50,"tools":[` + weatherTool + `],"tool_choice":{"type":"auto"},` +
		`"messages":[{"role":"user","content":"Weather in Paris?"}]}`
	status, _, body := h.postAPI("/v1/messages", turn1, anthropicHeaders(testKey))
	var msg messages.Message
	if status != 200 || json.Unmarshal(body, &msg) != nil || *msg.StopReason != "tool_use" || len(msg.Content) != 1 ||
		msg.Content[0].Type != "tool_use" || msg.Content[0].Name != "get_weather" || string(msg.Content[0].Input) != mockllm.ToolArguments("get_weather") {
		t.Fatalf("turn 1: %d %s", status, body)
	}
	call := msg.Content[0].ID

	// Streamed: the same call as a tool_use block with input_json_delta.
	status, _, out := h.postAPI("/v1/messages", strings.Replace(turn1, `"max_tokens":50`, `"max_tokens":50,"stream":true`, 1), anthropicHeaders(testKey))
	evs := events(t, out)
	if status != 200 || eventNames(evs) != "message_start,ping,content_block_start,content_block_delta,content_block_delta,content_block_stop,message_delta,message_stop" {
		t.Fatalf("streamed turn 1: %d %s", status, out)
	}
	var partial strings.Builder
	for _, e := range evs[3:5] {
		partial.WriteString(e.data["delta"].(map[string]any)["partial_json"].(string))
	}
	if cb := evs[2].data["content_block"].(map[string]any); cb["type"] != "tool_use" || !strings.HasPrefix(cb["id"].(string), "call_") || partial.String() != mockllm.ToolArguments("get_weather") ||
		evs[6].data["delta"].(map[string]any)["stop_reason"] != "tool_use" {
		t.Fatalf("streamed tool_use: %s", out)
	}

	turn2 := `{"model":"` + testModel + `","max_tokens":3,"tools":[` + weatherTool + `],"messages":[` +
		`{"role":"user","content":"Weather in Paris?"},` +
		`{"role":"assistant","content":[{"type":"text","text":"Checking."},{"type":"tool_use","id":"` + call + `","name":"get_weather","input":{"city":"Paris"}}]},` +
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"` + call + `","content":[{"type":"text","text":"18C and sunny"}]},{"type":"text","text":"Thanks"}]}]}`
	status, _, body = h.postAPI("/v1/messages", turn2, anthropicHeaders(testKey))
	if status != 200 || json.Unmarshal(body, &msg) != nil || msg.Content[0].Type != "text" || *msg.StopReason != "max_tokens" {
		t.Fatalf("turn 2: %d %s", status, body)
	}
	up, _ := m.LastRequest()
	var chat struct {
		Messages []struct {
			Role      string
			Content   json.RawMessage
			ToolCalls []struct {
				ID       string
				Function struct{ Name, Arguments string }
			} `json:"tool_calls"`
			ToolCallID string `json:"tool_call_id"`
		}
	}
	if err := json.Unmarshal([]byte(up.Body), &chat); err != nil || len(chat.Messages) != 4 {
		t.Fatalf("upstream got %s", up.Body)
	}
	a, tool, user := chat.Messages[1], chat.Messages[2], chat.Messages[3]
	if a.Role != "assistant" || len(a.ToolCalls) != 1 || a.ToolCalls[0].ID != call || a.ToolCalls[0].Function.Arguments != `{"city":"Paris"}` ||
		tool.Role != "tool" || tool.ToolCallID != call || string(tool.Content) != `"18C and sunny"` || user.Role != "user" {
		t.Fatalf("upstream messages %s", up.Body)
	}
}

// recordingInspector records every text it is given and blocks any
// holding "FORBIDDEN".
type recordingInspector struct {
	mu    sync.Mutex
	texts []string
}

func (r *recordingInspector) Inspect(texts []string) (InspectResult, error) {
	r.mu.Lock()
	r.texts = append(r.texts, texts...)
	r.mu.Unlock()
	for _, t := range texts {
		if strings.Contains(t, "FORBIDDEN") {
			b := &Match{Rule: "forbidden", Action: "block"}
			return InspectResult{Block: b, Matches: []Match{*b}}, nil
		}
	}
	return InspectResult{}, nil
}

func (r *recordingInspector) saw(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.texts {
		if strings.Contains(t, s) {
			return true
		}
	}
	return false
}

// TestInboundInspectionSeesEveryPart: the inspect stage reads every text
// of a translated request (system prompt, message text, tool definitions,
// tool arguments, tool results, instructions, function outputs), and its
// block answers in the client's API.
func TestInboundInspectionSeesEveryPart(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	ins := &recordingInspector{}
	c := basePolicy(pool("p", m))
	c.Gateway.Inspection = policy.Inspection{Rules: []policy.InspectionRule{{Name: "forbidden", Detector: "email", Action: "block"}}}
	h := newHarness(t, c, Options{NewInspector: func(policy.Inspection) (Inspector, error) { return ins, nil }})
	msgs := `{"model":"` + testModel + `","max_tokens":3,"system":"SYS-PROMPT","tools":[{"name":"f","description":"TOOL-DESC","input_schema":{"type":"object"}}],"messages":[` +
		`{"role":"user","content":[{"type":"text","text":"USER-TEXT"}]},` +
		`{"role":"assistant","content":[{"type":"tool_use","id":"c1","name":"f","input":{"q":"TOOL-ARGS"}}]},` +
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"c1","content":"TOOL-RESULT"}]}]}`
	if status, _, body := h.postAPI("/v1/messages", msgs, anthropicHeaders(testKey)); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	resp := `{"model":"` + testModel + `","instructions":"INSTRUCTIONS","tools":[{"type":"function","name":"g","description":"FN-DESC","parameters":{"type":"object"}}],"input":[` +
		`{"role":"user","content":[{"type":"input_text","text":"INPUT-TEXT"}]},` +
		`{"type":"function_call","call_id":"c2","name":"g","arguments":"{\"q\":\"FN-ARGS\"}"},` +
		`{"type":"function_call_output","call_id":"c2","output":"FN-OUTPUT"}]}`
	if status, _, body := h.call(testKey, "/v1/responses", resp); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	for _, s := range []string{"SYS-PROMPT", "TOOL-DESC", "USER-TEXT", "TOOL-ARGS", "TOOL-RESULT", "INSTRUCTIONS", "FN-DESC", "INPUT-TEXT", "FN-ARGS", "FN-OUTPUT"} {
		if !ins.saw(s) {
			t.Errorf("inspection never saw %s", s)
		}
	}
	blocked := strings.Replace(msgs, "TOOL-RESULT", "FORBIDDEN", 1)
	status, _, body := h.postAPI("/v1/messages", blocked, anthropicHeaders(testKey))
	if status != 400 || anthropicError(t, body) != "invalid_request_error" || !strings.Contains(string(body), "forbidden") {
		t.Fatalf("blocked tool result: %d %s", status, body)
	}
	blocked = strings.Replace(resp, "FN-ARGS", "FORBIDDEN", 1)
	status, _, body = h.call(testKey, "/v1/responses", blocked)
	if typ, code := decodeError(t, body); status != 400 || typ != openai.TypeInvalidRequest || code != "content_blocked" {
		t.Fatalf("blocked function arguments: %d %s", status, body)
	}
	if m.Stats().Total != 2 {
		t.Fatalf("upstream saw %d requests, want 2", m.Stats().Total)
	}
}

// TestCountTokens: count_tokens is answered by the gateway with its own
// count of the translated prompt, which is what /v1/messages reserves and
// bills when the upstream reports no usage; nothing goes upstream and no
// limit is charged.
func TestCountTokens(t *testing.T) {
	m := newMock(t, mockllm.Config{OmitUsage: true})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	countBody := strings.Replace(messagesBody, `"max_tokens":5,`, ``, 1)
	status, _, body := h.postAPI("/v1/messages/count_tokens", countBody, anthropicHeaders(testKey))
	var n struct {
		InputTokens int64 `json:"input_tokens"`
	}
	if status != 200 || json.Unmarshal(body, &n) != nil || n.InputTokens < 5 {
		t.Fatalf("count_tokens: %d %s", status, body)
	}
	if m.Stats().Total != 0 || len(h.limiter.all()) != 0 {
		t.Fatalf("count_tokens went upstream (%d) or took a ticket (%d)", m.Stats().Total, len(h.limiter.all()))
	}
	if r := h.last(); r.Endpoint != "/messages/count_tokens" || r.Status != 200 || r.Attempts != 0 {
		t.Fatalf("audit %+v", r)
	}
	if status, _, body := h.postAPI("/v1/messages", messagesBody, anthropicHeaders(testKey)); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	if r := h.last(); r.UsageSource != "counted" || r.PromptTokens != n.InputTokens {
		t.Fatalf("messages billed %d prompt tokens (%s), count_tokens said %d", r.PromptTokens, r.UsageSource, n.InputTokens)
	}
}

// TestSameTenantLimitAcrossAPIs: a tenant's request limit counts every
// inbound API together, and each API refuses in its own shape.
func TestSameTenantLimitAcrossAPIs(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	c := basePolicy(pool("p", m))
	c.Gateway.Tenants[0].Limits.RequestsPerMinute = 3
	h := newHarness(t, c, Options{})
	if status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("hi", "")); status != 200 {
		t.Fatalf("chat: %d %s", status, body)
	}
	if status, _, body := h.postAPI("/v1/messages", messagesBody, anthropicHeaders(testKey)); status != 200 {
		t.Fatalf("messages: %d %s", status, body)
	}
	respBody := `{"model":"` + testModel + `","input":"hi","max_output_tokens":3}`
	if status, _, body := h.call(testKey, "/v1/responses", respBody); status != 200 {
		t.Fatalf("responses: %d %s", status, body)
	}
	status, hdr, body := h.postAPI("/v1/messages", messagesBody, anthropicHeaders(testKey))
	if status != 429 || anthropicError(t, body) != "rate_limit_error" || hdr.Get("Retry-After") == "" {
		t.Fatalf("4th (messages): %d %v %s", status, hdr, body)
	}
	status, _, body = h.call(testKey, "/v1/responses", respBody)
	if typ, _ := decodeError(t, body); status != 429 || typ != openai.TypeRateLimit {
		t.Fatalf("5th (responses): %d %s", status, body)
	}
	if m.Stats().Total != 3 {
		t.Fatalf("upstream saw %d", m.Stats().Total)
	}
}

// TestMessagesStreamBroken: an upstream that breaks off mid-stream ends
// the client's stream with Anthropic's error event, recorded as a 502.
func TestMessagesStreamBroken(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	m.SetFailure(mockllm.Failure{BreakAfter: 2, Count: 1})
	body := strings.Replace(messagesBody, `"max_tokens":5`, `"max_tokens":8,"stream":true`, 1)
	status, _, out := h.postAPI("/v1/messages", body, anthropicHeaders(testKey))
	evs := events(t, out)
	last := evs[len(evs)-1]
	if status != 200 || last.name != "error" || last.data["error"].(map[string]any)["type"] != "api_error" {
		t.Fatalf("%d %s", status, out)
	}
	if r := h.last(); r.Status != 502 || r.CompletionTokens != 2 {
		t.Fatalf("audit %+v", r)
	}
}

// TestResponsesWholeAndStream: the Responses API, whole and streamed,
// with its event sequence and sequence numbers, usage and the incomplete
// status for a length stop.
func TestResponsesWholeAndStream(t *testing.T) {
	m := newMock(t, mockllm.Config{KeepRequests: 4})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	body := `{"model":"` + testModel + `","instructions":"Be terse.","input":"Say hello.","max_output_tokens":3,` +
		`"text":{"format":{"type":"json_schema","name":"greeting","schema":{"type":"object","properties":{"g":{"type":"string"}}},"strict":true}}}`
	status, _, out := h.call(testKey, "/v1/responses", body)
	var r struct {
		ID, Object, Status string
		IncompleteDetails  *struct{ Reason string } `json:"incomplete_details"`
		Output             []struct {
			Type, Role string
			Content    []struct{ Type, Text string }
		}
		Usage struct {
			InputTokens  int64 `json:"input_tokens"`
			OutputTokens int64 `json:"output_tokens"`
			TotalTokens  int64 `json:"total_tokens"`
		}
	}
	if status != 200 || json.Unmarshal(out, &r) != nil || r.Object != "response" || !strings.HasPrefix(r.ID, "resp_") || r.Status != "incomplete" ||
		r.IncompleteDetails == nil || r.IncompleteDetails.Reason != "max_output_tokens" || len(r.Output) != 1 || r.Output[0].Content[0].Text != mockllm.Text(3) ||
		r.Usage.OutputTokens != 3 || r.Usage.TotalTokens != r.Usage.InputTokens+3 {
		t.Fatalf("%d %s", status, out)
	}
	up, _ := m.LastRequest()
	if !strings.Contains(up.Body, `"response_format":{"json_schema":{"name":"greeting"`) || !strings.Contains(up.Body, `"max_completion_tokens":3`) ||
		!strings.Contains(up.Body, `{"role":"system","content":"Be terse."}`) {
		t.Fatalf("upstream got %s", up.Body)
	}
	if a := h.last(); a.Endpoint != "/responses" || a.CompletionTokens != 3 {
		t.Fatalf("audit %+v", a)
	}

	status, _, out = h.call(testKey, "/v1/responses", strings.Replace(body, `"max_output_tokens":3`, `"max_output_tokens":3,"stream":true`, 1))
	evs := events(t, out)
	want := "response.created,response.in_progress,response.output_item.added,response.content_part.added," +
		strings.Repeat("response.output_text.delta,", 3) + "response.output_text.done,response.content_part.done,response.output_item.done,response.incomplete"
	if status != 200 || eventNames(evs) != want {
		t.Fatalf("%d events %s\nwant %s", status, eventNames(evs), want)
	}
	for i, e := range evs {
		if e.data["sequence_number"].(float64) != float64(i) {
			t.Fatalf("event %d has sequence_number %v", i, e.data["sequence_number"])
		}
	}
	done := evs[len(evs)-4].data
	final := evs[len(evs)-1].data["response"].(map[string]any)
	if done["text"] != mockllm.Text(3) || final["usage"].(map[string]any)["output_tokens"].(float64) != 3 {
		t.Fatalf("done %v final %v", done, final)
	}
}

// TestResponsesToolsAndRefusals: a function call comes back as a
// function_call item (whole and streamed), and stateful features are
// refused 400 by name.
func TestResponsesToolsAndRefusals(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	body := `{"model":"` + testModel + `","input":"Weather?","tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"}}]}`
	status, _, out := h.call(testKey, "/v1/responses", body)
	var r struct {
		Status string
		Output []struct {
			Type, Name, Arguments string
			CallID                string `json:"call_id"`
		} `json:"output"`
	}
	if status != 200 || json.Unmarshal(out, &r) != nil || r.Status != "completed" || len(r.Output) != 1 || r.Output[0].Type != "function_call" ||
		r.Output[0].Arguments != mockllm.ToolArguments("get_weather") || r.Output[0].CallID == "" {
		t.Fatalf("%d %s", status, out)
	}
	status, _, out = h.call(testKey, "/v1/responses", strings.Replace(body, `"input"`, `"stream":true,"input"`, 1))
	evs := events(t, out)
	if status != 200 || eventNames(evs) != "response.created,response.in_progress,response.output_item.added,response.function_call_arguments.delta,"+
		"response.function_call_arguments.delta,response.function_call_arguments.done,response.output_item.done,response.completed" {
		t.Fatalf("%d %s", status, eventNames(evs))
	}
	if evs[5].data["arguments"] != mockllm.ToolArguments("get_weather") {
		t.Fatalf("arguments.done %v", evs[5].data)
	}
	for _, bad := range []string{`"previous_response_id":"resp_1",`, `"tools":[{"type":"web_search"}],`, `"background":true,`} {
		status, _, out := h.call(testKey, "/v1/responses", `{`+bad+`"model":"`+testModel+`","input":"x"}`)
		if typ, _ := decodeError(t, out); status != 400 || typ != openai.TypeInvalidRequest {
			t.Errorf("%s: %d %s", bad, status, out)
		}
	}
}

// scriptedUpstream answers every chat request with body (whole) or, for a
// streamed request, with stream's events; it stands in for an upstream
// whose answers the mock does not give (cached tokens, vLLM's stop_reason).
func scriptedUpstream(t *testing.T, whole, stream string) policy.CompiledPool {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if stream != "" && strings.Contains(string(b), `"stream":true`) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, stream)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, whole)
	}))
	t.Cleanup(ts.Close)
	ap := netip.MustParseAddrPort(strings.TrimPrefix(ts.URL, "http://"))
	return policy.CompiledPool{Name: "scripted", Backends: []policy.CompiledBackend{{Name: "s", Address: ap.Addr(), Port: ap.Port(), Weight: 100}}}
}

// TestInboundUpstreamUsageDetails: the upstream's cached and reasoning
// tokens and its named stop string reach both APIs' answers, whole and
// streamed (the stream's usage chunk, which the gateway asked for, goes
// through the translator before it is dropped).
func TestInboundUpstreamUsageDetails(t *testing.T) {
	usage := `"usage":{"prompt_tokens":50,"completion_tokens":3,"total_tokens":53,"prompt_tokens_details":{"cached_tokens":30},"completion_tokens_details":{"reasoning_tokens":2}}`
	whole := `{"id":"chatcmpl-s","object":"chat.completion","model":"up","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop","stop_reason":"END"}],` + usage + `}`
	stream := `data: {"id":"chatcmpl-s","choices":[{"index":0,"delta":{"role":"assistant","content":"ok"}}]}` + "\n\n" +
		`data: {"id":"chatcmpl-s","choices":[{"index":0,"delta":{},"finish_reason":"stop","stop_reason":"END"}]}` + "\n\n" +
		`data: {"id":"chatcmpl-s","choices":[],` + usage + `}` + "\n\n" + "data: [DONE]\n\n"
	h := newHarness(t, basePolicy(scriptedUpstream(t, whole, stream)), Options{})
	msgs := `{"model":"` + testModel + `","max_tokens":9,"stop_sequences":["END"],"messages":[{"role":"user","content":"x"}]}`
	status, _, body := h.postAPI("/v1/messages", msgs, anthropicHeaders(testKey))
	if status != 200 || !strings.Contains(string(body), `"stop_reason":"stop_sequence","stop_sequence":"END","usage":{"input_tokens":20,"output_tokens":3,"cache_creation_input_tokens":0,"cache_read_input_tokens":30}`) {
		t.Fatalf("messages: %d %s", status, body)
	}
	status, _, body = h.postAPI("/v1/messages", strings.Replace(msgs, `"max_tokens":9`, `"max_tokens":9,"stream":true`, 1), anthropicHeaders(testKey))
	if status != 200 || !strings.Contains(string(body), `{"type":"message_delta","delta":{"stop_reason":"stop_sequence","stop_sequence":"END"},"usage":{"input_tokens":20,"output_tokens":3,"cache_creation_input_tokens":0,"cache_read_input_tokens":30}}`) {
		t.Fatalf("messages stream: %d %s", status, body)
	}
	if r := h.last(); r.PromptTokens != 50 || r.CompletionTokens != 3 || r.UsageSource != "upstream" {
		t.Fatalf("billed %+v", r)
	}
	details := `"input_tokens":50,"input_tokens_details":{"cached_tokens":30},"output_tokens":3,"output_tokens_details":{"reasoning_tokens":2},"total_tokens":53`
	status, _, body = h.call(testKey, "/v1/responses", `{"model":"`+testModel+`","input":"x"}`)
	if status != 200 || !strings.Contains(string(body), details) {
		t.Fatalf("responses: %d %s", status, body)
	}
	status, _, body = h.call(testKey, "/v1/responses", `{"model":"`+testModel+`","input":"x","stream":true}`)
	if status != 200 || !strings.Contains(string(body), details) || !strings.Contains(string(body), "event: response.completed") {
		t.Fatalf("responses stream: %d %s", status, body)
	}
}

// TestInboundStreamFromWholeAnswer: an upstream that ignores stream and
// answers whole still gives a streaming client its API's events.
func TestInboundStreamFromWholeAnswer(t *testing.T) {
	whole := `{"id":"chatcmpl-w","object":"chat.completion","model":"up","choices":[{"index":0,"message":{"role":"assistant","content":"whole",` +
		`"tool_calls":[{"id":"call_w","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}`
	h := newHarness(t, basePolicy(scriptedUpstream(t, whole, "")), Options{})
	status, hdr, body := h.postAPI("/v1/messages", `{"model":"`+testModel+`","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"x"}]}`, anthropicHeaders(testKey))
	evs := events(t, body)
	if status != 200 || hdr.Get("Content-Type") != "text/event-stream" || eventNames(evs) !=
		"message_start,ping,content_block_start,content_block_delta,content_block_stop,content_block_start,content_block_delta,content_block_stop,message_delta,message_stop" {
		t.Fatalf("%d %v %s", status, hdr, body)
	}
	status, _, body = h.call(testKey, "/v1/responses", `{"model":"`+testModel+`","input":"x","stream":true}`)
	if evs := events(t, body); status != 200 || evs[len(evs)-1].name != "response.completed" {
		t.Fatalf("%d %s", status, body)
	}
}

// TestInboundRedaction: a redact rule rewrites the translated request, so
// the upstream never sees the secret, wherever the client's API put it.
func TestInboundRedaction(t *testing.T) {
	m := newMock(t, mockllm.Config{KeepRequests: 4})
	h := newHarness(t, inspectionPolicy(m), Options{})
	body := `{"model":"` + testModel + `","max_tokens":3,"tools":[{"name":"f","input_schema":{"type":"object"}}],"messages":[` +
		`{"role":"user","content":"look up"},{"role":"assistant","content":[{"type":"tool_use","id":"c1","name":"f","input":{}}]},` +
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"c1","content":"owner is jane.doe@example.com"}]}]}`
	if status, _, out := h.postAPI("/v1/messages", body, anthropicHeaders(testKey)); status != 200 {
		t.Fatalf("%d %s", status, out)
	}
	up, _ := m.LastRequest()
	if strings.Contains(up.Body, "jane.doe@example.com") || !strings.Contains(up.Body, "owner is") {
		t.Fatalf("upstream saw %s", up.Body)
	}
}

// TestInboundUpstreamErrorEvent: an error event in the upstream's stream
// reaches the client as its API's error event, with the upstream's
// message, and is recorded as a 502.
func TestInboundUpstreamErrorEvent(t *testing.T) {
	stream := `data: {"id":"c","choices":[{"index":0,"delta":{"content":"par"}}]}` + "\n\n" +
		`data: {"error":{"message":"backend out of memory","type":"server_error"}}` + "\n\n"
	h := newHarness(t, basePolicy(scriptedUpstream(t, `{}`, stream)), Options{})
	status, _, body := h.postAPI("/v1/messages", `{"model":"`+testModel+`","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"x"}]}`, anthropicHeaders(testKey))
	evs := events(t, body)
	last := evs[len(evs)-1].data
	if status != 200 || evs[len(evs)-1].name != "error" || last["error"].(map[string]any)["message"] != "backend out of memory" {
		t.Fatalf("%d %s", status, body)
	}
	if r := h.last(); r.Status != 502 || r.Error != "upstream_stream_error" {
		t.Fatalf("audit %+v", r)
	}
	status, _, body = h.call(testKey, "/v1/responses", `{"model":"`+testModel+`","input":"x","stream":true}`)
	evs = events(t, body)
	if last := evs[len(evs)-1].data; status != 200 || last["type"] != "error" || last["code"] != "upstream_stream_error" || last["message"] != "backend out of memory" {
		t.Fatalf("%d %s", status, body)
	}
}
