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
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			var r Request
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := ParseInto(&r, ChatCompletions, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
