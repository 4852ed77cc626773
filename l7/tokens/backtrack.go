package tokens

import (
	"errors"
	"fmt"
	"math"
)

// The backtracking encoder counts a long piece in time linear in its
// length, with the same result as tiktoken's merge by rank. It rests on a
// property of byte-pair encoding: a sequence of tokens that spells the
// piece is the one the merges produce exactly when every adjacent pair of
// it is one the merges would leave apart (a "valid pair": the merges of
// the two tokens' bytes end in those two tokens). That holds for replaying
// a vocabulary's learned merges, each token made from the two it was
// learned from (the tables below recover them); tiktoken instead merges
// any adjacent pair whose joined bytes are a token, lowest rank first,
// which agrees with the replay for vocabularies trained by merging, as
// cl100k_base and o200k_base are (tests hold the two to tiktoken-go and to
// the heap merge), but not for any set of ranks. So the piece is split
// left to right, each time taking the longest token that keeps the last
// pair valid, and backing up one token when none does; a position from
// which no split can succeed is remembered and never tried again. Each
// step does work bounded by the longest token, so the whole is linear in
// the piece. This is the encoder GitHub's rust-gems "bpe" crate describes;
// the tables and the loop are written here from that description.
//
// The tables: the trie answers "longest token at this position"; short
// gives, for each token, the longest token that is a proper prefix of it
// (the next, shorter candidate); left and right give the last merge that
// made each token; pairs maps a merge's two tokens to what they make.
// Tokens the merges can never make (a few long ones whose bytes merge into
// other tokens) are left out of the trie: tiktoken emits them only for a
// piece that is exactly that token, which count looks up first.
type backtrack struct {
	trie   *prefixTrie
	length []uint8 // bytes of each token, by rank; 0 for a rank not used
	short  []int32 // longest merge-reachable proper prefix, or noToken
	left   []int32 // the merge that makes a token: left[r], right[r];
	right  []int32 // a single byte's is itself
	pairs  pairTable
}

// maxBacktrackRank bounds the ranks the pair table can pack (21 bits each).
const maxBacktrackRank = 1<<21 - 1

var errNoTokenization = errors.New("tokens: backtracking found no tokenization")

// newBacktrack builds the tables from the vocabulary in rank order (byRank)
// and lookup, the vocabulary's rank of a byte string or -1. It refuses a
// vocabulary it cannot represent (ranks past 2^21, tokens over 255 bytes,
// a byte that is no token); the caller then keeps to the heap merge.
func newBacktrack(vocab []rankedKey, lookup func(string) int32) (*backtrack, error) {
	maxRank := -1
	for _, e := range vocab {
		if e.rank < 0 || e.rank > maxBacktrackRank {
			return nil, fmt.Errorf("tokens: rank %d out of the backtracking encoder's range", e.rank)
		}
		if len(e.key) == 0 || len(e.key) > math.MaxUint8 {
			return nil, fmt.Errorf("tokens: token of %d bytes out of the backtracking encoder's range", len(e.key))
		}
		maxRank = max(maxRank, e.rank)
	}
	keys := make([]string, maxRank+1)
	for _, e := range vocab {
		keys[e.rank] = e.key
	}
	b := &backtrack{
		trie:   newPrefixTrie(vocab),
		length: make([]uint8, maxRank+1),
		short:  make([]int32, maxRank+1),
		left:   make([]int32, maxRank+1),
		right:  make([]int32, maxRank+1),
		pairs:  newPairTable(len(vocab)),
	}
	for c := 0; c < 256; c++ {
		if lookup(string([]byte{byte(c)})) < 0 {
			return nil, fmt.Errorf("tokens: byte %#x is no token", c)
		}
	}
	// A token's last merge joins two tokens of lower rank that form a
	// valid pair, and only one such split exists (the merges of its bytes
	// are determined); it is found among the token's prefixes. Ranks are
	// visited in order, so every lower-ranked token is already settled and
	// the pair table holds exactly the merges a lower rank can make.
	reachable := make([]bool, maxRank+1)
	anc := b.trie.ancestors()
	for r, key := range keys {
		if key == "" {
			continue
		}
		b.length[r] = uint8(len(key))
		b.left[r], b.right[r] = int32(r), int32(r)
		if len(key) == 1 {
			reachable[r] = true
			continue
		}
		for v := anc[b.trie.node[r]]; v != 0; v = anc[v] {
			t1 := b.trie.token[v]
			n1 := len(keys[t1])
			if int(t1) >= r || !reachable[t1] {
				continue
			}
			t2 := lookup(key[n1:])
			if t2 < 0 || int(t2) >= r || !reachable[t2] {
				continue
			}
			if ok, _ := b.validPair(t1, t2); ok {
				b.left[r], b.right[r] = t1, t2
				b.pairs.put(t1, t2, int32(r))
				reachable[r] = true
				break
			}
		}
	}
	// A token the merges cannot make is never offered, as a match or as
	// a shorter candidate.
	for r, key := range keys {
		if key != "" && !reachable[r] {
			b.trie.token[b.trie.node[r]] = noToken
		}
	}
	for r, key := range keys {
		b.short[r] = noToken
		if key == "" || !reachable[r] {
			continue
		}
		for v := anc[b.trie.node[r]]; v != 0; v = anc[v] {
			if t := b.trie.token[v]; t != noToken {
				b.short[r] = t
				break
			}
		}
	}
	b.trie.node = nil
	return b, nil
}

// fix moves the finished tables off the Go heap (offHeap): they are only
// read from now on.
func (b *backtrack) fix() {
	b.length = offHeap(b.length)
	b.short = offHeap(b.short)
	b.left = offHeap(b.left)
	b.right = offHeap(b.right)
	b.pairs.slots = offHeap(b.pairs.slots)
	b.trie.edges = offHeap(b.trie.edges)
	b.trie.token = offHeap(b.trie.token)
	b.trie.first2 = offHeap(b.trie.first2)
}

// validPair reports whether the merges of t1's bytes followed by t2's end
// in t1, t2, and the pair-table probes it took. It undoes the two tokens'
// merges, latest first, and at each stage asks whether the two tokens
// then meeting at the boundary would merge before the merge undone, which
// would take the text across the boundary. Among equal ranks tiktoken
// merges the leftmost pair, so a boundary merge of the same rank as a
// merge on the right goes first (limit t2+1) and one of the same rank as
// a merge on the left does not (limit t1).
func (b *backtrack) validPair(t1, t2 int32) (bool, int) {
	limit := int32(math.MaxInt32)
	for steps := 1; ; steps++ {
		if c := b.pairs.get(t1, t2); c >= 0 && c < limit {
			return false, steps
		}
		if t1 > t2 {
			limit = t1
			if t1 = b.right[t1]; t1 == limit { // t1 is a byte
				limit = t2 + 1
				if t2 = b.left[t2]; t2+1 == limit {
					return true, steps
				}
			}
		} else {
			limit = t2 + 1
			if t2 = b.left[t2]; t2+1 == limit { // t2 is a byte
				limit = t1
				if t1 = b.right[t1]; t1 == limit {
					return true, steps
				}
			}
		}
	}
}

// count returns the number of tokens tiktoken's merge makes of piece (which
// is not itself a token), and the work it took in table probes and
// candidate tokens, which tests meter. It fails only if the tables admit no
// split, which a vocabulary newBacktrack accepted does not allow.
func (b *backtrack) count(piece string) (int, int, error) {
	n := len(piece)
	// stack holds the tokens chosen so far; viable has a bit per position
	// that may still start the rest of a split. Long pieces of letters
	// make a token for every two bytes or so, random bytes more.
	stack := make([]int32, 0, n/2+8)
	viable := make([]uint64, n/64+1)
	for i := range viable {
		viable[i] = math.MaxUint64
	}
	pos := 0
	next, work := b.trie.longest(piece, 0)
	for pos < n {
		last := int32(noToken)
		if len(stack) > 0 {
			last = stack[len(stack)-1]
		}
		for tok := next; ; {
			work++
			end := pos + int(b.length[tok])
			ok := viable[end>>6]&(1<<(end&63)) != 0
			if ok && last != noToken {
				var w int
				ok, w = b.validPair(last, tok)
				work += w
			}
			if ok {
				stack = append(stack, tok)
				pos = end
				if pos < n {
					var w int
					next, w = b.trie.longest(piece, pos)
					work += w
				}
				break
			}
			if tok = b.short[tok]; tok != noToken {
				continue
			}
			// Nothing that starts at pos can follow last: pos is a dead end,
			// and last is retried with its next shorter candidate.
			if last == noToken {
				return 0, work, errNoTokenization
			}
			viable[pos>>6] &^= 1 << (pos & 63)
			stack = stack[:len(stack)-1]
			pos -= int(b.length[last])
			next = last
			break
		}
	}
	return len(stack), work, nil
}

// pairTable maps a merge's two tokens to the token they make: open
// addressing over one word a slot, the two ranks (21 bits each) plus one
// in the high bits and the result in the low 21.
type pairTable struct {
	slots []uint64
	shift uint
	mask  uint64
}

func newPairTable(n int) pairTable {
	size := 2
	for size*shortLoadNum < n*shortLoadDen {
		size <<= 1
	}
	shift := uint(64)
	for s := size; s > 1; s >>= 1 {
		shift--
	}
	return pairTable{slots: make([]uint64, size), shift: shift, mask: uint64(size - 1)}
}

func (t *pairTable) slot(key uint64) uint64 {
	return (key * 0x9E3779B97F4A7C15) >> (t.shift & 63)
}

func (t *pairTable) put(t1, t2, made int32) {
	key := uint64(t1)<<21 | uint64(t2)
	for i := t.slot(key); ; i = (i + 1) & t.mask {
		if t.slots[i] == 0 {
			t.slots[i] = (key+1)<<21 | uint64(made)
			return
		}
	}
}

// get returns what t1, t2 merge into, or -1.
func (t *pairTable) get(t1, t2 int32) int32 {
	key := uint64(t1)<<21 | uint64(t2)
	want := key + 1
	for i := t.slot(key); ; i = (i + 1) & t.mask {
		e := t.slots[i]
		if e>>21 == want {
			return int32(e & maxBacktrackRank)
		}
		if e == 0 {
			return -1
		}
	}
}
