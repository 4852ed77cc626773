package gateway

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/mockllm"
)

const testSecret = "sk-proj-Zx8Qw2Lm5Rt7Yu9Io1Pa3Sd4Fg6Hj0Kl"

// TestToolDescriptionCounted: text in a tool's description is counted
// against the tenant's tokens per minute (80,000 words cannot pass a
// 1,000 TPM tenant).
func TestToolDescriptionCounted(t *testing.T) {
	m := newMock(t, mockllm.Config{KeepRequests: 2})
	c := basePolicy(pool("p", m))
	c.Gateway.Tenants[0].Limits.TokensPerMinute = 1000
	h := newHarness(t, c, Options{})
	tool := func(desc string) string {
		b, _ := json.Marshal(desc)
		return `,"max_tokens":10,"tools":[{"type":"function","function":{"name":"f","description":` + string(b) + `,"parameters":{"type":"object"}}}]`
	}
	if status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("hi", tool("Looks up the weather."))); status != 200 {
		t.Fatalf("short tool: %d %s", status, body)
	}
	status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("hi", tool(strings.Repeat("word ", 80000))))
	if status != 429 {
		t.Fatalf("80,000-word tool description: %d %s", status, body)
	}
	if m.Stats().Total != 1 {
		t.Fatalf("upstream saw %d requests", m.Stats().Total)
	}
}

// TestSecretInEveryField: a secret in any field the model reads is found
// by inspection: tool and function descriptions and parameter schemas,
// tool-call and function-call arguments, response-format schemas, content
// parts typed input_text, refusal or untyped, and message refusals.
func TestSecretInEveryField(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	c := basePolicy(pool("p", m))
	c.Gateway.Inspection = policy.Inspection{Rules: []policy.InspectionRule{{Name: "no-keys", Detector: "api-token", Action: "block"}}}
	h := newHarness(t, c, Options{})
	const user = `{"role":"user","content":"hi"}`
	for name, body := range map[string]string{
		"tool description": `"messages":[` + user + `],"tools":[{"type":"function","function":{"name":"f","description":"use SECRET","parameters":{}}}]`,
		"tool parameters":  `"messages":[` + user + `],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"k":{"type":"string","description":"SECRET"}}}}}]`,
		"functions":        `"messages":[` + user + `],"functions":[{"name":"f","description":"SECRET"}]`,
		"tool arguments": `"messages":[` + user + `,{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"key\":\"SECRET\"}"}}]},` +
			`{"role":"tool","tool_call_id":"c1","content":"ok"}]`,
		"function_call arguments": `"messages":[` + user + `,{"role":"assistant","content":null,"function_call":{"name":"f","arguments":"SECRET"}}]`,
		"response_format":         `"messages":[` + user + `],"response_format":{"type":"json_schema","json_schema":{"name":"s","schema":{"description":"SECRET"}}}`,
		"input_text part":         `"messages":[{"role":"user","content":[{"type":"input_text","text":"SECRET"}]}]`,
		"untyped part":            `"messages":[{"role":"user","content":[{"text":"SECRET"}]}]`,
		"refusal part":            `"messages":[` + user + `,{"role":"assistant","content":[{"type":"refusal","refusal":"SECRET"}]}]`,
		"message refusal":         `"messages":[` + user + `,{"role":"assistant","content":null,"refusal":"SECRET"}]`,
	} {
		clean := `{"model":"` + testModel + `",` + strings.ReplaceAll(body, "SECRET", "nothing here") + `}`
		if status, _, b := h.call(testKey, "/v1/chat/completions", clean); status != 200 {
			t.Fatalf("%s without the secret: %d %s", name, status, b)
		}
		dirty := `{"model":"` + testModel + `",` + strings.ReplaceAll(body, "SECRET", testSecret) + `}`
		status, _, b := h.call(testKey, "/v1/chat/completions", dirty)
		if status != 400 {
			t.Fatalf("%s: %d %s", name, status, b)
		}
		if _, code := decodeError(t, b); code != "content_blocked" {
			t.Fatalf("%s: code %q", name, code)
		}
	}
}

// TestRedactionInToolFields: a redact rule rewrites the text where it was
// found, in a tool description and in tool-call arguments, and the schema
// stays valid JSON.
func TestRedactionInToolFields(t *testing.T) {
	m := newMock(t, mockllm.Config{KeepRequests: 2})
	h := newHarness(t, inspectionPolicy(m), Options{})
	body := `{"model":"` + testModel + `","messages":[{"role":"user","content":"hi"},` +
		`{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"to\":\"jane.doe@example.com\"}"}}]},` +
		`{"role":"tool","tool_call_id":"c1","content":"sent"}],` +
		`"tools":[{"type":"function","function":{"name":"f","description":"mails bob@example.org","parameters":{"type":"object","description":"cc carol@example.net"}}}]}`
	if status, _, b := h.call(testKey, "/v1/chat/completions", body); status != 200 {
		t.Fatalf("%d %s", status, b)
	}
	up, _ := m.LastRequest()
	if strings.Contains(up.Body, "@example.") || !json.Valid([]byte(up.Body)) {
		t.Fatalf("upstream body %s", up.Body)
	}
}

// TestCaseVariantKeys: a top-level key that differs from one the gateway
// reads only by case is refused (a Go upstream would read it); a variant
// inside a message is dropped before the body goes upstream.
func TestCaseVariantKeys(t *testing.T) {
	m := newMock(t, mockllm.Config{KeepRequests: 2})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	for _, tc := range []struct{ body, param string }{
		{`{"model":"` + testModel + `","messages":[{"role":"user","content":"hi"}],"Messages":[{"role":"user","content":"hidden"}]}`, "messages"},
		{`{"model":"` + testModel + `","messages":[{"role":"user","content":"hi"}],"stream":false,"Stream":true}`, "stream"},
		{`{"model":"` + testModel + `","messages":[{"role":"user","content":"hi"}],"ſtream":true}`, "stream"},
	} {
		status, _, b := h.call(testKey, "/v1/chat/completions", tc.body)
		if status != 400 {
			t.Fatalf("%s: %d %s", tc.body, status, b)
		}
		var e apiError
		if err := json.Unmarshal(b, &e); err != nil || e.Error.Param == nil || *e.Error.Param != tc.param {
			t.Fatalf("%s: %s", tc.body, b)
		}
	}
	if m.Stats().Total != 0 {
		t.Fatalf("ambiguous bodies reached upstream")
	}
	body := `{"model":"` + testModel + `","messages":[{"role":"user","content":"hi","Content":"hidden"}]}`
	if status, _, b := h.call(testKey, "/v1/chat/completions", body); status != 200 {
		t.Fatalf("%d %s", status, b)
	}
	up, _ := m.LastRequest()
	if strings.Contains(up.Body, "hidden") || !strings.Contains(up.Body, `"content":"hi"`) {
		t.Fatalf("upstream body %s", up.Body)
	}
}
