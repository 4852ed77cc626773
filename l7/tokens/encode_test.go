package tokens

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// AppendTokens gives tiktoken's own ids (EncodeOrdinary) for prose, code,
// mixed scripts, special-token markers and random bytes, in both
// encodings; a merge that took the wrong pair, or a pre-tokenizer split
// that differs, shows as a different id sequence.
func TestAppendTokensMatchesTiktoken(t *testing.T) {
	texts := []string{
		"Hello, world! The quick brown fox jumps over the lazy dog.",
		"func main() {\n\tfmt.Println(\"héllo\", 42, 3.14159)\n}\n",
		"日本語のテキストと English words, mixed; ÄÖÜ äöü ß — and emoji 🙂🚀.",
		"<|endoftext|> is text here, as are <|im_start|>system and 1234567 digits",
		"   leading spaces\n\n\ttabs\r\nand CRLF   ",
		"don't won't it's I'm we'll they've CAPITALS MixedCase",
		strings.Repeat("antidisestablishmentarianism ", 20),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 30 {
		b := make([]byte, r.IntN(200))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		texts = append(texts, string(b))
	}
	for _, enc := range []string{CL100K, O200K} {
		c, ref := counter(t, enc), reference(t, enc)
		for _, text := range texts {
			want := ref.EncodeOrdinary(string([]rune(text))) // tiktoken: one U+FFFD per invalid byte
			got, complete := c.AppendTokens(nil, text, 1<<20)
			if !complete {
				t.Fatalf("%s: %q not encoded completely", enc, text)
			}
			if !slices.Equal(toInts(got), want) {
				t.Fatalf("%s: %q\n got %v\nwant %v", enc, text, got, want)
			}
		}
	}
}

// The limit and the long-piece stop leave a prefix of the full encoding.
func TestAppendTokensBounded(t *testing.T) {
	c := counter(t, CL100K)
	text := "one two three four five six seven eight nine ten"
	all, _ := c.AppendTokens(nil, text, 1<<20)
	got, complete := c.AppendTokens([]uint32{7}, text, 4)
	if complete || !slices.Equal(got, append([]uint32{7}, all[:4]...)) {
		t.Fatalf("limit 4: got %v (complete %v), want 7 then %v", got, complete, all[:4])
	}
	long := "short words then " + strings.Repeat("x", MaxEncodePiece+1) + " more"
	got, complete = c.AppendTokens(nil, long, 1<<20)
	head, _ := c.AppendTokens(nil, "short words then", 1<<20)
	if complete || !slices.Equal(got, head) {
		t.Fatalf("long piece: got %v (complete %v), want %v", got, complete, head)
	}
}

func toInts(s []uint32) []int {
	out := make([]int, len(s))
	for i, v := range s {
		out[i] = int(v)
	}
	return out
}
