package cache

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestMemoryByteBound: however many entries go in, the bytes held stay
// within the bound, the least recently used go first, and a read makes an
// entry recently used.
func TestMemoryByteBound(t *testing.T) {
	const bound = 10_000
	now := time.Unix(1000, 0)
	s, err := NewStore(Options{MemoryBytes: bound, MaxEntryBytes: 2000, TTL: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	key := func(i int) Key { return digest("", "/x", "m", []byte(fmt.Sprint(i))) }
	body := bytes.Repeat([]byte("x"), 840) // 1000 bytes with the overhead
	for i := range 100 {
		if !s.Put(key(i), &Entry{Body: body}) {
			t.Fatalf("entry %d not stored", i)
		}
		if i == 95 {
			if _, ok := s.Get(t.Context(), key(91)); !ok { // 91 becomes recent
				t.Fatal("entry 91 gone too early")
			}
		}
		if _, used := s.Stats(); used > bound {
			t.Fatalf("after %d entries %d bytes held, bound %d", i+1, used, bound)
		}
	}
	n, used := s.Stats()
	if n != 10 || used != bound {
		t.Fatalf("%d entries, %d bytes; want 10 and %d", n, used, bound)
	}
	for _, i := range []int{91, 99, 90} {
		if _, ok := s.Get(t.Context(), key(i)); !ok {
			t.Fatalf("recent entry %d evicted", i)
		}
	}
	if _, ok := s.Get(t.Context(), key(89)); ok {
		t.Fatal("least recently used entry 89 kept")
	}
	if s.Put(key(1000), &Entry{Body: bytes.Repeat([]byte("y"), 2001)}) {
		t.Fatal("entry over maxEntryBytes stored")
	}
}

// TestMemoryTTL: an entry is served until its TTL and not after.
func TestMemoryTTL(t *testing.T) {
	now := time.Unix(1000, 0)
	s, _ := NewStore(Options{TTL: time.Minute, Now: func() time.Time { return now }})
	k := digest("a", "/x", "m", nil)
	s.Put(k, &Entry{Body: []byte("{}")})
	now = now.Add(59 * time.Second)
	if _, ok := s.Get(t.Context(), k); !ok {
		t.Fatal("expired early")
	}
	now = now.Add(time.Second)
	if _, ok := s.Get(t.Context(), k); ok {
		t.Fatal("served past its TTL")
	}
	if n, used := s.Stats(); n != 0 || used != 0 {
		t.Fatalf("expired entry still held: %d, %d bytes", n, used)
	}
}

// TestRequestFacts: the key covers every member that can change the
// answer and none that cannot; temperature 0 in any spelling is
// deterministic; the scope, endpoint and model separate keys.
func TestRequestFacts(t *testing.T) {
	base := `{"model":"a","temperature":0,"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`
	k := func(scope, body string) Facts {
		t.Helper()
		f, err := RequestFacts(scope, "/chat/completions", "m", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	b := k("t1", base)
	if !b.Deterministic || b.LastUser != "hi" {
		t.Fatalf("facts %+v", b)
	}
	for _, same := range []string{
		`{"messages":[{"content":"hi","role":"user"}],"max_tokens":5.0,"temperature":0.0,"model":"b","stream":true,"stream_options":{"include_usage":true},"user":"u","metadata":{"a":"b"},"store":true}`,
		" \n" + base,
	} {
		if k("t1", same).Key != b.Key {
			t.Errorf("%s: other key", same)
		}
	}
	for _, other := range []string{
		`{"temperature":0,"max_tokens":6,"messages":[{"role":"user","content":"hi"}]}`,
		`{"temperature":0,"max_tokens":5,"messages":[{"role":"user","content":"hi!"}]}`,
		`{"temperature":0,"max_tokens":5,"seed":1,"messages":[{"role":"user","content":"hi"}]}`,
		`{"temperature":0,"max_tokens":5,"tools":[],"messages":[{"role":"user","content":"hi"}]}`,
		`{"temperature":0,"max_tokens":5,"unknown_param":1,"messages":[{"role":"user","content":"hi"}]}`,
	} {
		if k("t1", other).Key == b.Key {
			t.Errorf("%s: same key", other)
		}
	}
	if k("t2", base).Key == b.Key {
		t.Error("another scope, same key")
	}
	if f, _ := RequestFacts("t1", "/completions", "m", []byte(base)); f.Key == b.Key {
		t.Error("another endpoint, same key")
	}
	for _, nd := range []string{`{"temperature":0.1}`, `{}`, `{"temperature":"0"}`} {
		if k("t1", nd).Deterministic {
			t.Errorf("%s taken as deterministic", nd)
		}
	}
	// The context key leaves out the last user message only.
	p := k("t1", `{"temperature":0,"max_tokens":5,"messages":[{"role":"user","content":"hello"}]}`)
	if p.Context != b.Context || p.Key == b.Key {
		t.Error("context key depends on the last user message, or the exact key does not")
	}
	if q := k("t1", `{"temperature":0,"max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`); q.Context == b.Context {
		t.Error("context key ignores max_tokens")
	}
	if _, err := RequestFacts("", "/x", "m", []byte(`[1]`)); err == nil {
		t.Error("a non-object body gave a key")
	}
}

// TestAssembleAndReplay: a stream assembled into a whole answer and
// replayed gives back the text, finish reason and usage; what cannot be
// rebuilt exactly is refused.
func TestAssembleAndReplay(t *testing.T) {
	events := []string{
		`{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"content":", \"world\""},"finish_reason":null}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`,
		`[DONE]`,
	}
	var a Assembler
	a.Reset(1 << 20)
	for _, e := range events {
		a.Event([]byte(e))
	}
	body, ok := a.Whole(3, 4)
	if !ok {
		t.Fatal("not assembled")
	}
	var w wholeAnswer
	if err := json.Unmarshal(body, &w); err != nil || w.Object != ObjectChat || len(w.Choices) != 1 ||
		*w.Choices[0].Message.Content != `Hello, "world"` || *w.Choices[0].FinishReason != "stop" {
		t.Fatalf("whole %s", body)
	}
	sse, err := Replay(&Entry{Body: body, PromptTokens: 3, CompletionTokens: 4}, true)
	if err != nil {
		t.Fatal(err)
	}
	s := string(sse)
	for _, want := range []string{`"delta":{"content":"Hello, \"world\"","role":"assistant"}`, `"finish_reason":"stop"`,
		`"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}`} {
		if !strings.Contains(s, want) {
			t.Errorf("replay lacks %s:\n%s", want, s)
		}
	}
	if !strings.HasSuffix(s, "data: [DONE]\n\n") || strings.Count(s, "\n\n") != 4 {
		t.Fatalf("replay framing:\n%s", s)
	}
	noUsage, _ := Replay(&Entry{Body: body}, false)
	if strings.Contains(string(noUsage), "usage") {
		t.Fatal("usage chunk replayed when not asked for")
	}
	for name, evs := range map[string][]string{
		"no [DONE]":  events[:5],
		"no finish":  {events[0], events[1], `[DONE]`},
		"tool calls": {`{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[{"index":0}]}}]}`, events[3], `[DONE]`},
		"logprobs":   {`{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a"},"logprobs":{"content":[]}}]}`, events[3], `[DONE]`},
		"error":      {events[1], `{"error":{"message":"x"}}`, events[3], `[DONE]`},
	} {
		a.Reset(1 << 20)
		for _, e := range evs {
			a.Event([]byte(e))
		}
		if _, ok := a.Whole(1, 1); ok {
			t.Errorf("%s: assembled", name)
		}
	}
	a.Reset(10)
	for _, e := range events {
		a.Event([]byte(e))
	}
	if _, ok := a.Whole(1, 1); ok {
		t.Error("over the size bound: assembled")
	}
}

// TestReplayToolCalls: a whole answer with tool calls replays them as
// deltas with their index.
func TestReplayToolCalls(t *testing.T) {
	body := `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}`
	sse, err := Replay(&Entry{Body: []byte(body)}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sse), `"tool_calls":[{"function":{"arguments":"{}","name":"f"},"id":"call_1","index":0,"type":"function"}]`) {
		t.Fatalf("replay %s", sse)
	}
}

// TestIndexSearch: the nearest vector of the same scope, model and
// context at or above the threshold is found; other scopes, contexts,
// expired and evicted vectors are not.
func TestIndexSearch(t *testing.T) {
	now := time.Unix(1000, 0)
	ix := NewIndex(50, time.Minute, func() time.Time { return now })
	vec := func(i int) []float32 {
		v := make([]float32, 16)
		v[i%16] = 1
		v[(i+1)%16] = 0.2
		return v
	}
	ctx := Key{1}
	for i := range 16 {
		ix.Add("t", "m", vec(i), ctx, Key{byte(i + 10)})
	}
	k, sim, ok := ix.Search("t", "m", vec(3), ctx, 0.99)
	if !ok || k != (Key{13}) || sim < 0.99 {
		t.Fatalf("search: %v %v %v", k, sim, ok)
	}
	near := vec(3)
	near[5] = 0.1
	if k, _, ok := ix.Search("t", "m", near, ctx, 0.95); !ok || k != (Key{13}) {
		t.Fatal("close vector missed")
	}
	if _, _, ok := ix.Search("t", "m", near, ctx, 0.9999); ok {
		t.Fatal("found above the similarity it has")
	}
	if _, _, ok := ix.Search("u", "m", vec(3), ctx, 0.9); ok {
		t.Fatal("found in another scope")
	}
	if _, _, ok := ix.Search("t", "m", vec(3), Key{2}, 0.9); ok {
		t.Fatal("found for another context")
	}
	ix.Forget("t", "m", Key{13})
	if _, _, ok := ix.Search("t", "m", vec(3), ctx, 0.99); ok {
		t.Fatal("forgotten vector found")
	}
	// Bounded: the oldest go first.
	for i := range 100 {
		ix.Add("t", "m2", vec(i), ctx, Key{byte(i)})
		if ix.Len() > 50 {
			t.Fatalf("%d vectors held, bound 50", ix.Len())
		}
	}
	now = now.Add(time.Minute)
	if _, _, ok := ix.Search("t", "m2", vec(99), ctx, 0.9); ok {
		t.Fatal("expired vector found")
	}
}
