package tokens

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// fastSplitters pairs each encoding's pre-tokenizer with the fast paths
// the count loop tries first.
var fastSplitters = []struct {
	name  string
	piece func(string, int) int
	word  func(x, y uint64) int
	punct func(x uint64) int
}{
	{CL100K, cl100kPiece, cl100kWordEnd, punctEnd},
	{O200K, o200kPiece, o200kWordEnd, punctEnd},
}

// checkFastPieces holds each encoding's word and punctuation fast paths to
// its pre-tokenizer (which TestSplitMatchesPattern and FuzzSplit hold to
// the pattern) at the start of text, padded to the sixteen bytes they read;
// it returns which of them claimed the piece, by encoding.
func checkFastPieces(t *testing.T, text string) (word, punct [2]bool) {
	t.Helper()
	if len(text) < midKey {
		text += strings.Repeat(" ", midKey-len(text))
	}
	x, y := load64(text, 0), load64(text, shortKey)
	for e, sp := range fastSplitters {
		want := sp.piece(text, 0)
		if k := sp.word(x, y); k > 0 {
			if k != want {
				t.Fatalf("%s: word end of %q = %d, pre-tokenizer %d", sp.name, text, k, want)
			}
			word[e] = true
		}
		if k := sp.punct(x); k > 0 {
			if k != want {
				t.Fatalf("%s: punctuation end of %q = %d, pre-tokenizer %d", sp.name, text, k, want)
			}
			punct[e] = true
		}
	}
	return word, punct
}

// TestFastPieces tries every pair of leading bytes before tails that
// end a word or a run of punctuation at every length the two loaded words
// allow, then random text, and fails if either fast path gives a piece end
// o200kPiece does not, or if either stops claiming the pieces it is for.
func TestFastPieces(t *testing.T) {
	loadBMPClasses()
	ends := []string{" ", ".", ",", "x", "X", "9", "'s", "'x", "\n", "\r", "\t", "/", "_", "é", "É", "\u0301", "中", "\x00"}
	var tails []string
	for _, n := range []int{0, 1, 5, 6, 7, 8, 13, 14, 15, 16} { // runs that end either side of each word
		for _, e := range ends {
			tails = append(tails, strings.Repeat("q", n)+e+"tail of the text",
				strings.Repeat("!", n)+e+"tail of the text")
		}
	}
	// Every byte first with a byte of each kind second, and the other way
	// round.
	kinds := []byte("azAZ !/'09@[`{~_\\\n\r\t\x00\x7f\x80\xc3\xe4")
	var words, puncts [2]int
	for b := 0; b < 256; b++ {
		for _, k := range kinds {
			for _, lead := range []string{string([]byte{byte(b), k}), string([]byte{k, byte(b)})} {
				for _, tail := range tails {
					w, p := checkFastPieces(t, lead+tail)
					for e := range w {
						if w[e] {
							words[e]++
						}
						if p[e] {
							puncts[e]++
						}
					}
				}
			}
		}
	}
	r := rand.New(rand.NewPCG(5, 8))
	alphabet := []rune("aeiouxyzAEZ    .,!?;:'\"()[]{}/-_\\\n\r\t09éÉ中\u0301’")
	for i := 0; i < 200000; i++ {
		rs := make([]rune, 1+r.IntN(20))
		for j := range rs {
			rs[j] = alphabet[r.IntN(len(alphabet))]
		}
		checkFastPieces(t, string(rs))
	}
	// The pieces they are for, so that a fast path that claims nothing
	// fails here too.
	for _, c := range []struct {
		text        string
		word, punct [2]bool // cl100k, o200k
	}{
		{" quarterly report", [2]bool{true, true}, [2]bool{}},
		{"The report", [2]bool{true, true}, [2]bool{}},
		{" Customers arrive", [2]bool{true, true}, [2]bool{}},
		{" HTTPServer x", [2]bool{true, false}, [2]bool{}},
		{" abcdefghijklmn.", [2]bool{true, true}, [2]bool{}},
		{", and the", [2]bool{}, [2]bool{true, true}},
		{". The", [2]bool{}, [2]bool{true, true}},
		{" (x) y", [2]bool{}, [2]bool{true, true}},
		{"\"},{\" a", [2]bool{}, [2]bool{true, true}},
		{"'(x) y", [2]bool{}, [2]bool{true, true}},
	} {
		if w, p := checkFastPieces(t, c.text); w != c.word || p != c.punct {
			t.Errorf("%q: word %v punct %v, want %v %v", c.text, w, p, c.word, c.punct)
		}
	}
	for e, sp := range fastSplitters {
		t.Logf("%s: %d word and %d punctuation pieces claimed", sp.name, words[e], puncts[e])
	}
}

// FuzzFastPieces holds the fast paths to the pre-tokenizers at every
// position of fuzzed text.
func FuzzFastPieces(f *testing.F) {
	for _, h := range handCorpus {
		f.Add(h.text)
	}
	loadBMPClasses()
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 1024 || !utf8.ValidString(text) {
			return
		}
		for i := range text {
			checkFastPieces(t, text[i:])
		}
	})
}
