package tokens

import (
	"strings"
	"testing"
)

// benchPrompt68 is a typical short chat prompt, 68 bytes.
const benchPrompt68 = "Summarize the attached quarterly report in three short bullet points"

// benchPrompt4K is 4096 bytes of mixed prose, code and JSON.
var benchPrompt4K = func() string {
	parts := []string{
		"The quick brown fox jumps over the lazy dog. It wasn't the first time; the dog had seen it before. ",
		"func main() {\n\tfor i := 0; i < 10; i++ {\n\t\tfmt.Println(i*i)\n\t}\n}\n",
		`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"temperature":0.7} `,
		"Please review the following contract clause and list any risks for the buyer in plain English. ",
	}
	var b strings.Builder
	for i := 0; b.Len() < 4096; i++ {
		b.WriteString(parts[i%len(parts)])
	}
	return b.String()[:4096]
}()

func benchCount(b *testing.B, enc, text string) {
	c := counter(b, enc)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Count(text)
	}
}

func benchReference(b *testing.B, enc, text string) {
	ref := reference(b, enc)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = len(ref.EncodeOrdinary(text))
	}
}

func BenchmarkCount(b *testing.B) {
	if len(benchPrompt68) != 68 {
		b.Fatalf("short prompt is %d bytes", len(benchPrompt68))
	}
	for _, enc := range []string{CL100K, O200K} {
		b.Run(enc+"/68B/infergate", func(b *testing.B) { benchCount(b, enc, benchPrompt68) })
		b.Run(enc+"/68B/tiktoken-go", func(b *testing.B) { benchReference(b, enc, benchPrompt68) })
		b.Run(enc+"/4KB/infergate", func(b *testing.B) { benchCount(b, enc, benchPrompt4K) })
		b.Run(enc+"/4KB/tiktoken-go", func(b *testing.B) { benchReference(b, enc, benchPrompt4K) })
	}
}
