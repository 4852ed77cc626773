package gemini

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/infergate/infergate/l7/translate/chatwire"
	"github.com/infergate/infergate/l7/translate/outbound"
	"github.com/infergate/infergate/test/providers"
)

func newRT(t *testing.T) (*outbound.Transport, *providers.Gemini) {
	s := providers.NewGemini("AIza-test")
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return &outbound.Transport{T: &Translator{BaseURL: ts.URL, Key: outbound.StaticSecret("AIza-test")}, Base: http.DefaultTransport}, s
}

// TestSuite: chat completions through generateContent /
// streamGenerateContent?alt=sse and back.
func TestSuite(t *testing.T) {
	rt, s := newRT(t)
	providers.RunSuite(t, rt, s, providers.Kind{LengthStop: "MAX_TOKENS", FilterStop: "SAFETY", Reasoning: true})
}

// TestRolesAndSystem: assistant turns go as model, system prompts as
// systemInstruction, a tool result as a functionResponse named after the
// call it answers; JSON mode sets responseMimeType.
func TestRolesAndSystem(t *testing.T) {
	rt, s := newRT(t)
	s.Always(providers.Reply{Text: "ok"})
	st, _ := providers.Whole(t, rt, `{"model":"gemini-2.5-flash","response_format":{"type":"json_object"},"messages":[{"role":"system","content":"S"},{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}]}`)
	if st != 200 {
		t.Fatal(st)
	}
	body, h, path := s.Last()
	b, _ := json.Marshal(body)
	if !strings.Contains(string(b), `"role":"model"`) || !strings.Contains(string(b), `"systemInstruction":{"parts":[{"text":"S"}]}`) ||
		!strings.Contains(string(b), `"responseMimeType":"application/json"`) || h.Get("x-goog-api-key") != "AIza-test" || path != "/v1beta/models/gemini-2.5-flash:generateContent" {
		t.Fatalf("%s %v %s", b, h, path)
	}
}

// TestToolResultWithoutCall: a tool message that answers no earlier call
// cannot be named for Gemini: a 400, not a request Gemini would refuse.
func TestToolResultWithoutCall(t *testing.T) {
	rt, _ := newRT(t)
	if st, cr := providers.Whole(t, rt, `{"model":"g","messages":[{"role":"user","content":"a"},{"role":"tool","tool_call_id":"x","content":"1"}]}`); st != 400 || cr.Error.Type != "invalid_request_error" {
		t.Fatalf("%d %+v", st, cr.Error)
	}
}

// FuzzBody: any chat request translates to a valid generateContent body
// whose roles are only user and model, or is refused; never a panic.
func FuzzBody(f *testing.F) {
	f.Add(`{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}],"max_tokens":5}`)
	f.Add(`{"model":"m","messages":[{"role":"user","content":"w?"},{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"a","content":"1"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none"}`)
	f.Fuzz(func(t *testing.T, in string) {
		var r chatwire.Request
		if json.Unmarshal([]byte(in), &r) != nil {
			return
		}
		b, err := Body(&r)
		if err != nil {
			return
		}
		var out generateRequest
		if err := json.Unmarshal(b, &out); err != nil || len(out.Contents) == 0 {
			t.Fatalf("invalid %s: %v", b, err)
		}
		for i, c := range out.Contents {
			if c.Role != "user" && c.Role != "model" || i > 0 && out.Contents[i-1].Role == c.Role {
				t.Fatalf("roles: %s", b)
			}
		}
	})
}

// FuzzStream: any bytes decode to chunks or an error; never a panic.
func FuzzStream(f *testing.F) {
	f.Add([]byte("data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"hi\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":3}}\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		d := (&Translator{}).Stream(bytes.NewReader(in), &chatwire.Request{})
		for i := 0; i < len(in)+2; i++ {
			if err := d.Next(func(c *chatwire.Chunk) {
				if _, err := json.Marshal(c); err != nil {
					t.Fatal(err)
				}
			}); err != nil {
				return
			}
		}
		t.Fatal("decoder did not end")
	})
}
