package tokens

import "math/bits"

// midKey is the longest vocabulary entry kept in a midTable: two words.
// Entries of 9 to 16 bytes are a quarter of o200k_base and include common
// whole words with their leading space (" quarterly", " customers"); in
// Go's string map each lookup hashed the string, probed a group and then
// compared bytes through the string's pointer, a fifth of counting prose.
const midKey = 2 * shortKey

// midEntry is one slot of a midTable. lo is the key's first eight bytes
// and hi the rest, packed as packShort does; n is the key's length (0 for
// an empty slot), compared so that keys that differ only by trailing NUL
// bytes differ.
type midEntry struct {
	lo, hi uint64
	rank   int32
	n      uint32
}

// midTable is shortTable's counterpart for keys of shortKey+1 to midKey
// bytes: open addressing, linear probing, built once and only read after.
type midTable struct {
	slots []midEntry
	shift uint // 64 - log2(len(slots))
	mask  uint64
}

// newMidTable builds the table from the vocabulary in rank order (byRank),
// common entries first, as newShortTable does.
func newMidTable(vocab []rankedKey) midTable {
	size, shift, mask := tableSize(vocab, shortKey+1, midKey)
	t := midTable{slots: make([]midEntry, size), shift: shift, mask: mask}
	for _, e := range vocab {
		k, r := e.key, e.rank
		if len(k) <= shortKey || len(k) > midKey {
			continue
		}
		lo, hi, kn := packShort(k[:shortKey]), packShort(k[shortKey:]), uint32(len(k))
		for i := t.slot(lo, hi, kn); ; i = (i + 1) & t.mask {
			if t.slots[i].n == 0 {
				t.slots[i] = midEntry{lo: lo, hi: hi, rank: int32(r), n: kn}
				break
			}
		}
	}
	return t
}

// slot is the first slot probed for a key: the two words and the length
// folded into one and Fibonacci-hashed, top bits. hi is rotated so that
// its few low bytes land on bits lo's multiply spreads differently.
func (t *midTable) slot(lo, hi uint64, n uint32) uint64 {
	h := (lo ^ bits.RotateLeft64(hi, 31) ^ uint64(n)<<59) * 0x9E3779B97F4A7C15
	return h >> (t.shift & 63)
}

// get returns the rank of s (shortKey+1 to midKey bytes), or -1.
func (t *midTable) get(s string) int32 {
	return t.find(packShort(s[:shortKey]), packShort(s[shortKey:]), uint32(len(s)))
}

// getAt returns the rank of text[i:i+n] (n from shortKey+1 to midKey), or
// -1, packing with two loads where midKey bytes remain.
func (t *midTable) getAt(text string, i, n int) int32 {
	if i+midKey > len(text) {
		return t.get(text[i : i+n])
	}
	return t.find(packAt(text, i, shortKey), packAt(text, i+shortKey, n-shortKey), uint32(n))
}

// find returns the rank stored for a packed key of n bytes, or -1.
func (t *midTable) find(lo, hi uint64, n uint32) int32 {
	for i := t.slot(lo, hi, n); ; i = (i + 1) & t.mask {
		e := &t.slots[i]
		if e.lo == lo && e.hi == hi && e.n == n {
			return e.rank
		}
		if e.n == 0 {
			return -1
		}
	}
}

// bytes is the memory the table's slots take.
func (t *midTable) bytes() int { return len(t.slots) * 24 }
