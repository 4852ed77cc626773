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

// FuzzTopLevelKeys: for any valid JSON object, the keys walked are the
// keys encoding/json finds (those without escapes, which are passed raw).
func FuzzTopLevelKeys(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":"x\"}","c":[{"d":"]"}],"e":{"f":null},"g":true ,  "h" : -1.5e3}`))
	f.Add([]byte(` { } `))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m map[string]json.RawMessage
		if json.Unmarshal(b, &m) != nil || m == nil {
			return
		}
		want := map[string]bool{}
		for k := range m {
			want[k] = true
		}
		got := map[string]bool{}
		TopLevelKeys(b, func(k []byte) {
			var s string
			if err := json.Unmarshal(append(append([]byte{'"'}, k...), '"'), &s); err != nil {
				t.Fatalf("key %q is not a JSON string's content", k)
			}
			got[s] = true
		})
		if len(got) != len(want) {
			t.Fatalf("%s: keys %v, want %v", b, got, want)
		}
		for k := range want {
			if !got[k] {
				t.Fatalf("%s: key %q missed (%v)", b, k, got)
			}
		}
	})
}
