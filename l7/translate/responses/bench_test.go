package responses

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/infergate/infergate/l7/openai"
)

// BenchmarkToChat4KB: translating a 4 KB Responses request, beside the
// gateway's own parse of a chat request of the same prompt (the work every
// chat request already costs), in the same run.
func BenchmarkToChat4KB(b *testing.B) {
	prompt, _ := json.Marshal(strings.Repeat("The quarterly report shows steady growth in every region. ", 70)[:4000])
	body := []byte(`{"model":"m","max_output_tokens":16,"instructions":"You are terse.","input":` + string(prompt) + `}`)
	chat := []byte(`{"model":"m","max_tokens":16,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":` + string(prompt) + `}]}`)
	b.Run("peer=chat-parse", func(b *testing.B) {
		var r openai.Request
		b.ReportAllocs()
		for range b.N {
			if err := openai.ParseInto(&r, openai.ChatCompletions, chat); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("translate", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, _, err := ToChat(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkStreamChunk: translating one streamed text chunk into its
// response.output_text.delta event.
func BenchmarkStreamChunk(b *testing.B) {
	chunk := []byte(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":" the"},"finish_reason":null}]}`)
	s := NewStream(Info{Model: "m"})
	out, _ := s.Chunk(chunk, nil)
	b.Run("peer=chat-ParseChunk", func(b *testing.B) {
		var c openai.Chunk
		b.ReportAllocs()
		for range b.N {
			if err := openai.ParseChunk(chunk, &c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("translate", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			out, _ = s.Chunk(chunk, out[:0])
		}
	})
}
