package chatwire

import (
	"encoding/json"
	"testing"
)

// FuzzAppendString: the streamed events' string writer always yields
// valid JSON that decodes to what encoding/json decodes its own output to.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "q\"b\\s\n\r\t\x00\x1f", "é ✓ \u2028", "\xff\xfe bad"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := AppendString(nil, s)
		var back, want string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q -> %s: %v", s, got, err)
		}
		ref, _ := json.Marshal(s)
		_ = json.Unmarshal(ref, &want)
		if back != want {
			t.Fatalf("%q -> %s decodes to %q, want %q", s, got, back, want)
		}
	})
}

// TestParseChunkForgetsLastChunk: a field absent from a chunk is not left
// over from the previous one (encoding/json reuses slice elements).
func TestParseChunkForgetsLastChunk(t *testing.T) {
	var c Chunk
	if err := ParseChunk([]byte(`{"choices":[{"index":0,"delta":{"content":"a"}}]}`), &c); err != nil {
		t.Fatal(err)
	}
	if err := ParseChunk([]byte(`{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`), &c); err != nil {
		t.Fatal(err)
	}
	if c.Choices[0].Delta.Content != nil {
		t.Fatalf("content %q carried over", *c.Choices[0].Delta.Content)
	}
}
