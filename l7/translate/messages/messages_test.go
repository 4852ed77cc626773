package messages

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/l7/translate/chatwire"
)

func toChat(t *testing.T, body string) map[string]any {
	t.Helper()
	out, _, err := ToChat([]byte(body), false)
	if err != nil {
		t.Fatalf("ToChat: %v", err)
	}
	if _, err := openai.ParseRequest(openai.ChatCompletions, out); err != nil {
		t.Fatalf("the gateway's parser refuses the pivot %s: %v", out, err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestToChatMapping: each Messages feature lands where chat completions
// carries it.
func TestToChatMapping(t *testing.T) {
	cases := []struct {
		name, body string
		field      string
		want       string
	}{
		{"system string", `{"model":"m","max_tokens":9,"system":"S","messages":[{"role":"user","content":"hi"}]}`,
			"messages", `[{"content":"S","role":"system"},{"content":"hi","role":"user"}]`},
		{"system blocks", `{"model":"m","max_tokens":9,"system":[{"type":"text","text":"A"},{"type":"text","text":"B","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"hi"}]}`,
			"messages", `[{"content":"A\n\nB","role":"system"},{"content":"hi","role":"user"}]`},
		{"image base64 and url", `{"model":"m","max_tokens":9,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBO"}},{"type":"image","source":{"type":"url","url":"https://x.test/a.jpg"}},{"type":"text","text":"what?"}]}]}`,
			"messages", `[{"content":[{"image_url":{"url":"data:image/png;base64,iVBO"},"type":"image_url"},{"image_url":{"url":"https://x.test/a.jpg"},"type":"image_url"},{"text":"what?","type":"text"}],"role":"user"}]`},
		{"tool use and result, results first", `{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"q"},` +
			`{"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"x"},{"type":"tool_use","id":"t1","name":"f","input":{"a":1}},{"type":"tool_use","id":"t2","name":"g","input":{}}]},` +
			`{"role":"user","content":[{"type":"text","text":"both:"},{"type":"tool_result","tool_use_id":"t1","content":"one"},{"type":"tool_result","tool_use_id":"t2","is_error":true,"content":[{"type":"text","text":"boom"}]}]}]}`,
			"messages", `[{"content":"q","role":"user"},{"content":null,"role":"assistant","tool_calls":[{"function":{"arguments":"{\"a\":1}","name":"f"},"id":"t1","type":"function"},{"function":{"arguments":"{}","name":"g"},"id":"t2","type":"function"}]},` +
				`{"content":"one","role":"tool","tool_call_id":"t1"},{"content":"Error: boom","role":"tool","tool_call_id":"t2"},{"content":[{"text":"both:","type":"text"}],"role":"user"}]`},
		{"tools", `{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"q"}],"tools":[{"name":"f","description":"D","input_schema":{"type":"object"}}]}`,
			"tools", `[{"function":{"description":"D","name":"f","parameters":{"type":"object"}},"type":"function"}]`},
		{"tool_choice any", `{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"q"}],"tools":[{"name":"f","input_schema":{}}],"tool_choice":{"type":"any"}}`,
			"tool_choice", `"required"`},
		{"tool_choice tool", `{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"q"}],"tools":[{"name":"f","input_schema":{}}],"tool_choice":{"type":"tool","name":"f","disable_parallel_tool_use":true}}`,
			"tool_choice", `{"function":{"name":"f"},"type":"function"}`},
		{"no parallel", `{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"q"}],"tools":[{"name":"f","input_schema":{}}],"tool_choice":{"type":"auto","disable_parallel_tool_use":true}}`,
			"parallel_tool_calls", `false`},
		{"stop sequences", `{"model":"m","max_tokens":9,"stop_sequences":["END","##"],"messages":[{"role":"user","content":"q"}]}`,
			"stop", `["END","##"]`},
		{"structured output", `{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"q"}],"output_format":{"type":"json_schema","schema":{"type":"object"}}}`,
			"response_format", `{"json_schema":{"name":"output","schema":{"type":"object"},"strict":true},"type":"json_schema"}`},
		{"max_tokens and user", `{"model":"m","max_tokens":9,"metadata":{"user_id":"u1"},"messages":[{"role":"user","content":"q"}]}`,
			"max_tokens", `9`},
	}
	for _, c := range cases {
		m := toChat(t, c.body)
		if got := js(m[c.field]); got != c.want {
			t.Errorf("%s: %s = %s\nwant %s", c.name, c.field, got, c.want)
		}
	}
}

// TestToChatRefuses: what chat completions cannot express is refused by
// name, never dropped.
func TestToChatRefuses(t *testing.T) {
	cases := map[string]string{
		"top_k":                                  `{"model":"m","max_tokens":9,"top_k":5,"messages":[{"role":"user","content":"q"}]}`,
		"max_tokens":                             `{"model":"m","messages":[{"role":"user","content":"q"}]}`,
		"model":                                  `{"max_tokens":9,"messages":[{"role":"user","content":"q"}]}`,
		"messages":                               `{"model":"m","max_tokens":9,"messages":[]}`,
		"thinking":                               `{"model":"m","max_tokens":9,"thinking":{"type":"enabled","budget_tokens":1024},"messages":[{"role":"user","content":"q"}]}`,
		"messages.0.content.0.type":              `{"model":"m","max_tokens":9,"messages":[{"role":"user","content":[{"type":"document","source":{}}]}]}`,
		"messages.0.content.0":                   `{"model":"m","max_tokens":9,"messages":[{"role":"user","content":[{"type":"tool_use","id":"a","name":"f","input":{}}]}]}`,
		"messages.0.content.0.source.media_type": `{"model":"m","max_tokens":9,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/tiff","data":"x"}}]}]}`,
		"messages.0.role":                        `{"model":"m","max_tokens":9,"messages":[{"role":"system","content":"q"}]}`,
		"tools.0.type":                           `{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"q"}],"tools":[{"type":"web_search_20250305","name":"web_search"}]}`,
		"output_format":                          `{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"q"}],"output_format":{"type":"xml"}}`,
	}
	for param, body := range cases {
		_, _, err := ToChat([]byte(body), false)
		re, ok := err.(*chatwire.RequestError)
		if !ok || re.Param != param {
			t.Errorf("%s: got %v", param, err)
		}
	}
	// count_tokens needs no max_tokens.
	if _, _, err := ToChat([]byte(`{"model":"m","messages":[{"role":"user","content":"q"}]}`), true); err != nil {
		t.Errorf("count_tokens: %v", err)
	}
}

// TestFromChatStopReasonsAndUsage: finish reasons and usage (cached
// tokens apart) map to Anthropic's.
func TestFromChatStopReasonsAndUsage(t *testing.T) {
	cases := []struct {
		finish, extra string
		stops         []string
		reason, seq   string
	}{
		{"stop", "", nil, "end_turn", ""},
		{"length", "", nil, "max_tokens", ""},
		{"tool_calls", "", nil, "tool_use", ""},
		{"content_filter", "", nil, "refusal", ""},
		{"stop", `,"stop_reason":"END"`, []string{"##", "END"}, "stop_sequence", "END"},
		{"stop", `,"stop_reason":"END"`, nil, "end_turn", ""},
		{"stop", `,"stop_reason":151643`, []string{"END"}, "end_turn", ""},
	}
	for _, c := range cases {
		body := `{"id":"chatcmpl-9","model":"up","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"` + c.finish + `"` + c.extra + `}],` +
			`"usage":{"prompt_tokens":100,"completion_tokens":7,"total_tokens":107,"prompt_tokens_details":{"cached_tokens":60}}}`
		out, err := FromChat([]byte(body), Info{StopSequences: c.stops})
		if err != nil {
			t.Fatal(err)
		}
		var m Message
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatal(err)
		}
		seq := ""
		if m.StopSequence != nil {
			seq = *m.StopSequence
		}
		if *m.StopReason != c.reason || seq != c.seq || m.ID != "msg_9" || m.Model != "up" ||
			m.Usage != (Usage{InputTokens: 40, OutputTokens: 7, CacheReadInputTokens: 60}) {
			t.Errorf("%s%s: %s", c.finish, c.extra, out)
		}
	}
	tool := `{"id":"x","model":"up","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},"finish_reason":"stop"}]}`
	out, err := FromChat([]byte(tool), Info{})
	if err != nil || !strings.Contains(string(out), `"content":[{"type":"tool_use","id":"call_1","name":"f","input":{"a":1}}],"stop_reason":"tool_use"`) {
		t.Fatalf("%s %v", out, err)
	}
	bad := strings.Replace(tool, `{\"a\":1}`, `not json`, 1)
	if _, err := FromChat([]byte(bad), Info{}); err == nil {
		t.Fatal("tool arguments that are not JSON were accepted")
	}
	if _, err := FromChat([]byte(`{"choices":[]}`), Info{}); err == nil {
		t.Fatal("a response without a choice was accepted")
	}
}

func streamOf(t *testing.T, info Info, chunks ...string) (string, error) {
	t.Helper()
	s := NewStream(info, 11)
	var out []byte
	for _, c := range chunks {
		var err error
		if out, err = s.Chunk([]byte(c), out); err != nil {
			return string(out), err
		}
	}
	return string(s.End(&chatwire.Usage{PromptTokens: 11, CompletionTokens: 99}, out)), nil
}

// TestStreamTextThenTools: text, then two tool calls in fragments, then
// the finish and a usage chunk, become Anthropic's events with block
// indexes in order and the upstream's usage (cached tokens apart).
func TestStreamTextThenTools(t *testing.T) {
	out, err := streamOf(t, Info{Model: "m"},
		`{"id":"chatcmpl-1","model":"up","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`,
		`{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"Let me \"check\"."}}]}`,
		`{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":""}}]}}]}`,
		`{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}}]}}]}`,
		`{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}}]}`,
		`{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"c2","type":"function","function":{"name":"g","arguments":"{}"}}]}}]}`,
		`{"id":"chatcmpl-1","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`,
		`{"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":20,"completion_tokens":5,"total_tokens":25,"prompt_tokens_details":{"cached_tokens":8}}}`,
	)
	if err != nil {
		t.Fatal(err)
	}
	want := `event: message_start
data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"up","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":11,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}}

event: ping
data: {"type":"ping"}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me \"check\"."}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"c1","name":"f","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"1}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"c2","name":"g","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":12,"output_tokens":5,"cache_creation_input_tokens":0,"cache_read_input_tokens":8}}

event: message_stop
data: {"type":"message_stop"}

`
	if out != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out, want)
	}
}

// TestStreamFallbackUsageAndErrors: without upstream usage the gateway's
// count is reported; interleaved tool fragments and non-JSON chunks are
// errors, not silently wrong output.
func TestStreamFallbackUsageAndErrors(t *testing.T) {
	out, err := streamOf(t, Info{Model: "m", StopSequences: []string{"END"}},
		`{"id":"a","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop","stop_reason":"END"}]}`)
	if err != nil || !strings.Contains(out, `"delta":{"stop_reason":"stop_sequence","stop_sequence":"END"},"usage":{"input_tokens":11,"output_tokens":99,`) {
		t.Fatalf("%s %v", out, err)
	}
	_, err = streamOf(t, Info{},
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{"}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","function":{"name":"g","arguments":"{"}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"}"}}]}}]}`)
	if err == nil {
		t.Fatal("interleaved tool calls were accepted")
	}
	if _, err := streamOf(t, Info{}, `not json`); err == nil {
		t.Fatal("a chunk that is not JSON was accepted")
	}
	// A stream that ends before any chunk is still a whole message.
	out, _ = streamOf(t, Info{Model: "m"})
	if !strings.HasPrefix(out, "event: message_start") || !strings.HasSuffix(out, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n") {
		t.Fatalf("empty stream: %s", out)
	}
	e := ErrorEvent(529, "busy", nil)
	if string(e) != "event: error\ndata: {\"error\":{\"message\":\"busy\",\"type\":\"overloaded_error\"},\"type\":\"error\"}\n\n" {
		t.Fatalf("error event %q", e)
	}
}

// checkEvents fails unless out is a sequence of named events whose data
// is a JSON object of that type.
func checkEvents(t *testing.T, out []byte) {
	for _, ev := range bytes.Split(bytes.TrimSuffix(out, []byte("\n\n")), []byte("\n\n")) {
		if len(ev) == 0 {
			continue
		}
		name, data, ok := bytes.Cut(ev, []byte("\ndata: "))
		name, ok2 := bytes.CutPrefix(name, []byte("event: "))
		var v struct{ Type string }
		if !ok || !ok2 || json.Unmarshal(data, &v) != nil || v.Type != string(name) {
			t.Fatalf("malformed event %q in %q", ev, out)
		}
	}
}

// FuzzToChat: any body is translated or refused, never a panic, and what
// is translated is JSON.
func FuzzToChat(f *testing.F) {
	f.Add([]byte(`{"model":"m","max_tokens":9,"system":"S","messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image","source":{"type":"url","url":"https://x"}}]},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"r"}]}],"tools":[{"name":"f","input_schema":{}}],"tool_choice":{"type":"any"}}`), false)
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"x"}]}`), true)
	f.Fuzz(func(t *testing.T, body []byte, count bool) {
		out, _, err := ToChat(body, count)
		if err != nil {
			if _, ok := err.(*chatwire.RequestError); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON %q", out)
		}
	})
}

// FuzzFromChat: any upstream answer, whole or as a stream of chunks, is
// translated into valid Messages output or refused, never a panic.
func FuzzFromChat(f *testing.F) {
	f.Add([]byte(`{"id":"x","choices":[{"index":0,"message":{"content":"hi","tool_calls":[{"id":"c","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"length"}],"usage":{"prompt_tokens":3}}`))
	f.Add([]byte(`{"choices":[{"index":0,"delta":{"content":"a\u0000\"b"}}]}` + "\n" + `{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{\"x"}}]},"finish_reason":"tool_calls"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if out, err := FromChat(data, Info{Model: "m"}); err == nil && !json.Valid(out) {
			t.Fatalf("invalid JSON %q", out)
		}
		s := NewStream(Info{Model: "m"}, 1)
		var out []byte
		for _, line := range bytes.Split(data, []byte("\n")) {
			var err error
			if out, err = s.Chunk(line, out); err != nil {
				out = ErrorEvent(502, err.Error(), out)
				checkEvents(t, out)
				return
			}
		}
		out = s.End(nil, out)
		checkEvents(t, out)
	})
}

// TestOutputConfig: the current SDK's output_config carries the format
// and effort.
func TestOutputConfig(t *testing.T) {
	m := toChat(t, `{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"q"}],"output_config":{"effort":"max","format":{"type":"json_schema","schema":{"type":"object"}}}}`)
	if js(m["response_format"]) != `{"json_schema":{"name":"output","schema":{"type":"object"},"strict":true},"type":"json_schema"}` || m["reasoning_effort"] != "high" {
		t.Fatalf("%v", m)
	}
}

// TestUnknownFieldsNamedBounded: the refusal names unknown fields, a
// bounded number of them.
func TestUnknownFieldsNamedBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"q"}]`)
	for i := range 50 {
		b.WriteString(`,"x` + strings.Repeat("y", i) + `":1`)
	}
	b.WriteString(`}`)
	_, _, err := ToChat([]byte(b.String()), false)
	if err == nil || !strings.Contains(err.Error(), "x, xy,") || !strings.HasSuffix(err.Error(), "…") || len(err.Error()) > 300 {
		t.Fatalf("%v", err)
	}
}
