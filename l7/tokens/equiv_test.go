package tokens

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// equivAlphabet mixes characters from every class the pre-tokenizers
// distinguish, plus letters that merge into long multi-byte pieces.
var equivAlphabet = []rune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ     0123456789\t\n\r'’.,!?-_/\\\"{}[]<>|`~@#$%^&*()+=:;\u00a0\u3000\u0301\u0308\u200b\u200dの中文日本語한국어ñДжΩπ🙂👍🏽\U000E0041")

// TestEquivalentRandom compares Count with tiktoken-go called directly on
// strings the golden corpus does not hold: random mixes, and long runs of
// letters that go through the heap merge.
func TestEquivalentRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for _, enc := range []string{CL100K, O200K} {
		c, ref := counter(t, enc), reference(t, enc)
		check := func(text string) {
			t.Helper()
			if got, want := c.Count(text), len(ref.EncodeOrdinary(text)); got != want {
				t.Fatalf("%s: Count(%q) = %d, reference %d", enc, text, got, want)
			}
		}
		for i := 0; i < 600; i++ {
			rs := make([]rune, 1+r.IntN(200))
			for j := range rs {
				rs[j] = equivAlphabet[r.IntN(len(equivAlphabet))]
			}
			check(string(rs))
		}
		// Single long pieces: letters without spaces, CJK, digits+letters.
		letters := []rune("abcdefghijklmnopqrstuvwxyzの中文日本語한국어éß")
		for _, n := range []int{65, 100, 300, 1000, 3000} {
			rs := make([]rune, n)
			for j := range rs {
				rs[j] = letters[r.IntN(len(letters))]
			}
			check(string(rs))
			check(strings.Repeat("a", n))
			check(strings.Repeat("ab", n/2))
			check(strings.Repeat("中", n))
		}
	}
}

// TestHeapMatchesScan checks the O(n log n) merge against tiktoken's scan
// directly on pieces of every length either side of the switch-over.
func TestHeapMatchesScan(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	letters := []rune("etaoinshrdlucmfwypvbgkqjxzの中文日本語")
	for _, enc := range []string{CL100K, O200K} {
		c := counter(t, enc)
		for n := 2; n <= smallPiece; n++ {
			rs := make([]rune, n)
			for j := range rs {
				rs[j] = letters[r.IntN(len(letters))]
			}
			piece := string(rs)
			if len(piece) > smallPiece {
				piece = piece[:smallPiece]
			}
			hb, _ := c.bpe.mergeHeap(piece)
			if a, b := c.bpe.mergeSmall(piece, 0, len(piece)), hb; a != b {
				t.Fatalf("%s %q: scan %d, heap %d", enc, piece, a, b)
			}
		}
	}
}

// TestHugePiece counts a 1 MiB single piece, which a quadratic merge could
// not finish in a test's time (exactness of the heap merge on long pieces is
// checked against the reference in TestEquivalentRandom).
func TestHugePiece(t *testing.T) {
	c := counter(t, CL100K)
	text := strings.Repeat("a", 1<<20)
	n := c.Count(text)
	if n <= 0 || n > len(text) {
		t.Fatalf("1 MiB piece: %d tokens", n)
	}
	// Long runs of "a" merge into multi-byte tokens; 1 MiB of it must merge
	// far below one token a byte.
	if n > len(text)/4 {
		t.Fatalf("1 MiB of a gave %d tokens", n)
	}
}

func FuzzCount(f *testing.F) {
	for _, h := range handCorpus {
		f.Add(h.text)
	}
	c, ref := counter(f, O200K), reference(f, O200K)
	c1, ref1 := counter(f, CL100K), reference(f, CL100K)
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 4096 {
			return
		}
		// Prompts reach the counter as JSON-decoded, valid UTF-8 strings.
		text = strings.ToValidUTF8(text, "\uFFFD")
		if hasUnicode16(text) {
			return // the reference's tables are older; see TestUnicode16
		}
		if got, want := c.Count(text), len(ref.EncodeOrdinary(text)); got != want {
			t.Fatalf("o200k: Count = %d, reference %d", got, want)
		}
		if got, want := c1.Count(text), len(ref1.EncodeOrdinary(text)); got != want {
			t.Fatalf("cl100k: Count = %d, reference %d", got, want)
		}
	})
}

// FuzzStream checks that text written in arbitrary pieces counts the same
// as the whole text.
func FuzzStream(f *testing.F) {
	for _, h := range handCorpus {
		f.Add(h.text, uint64(7))
	}
	c := counter(f, O200K)
	f.Fuzz(func(t *testing.T, text string, cuts uint64) {
		if len(text) > 4096 || !utf8.ValidString(text) {
			return
		}
		want := c.Count(text)
		s := c.CountCompletionText()
		writeInRuneChunks(s, text, rand.New(rand.NewPCG(cuts, 1)), 16)
		if got := s.Tokens(); got != want {
			t.Fatalf("streamed %d, whole %d", got, want)
		}
	})
}

// TestInvalidUTF8 checks that bytes that are not UTF-8 count as tiktoken-go
// counts them: each invalid byte is one U+FFFD.
func TestInvalidUTF8(t *testing.T) {
	for _, enc := range []string{CL100K, O200K} {
		c, ref := counter(t, enc), reference(t, enc)
		for _, text := range []string{"\xff", "ab\xffcd", "\xc3\x28 hello \xe2\x82", "x\x80\x80\x80y", "日本\xe6\x97語"} {
			if got, want := c.Count(text), len(ref.EncodeOrdinary(text)); got != want {
				t.Errorf("%s %q: Count = %d, reference %d", enc, text, got, want)
			}
		}
	}
}
