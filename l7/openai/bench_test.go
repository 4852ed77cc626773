package openai

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

func benchBody(size int) []byte {
	text := strings.Repeat("The quarterly report shows steady growth in every region. ", size/50+1)[:size]
	b, _ := json.Marshal(text)
	return []byte(`{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":` + string(b) + `}]}`)
}

func BenchmarkParseRequest(b *testing.B) {
	for _, size := range []int{68, 4096, 65536} {
		body := benchBody(size)
		for _, dec := range []struct {
			name string
			f    func(*Request, []byte) error
		}{{"onepass", (*Request).decodeFast}, {"reference", (*Request).decodeSlow}} {
			b.Run(dec.name+"/"+strconv.Itoa(size), func(b *testing.B) {
				var r Request
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					if err := parseInto(&r, ChatCompletions, body, dec.f); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

var benchChunk = []byte(`{"id":"chatcmpl-9xyz","object":"chat.completion.chunk","created":1732520000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"content":" quarterly"},"logprobs":null,"finish_reason":null}]}`)

func BenchmarkParseChunk(b *testing.B) {
	var c Chunk
	b.SetBytes(int64(len(benchChunk)))
	b.ReportAllocs()
	for b.Loop() {
		if err := ParseChunk(benchChunk, &c); err != nil {
			b.Fatal(err)
		}
	}
}
