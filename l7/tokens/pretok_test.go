package tokens

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// Pre-tokenizer patterns, as in OpenAI's tiktoken (tiktoken_ext/openai_public.py)
// and tiktoken-go v0.1.8; the hand-written splitters must agree with them.
const (
	cl100kPattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	o200kPattern  = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?` +
		`|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?` +
		`|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

var splitters = []struct {
	name    string
	pattern string
	piece   func(string, int) int
}{
	{CL100K, cl100kPattern, cl100kPiece},
	{O200K, o200kPattern, o200kPiece},
}

// regexSplit returns the pieces the regular expression finds.
func regexSplit(t testing.TB, re *regexp2.Regexp, text string) []string {
	t.Helper()
	runes := []rune(text)
	var out []string
	m, err := re.FindRunesMatch(runes)
	for m != nil && err == nil {
		out = append(out, string(runes[m.Index:m.Index+m.Length]))
		m, err = re.FindNextMatch(m)
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func handSplit(piece func(string, int) int, text string) []string {
	loadBMPClasses()
	var out []string
	for i := 0; i < len(text); {
		j := piece(text, i)
		if j <= i {
			panic("no progress")
		}
		out = append(out, text[i:j])
		i = j
	}
	return out
}

func compareSplit(t testing.TB, name string, re *regexp2.Regexp, piece func(string, int) int, text string) {
	t.Helper()
	want := regexSplit(t, re, text)
	got := handSplit(piece, text)
	if strings.Join(want, "\x00") != strings.Join(got, "\x00") {
		t.Fatalf("%s split of %q:\n got %q\nwant %q", name, text, got, want)
	}
}

// TestSplitMatchesPattern holds the hand-written pre-tokenizers to the
// regular expressions on the golden corpus and on random text.
func TestSplitMatchesPattern(t *testing.T) {
	entries := loadGolden(t)
	r := rand.New(rand.NewPCG(17, 19))
	for _, sp := range splitters {
		re := regexp2.MustCompile(sp.pattern, regexp2.None)
		for _, e := range entries {
			compareSplit(t, sp.name, re, sp.piece, e.Text)
		}
		for i := 0; i < 2000; i++ {
			rs := make([]rune, 1+r.IntN(60))
			for j := range rs {
				rs[j] = equivAlphabet[r.IntN(len(equivAlphabet))]
			}
			compareSplit(t, sp.name, re, sp.piece, string(rs))
		}
	}
}

// TestSplitClassBoundaries checks every pair of runes drawn from each
// Unicode category the patterns distinguish, and every rune that
// lower-cases into a contraction letter.
func TestSplitClassBoundaries(t *testing.T) {
	var samples []rune
	for _, tab := range []*unicode.RangeTable{unicode.Lu, unicode.Ll, unicode.Lt, unicode.Lm, unicode.Lo,
		unicode.Mn, unicode.Mc, unicode.Me, unicode.Nd, unicode.Nl, unicode.No, unicode.Zs, unicode.Zl,
		unicode.Zp, unicode.Cc, unicode.Cf, unicode.Po, unicode.Sm, unicode.So, unicode.Sk} {
		n := 0
		for _, rg := range tab.R16 {
			for c := rune(rg.Lo); c <= rune(rg.Hi) && n < 3; c += rune(rg.Stride) {
				samples = append(samples, c)
				n++
			}
		}
		for _, rg := range tab.R32 {
			if n >= 5 {
				break
			}
			samples = append(samples, rune(rg.Lo))
			n++
		}
	}
	samples = append(samples, '\'', ' ', '\r', '\n', '\t', '/', 'a', 'A', '1', '\u0085', '\u00a0', '\u3000', utf8.RuneError)
	for r := rune(0x80); r < 0x20000; r++ {
		switch unicode.ToLower(r) {
		case 's', 't', 'r', 'e', 'v', 'm', 'l', 'd':
			samples = append(samples, r)
		}
	}
	for _, sp := range splitters {
		re := regexp2.MustCompile(sp.pattern, regexp2.None)
		for _, a := range samples {
			for _, b := range samples {
				compareSplit(t, sp.name, re, sp.piece, string([]rune{a, b, 'x'}))
				compareSplit(t, sp.name, re, sp.piece, string([]rune{' ', a, b}))
			}
		}
		for _, a := range samples {
			for _, tail := range []string{"'s", "'RE", "'ll", "'d'", "'Ve"} {
				compareSplit(t, sp.name, re, sp.piece, "x"+string(a)+tail)
			}
		}
	}
}

func FuzzSplit(f *testing.F) {
	for _, h := range handCorpus {
		f.Add(h.text)
	}
	res := []*regexp2.Regexp{
		regexp2.MustCompile(cl100kPattern, regexp2.None),
		regexp2.MustCompile(o200kPattern, regexp2.None),
	}
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 2048 || !utf8.ValidString(text) || hasUnicode16(text) {
			return
		}
		for k, sp := range splitters {
			compareSplit(t, sp.name, res[k], sp.piece, text)
		}
	})
}

// TestSplitASCIIWords covers o200kASCIIWord's cases: every ASCII byte as
// the optional prefix, upper/lower/mixed ASCII words, and what follows
// them (nothing, ASCII, a contraction, or non-ASCII letters and marks that
// would extend the U or W run).
func TestSplitASCIIWords(t *testing.T) {
	words := []string{"a", "Z", "hello", "HELLO", "Hello", "HEllo", "helLO", "aB", "ABc"}
	tails := []string{"", " ", "x", "9", ".", "'s", "'LL", "'re", "\n", "é", "É", "\u0301", "ʰ", "中", "1"}
	re := regexp2.MustCompile(o200kPattern, regexp2.None)
	for b := 0; b < utf8.RuneSelf; b++ {
		for _, w := range words {
			for _, tail := range tails {
				compareSplit(t, O200K, re, o200kPiece, string(rune(b))+w+tail)
				compareSplit(t, O200K, re, o200kPiece, w+tail+string(rune(b))+w)
			}
		}
	}
}

// TestLowerRun holds the eight-bytes-at-a-time scan to a byte loop for
// every byte value at every position of the first word and at the end of
// the text.
func TestLowerRun(t *testing.T) {
	slow := func(text string, i int) int {
		for i < len(text) && text[i] >= 'a' && text[i] <= 'z' {
			i++
		}
		return i
	}
	for n := 0; n <= 20; n++ {
		for pos := 0; pos <= n; pos++ {
			for c := 0; c < 256; c++ {
				b := []byte(strings.Repeat("q", n))
				if pos < n {
					b[pos] = byte(c)
				}
				text := string(b)
				for i := 0; i <= len(text); i++ {
					if got, want := lowerRun(text, i), slow(text, i); got != want {
						t.Fatalf("lowerRun(%q, %d) = %d, want %d", text, i, got, want)
					}
				}
			}
		}
	}
}
