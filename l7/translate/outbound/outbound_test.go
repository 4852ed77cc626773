package outbound

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/l7/translate/chatwire"
)

// TestSecretReload: a changed file is read after the recheck interval, not
// before; a read that fails keeps the last good value; the error names the
// file, never its content.
func TestSecretReload(t *testing.T) {
	files := map[string]string{"/k": "first\n"}
	read := func(p string) ([]byte, error) {
		v, ok := files[p]
		if !ok {
			return nil, os.ErrNotExist
		}
		return []byte(v), nil
	}
	now := time.Unix(1000, 0)
	s := &Secret{file: "/k", ReadFile: read, Now: func() time.Time { return now }}
	if v, err := s.String(); err != nil || v != "first" {
		t.Fatal(v, err)
	}
	files["/k"] = "second"
	if v, _ := s.String(); v != "first" {
		t.Fatalf("read again within the recheck interval: %q", v)
	}
	now = now.Add(secretRecheck)
	if v, _ := s.String(); v != "second" {
		t.Fatalf("not read again: %q", v)
	}
	delete(files, "/k")
	now = now.Add(secretRecheck)
	if v, err := s.String(); err != nil || v != "second" {
		t.Fatalf("a failed read lost the key: %q %v", v, err)
	}
	files["/other"] = "sk-secret-value"
	_, err := NewFileSecret("/nonexistent/infergate-key")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/infergate-key") {
		t.Fatal(err)
	}
	if _, err := NewEnvSecret("NOPE", func(string) string { return "" }); err == nil {
		t.Fatal("an empty environment variable was accepted")
	}
}

// TestParseImage: data: URLs with an image type and valid base64, and
// http(s) URLs; anything else is refused.
func TestParseImage(t *testing.T) {
	img, err := ParseImage("data:image/png;base64,AAAA")
	if err != nil || img.MediaType != "image/png" || img.Data != "AAAA" || img.Format() != "png" {
		t.Fatal(img, err)
	}
	if img, err := ParseImage("https://example.test/cat.webp?x=1"); err != nil || img.URL == "" || img.MediaType != "image/webp" {
		t.Fatal(img, err)
	}
	for _, bad := range []string{"data:text/plain;base64,AAAA", "data:image/png,AAAA", "data:image/png;base64,!!", "file:///etc/passwd", "ftp://x/y.png"} {
		if _, err := ParseImage(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestMapError: statuses keep their meaning; 529 is a 503; a status with
// no OpenAI meaning is a 502; long messages are bounded.
func TestMapError(t *testing.T) {
	for _, c := range []struct{ in, out int }{{400, 400}, {404, 404}, {429, 429}, {500, 500}, {503, 503}, {529, 503}, {302, 502}} {
		if e := MapError(c.in, "m", ""); e.Status != c.out || e.Type == "" {
			t.Errorf("%d -> %+v", c.in, e)
		}
	}
	if e := MapError(400, strings.Repeat("x", 5000), ""); len(e.Message) > 1024 {
		t.Error("message not bounded")
	}
}

// FuzzAppendChunk: the hand-written chunk encoding is byte for byte what
// json.Marshal writes, for any text, ids and finish reasons.
func FuzzAppendChunk(f *testing.F) {
	f.Add("chatcmpl-1", "hello \"world\"\n<&>", "tool", `{"a":1}`, "stop", true)
	f.Add("", "\u2028\x01\xff", "", "", "", false)
	f.Fuzz(func(t *testing.T, id, text, name, args, finish string, usage bool) {
		two := 2
		stop, _ := json.Marshal(finish)
		c := &chatwire.Chunk{ID: id, Object: "chat.completion.chunk", Created: 7, Model: name, Choices: []chatwire.ChunkChoice{
			{Delta: chatwire.Delta{Role: "assistant", Content: &text, ReasoningContent: finish}},
			{Index: 1, Delta: chatwire.Delta{ToolCalls: []chatwire.ChunkToolCall{{Index: &two, ID: id, Type: "function", Function: chatwire.ChunkFunctionCall{Name: name, Arguments: args}}}}, FinishReason: &finish},
			// Fields only an inbound reader meets: refusal, a piece without
			// its index, vLLM's stop_reason, an error event.
			{Index: 2, Delta: chatwire.Delta{Refusal: &text, ToolCalls: []chatwire.ChunkToolCall{{Function: chatwire.ChunkFunctionCall{Arguments: args}}}}, StopReason: stop},
		}}
		if usage {
			c.Usage = chatwire.NewUsage(5, 6, 1, 2)
		} else {
			c.Error = &chatwire.ChunkError{Message: text}
		}
		want, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendChunk(nil, c); string(got) != string(want) {
			t.Fatalf("appendChunk\n%s\njson.Marshal\n%s", got, want)
		}
	})
}
