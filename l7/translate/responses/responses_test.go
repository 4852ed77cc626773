package responses

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/l7/translate/chatwire"
)

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestToChatMapping: each Responses feature lands where chat completions
// carries it.
func TestToChatMapping(t *testing.T) {
	cases := []struct {
		name, body, field, want string
	}{
		{"string input and instructions", `{"model":"m","instructions":"I","input":"hi"}`,
			"messages", `[{"content":"I","role":"system"},{"content":"hi","role":"user"}]`},
		{"items, images, developer role", `{"model":"m","input":[{"role":"developer","content":"D"},{"type":"message","role":"user","content":[{"type":"input_text","text":"see"},{"type":"input_image","image_url":"data:image/png;base64,AA","detail":"low"}]},{"role":"assistant","content":[{"type":"output_text","text":"ok"}]}]}`,
			"messages", `[{"content":"D","role":"system"},{"content":[{"text":"see","type":"text"},{"image_url":{"detail":"low","url":"data:image/png;base64,AA"},"type":"image_url"}],"role":"user"},{"content":"ok","role":"assistant"}]`},
		{"function calls and outputs", `{"model":"m","input":[{"role":"user","content":"q"},{"type":"reasoning","id":"rs_1","summary":[]},{"type":"function_call","call_id":"c1","name":"f","arguments":"{\"a\":1}"},{"type":"function_call","call_id":"c2","name":"g","arguments":""},{"type":"function_call_output","call_id":"c1","output":"one"},{"type":"function_call_output","call_id":"c2","output":[{"type":"input_text","text":"two"}]}]}`,
			"messages", `[{"content":"q","role":"user"},{"content":null,"role":"assistant","tool_calls":[{"function":{"arguments":"{\"a\":1}","name":"f"},"id":"c1","type":"function"},{"function":{"arguments":"{}","name":"g"},"id":"c2","type":"function"}]},{"content":"one","role":"tool","tool_call_id":"c1"},{"content":"two","role":"tool","tool_call_id":"c2"}]`},
		{"tools", `{"model":"m","input":"q","tools":[{"type":"function","name":"f","description":"D","parameters":{"type":"object"},"strict":true}]}`,
			"tools", `[{"function":{"description":"D","name":"f","parameters":{"type":"object"},"strict":true},"type":"function"}]`},
		{"tool_choice function", `{"model":"m","input":"q","tools":[{"type":"function","name":"f"}],"tool_choice":{"type":"function","name":"f"}}`,
			"tool_choice", `{"function":{"name":"f"},"type":"function"}`},
		{"json_schema", `{"model":"m","input":"q","text":{"format":{"type":"json_schema","name":"n","schema":{"type":"object"},"strict":true}}}`,
			"response_format", `{"json_schema":{"name":"n","schema":{"type":"object"},"strict":true},"type":"json_schema"}`},
		{"json_object", `{"model":"m","input":"q","text":{"format":{"type":"json_object"}}}`, "response_format", `{"type":"json_object"}`},
		{"max_output_tokens", `{"model":"m","input":"q","max_output_tokens":7,"store":false,"metadata":{"k":"v"}}`, "max_completion_tokens", `7`},
		{"reasoning effort", `{"model":"m","input":"q","reasoning":{"effort":"low"}}`, "reasoning_effort", `"low"`},
	}
	for _, c := range cases {
		out, _, err := ToChat([]byte(c.body))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if _, err := openai.ParseRequest(openai.ChatCompletions, out); err != nil {
			t.Fatalf("%s: the gateway's parser refuses %s: %v", c.name, out, err)
		}
		var m map[string]any
		_ = json.Unmarshal(out, &m)
		if got := js(m[c.field]); got != c.want {
			t.Errorf("%s: %s = %s\nwant %s", c.name, c.field, got, c.want)
		}
	}
}

// TestToChatRefuses: stateful and untranslatable features are refused by
// name.
func TestToChatRefuses(t *testing.T) {
	cases := map[string]string{
		"previous_response_id":          `{"model":"m","input":"q","previous_response_id":"resp_1"}`,
		"conversation":                  `{"model":"m","input":"q","conversation":"conv_1"}`,
		"background":                    `{"model":"m","input":"q","background":true}`,
		"tools[0].type":                 `{"model":"m","input":"q","tools":[{"type":"file_search"}]}`,
		"input[0].type":                 `{"model":"m","input":[{"type":"item_reference","id":"x"}]}`,
		"input":                         `{"model":"m"}`,
		"model":                         `{"input":"q"}`,
		"seed":                          `{"model":"m","input":"q","seed":1}`,
		"input[0].content[0].image_url": `{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"file_1"}]}]}`,
		"text.format.type":              `{"model":"m","input":"q","text":{"format":{"type":"yaml"}}}`,
	}
	for param, body := range cases {
		_, _, err := ToChat([]byte(body))
		re, ok := err.(*chatwire.RequestError)
		if !ok || re.Param != param {
			t.Errorf("%s: got %v", param, err)
		}
	}
}

// TestFromChat: text, refusal and function calls become output items;
// length is incomplete; usage carries cached and reasoning tokens.
func TestFromChat(t *testing.T) {
	body := `{"id":"chatcmpl-7","created":5,"model":"up","choices":[{"index":0,"finish_reason":"length","message":{"role":"assistant","content":"hi",` +
		`"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]}}],` +
		`"usage":{"prompt_tokens":10,"completion_tokens":4,"total_tokens":14,"prompt_tokens_details":{"cached_tokens":6},"completion_tokens_details":{"reasoning_tokens":2}}}`
	max := int64(4)
	out, err := FromChat([]byte(body), Info{Echo: Echo{MaxOutputTokens: &max}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"resp_7","object":"response","created_at":5,"status":"incomplete","error":null,"incomplete_details":{"reason":"max_output_tokens"},"instructions":null,"max_output_tokens":4,"model":"up",` +
		`"output":[{"type":"message","id":"msg_7","status":"completed","role":"assistant","content":[{"type":"output_text","text":"hi","annotations":[]}]},` +
		`{"type":"function_call","id":"fc_1","status":"completed","call_id":"call_1","name":"f","arguments":"{}"}],` +
		`"parallel_tool_calls":true,"previous_response_id":null,"store":false,"temperature":null,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":null,"truncation":"disabled",` +
		`"usage":{"input_tokens":10,"input_tokens_details":{"cached_tokens":6},"output_tokens":4,"output_tokens_details":{"reasoning_tokens":2},"total_tokens":14},"user":null,"metadata":{}}`
	if string(out) != want {
		t.Fatalf("got  %s\nwant %s", out, want)
	}
	for finish, status := range map[string]string{"stop": "completed", "tool_calls": "completed", "content_filter": "incomplete"} {
		out, _ := FromChat([]byte(strings.Replace(body, `"length"`, `"`+finish+`"`, 1)), Info{})
		if !strings.Contains(string(out), `"status":"`+status+`"`) {
			t.Errorf("%s: %s", finish, out)
		}
	}
	if _, err := FromChat([]byte(strings.Replace(body, `"arguments":"{}"`, `"arguments":"{"`, 1)), Info{}); err == nil {
		t.Fatal("invalid tool arguments were accepted")
	}
}

// TestStream: text then a function call, with sequence numbers in order,
// done events carrying the whole text and arguments, and the final
// response with the upstream's usage.
func TestStream(t *testing.T) {
	s := NewStream(Info{Model: "m"})
	var out []byte
	for _, c := range []string{
		`{"id":"chatcmpl-3","created":9,"model":"up","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}`,
		`{"id":"chatcmpl-3","choices":[{"index":0,"delta":{"content":"lo"}}]}`,
		`{"id":"chatcmpl-3","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","function":{"name":"f","arguments":"{\"x\":"}}]}}]}`,
		`{"id":"chatcmpl-3","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"2}"}}]}}]}`,
		`{"id":"chatcmpl-3","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`,
	} {
		var err error
		if out, err = s.Chunk([]byte(c), out); err != nil {
			t.Fatal(err)
		}
	}
	out = s.End(nil, out)
	evs := parse(t, out)
	var names []string
	for i, e := range evs {
		names = append(names, e["type"].(string))
		if e["sequence_number"].(float64) != float64(i) {
			t.Fatalf("event %d: sequence_number %v", i, e["sequence_number"])
		}
	}
	want := "response.created response.in_progress response.output_item.added response.content_part.added response.output_text.delta response.output_text.delta " +
		"response.output_text.done response.content_part.done response.output_item.done response.output_item.added response.function_call_arguments.delta " +
		"response.function_call_arguments.delta response.function_call_arguments.done response.output_item.done response.completed"
	if strings.Join(names, " ") != want {
		t.Fatalf("events %s", names)
	}
	if evs[6]["text"] != "Hello" || evs[12]["arguments"] != `{"x":2}` || evs[12]["output_index"].(float64) != 1 {
		t.Fatalf("done events %v %v", evs[6], evs[12])
	}
	final := js(evs[14]["response"])
	if !strings.Contains(final, `"output":[{"content":[{"annotations":[],"text":"Hello","type":"output_text"}],"id":"msg_3","role":"assistant","status":"completed","type":"message"},`+
		`{"arguments":"{\"x\":2}","call_id":"call_a","id":"fc_a","name":"f","status":"completed","type":"function_call"}]`) ||
		!strings.Contains(final, `"status":"completed"`) || !strings.Contains(final, `"output_tokens":2`) {
		t.Fatalf("final %s", final)
	}
	e := parse(t, s.ErrorEvent("upstream_stream_broken", "broke", nil))
	if e[0]["type"] != "error" || e[0]["sequence_number"].(float64) != 15 || e[0]["code"] != "upstream_stream_broken" {
		t.Fatalf("error event %v", e)
	}
}

// parse checks each event's name against its data's type and returns
// the data.
func parse(t *testing.T, out []byte) []map[string]any {
	var evs []map[string]any
	for _, ev := range bytes.Split(bytes.TrimSuffix(out, []byte("\n\n")), []byte("\n\n")) {
		if len(ev) == 0 {
			continue
		}
		name, data, ok := bytes.Cut(ev, []byte("\ndata: "))
		name, ok2 := bytes.CutPrefix(name, []byte("event: "))
		var m map[string]any
		if !ok || !ok2 || json.Unmarshal(data, &m) != nil || m["type"] != string(name) {
			t.Fatalf("malformed event %q", ev)
		}
		evs = append(evs, m)
	}
	return evs
}

// FuzzToChat: any body is translated or refused, never a panic, and what
// is translated is JSON.
func FuzzToChat(f *testing.F) {
	f.Add([]byte(`{"model":"m","instructions":"I","input":[{"role":"user","content":[{"type":"input_text","text":"q"}]},{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"r"}],"tools":[{"type":"function","name":"f"}],"text":{"format":{"type":"json_schema","name":"n","schema":{}}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		out, _, err := ToChat(body)
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

// FuzzFromChat: any upstream answer, whole or as chunks, becomes valid
// Responses output or is refused, never a panic.
func FuzzFromChat(f *testing.F) {
	f.Add([]byte(`{"id":"x","choices":[{"index":0,"message":{"content":"hi","refusal":"no","tool_calls":[{"id":"c","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"length"}]}`))
	f.Add([]byte(`{"choices":[{"index":0,"delta":{"content":"a\u0000\"b"}}]}` + "\n" + `{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{\"x"}}]},"finish_reason":"tool_calls"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if out, err := FromChat(data, Info{Model: "m"}); err == nil && !json.Valid(out) {
			t.Fatalf("invalid JSON %q", out)
		}
		s := NewStream(Info{Model: "m"})
		var out []byte
		for _, line := range bytes.Split(data, []byte("\n")) {
			var err error
			if out, err = s.Chunk(line, out); err != nil {
				parse(t, s.ErrorEvent("x", err.Error(), out))
				return
			}
		}
		parse(t, s.End(nil, out))
	})
}
