package chatwire

import (
	"encoding/json"
	"testing"
)

// TestContentWrites: each kind of content is written as the chat API has
// it (null, "", a string, the client's own JSON string, parts) and read
// back to the same text; the zero value is null, not "".
func TestContentWrites(t *testing.T) {
	for _, c := range []struct {
		c    Content
		want string
		text string
	}{
		{Content{}, `null`, ""},
		{TextContent(""), `""`, ""},
		{TextContent("a<b"), `"a\u003cb"`, "a<b"},
		{Content{Text: "lit"}, `"lit"`, "lit"},
		{RawText(json.RawMessage(`"raw \u00e9"`)), `"raw \u00e9"`, "raw é"},
		{PartsContent([]Part{{Type: "text", Text: "p"}, {Type: "text", Text: "q"}}), `[{"type":"text","text":"p"},{"type":"text","text":"q"}]`, "p\nq"},
	} {
		r := Request{Model: "m", Messages: []Message{{Role: "user", Content: c.c}}}
		b, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		want := `{"model":"m","messages":[{"role":"user","content":` + c.want + `}]}`
		if string(b) != want {
			t.Errorf("wrote %s, want %s", b, want)
		}
		if got := c.c.JoinedText(); got != c.text {
			t.Errorf("%s: text %q, want %q", c.want, got, c.text)
		}
		var back Request
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if got := back.Messages[0].Content.JoinedText(); got != c.text {
			t.Errorf("%s read back as %q", c.want, got)
		}
		if again, _ := json.Marshal(&back); string(again) != want && c.c.raw == nil {
			t.Errorf("%s read and written again as %s", want, again)
		}
	}
}

// TestParseChunkAllocs: the object name every streamed chunk carries is
// read without an allocation: a chunk with it costs what one without it
// does.
func TestParseChunkAllocs(t *testing.T) {
	with := []byte(`{"id":"","object":"chat.completion.chunk","created":1,"model":"","choices":[{"index":0,"delta":{"content":" the"},"finish_reason":null}]}`)
	without := []byte(`{"id":"","created":1,"model":"","choices":[{"index":0,"delta":{"content":" the"},"finish_reason":null}]}`)
	var c Chunk
	allocs := func(b []byte) float64 {
		if err := ParseChunk(b, &c); err != nil {
			t.Fatal(err)
		}
		return testing.AllocsPerRun(50, func() { _ = ParseChunk(b, &c) })
	}
	if w, wo := allocs(with), allocs(without); w > wo {
		t.Fatalf("%v allocations with the object name, %v without", w, wo)
	}
	_ = ParseChunk(with, &c)
	if c.Object != ObjectChunk {
		t.Fatalf("object %q", c.Object)
	}
	var o Object
	if err := json.Unmarshal([]byte(`"other\u0021"`), &o); err != nil || o != "other!" {
		t.Fatalf("%q %v", o, err)
	}
	if err := json.Unmarshal([]byte(`1`), &o); err == nil {
		t.Fatal("a number was taken as an object name")
	}
}
