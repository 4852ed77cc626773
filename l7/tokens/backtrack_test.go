package tokens

import (
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// heapOnly returns a copy of c's encoder without the backtracking tables,
// so that long pieces take the heap merge, the path they took before: the
// baseline for tests and benchmarks.
func heapOnly(c *Counter) *bpe {
	old := *c.bpe
	old.bt = nil
	return &old
}

// longInputs are the adversarial inputs for long pieces, n bytes each
// (about; multi-byte runes are not cut).
func longInputs(r *rand.Rand, n int) map[string]string {
	gen := func(alphabet []rune) string {
		var b strings.Builder
		for b.Len() < n {
			b.WriteRune(alphabet[r.IntN(len(alphabet))])
		}
		return b.String()
	}
	raw := make([]byte, n)
	for i := range raw {
		raw[i] = byte(r.Uint32())
	}
	return map[string]string{
		"lower":       gen([]rune("abcdefghijklmnopqrstuvwxyz")),
		"mixed-case":  gen([]rune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")),
		"few-letters": gen([]rune("ab")),
		"a-run":       strings.Repeat("a", n),
		"digits":      gen([]rune("0123456789")),
		"spaces":      strings.Repeat(" ", n),
		"whitespace":  gen([]rune(" \t\u00a0\u3000")),
		"punct":       gen([]rune(".,;:!?-_/\\\"'{}[]<>|`~@#$%^&*()+=")),
		"cjk":         gen([]rune("の中文日本語한국어人大国")),
		"accented":    gen([]rune("éèêëàâäôöûüçñßøåæ")),
		"bytes":       string(raw),
		"base64":      gen([]rune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")),
	}
}

// TestBacktrackMatchesReference compares Count with tiktoken-go called
// directly on adversarial texts whose pieces are long, for both encodings.
// tiktoken-go merges long pieces in quadratic time, so the texts are kept
// to a few kilobytes; TestBacktrackMatchesHeap goes longer.
func TestBacktrackMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 43))
	for _, enc := range []string{CL100K, O200K} {
		c, ref := counter(t, enc), reference(t, enc)
		if c.bpe.bt == nil {
			t.Fatalf("%s: no backtracking tables", enc)
		}
		for _, n := range []int{65, 129, 700, 3000} {
			for name, text := range longInputs(r, n) {
				if got, want := c.Count(text), len(ref.EncodeOrdinary(text)); got != want {
					t.Fatalf("%s %s (%d bytes): Count = %d, reference %d", enc, name, len(text), got, want)
				}
			}
		}
	}
}

// TestBacktrackMatchesHeap compares the backtracking encoder with the heap
// merge, which TestHeapMatchesScan holds to tiktoken's scan, piece by piece
// on long adversarial texts, and Count with and without the backtracking
// tables on whole texts.
func TestBacktrackMatchesHeap(t *testing.T) {
	r := rand.New(rand.NewPCG(47, 53))
	for _, enc := range []string{CL100K, O200K} {
		c := counter(t, enc)
		old := heapOnly(c)
		for _, n := range []int{200, 5000, 64 << 10} {
			for name, text := range longInputs(r, n) {
				if got, want := c.Count(text), old.count(text); got != want {
					t.Fatalf("%s %s (%d bytes): Count = %d, heap merge %d", enc, name, len(text), got, want)
				}
			}
		}
		// Single pieces of every length around the switch-over and a few
		// beyond, taken straight to the two merges.
		letters := []rune("etaoinshrdlucmfwypvbgkqjxzETAOINの中文日本語éß")
		for n := smallPiece - 4; n < 4*smallPiece; n++ {
			rs := make([]rune, n)
			for j := range rs {
				rs[j] = letters[r.IntN(len(letters))]
			}
			piece := string(rs)
			if c.bpe.lookup(piece) >= 0 {
				continue
			}
			got, _, err := c.bpe.bt.count(piece)
			if err != nil {
				t.Fatalf("%s %q: %v", enc, piece, err)
			}
			if want, _ := c.bpe.mergeHeap(piece); got != want {
				t.Fatalf("%s %q: backtracking %d, heap merge %d", enc, piece, got, want)
			}
		}
	}
}

// TestBacktrackTables checks the tables against the vocabulary: every
// token of more than one byte is made by a merge of two tokens of lower
// rank that spell it (so none is left out of the trie), a token's shorter
// candidate is its longest proper prefix in the vocabulary, and the
// encoder, given a token's bytes as a piece, returns that one token, as
// the merges do.
func TestBacktrackTables(t *testing.T) {
	for _, enc := range []string{CL100K, O200K} {
		c := counter(t, enc)
		bt := c.bpe.bt
		keys := make([]string, len(bt.length))
		for r := range bt.length {
			if bt.length[r] == 0 {
				t.Fatalf("%s: rank %d unused", enc, r)
			}
		}
		vocab := vocabOf(t, enc)
		for _, e := range vocab {
			keys[e.rank] = e.key
		}
		for r, key := range keys {
			if len(key) == 1 {
				continue
			}
			l, rt := bt.left[r], bt.right[r]
			if int(l) >= r || int(rt) >= r || keys[l]+keys[rt] != key {
				t.Fatalf("%s: token %d %q made of %d %q + %d %q", enc, r, key, l, keys[l], rt, keys[rt])
			}
			if got := bt.pairs.get(l, rt); got != int32(r) {
				t.Fatalf("%s: pair %d+%d makes %d, want %d", enc, l, rt, got, r)
			}
			want := int32(noToken)
			for k := len(key) - 1; k > 0; k-- {
				if p := c.bpe.lookup(key[:k]); p >= 0 {
					want = p
					break
				}
			}
			if bt.short[r] != want {
				t.Fatalf("%s: shorter candidate of %q is %d, want %d", enc, key, bt.short[r], want)
			}
			if n, _, err := bt.count(key); n != 1 || err != nil {
				t.Fatalf("%s: token %q counted as %d (%v)", enc, key, n, err)
			}
		}
	}
}

// TestLinearWork meters the work of counting long pieces, without timing
// anything: the backtracking encoder's table probes and candidates stay
// under a constant per byte, the same at 200 KB as at 20 KB, for every
// adversarial input (1.1 to 8.8 a byte when written), while the heap
// merge's pushes and pops weighted by the heap's depth grow with log n and
// exceed the bound on 200 KB of random letters (20.6 to 22.8 a byte).
func TestLinearWork(t *testing.T) {
	const perByte = 12
	r := rand.New(rand.NewPCG(59, 61))
	var work atomic.Int64
	longPieceWork = &work
	defer func() { longPieceWork = nil }()
	small, large := longInputs(r, 20<<10), longInputs(r, 200<<10)
	for _, enc := range []string{CL100K, O200K} {
		c := counter(t, enc)
		for kind := range large {
			var rate [2]float64
			for k, text := range []string{small[kind], large[kind]} {
				work.Store(0)
				got := c.Count(text)
				w := work.Load()
				rate[k] = float64(w) / float64(len(text))
				if w > perByte*int64(len(text)) {
					t.Errorf("%s %s: %d bytes took %d units of work, want at most %d a byte", enc, kind, len(text), w, perByte)
				}
				if kind != "lower" || k == 0 {
					continue
				}
				if cl100kPiece(text, 0) != len(text) || w == 0 {
					t.Fatalf("%s: %d bytes of random letters are not one long piece", enc, len(text))
				}
				work.Store(0)
				if want := heapOnly(c).count(text); want != got {
					t.Fatalf("%s: Count %d, heap merge %d", enc, got, want)
				}
				hw := work.Load()
				t.Logf("%s %d bytes of letters: work %d (%.2f a byte), heap merge %d (%.2f a byte)",
					enc, len(text), w, rate[k], hw, float64(hw)/float64(len(text)))
				if hw <= perByte*int64(len(text)) {
					t.Errorf("%s: the heap merge took %d units, within the bound; the bound proves nothing", enc, hw)
				}
			}
			if rate[1] > 1.1*rate[0]+0.01 {
				t.Errorf("%s %s: work grew from %.2f a byte at 20 KB to %.2f at 200 KB", enc, kind, rate[0], rate[1])
			}
		}
	}
}

// FuzzLongPiece turns the fuzzer's bytes into long pieces (letters only,
// white space only, or the bytes as text repeated past smallPiece) and
// compares Count with tiktoken-go, for both encodings.
func FuzzLongPiece(f *testing.F) {
	for _, s := range []string{"abc", "zqxj", "aaaa", "Hello", " \t", "中文", "é", "\xff\xfe", "0123", "ab'c"} {
		f.Add(s, uint8(0))
		f.Add(s, uint8(1))
		f.Add(s, uint8(2))
	}
	type enc struct {
		c   *Counter
		ref interface{ EncodeOrdinary(string) []int }
	}
	encs := []enc{{counter(f, CL100K), reference(f, CL100K)}, {counter(f, O200K), reference(f, O200K)}}
	f.Fuzz(func(t *testing.T, seed string, mode uint8) {
		if seed == "" || len(seed) > 512 {
			return
		}
		var text string
		switch mode % 3 {
		case 0: // the seed's bytes mapped onto letters: one piece
			b := make([]byte, 0, 4*len(seed))
			for len(b) < smallPiece+1+2*len(seed) {
				for i := 0; i < len(seed); i++ {
					b = append(b, 'a'+seed[i]%26)
				}
				b = append(b, 'a'+byte(len(b))%26)
			}
			text = string(b)
		case 1: // the seed's bytes mapped onto white space
			ws := []string{" ", "\t", "\u00a0", "\u3000", "  "}
			var b strings.Builder
			for b.Len() <= smallPiece {
				for i := 0; i < len(seed); i++ {
					b.WriteString(ws[int(seed[i])%len(ws)])
				}
			}
			text = b.String()
		default: // the seed itself, repeated
			text = strings.Repeat(seed, smallPiece/len(seed)+2)
		}
		text = strings.ToValidUTF8(text, "\uFFFD")
		if !utf8.ValidString(text) || hasUnicode16(text) {
			return
		}
		for _, e := range encs {
			if got, want := e.c.Count(text), len(e.ref.EncodeOrdinary(text)); got != want {
				t.Fatalf("%s: Count(%q) = %d, reference %d", e.c.Encoding(), text, got, want)
			}
		}
	})
}

// vocabOf loads an encoding's vocabulary in rank order.
func vocabOf(t testing.TB, enc string) []rankedKey {
	t.Helper()
	ranks, err := tiktoken_loader.NewOfflineLoader().LoadTiktokenBpe(enc + ".tiktoken")
	if err != nil {
		t.Fatal(err)
	}
	return byRank(ranks)
}

// trainVocabulary learns a small byte-pair vocabulary from text the way
// tiktoken's vocabularies were made: split into words, then repeatedly
// merge the most frequent adjacent pair (ties to the first in byte order),
// each merge a new token of the next rank. A pair whose bytes are already
// a token is not merged again.
func trainVocabulary(words []string, merges int) map[string]int {
	ranks := make(map[string]int)
	for c := 0; c < 256; c++ {
		ranks[string([]byte{byte(c)})] = c
	}
	parts := make([][]string, len(words))
	for i, w := range words {
		for j := 0; j < len(w); j++ {
			parts[i] = append(parts[i], w[j:j+1])
		}
	}
	for m := 0; m < merges; m++ {
		freq := make(map[[2]string]int)
		for _, p := range parts {
			for j := 0; j+1 < len(p); j++ {
				if _, ok := ranks[p[j]+p[j+1]]; !ok {
					freq[[2]string{p[j], p[j+1]}]++
				}
			}
		}
		var best [2]string
		bestN := 0
		for k, n := range freq {
			if n > bestN || n == bestN && k[0]+"\x00"+k[1] < best[0]+"\x00"+best[1] {
				best, bestN = k, n
			}
		}
		if bestN < 2 {
			break
		}
		ranks[best[0]+best[1]] = len(ranks)
		for i, p := range parts {
			out := p[:0]
			for j := 0; j < len(p); j++ {
				if j+1 < len(p) && p[j] == best[0] && p[j+1] == best[1] {
					out = append(out, best[0]+best[1])
					j++
					continue
				}
				out = append(out, p[j])
			}
			parts[i] = out
		}
	}
	return ranks
}

// TestBacktrackTrainedVocabularies trains small vocabularies on skewed
// random text over a few letters, where long tokens and repeats abound,
// and compares the backtracking encoder with the heap merge on long
// pieces of the same kind of text: the encoder is held to tiktoken's rule
// on vocabularies other than the two it ships with, made the way those
// were.
func TestBacktrackTrainedVocabularies(t *testing.T) {
	r := rand.New(rand.NewPCG(73, 79))
	skewed := func(alphabet string, n int) string {
		b := make([]byte, n)
		for i := range b {
			k := 0
			for k < len(alphabet)-1 && r.IntN(3) > 0 {
				k++
			}
			b[i] = alphabet[k]
		}
		return string(b)
	}
	for round := 0; round < 12; round++ {
		alphabet := "etaoin"[:2+r.IntN(4)]
		var words []string
		for i := 0; i < 300; i++ {
			words = append(words, skewed(alphabet, 3+r.IntN(25)))
		}
		ranks := trainVocabulary(words, 100+r.IntN(300))
		b := newBPE(ranks, "trained")
		bt, err := newBacktrack(byRank(ranks), b.lookup)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 60; i++ {
			piece := skewed(alphabet, smallPiece+1+r.IntN(500))
			if b.lookup(piece) >= 0 {
				continue
			}
			got, _, err := bt.count(piece)
			if err != nil {
				t.Fatalf("round %d %q: %v", round, piece, err)
			}
			if want, _ := b.mergeHeap(piece); got != want {
				t.Fatalf("round %d (%d tokens over %q) %q: backtracking %d, heap merge %d",
					round, len(ranks), alphabet, piece, got, want)
			}
		}
	}
}

// TestBacktrackUnreachableToken gives the encoder a token no merge makes
// ("abcd", with no pair of its bytes a token): the merges leave every
// byte alone, so the encoder must never offer it.
func TestBacktrackUnreachableToken(t *testing.T) {
	ranks := map[string]int{"abcd": 256}
	for c := 0; c < 256; c++ {
		ranks[string([]byte{byte(c)})] = c
	}
	b := newBPE(ranks, "synthetic")
	bt, err := newBacktrack(byRank(ranks), b.lookup)
	if err != nil {
		t.Fatal(err)
	}
	piece := strings.Repeat("abcd", 20)
	if got, _, err := bt.count(piece); got != len(piece) || err != nil {
		t.Fatalf("%q: backtracking %d (%v), want %d single bytes", piece, got, err, len(piece))
	}
	if want, _ := b.mergeHeap(piece); want != len(piece) {
		t.Fatalf("heap merge %d", want)
	}
}

// TestBacktrackTokenSoup joins random tokens of each real vocabulary into
// byte strings and compares the backtracking encoder with the heap merge
// on them directly, without the pre-tokenizer, so that every kind of byte
// sequence the vocabulary knows, spaces and punctuation and partial UTF-8
// included, meets every other at a boundary. This is where merging by rank
// and replaying the learned merges would part if they could for these
// vocabularies.
func TestBacktrackTokenSoup(t *testing.T) {
	r := rand.New(rand.NewPCG(83, 89))
	for _, enc := range []string{CL100K, O200K} {
		c := counter(t, enc)
		vocab := vocabOf(t, enc)
		for i := 0; i < 3000; i++ {
			var b strings.Builder
			for b.Len() <= smallPiece {
				// Low ranks are the short, common tokens; mix them with any.
				k := r.IntN(len(vocab))
				if r.IntN(2) == 0 {
					k = r.IntN(2000)
				}
				b.WriteString(vocab[k].key)
			}
			piece := b.String()
			if c.bpe.lookup(piece) >= 0 {
				continue
			}
			got, _, err := c.bpe.bt.count(piece)
			if err != nil {
				t.Fatalf("%s %q: %v", enc, piece, err)
			}
			if want, _ := c.bpe.mergeHeap(piece); got != want {
				t.Fatalf("%s %q: backtracking %d, heap merge %d", enc, piece, got, want)
			}
		}
	}
}
