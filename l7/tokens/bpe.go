package tokens

import (
	"container/heap"
	"math"
	"math/bits"
	"sync/atomic"
	"unicode/utf8"
)

// smallPiece is the longest piece merged with tiktoken's own quadratic scan
// over a stack array; longer pieces (a run of letters with no space, such as
// CJK prose, base64 or a flood of one character) use a heap, so a 4 MiB
// prompt that is a single piece costs O(n log n), not O(n²).
const smallPiece = 64

// noRank marks a pair that is not in the vocabulary.
const noRank = math.MaxInt

// bpe counts tokens: a pre-tokenizer splits text into pieces, and each piece
// not in the vocabulary as a whole is merged pairwise by rank, lowest first
// and leftmost among equals, exactly as tiktoken does.
type bpe struct {
	// short holds the vocabulary entries of at most shortKey bytes, which
	// are nearly every whole piece and pair candidate, mid those of up to
	// midKey bytes; long holds the rest.
	short shortTable
	mid   midTable
	long  map[string]int32
	o200k bool
	// bt counts pieces longer than smallPiece in linear time; nil when
	// the vocabulary does not fit its tables, and then the heap merge does.
	bt *backtrack
}

func newBPE(ranks map[string]int, encoding string) *bpe {
	loadBMPClasses()
	vocab := byRank(ranks)
	b := &bpe{short: newShortTable(vocab), mid: newMidTable(vocab), long: make(map[string]int32), o200k: encoding == O200K}
	for k, r := range ranks {
		if len(k) > midKey {
			b.long[k] = int32(r)
		}
	}
	// The backtracking encoder gives tiktoken's counts for vocabularies
	// trained by byte-pair merges, where merging by the rank of the
	// joined bytes and replaying the learned merges agree; the two
	// embedded ones are held to tiktoken by the tests. Any other
	// vocabulary keeps to the heap merge.
	if encoding == CL100K || encoding == O200K {
		if bt, err := newBacktrack(vocab, b.lookup); err == nil {
			b.bt = bt
		}
	}
	b.short.slots = offHeap(b.short.slots)
	b.mid.slots = offHeap(b.mid.slots)
	if b.bt != nil {
		b.bt.fix()
	}
	return b
}

// count returns the number of tokens of text, special markers included as
// ordinary text.
func (b *bpe) count(text string) int {
	if !utf8.ValidString(text) {
		// tiktoken sees a string of code points: each invalid byte is one
		// U+FFFD.
		text = string([]rune(text))
	}
	// Each encoding has its own copy of the loop, which calls its
	// pre-tokenizer directly: one loop that asked which encoding at each
	// piece was 3% slower on prose.
	if b.o200k {
		return b.countO200K(text)
	}
	n := 0
	for i := 0; i < len(text); {
		// The common pieces, an ASCII word of up to fifteen bytes or a
		// short run of ASCII punctuation with sixteen bytes of text left,
		// are found in two loaded words, which then give the piece's key
		// without loading it again. A miss goes straight to merging,
		// without a second lookup.
		if i+midKey <= len(text) {
			x, y := load64(text, i), load64(text, i+shortKey)
			k := cl100kWordEnd(x, y)
			if k == 0 {
				k = punctEnd(x)
			}
			if k > 0 {
				var r int32
				if k <= shortKey {
					r = b.short.find(x&lowBytes(k), uint32(k))
				} else {
					r = b.mid.find(x, y&lowBytes(k-shortKey), uint32(k))
				}
				if r >= 0 {
					n++
				} else {
					n += b.mergeSmall(text, i, i+k) // k < midKey < smallPiece
				}
				i += k
				continue
			}
		}
		// Any other piece.
		j := cl100kPiece(text, i)
		if j <= i { // cannot happen: every rune belongs to some alternative
			_, size := utf8.DecodeRuneInString(text[i:])
			j = i + size
		}
		n += b.countPiece(text, i, j)
		i = j
	}
	return n
}

// countO200K is count's loop for o200k_base (text is valid UTF-8). The
// fast-piece block is written out in both loops on purpose: as a shared
// function it does not inline, and the call made counting 4 KB of prose
// 8-11% slower (measured, 5 alternating runs).
func (b *bpe) countO200K(text string) int {
	n := 0
	for i := 0; i < len(text); {
		// As in count's loop.
		if i+midKey <= len(text) {
			x, y := load64(text, i), load64(text, i+shortKey)
			k := o200kWordEnd(x, y)
			if k == 0 {
				k = punctEnd(x)
			}
			if k > 0 {
				var r int32
				if k <= shortKey {
					r = b.short.find(x&lowBytes(k), uint32(k))
				} else {
					r = b.mid.find(x, y&lowBytes(k-shortKey), uint32(k))
				}
				if r >= 0 {
					n++
				} else {
					n += b.mergeSmall(text, i, i+k) // k < midKey < smallPiece
				}
				i += k
				continue
			}
		}
		// Any other piece: the rest of o200kPiece.
		j := o200kASCIIWord(text, i)
		if j < 0 {
			j = o200kOther(text, i)
		}
		if j <= i { // cannot happen: every rune belongs to some alternative
			_, size := utf8.DecodeRuneInString(text[i:])
			j = i + size
		}
		n += b.countPiece(text, i, j)
		i = j
	}
	return n
}

// countPiece counts the tokens of the piece text[i:j]. It takes the whole
// text rather than the piece so that lookups may load bytes past the
// piece's end (getAt).
func (b *bpe) countPiece(text string, i, j int) int {
	n := j - i
	if n <= 1 {
		return n
	}
	if b.rankAt(text, i, j) != noRank {
		return 1
	}
	if n <= smallPiece {
		return b.mergeSmall(text, i, j)
	}
	return b.mergeLong(text[i:j])
}

// longPieceWork, when set (by tests), accumulates the work mergeLong's
// algorithms report: table probes and candidates for the backtracking
// encoder, heap levels for the heap merge.
var longPieceWork *atomic.Int64

// mergeLong counts a piece longer than smallPiece that is not a token.
func (b *bpe) mergeLong(piece string) int {
	if b.bt != nil {
		if n, work, err := b.bt.count(piece); err == nil {
			if m := longPieceWork; m != nil {
				m.Add(int64(work))
			}
			return n
		}
	}
	n, work := b.mergeHeap(piece)
	if m := longPieceWork; m != nil {
		m.Add(int64(work))
	}
	return n
}

// rank of piece[a:c] or noRank.
func (b *bpe) rank(piece string, a, c int) int {
	if r := b.lookup(piece[a:c]); r >= 0 {
		return int(r)
	}
	return noRank
}

// rankAt is rank for text[a:c], looked up with getAt when short.
func (b *bpe) rankAt(text string, a, c int) int {
	var r int32 = -1
	if c-a <= shortKey {
		r = b.short.getAt(text, a, c-a)
	} else if c-a <= midKey {
		r = b.mid.getAt(text, a, c-a)
	} else if v, ok := b.long[text[a:c]]; ok {
		r = v
	}
	if r < 0 {
		return noRank
	}
	return int(r)
}

// lookup returns the rank of s, or -1 when s is not in the vocabulary.
func (b *bpe) lookup(s string) int32 {
	if len(s) <= shortKey {
		return b.short.get(s)
	}
	if len(s) <= midKey {
		return b.mid.get(s)
	}
	if r, ok := b.long[s]; ok {
		return r
	}
	return -1
}

// mergeSmall is tiktoken's byte_pair_merge over the piece text[from:to]:
// parts[i] is the start of part i (an offset in text) and the rank of
// merging part i with part i+1.
func (b *bpe) mergeSmall(text string, from, to int) int {
	type part struct{ start, rank int }
	var buf [smallPiece + 1]part
	parts := buf[:to-from+1]
	for i := range parts {
		parts[i] = part{from + i, noRank}
	}
	for i := 0; i+2 < len(parts); i++ {
		parts[i].rank = b.rankAt(text, parts[i].start, parts[i+2].start)
	}
	pairRank := func(i int) int {
		if i+3 < len(parts) {
			return b.rankAt(text, parts[i].start, parts[i+3].start)
		}
		return noRank
	}
	for len(parts) > 1 {
		minRank, minIdx := noRank, -1
		for i := 0; i < len(parts)-1; i++ {
			if parts[i].rank < minRank {
				minRank, minIdx = parts[i].rank, i
			}
		}
		if minIdx < 0 {
			break
		}
		i := minIdx
		parts[i].rank = pairRank(i)
		if i > 0 {
			parts[i-1].rank = pairRank(i - 1)
		}
		parts = append(parts[:i+1], parts[i+2:]...)
	}
	return len(parts) - 1
}

// mergeHeap gives the same result as mergeSmall in O(n log n): the parts
// form a linked list, and candidate merges wait in a heap ordered by rank
// and then start, which is the order mergeSmall's scan picks them in.
// Entries made stale by a neighbour's merge are skipped when popped. It
// also returns its work, each push and pop weighted by the heap's depth.
// It is what counted long pieces before the backtracking encoder, kept as
// the fallback should a vocabulary not fit that encoder's tables and as
// the baseline its benchmarks compare with.
func (b *bpe) mergeHeap(piece string) (count, work int) {
	n := len(piece)
	next := make([]int32, n+1) // next[i]: start of the part after the part starting at i
	prev := make([]int32, n+1)
	alive := make([]bool, n+1)
	gen := make([]uint32, n+1)
	for i := 0; i <= n; i++ {
		next[i], prev[i], alive[i] = int32(i+1), int32(i-1), true
	}
	h := make(mergeHeap, 0, n)
	for i := 0; i+2 <= n; i++ {
		if r := b.rank(piece, i, i+2); r != noRank {
			h = append(h, mergeEntry{rank: r, start: int32(i)})
		}
	}
	heap.Init(&h)
	work = len(h) // Init is linear
	parts := n
	// pairEnd is the end of the pair starting at part i, or -1.
	pairEnd := func(i int32) int32 {
		j := next[i]
		if int(j) >= n {
			return -1
		}
		return next[j]
	}
	for h.Len() > 0 {
		work += bits.Len(uint(h.Len()))
		e := heap.Pop(&h).(mergeEntry)
		i := e.start
		if !alive[i] || gen[i] != e.gen {
			continue
		}
		// Merge part i with its successor.
		j := next[i]
		alive[j] = false
		next[i] = next[j]
		if int(next[j]) <= n {
			prev[next[j]] = i
		}
		parts--
		gen[i]++
		if end := pairEnd(i); end >= 0 {
			if r := b.rank(piece, int(i), int(end)); r != noRank {
				work += bits.Len(uint(h.Len()))
				heap.Push(&h, mergeEntry{rank: r, start: i, gen: gen[i]})
			}
		}
		if p := prev[i]; p >= 0 {
			gen[p]++
			if r := b.rank(piece, int(p), int(next[i])); r != noRank {
				work += bits.Len(uint(h.Len()))
				heap.Push(&h, mergeEntry{rank: r, start: p, gen: gen[p]})
			}
		}
	}
	return parts, work
}

type mergeEntry struct {
	rank  int
	start int32
	gen   uint32
}

type mergeHeap []mergeEntry

func (h mergeHeap) Len() int { return len(h) }
func (h mergeHeap) Less(a, b int) bool {
	if h[a].rank != h[b].rank {
		return h[a].rank < h[b].rank
	}
	return h[a].start < h[b].start
}
func (h mergeHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *mergeHeap) Push(x any)   { *h = append(*h, x.(mergeEntry)) }
func (h *mergeHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
