package openai

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseChat(t *testing.T) {
	r, err := ParseRequest(ChatCompletions, []byte(`{"model":"m","stream":true,"max_tokens":5,"n":2,
		"messages":[{"role":"system","content":"be brief"},
		{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]},
		{"role":"assistant","content":null,"tool_calls":[{"id":"1"}]}],"extra":{"kept":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Texts) != 3 || r.Texts[1].Value != "a" || r.Texts[1].Part != 0 || r.Texts[2].Part != 2 || r.Texts[2].Message != 1 {
		t.Fatalf("texts %+v", r.Texts)
	}
	if !r.Stream || r.WantsUsage() || r.CompletionBudget(100) != 10 {
		t.Fatalf("request %+v", r)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		ep    Endpoint
		body  string
		param string
	}{
		{ChatCompletions, `{"model":"m","messages":"x"}`, "messages"},
		{ChatCompletions, `{"model":"m","Messages":[{"role":"user","content":"x"}]}`, "messages"},
		{ChatCompletions, `{"model":5,"messages":[]}`, "model"},
		{ChatCompletions, `{"model":"m"}`, "messages"},
		{ChatCompletions, `{"model":"m","messages":[{"role":"user","content":{"a":1}}]}`, "messages[0].content"},
		{Completions, `{"model":"m","prompt":{"a":1}}`, "prompt"},
		{Completions, `{"model":"m","prompt":[true]}`, "prompt"},
		{Embeddings, `{"model":"m"}`, "input"},
		{ChatCompletions, `{"model":"m","n":0,"messages":[{"role":"user","content":"x"}]}`, "n"},
		{ChatCompletions, ``, ""},
	} {
		_, err := ParseRequest(tc.ep, []byte(tc.body))
		var e *Error
		if !errors.As(err, &e) || e.Status != 400 || e.Param != tc.param {
			t.Fatalf("%s: %v (param %q)", tc.body, err, tc.param)
		}
	}
	r, err := ParseRequest(Completions, []byte(`{"model":"m","prompt":[[1,2,3],"text",7]}`))
	if err != nil || r.TokenInputs != 4 || len(r.Texts) != 1 || r.Texts[0].Item != 1 {
		t.Fatalf("token prompt %+v %v", r, err)
	}
}

// TestExactKeys: keys are matched exactly, as upstream servers do, so a
// differently-cased duplicate cannot hide text from inspection.
func TestExactKeys(t *testing.T) {
	r, err := ParseRequest(ChatCompletions, []byte(`{"model":"m","messages":[{"role":"user","content":"evil","Content":"benign"}]}`))
	if err != nil || len(r.Texts) != 1 || r.Texts[0].Value != "evil" {
		t.Fatalf("%+v %v", r, err)
	}
	r, err = ParseRequest(ChatCompletions, []byte(`{"model":"m","messages":[{"role":"user","content":"a","content":"last wins"}]}`))
	if err != nil || r.Texts[0].Value != "last wins" {
		t.Fatalf("%+v %v", r, err)
	}
}

func TestErrorShape(t *testing.T) {
	w := httptest.NewRecorder()
	BadRequest("invalid_json", "bad", "").Write(w)
	if w.Code != 400 || w.Body.String() != `{"error":{"message":"bad","type":"invalid_request_error","code":"invalid_json","param":null}}` {
		t.Fatalf("%d %s", w.Code, w.Body.String())
	}
}

func TestRewrite(t *testing.T) {
	body := []byte(`{"model":"m","stream":true,"messages":[{"role":"user","content":"my mail a@b.c"},{"role":"user","content":[{"type":"text","text":"x a@b.c"}]}],"temperature":0.5}`)
	r, err := ParseRequest(ChatCompletions, body)
	if err != nil {
		t.Fatal(err)
	}
	// Splice path: only include_usage.
	out, err := (&Rewrite{IncludeUsage: true}).Apply(r, body)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := ParseRequest(ChatCompletions, out)
	if err != nil || !r2.WantsUsage() || !strings.Contains(string(out), `"temperature":0.5`) {
		t.Fatalf("splice %s %v", out, err)
	}
	// Full path: model, texts, usage.
	out, err = (&Rewrite{Model: "up", IncludeUsage: true, Texts: []string{"my mail [R]", "x [R]"}}).Apply(r, body)
	if err != nil {
		t.Fatal(err)
	}
	r3, err := ParseRequest(ChatCompletions, out)
	if err != nil || r3.Model != "up" || !r3.WantsUsage() || r3.Texts[0].Value != "my mail [R]" || r3.Texts[1].Value != "x [R]" ||
		strings.Contains(string(out), "a@b.c") || !strings.Contains(string(out), `"temperature":0.5`) {
		t.Fatalf("rewrite %s %v", out, err)
	}
	// include_usage false is overridden, other stream options kept.
	body = []byte(`{"model":"m","prompt":["a","b"],"stream":true,"stream_options":{"include_usage":false,"other":1}}`)
	r, _ = ParseRequest(Completions, body)
	out, _ = (&Rewrite{IncludeUsage: true, Texts: []string{"a", "B"}}).Apply(r, body)
	if !strings.Contains(string(out), `"stream_options":{"include_usage":true,"other":1}`) || !strings.Contains(string(out), `"prompt":["a","B"]`) {
		t.Fatalf("rewrite %s", out)
	}
}

func TestEventReader(t *testing.T) {
	stream := ": comment\n\ndata: {\"a\":1}\n\ndata: x\r\ndata: y\r\n\r\nevent: e\ndata:" + strings.Repeat("z", 70000) + "\n\ndata: [DONE]\n\ndata: partial"
	er := NewEventReader(bufio.NewReaderSize(strings.NewReader(stream), 16))
	var datas []string
	var raws strings.Builder
	for {
		raw, data, err := er.Next()
		if err == io.ErrUnexpectedEOF {
			raws.Write(raw)
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		raws.Write(raw)
		datas = append(datas, string(data))
	}
	if len(datas) != 5 || datas[0] != "" || datas[1] != `{"a":1}` || datas[2] != "x\ny" || len(datas[3]) != 70000 || datas[4] != "[DONE]" {
		t.Fatalf("datas %q", datas)
	}
	// Raw bytes pass through unchanged (the reader only drops blank lines
	// between events).
	if raws.String() != stream {
		t.Fatalf("raw bytes changed")
	}
}

func TestEventTooLarge(t *testing.T) {
	er := NewEventReader(bufio.NewReader(strings.NewReader("data: " + strings.Repeat("a", MaxEventBytes+1) + "\n\n")))
	if _, _, err := er.Next(); !errors.Is(err, ErrEventTooLarge) {
		t.Fatalf("err %v", err)
	}
}

func TestParseChunkNoStaleFields(t *testing.T) {
	var c Chunk
	_ = ParseChunk([]byte(`{"choices":[{"delta":{"content":"hi"}}]}`), &c)
	_ = ParseChunk([]byte(`{"choices":[{"delta":{}}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`), &c)
	if string(c.AppendText(nil)) != "" || c.Usage.CompletionTokens != 2 {
		t.Fatalf("chunk %+v", c)
	}
}

// FuzzParseRequest: the parser never panics, and what it accepts
// survives a rewrite that changes every text and re-parses to the same
// shape.
func FuzzParseRequest(f *testing.F) {
	f.Add(uint8(0), []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	f.Add(uint8(0), []byte(`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"}]}],"stream":true}`))
	f.Add(uint8(1), []byte(`{"model":"m","prompt":["a",[1,2]],"stream_options":{"include_usage":false}}`))
	f.Add(uint8(2), []byte(`{"model":"m","input":"x"}`))
	f.Add(uint8(0), []byte(`{"model":"m","max_tokens":-1}`))
	f.Fuzz(func(t *testing.T, ep uint8, body []byte) {
		e := Endpoint(ep % 3)
		r, err := ParseRequest(e, body)
		if err != nil {
			var oe *Error
			if !errors.As(err, &oe) || oe.Status != 400 {
				t.Fatalf("error %v is not a 400", err)
			}
			if !json.Valid(oe.Marshal()) {
				t.Fatal("error body is not JSON")
			}
			return
		}
		texts := make([]string, len(r.Texts))
		for i := range texts {
			texts[i] = "<" + r.Texts[i].Value + ">"
		}
		out, err := (&Rewrite{Model: "x", IncludeUsage: r.Stream, Texts: texts}).Apply(r, body)
		if err != nil {
			t.Fatalf("rewrite of an accepted body failed: %v", err)
		}
		r2, err := ParseRequest(e, out)
		if err != nil {
			t.Fatalf("rewritten body rejected: %v\n%s", err, out)
		}
		if r2.Model != "x" || len(r2.Texts) != len(texts) || r2.TokenInputs != r.TokenInputs {
			t.Fatalf("rewrite changed shape: %s", out)
		}
		for i := range texts {
			if r2.Texts[i].Value != texts[i] {
				t.Fatalf("text %d: %q want %q", i, r2.Texts[i].Value, texts[i])
			}
		}
	})
}

func TestFindUsage(t *testing.T) {
	for _, tc := range []struct {
		body string
		want int64
		ok   bool
	}{
		{`{"choices":[{"message":{"content":"say \"usage\": {}"}}],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8,"completion_tokens_details":{"reasoning_tokens":0}}}`, 5, true},
		{`{"usage": {"prompt_tokens":1,"completion_tokens":2}, "choices":[]}`, 2, true},
		{`{"choices":[],"usage":null}`, 0, false},
		{`{"choices":[{"text":"no usage here"}]}`, 0, false},
		{`{"usage":{"completion_tokens":"x"}}`, 0, false},
		{`{"usage":{"completion_tokens":1`, 0, false},
	} {
		u, ok := FindUsage([]byte(tc.body))
		if ok != tc.ok || u.CompletionTokens != tc.want {
			t.Fatalf("%s: %+v %v", tc.body, u, ok)
		}
		// Whenever it answers, it agrees with a full decode.
		var full Response
		if ok && (json.Unmarshal([]byte(tc.body), &full) != nil || full.Usage == nil || *full.Usage != u) {
			t.Fatalf("%s: disagrees with full decode %+v", tc.body, full.Usage)
		}
	}
}

func FuzzFindUsage(f *testing.F) {
	f.Add([]byte(`{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}`))
	f.Add([]byte(`{"a":"\"usage\":{\"completion_tokens\":9}","usage":{"completion_tokens":1,"x":{"y":[1]}}}`))
	f.Add([]byte(`{"usage":{"Completion_tokens":1,"completion_tokens":2.5}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		u, ok := FindUsage(body)
		ru, rok := referenceUsage(body)
		if !topLevelUsageLast(body) {
			return // the oracle only holds when the last "usage" key is the top-level one
		}
		if ok != rok || u != ru {
			t.Fatalf("FindUsage %+v %v, reference %+v %v", u, ok, ru, rok)
		}
	})
}

// referenceUsage reads the usage object with encoding/json, by exact key.
func referenceUsage(body []byte) (Usage, bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return Usage{}, false
	}
	raw, ok := top["usage"]
	if !ok || isNull(raw) {
		return Usage{}, false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return Usage{}, false
	}
	var u Usage
	for k, dst := range map[string]*int64{"prompt_tokens": &u.PromptTokens, "completion_tokens": &u.CompletionTokens, "total_tokens": &u.TotalTokens} {
		if v, ok := m[k]; ok && !isNull(v) {
			if json.Unmarshal(v, dst) != nil {
				return Usage{}, false
			}
		}
	}
	return u, true
}

// topLevelUsageLast: the fuzz oracle only holds when the last "usage" key
// is the top-level one (nested usage keys in other objects are possible in
// arbitrary JSON but not in OpenAI responses).
func topLevelUsageLast(body []byte) bool {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return false
	}
	raw, ok := top["usage"]
	if !ok {
		return false
	}
	return !strings.Contains(string(body[strings.LastIndex(string(body), string(raw))+len(raw):]), `"usage"`)
}

// FuzzDecodeMatchesReference: the one-pass decoder accepts exactly what the
// encoding/json-based reference accepts and reads the same fields.
func FuzzDecodeMatchesReference(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","messages":[{"role":"user","content":"a","Content":"b","content":"c"}],"stream":true,"stream_options":{"include_usage":true}}`,
		`{"mod\u0065l":"m","messages":[null,{"role":"u","content":[{"type":"text","text":"x\ud800"}]}]}`,
		`{"model":"m","max_tokens":1.0,"max_tokens":3,"n":-0}`,
		`{"model":"m","prompt":[[1,2],"a"],"input":" x ","x":[{"a":[1e5,-2.5E-3,true,false,null]}]}`,
		`{"model":"m","messages":[{"role":5}]}`,
		"{\"model\":\"\xff\xfe\",\"messages\":[{\"content\":\"\\u00e9\\n\"}]} ",
		// A later content key replaces a string content the decoder has
		// already scanned: its scan must not outlive it.
		`{"model":"m","messages":[{"role":"user","content":"a","content":5}]}`,
		`{"model":"m","messages":[{"role":"user","content":"a","content":[{"type":"text","text":"b"}]}]}`,
		`{"model":"m","messages":[{"role":"user","content":"a","content":null}]}`,
	} {
		f.Add(uint8(0), []byte(s))
	}
	// str tests eight bytes at a time: put each byte it must stop at (and
	// the neighbours of those bytes) at every offset of a word and past it.
	for _, special := range []string{`"`, `\n`, `\u00e9`, `\x`, "\x00", "\x01", "\x1f", " ", "!", "#", "[", "]", "\x7f", "\x80", "\xff", "\xc3\xa9"} {
		for at := range 18 {
			text := strings.Repeat("a", at) + special + strings.Repeat("b", 18-at)
			f.Add(uint8(0), []byte(`{"model":"`+text+`","messages":[{"role":"user","content":"`+text+`"}]}`))
		}
	}
	f.Fuzz(func(t *testing.T, ep uint8, body []byte) {
		e := Endpoint(ep % 3)
		var fast, slow Request
		ef := parseInto(&fast, e, body, (*Request).decodeFast)
		es := parseInto(&slow, e, body, (*Request).decodeSlow)
		if (ef == nil) != (es == nil) {
			t.Fatalf("fast err %v, reference err %v\n%q", ef, es, body)
		}
		if ef != nil {
			var a, b *Error
			if !errors.As(ef, &a) || !errors.As(es, &b) || a.Status != b.Status {
				t.Fatalf("fast err %v, reference err %v", ef, es)
			}
			return
		}
		if fast.Model != slow.Model || fast.Stream != slow.Stream || fast.WantsUsage() != slow.WantsUsage() ||
			(fast.StreamOptions == nil) != (slow.StreamOptions == nil) ||
			fast.CompletionBudget(7) != slow.CompletionBudget(7) || fast.TokenInputs != slow.TokenInputs ||
			len(fast.Messages) != len(slow.Messages) || len(fast.Texts) != len(slow.Texts) {
			t.Fatalf("fast %+v\nreference %+v\n%q", fast, slow, body)
		}
		for i := range fast.Messages {
			a, b := fast.Messages[i], slow.Messages[i]
			if a.Role != b.Role || a.Name != b.Name || a.ToolCallID != b.ToolCallID ||
				string(a.ToolCalls) != string(b.ToolCalls) || (isNull(a.Content) != isNull(b.Content)) ||
				(!isNull(a.Content) && string(a.Content) != string(b.Content)) {
				t.Fatalf("message %d: fast %+v reference %+v", i, a, b)
			}
		}
		for i := range fast.Texts {
			if fast.Texts[i] != slow.Texts[i] {
				t.Fatalf("text %d: fast %+v reference %+v", i, fast.Texts[i], slow.Texts[i])
			}
		}
	})
}

// referenceChunk reads a chunk with encoding/json by exact keys: the text
// of every choice and the usage.
func referenceChunk(data []byte) (text string, nChoices int, u *Usage, ok bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil || top == nil {
		return "", 0, nil, false
	}
	if raw, has := top["choices"]; has && !isNull(raw) {
		var choices []map[string]json.RawMessage
		if json.Unmarshal(raw, &choices) != nil {
			return "", 0, nil, false
		}
		for _, ch := range choices {
			nChoices++
			var t string
			if v, has := ch["text"]; has && !isNull(v) {
				if json.Unmarshal(v, &t) != nil {
					return "", 0, nil, false
				}
			}
			var content string
			if v, has := ch["delta"]; has && !isNull(v) {
				var d map[string]json.RawMessage
				if json.Unmarshal(v, &d) != nil {
					return "", 0, nil, false
				}
				if cv, has := d["content"]; has && !isNull(cv) {
					if json.Unmarshal(cv, &content) != nil {
						return "", 0, nil, false
					}
				}
			}
			text += content + t
		}
	}
	if raw, has := top["usage"]; has && !isNull(raw) {
		ru, rok := referenceUsage([]byte(`{"usage":` + string(raw) + `}`))
		if !rok {
			return "", 0, nil, false
		}
		u = &ru
	}
	return text, nChoices, u, true
}

func FuzzParseChunk(f *testing.F) {
	f.Add(benchChunk)
	f.Add([]byte(`{"choices":[{"delta":{"content":"a","Content":"b"}},null,{"text":"\u00e9"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`))
	f.Add([]byte(`{"choices":[],"usage":null,"choices":[{"delta":null}]}`))
	f.Add([]byte(`{"choices":[{"delta":{"content":5}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Chunk
		err := ParseChunk(data, &c)
		text, n, u, ok := referenceChunk(data)
		if (err == nil) != ok {
			t.Fatalf("ParseChunk err %v, reference ok %v: %q", err, ok, data)
		}
		if !ok {
			return
		}
		if got := string(c.AppendText(nil)); got != text || len(c.Choices) != n || (c.Usage == nil) != (u == nil) || (u != nil && *c.Usage != *u) {
			t.Fatalf("ParseChunk %q %d %+v, reference %q %d %+v", got, len(c.Choices), c.Usage, text, n, u)
		}
	})
}

// TestV1Path: the precomputed upstream path is Path under /v1 for every
// endpoint.
func TestV1Path(t *testing.T) {
	for _, e := range []Endpoint{ChatCompletions, Completions, Embeddings} {
		if got, want := e.V1Path(), "/v1"+e.Path(); got != want {
			t.Errorf("%v: V1Path %q, want %q", e, got, want)
		}
	}
}
