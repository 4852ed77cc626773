package anthropicout

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/infergate/infergate/l7/translate/chatwire"
	"github.com/infergate/infergate/l7/translate/outbound"
	"github.com/infergate/infergate/test/providers"
)

func newRT(t *testing.T) (http.RoundTripper, *providers.Anthropic) {
	s := providers.NewAnthropic("sk-ant-test")
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return &outbound.Transport{T: &Translator{BaseURL: ts.URL, Key: outbound.StaticSecret("sk-ant-test")}, Base: http.DefaultTransport}, s
}

// TestSuite: chat completions through the translation to the Messages API
// stand-in and back (test/providers.RunSuite).
func TestSuite(t *testing.T) {
	rt, s := newRT(t)
	providers.RunSuite(t, rt, s, providers.Kind{LengthStop: "max_tokens", FilterStop: "refusal"})
}

// TestMaxTokensDefault: a request without max_tokens gets the provider's
// default (the Messages API refuses one without); the client's bound wins.
func TestMaxTokensDefault(t *testing.T) {
	rt, s := newRT(t)
	rt.(*outbound.Transport).T.(*Translator).MaxTokens = 777
	s.Always(providers.Reply{Text: "ok"})
	if st, _ := providers.Whole(t, rt, `{"model":"claude","messages":[{"role":"user","content":"hi"}]}`); st != 200 {
		t.Fatal(st)
	}
	body, h, _ := s.Last()
	if body["max_tokens"] != float64(777) || h.Get("anthropic-version") != DefaultVersion || h.Get("Authorization") != "" {
		t.Fatalf("%v %v", body["max_tokens"], h)
	}
	providers.Whole(t, rt, `{"model":"claude","max_completion_tokens":12,"messages":[{"role":"user","content":"hi"}]}`)
	if body, _, _ = s.Last(); body["max_tokens"] != float64(12) {
		t.Fatal(body["max_tokens"])
	}
}

// TestOverloadedIs503: Anthropic's 529 overloaded becomes a 503, which the
// gateway's fallback treats like any provider failure.
func TestOverloadedIs503(t *testing.T) {
	rt, s := newRT(t)
	s.Always(providers.Reply{Status: 529, ErrorMessage: "Overloaded"})
	if st, cr := providers.Whole(t, rt, `{"model":"claude","messages":[{"role":"user","content":"hi"}]}`); st != 503 || cr.Error.Type != "server_error" {
		t.Fatalf("%d %+v", st, cr.Error)
	}
}

// TestWrongKeyIs401: the provider's refusal of the gateway's key is a 401
// the gateway's proxy turns into its own 502 (the client's key is fine).
func TestWrongKeyIs401(t *testing.T) {
	rt, _ := newRT(t)
	rt.(*outbound.Transport).T.(*Translator).Key = outbound.StaticSecret("wrong")
	if st, cr := providers.Whole(t, rt, `{"model":"claude","messages":[{"role":"user","content":"hi"}]}`); st != 401 || cr.Error.Type != "authentication_error" {
		t.Fatalf("%d %+v", st, cr.Error)
	}
}

// FuzzBody: any chat request either translates to a Messages body that is
// valid JSON with max_tokens and alternating turns, or is refused with an
// error; never a panic.
func FuzzBody(f *testing.F) {
	f.Add(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	f.Add(`{"model":"m","messages":[{"role":"user","content":"w?"},{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"a","content":"1"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"f"}}}`)
	f.Add(`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}`)
	tr := &Translator{}
	f.Fuzz(func(t *testing.T, in string) {
		var r chatwire.Request
		if json.Unmarshal([]byte(in), &r) != nil {
			return
		}
		b, err := tr.Body(&r)
		if err != nil {
			return
		}
		var out request
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("invalid JSON %s: %v", b, err)
		}
		if out.MaxTokens < 1 || len(out.Messages) == 0 {
			t.Fatalf("no max_tokens or messages: %s", b)
		}
		for i := 1; i < len(out.Messages); i++ {
			if out.Messages[i].Role == out.Messages[i-1].Role {
				t.Fatalf("turns do not alternate: %s", b)
			}
		}
	})
}

// FuzzStream: any byte stream decodes to chunks or an error; never a panic
// or an endless loop.
func FuzzStream(f *testing.F) {
	f.Add([]byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}\n\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\ndata: {\"type\":\"message_stop\"}\n\n"))
	f.Add([]byte("data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\"}}\n\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n"))
	tr := &Translator{}
	f.Fuzz(func(t *testing.T, in []byte) {
		d := tr.Stream(bytesReader(in), &chatwire.Request{})
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
