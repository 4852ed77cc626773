package tokens

import (
	"cmp"
	"math/bits"
	"slices"
)

// shortKey is the longest vocabulary entry kept in a shortTable: it packs
// into one uint64, so a lookup hashes and compares one word instead of
// hashing a string and comparing its bytes, which made Go's string map the
// largest share of counting time.
const shortKey = 8

// shortLoad is the most entries per slot of a shortTable, as a fraction
// num/den. At 3/4 the tables are 57-61% full; with four slots to a cache
// line most probes still touch one line, and the tables take half the
// memory they did at 1/2 with no measurable change in speed.
const (
	shortLoadNum = 3
	shortLoadDen = 4
)

// shortEntry is one slot. n is the key's length, 0 for an empty slot; it is
// compared along with key so that "a" and "a\x00" differ.
type shortEntry struct {
	key  uint64
	rank int32
	n    uint32
}

// shortTable is an open-addressing hash table, linear probing, from keys
// of 1 to shortKey bytes to ranks. It is built once and only read after,
// so it needs no locking.
type shortTable struct {
	slots []shortEntry
	shift uint // 64 - log2(len(slots))
	mask  uint64
}

// newShortTable builds the table from the vocabulary in rank order
// (byRank).
func newShortTable(vocab []rankedKey) shortTable {
	size, shift, mask := tableSize(vocab, 1, shortKey)
	t := shortTable{slots: make([]shortEntry, size), shift: shift, mask: mask}
	for _, e := range vocab {
		k, r := e.key, e.rank
		if k == "" || len(k) > shortKey {
			continue
		}
		key, kn := packShort(k), uint32(len(k))
		for i := t.slot(key, kn); ; i = (i + 1) & t.mask {
			if t.slots[i].n == 0 {
				t.slots[i] = shortEntry{key: key, rank: int32(r), n: kn}
				break
			}
		}
	}
	return t
}

// tableSize sizes an open-addressing table for the vocabulary's entries
// of minLen to maxLen bytes at the shortLoad fill: its number of slots (a
// power of two), the shift that keeps a hash's top bits as a slot index
// and the mask that wraps a probe.
func tableSize(vocab []rankedKey, minLen, maxLen int) (size int, shift uint, mask uint64) {
	n := 0
	for _, e := range vocab {
		if len(e.key) >= minLen && len(e.key) <= maxLen {
			n++
		}
	}
	size = 2 // one slot would leave slot's shift a full word
	for size*shortLoadNum < n*shortLoadDen {
		size <<= 1
	}
	return size, uint(64 - bits.TrailingZeros(uint(size))), uint64(size - 1)
}

// byRank returns the vocabulary's entries in rank order, the order the
// tables insert them in: with linear probing an entry inserted early sits
// at or near its first probe, and low ranks are the merges BPE learned
// first, the most common byte sequences, so most lookups of text find
// their entry at the first probe (1.0-1.2 probes a piece on the benchmark
// prompts rather than 1.6-1.9 in the map's random order), and the probe
// loop's branch is easier to predict.
func byRank(ranks map[string]int) []rankedKey {
	keys := make([]rankedKey, 0, len(ranks))
	for k, r := range ranks {
		keys = append(keys, rankedKey{k, r})
	}
	slices.SortFunc(keys, func(a, b rankedKey) int { return cmp.Compare(a.rank, b.rank) })
	return keys
}

type rankedKey struct {
	key  string
	rank int
}

// packShort packs s (at most shortKey bytes) little-endian into a uint64.
func packShort(s string) uint64 {
	var k uint64
	for i := len(s) - 1; i >= 0; i-- {
		k = k<<8 | uint64(s[i])
	}
	return k
}

// slot is the first slot probed for a key: Fibonacci hashing of the key
// with its length mixed in, top bits. Here and in the other shifts by a
// computed count, & 63 tells the compiler the count is below 64, which
// spares the compare and mask Go's shift semantics otherwise need.
func (t *shortTable) slot(key uint64, n uint32) uint64 {
	h := (key ^ uint64(n)<<59 ^ uint64(n)) * 0x9E3779B97F4A7C15
	return h >> (t.shift & 63)
}

// get returns the rank of s (1 to shortKey bytes), or -1.
func (t *shortTable) get(s string) int32 {
	return t.find(packShort(s), uint32(len(s)))
}

// getAt returns the rank of text[i:i+n] (n from 1 to shortKey), or -1.
// Where eight bytes remain in text it packs the key with one load and a
// mask instead of packShort's byte loop: the count loop looks up every
// piece, and the loop was a tenth of counting time.
func (t *shortTable) getAt(text string, i, n int) int32 {
	if i+shortKey > len(text) {
		return t.find(packShort(text[i:i+n]), uint32(n))
	}
	return t.find(packAt(text, i, n), uint32(n))
}

// packAt is packShort(text[i:i+n]) for n from 1 to shortKey where eight
// bytes remain in text: one load (the compiler merges the byte reads) and
// a mask.
func packAt(text string, i, n int) uint64 {
	return load64(text, i) & (^uint64(0) >> ((64 - 8*uint(n)) & 63))
}

// load64 returns text[i:i+8] little-endian; the compiler merges the byte
// reads into one load.
func load64(text string, i int) uint64 {
	s := text[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// lowBytes is the mask of the low n bytes of a word, n from 1 to 8.
func lowBytes(n int) uint64 { return ^uint64(0) >> ((64 - 8*uint(n)) & 63) }

// find returns the rank stored for a packed key of n bytes, or -1.
func (t *shortTable) find(key uint64, n uint32) int32 {
	for i := t.slot(key, n); ; i = (i + 1) & t.mask {
		e := &t.slots[i]
		if e.key == key && e.n == n {
			return e.rank
		}
		if e.n == 0 {
			return -1
		}
	}
}

// bytes is the memory the table's slots take.
func (t *shortTable) bytes() int { return len(t.slots) * 16 }
