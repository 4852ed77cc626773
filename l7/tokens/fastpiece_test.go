package tokens

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// checkFastPieces holds o200kWordEnd and o200kPunctEnd to o200kPiece (which
// TestSplitMatchesPattern and FuzzSplit hold to the pattern) at the start of
// text, padded to the sixteen bytes they read; it returns which of them
// claimed the piece.
func checkFastPieces(t *testing.T, text string) (word, punct bool) {
	t.Helper()
	if len(text) < midKey {
		text += strings.Repeat(" ", midKey-len(text))
	}
	x, y := load64(text, 0), load64(text, shortKey)
	want := o200kPiece(text, 0)
	if k := o200kWordEnd(x, y); k > 0 {
		if k != want {
			t.Fatalf("o200kWordEnd(%q) = %d, o200kPiece %d", text, k, want)
		}
		word = true
	}
	if k := o200kPunctEnd(x); k > 0 {
		if k != want {
			t.Fatalf("o200kPunctEnd(%q) = %d, o200kPiece %d", text, k, want)
		}
		punct = true
	}
	return word, punct
}

// TestO200KFastPieces tries every pair of leading bytes before tails that
// end a word or a run of punctuation at every length the two loaded words
// allow, then random text, and fails if either fast path gives a piece end
// o200kPiece does not, or if either stops claiming the pieces it is for.
func TestO200KFastPieces(t *testing.T) {
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
	words, puncts := 0, 0
	for b := 0; b < 256; b++ {
		for _, k := range kinds {
			for _, lead := range []string{string([]byte{byte(b), k}), string([]byte{k, byte(b)})} {
				for _, tail := range tails {
					w, p := checkFastPieces(t, lead+tail)
					if w {
						words++
					}
					if p {
						puncts++
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
		word, punct bool
	}{
		{" quarterly report", true, false},
		{"The report", true, false},
		{" Customers arrive", true, false},
		{" abcdefghijklmn.", true, false},
		{", and the", false, true},
		{". The", false, true},
		{" (x) y", false, true},
		{"\"},{\" a", false, true},
	} {
		if w, p := checkFastPieces(t, c.text); w != c.word || p != c.punct {
			t.Errorf("%q: word %v punct %v, want %v %v", c.text, w, p, c.word, c.punct)
		}
	}
	t.Logf("%d word and %d punctuation pieces claimed", words, puncts)
}
