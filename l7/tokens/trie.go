package tokens

import "math/bits"

// noToken marks a trie node that spells no token, and the end of a prefix
// chain.
const noToken = -1

// prefixTrie is a byte trie over the vocabulary, for the backtracking
// encoder's "longest token at this position" question. Nodes are numbered
// from the root, 0; an edge is one slot of an open-addressing table keyed
// by (node, byte), so the trie costs eight bytes a slot and four a node
// rather than a child array per node. The edges out of the root and out of
// its children are also kept in a dense table (first2), since every walk
// starts there and most end within a few bytes.
type prefixTrie struct {
	// edges holds key+1 in the high 32 bits (0 marks an empty slot), where
	// key is node<<8|byte, and the child in the low 32 bits.
	edges []uint64
	shift uint
	mask  uint64
	// token is the rank a node spells, or noToken.
	token []int32
	// parent is each node's parent (the root's is 0); it lives while the
	// encoder's tables are built (see ancestors).
	parent []uint32
	// node is the node that spells each rank, also kept only while the
	// tables are built.
	node []uint32
	// first2 is the node two bytes spell (index b0<<8|b1), 0 when no token
	// starts with them; first1 the node one byte spells.
	first1 [256]uint32
	first2 []uint32
}

// newPrefixTrie builds the trie over vocab (rank order). Shared prefixes
// make the nodes a third of the vocabulary's bytes, so the edge table
// starts from that guess and doubles when it passes the shortLoad fill.
func newPrefixTrie(vocab []rankedKey) *prefixTrie {
	total := 1
	for _, e := range vocab {
		total += len(e.key)
	}
	maxRank := 0
	for _, e := range vocab {
		maxRank = max(maxRank, e.rank)
	}
	t := &prefixTrie{
		token:  make([]int32, 1, total/3),
		parent: make([]uint32, 1, total/3),
		node:   make([]uint32, maxRank+1),
	}
	t.token[0] = noToken
	t.resize(total / 3)
	for _, e := range vocab {
		node := uint32(0)
		for i := 0; i < len(e.key); i++ {
			node = t.insert(node, e.key[i])
		}
		t.token[node] = int32(e.rank)
		t.node[e.rank] = node
	}
	for b := range t.first1 {
		t.first1[b] = t.child(0, byte(b))
	}
	t.first2 = make([]uint32, 1<<16)
	for b0 := range t.first1 {
		if n := t.first1[b0]; n != 0 {
			for b1 := 0; b1 < 256; b1++ {
				t.first2[b0<<8|b1] = t.child(n, byte(b1))
			}
		}
	}
	return t
}

func (t *prefixTrie) slot(key uint64) uint64 {
	return (key * 0x9E3779B97F4A7C15) >> (t.shift & 63)
}

// child returns the node reached from node by byte b, or 0 when there is
// none (the root is no node's child).
func (t *prefixTrie) child(node uint32, b byte) uint32 {
	key := uint64(node)<<8 | uint64(b)
	want := (key + 1) << 32
	for i := t.slot(key); ; i = (i + 1) & t.mask {
		e := t.edges[i]
		if e&^0xffffffff == want {
			return uint32(e)
		}
		if e == 0 {
			return 0
		}
	}
}

// resize makes the edge table the smallest power of two that holds n
// edges within the shortLoad fill, moving the edges there are.
func (t *prefixTrie) resize(n int) {
	size := 2
	for size*shortLoadNum < n*shortLoadDen {
		size <<= 1
	}
	old := t.edges
	t.edges = make([]uint64, size)
	t.shift = uint(64 - bits.TrailingZeros(uint(size)))
	t.mask = uint64(size - 1)
	for _, e := range old {
		if e == 0 {
			continue
		}
		for i := t.slot(e>>32 - 1); ; i = (i + 1) & t.mask {
			if t.edges[i] == 0 {
				t.edges[i] = e
				break
			}
		}
	}
}

// insert returns the child of node by b, adding it when missing.
func (t *prefixTrie) insert(node uint32, b byte) uint32 {
	if len(t.token)*shortLoadDen >= len(t.edges)*shortLoadNum {
		t.resize(2 * len(t.token))
	}
	key := uint64(node)<<8 | uint64(b)
	want := (key + 1) << 32
	for i := t.slot(key); ; i = (i + 1) & t.mask {
		e := t.edges[i]
		if e&^0xffffffff == want {
			return uint32(e)
		}
		if e == 0 {
			c := uint32(len(t.token))
			t.token = append(t.token, noToken)
			t.parent = append(t.parent, node)
			t.edges[i] = want | uint64(c)
			return c
		}
	}
}

// longest returns the rank of the longest token that is a prefix of
// piece[i:] (i < len(piece)), and the number of edges it followed, the
// work a caller may meter. Every byte is a token, so there always is one.
func (t *prefixTrie) longest(piece string, i int) (rank int32, steps int) {
	node := t.first1[piece[i]]
	best := t.token[node]
	if i+1 >= len(piece) {
		return best, 1
	}
	node = t.first2[int(piece[i])<<8|int(piece[i+1])]
	steps = 2
	for k := i + 2; node != 0; k++ {
		if r := t.token[node]; r >= 0 {
			best = r
		}
		if k >= len(piece) {
			break
		}
		node = t.child(node, piece[k])
		steps++
	}
	return best, steps
}

// ancestors returns, for each node, its nearest proper ancestor that
// spells a token, or 0 (the root) when none does: following it from a
// token's node lists the token's proper prefixes in the vocabulary,
// longest first, without walking the trie. A parent is created before its
// children, so one pass in node order settles every node after its
// parent. The parent links are dropped after.
func (t *prefixTrie) ancestors() []uint32 {
	anc := make([]uint32, len(t.parent))
	for v := 1; v < len(t.parent); v++ {
		p := t.parent[v]
		if p != 0 && t.token[p] == noToken {
			p = anc[p]
		}
		anc[v] = p
	}
	t.parent = nil
	return anc
}
