// Package maglev builds weighted Maglev lookup tables (Eisenbud et al.,
// "Maglev: A Fast and Reliable Software Network Load Balancer", NSDI 2016)
// for the XDP balancer and the L7 router.
//
// Each backend walks its own permutation of the table's slots, derived from
// a stable hash of its identity, and claims the next free slot on its turn.
// Turns are weighted: a backend with weight w takes a turn in w/wmax of the
// rounds (the heaviest backend takes one every round), so its share of
// slots follows its weight. The table depends only on the set of backends,
// their weights, the size and the seed, never on input order, so every node
// that builds it gets the same table, and a small change to the set moves
// few slots.
//
// # Several balancer nodes
//
// Behind a router spreading clients over balancer nodes by ECMP, a flow
// moves to another node when the router's choice changes (a node drains,
// restarts or joins). The new node has no connection entry for it and
// picks by its table, so what keeps the flow's backend is that the nodes'
// tables agree: the agent keys each backend by its address (not by the
// node-local ID it stores), and the XDP flow hash has a fixed seed, so
// nodes with the same backends and weights send every flow to the same
// backend. When the backend set changed meanwhile on the new node, Maglev's
// minimal disruption is what holds: a flow keeps its backend unless its
// slot moved, and about the changed backends' share of slots move (a fifth
// backend takes about a fifth of the slots; under 1% more move between
// the others at the default size). Those flows, and flows to a backend
// that drains, reach a backend without their connection and are reset:
// there is no connection state shared between nodes, as in Katran and
// Cilium's Maglev. Weights that come from load reports are polled by each
// node on its own and can differ for a moment; they move slots the same
// bounded way.
package maglev

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"slices"
)

// Backend is one entry to place in the table.
type Backend struct {
	// ID is what the table holds; the data plane maps it to an address.
	ID uint32
	// Weight is the relative share of slots; zero means no slots (a
	// draining backend keeps its established flows elsewhere, not here).
	Weight uint32
	// Key is the stable identity that seeds the backend's permutation,
	// e.g. "10.0.0.7:8000". Two nodes must agree on it. When empty, the ID
	// is used, which is fine as long as IDs are stable across rebuilds.
	Key string
}

// DefaultSeed seeds the permutation hash. Any fixed value works; changing
// it reshuffles every table (useful to decorrelate tiers of balancers).
const DefaultSeed uint64 = 0x9e3779b97f4a7c15

// SlotsPerBackend is the minimum table size per backend: the paper's
// guidance (M >> N) and issue 3's rule. It bounds the rounding error of
// each backend's share to about 1/SlotsPerBackend of an equal share.
const SlotsPerBackend = 100

// MinTableSize is the smallest size SizeFor returns (Cilium's default
// table size). Maglev's disruption beyond the minimum shrinks as slots per
// backend grow: with few backends a 100-slot-per-backend table moves
// several percent of extra flows on a change, at 16381 slots well under one
// percent (measured in TestDisruption), and 64 KiB per VIP is cheap.
const MinTableSize uint64 = 16381

// MaxBackends bounds the input so a table never outgrows MaxTableSize.
const MaxBackends = 160_000

// MaxTableSize is the largest table Build accepts (the largest entry of
// sizes). It keeps memory and build time bounded for any input.
const MaxTableSize uint64 = 16_777_213

// sizes are primes just below powers of two, the sizes Maglev deployments
// use (Cilium's defaults are 16381 and 65521 among others).
var sizes = [...]uint64{
	251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
	262139, 524287, 1048573, 2097143, 4194301, 8388593, 16777213,
}

// Sizes returns the table sizes SizeFor chooses from, smallest first.
func Sizes() []uint64 { return slices.Clone(sizes[:]) }

// SizeFor returns the smallest standard prime size that is at least
// MinTableSize and gives every one of n backends at least SlotsPerBackend
// slots, or 0 when n exceeds MaxBackends.
func SizeFor(n int) uint64 {
	if n < 1 {
		n = 1
	}
	if n > MaxBackends {
		return 0
	}
	want := max(uint64(n)*SlotsPerBackend, MinTableSize)
	for _, s := range sizes {
		if s >= want {
			return s
		}
	}
	return 0
}

// Errors Build returns; wrapped with detail.
var (
	ErrNoBackends = errors.New("maglev: no backend with a positive weight")
	ErrDuplicate  = errors.New("maglev: duplicate backend")
	ErrSize       = errors.New("maglev: bad table size")
)

// Build returns a table of size slots, each holding a backend ID, using
// DefaultSeed.
func Build(backends []Backend, size uint64) ([]uint32, error) {
	return BuildSeeded(backends, size, DefaultSeed)
}

// walker is one backend's position in its permutation and its turn count.
type walker struct {
	id     uint32
	weight uint64
	pos    uint64 // next slot to try
	skip   uint64
	picks  uint64 // slots taken so far
	round  uint64 // round of the next turn
	order  int    // rank among backends; breaks ties within a round
}

// BuildSeeded is Build with an explicit permutation seed.
//
// size must be prime, at most MaxTableSize, and at least SlotsPerBackend
// times the number of backends with a positive weight. IDs and keys must be
// unique among all backends given, weighted or not.
func BuildSeeded(backends []Backend, size uint64, seed uint64) ([]uint32, error) {
	if len(backends) > MaxBackends {
		return nil, fmt.Errorf("%w: %d backends, at most %d", ErrSize, len(backends), MaxBackends)
	}
	if size < 2 || size > MaxTableSize || !big.NewInt(0).SetUint64(size).ProbablyPrime(0) {
		// ProbablyPrime is exact below 2^64.
		return nil, fmt.Errorf("%w: %d is not a prime in [2, %d]", ErrSize, size, MaxTableSize)
	}
	ids := make(map[uint32]struct{}, len(backends))
	keys := make(map[string]struct{}, len(backends))
	active := make([]Backend, 0, len(backends))
	for _, b := range backends {
		if _, dup := ids[b.ID]; dup {
			return nil, fmt.Errorf("%w: id %d", ErrDuplicate, b.ID)
		}
		ids[b.ID] = struct{}{}
		k := identity(b)
		if _, dup := keys[k]; dup {
			return nil, fmt.Errorf("%w: key %q (id %d)", ErrDuplicate, k, b.ID)
		}
		keys[k] = struct{}{}
		if b.Weight > 0 {
			active = append(active, b)
		}
	}
	if len(active) == 0 {
		return nil, ErrNoBackends
	}
	if size < uint64(len(active))*SlotsPerBackend {
		return nil, fmt.Errorf("%w: %d slots for %d backends, need at least %d each",
			ErrSize, size, len(active), SlotsPerBackend)
	}

	// Sort by identity so ties within a round resolve the same way for any
	// input order.
	slices.SortFunc(active, func(a, b Backend) int { return cmp.Compare(identity(a), identity(b)) })
	var wmax uint64
	for _, b := range active {
		wmax = max(wmax, uint64(b.Weight))
	}
	ws := make([]walker, len(active))
	for i, b := range active {
		offset, skip := permutation(identity(b), size, seed)
		ws[i] = walker{id: b.ID, weight: uint64(b.Weight), pos: offset, skip: skip, order: i}
	}

	// Turns come in rounds; within a round in identity order. Backend i's
	// k-th turn (k from 0) falls in round floor(k*wmax/w_i): it has taken
	// fewer than (r+1)*w_i/wmax turns by the end of round r. A heap on
	// (round, order) replays exactly that schedule in O(size * log n)
	// instead of visiting every backend every round, which matters when
	// weights differ by orders of magnitude.
	h := walkerHeap(make([]*walker, len(ws)))
	for i := range ws {
		h[i] = &ws[i]
	}
	h.init()

	table := make([]uint32, size)
	filled := make([]bool, size)
	for n := uint64(0); n < size; n++ {
		w := h[0]
		for filled[w.pos] {
			w.pos = addMod(w.pos, w.skip, size)
		}
		filled[w.pos] = true
		table[w.pos] = w.id
		w.pos = addMod(w.pos, w.skip, size)
		w.picks++
		// picks <= size <= 2^24 and weight < 2^32: no overflow.
		w.round = w.picks * wmax / w.weight
		h.fix0()
	}
	return table, nil
}

// identity is the string that seeds a backend's permutation.
func identity(b Backend) string {
	if b.Key != "" {
		return "k:" + b.Key
	}
	var buf [4]byte
	binary.BigEndian.PutUint32(buf[:], b.ID)
	return "i:" + string(buf[:])
}

// permutation derives the walk (offset, skip) of one backend. SHA-256 is
// slower than the murmur3 Cilium uses, but it runs once per backend per
// build, is in the standard library and is stable across Go releases
// (unlike hash/maphash).
func permutation(key string, size, seed uint64) (offset, skip uint64) {
	var in [8]byte
	binary.BigEndian.PutUint64(in[:], seed)
	s := sha256.New()
	s.Write(in[:])
	s.Write([]byte(key))
	var sum [sha256.Size]byte
	s.Sum(sum[:0])
	offset = binary.BigEndian.Uint64(sum[0:8]) % size
	// A skip in [1, size-1] is coprime with the prime size, so the walk
	// visits every slot.
	skip = binary.BigEndian.Uint64(sum[8:16])%(size-1) + 1
	return offset, skip
}

func addMod(a, b, m uint64) uint64 {
	a += b // both < m <= 2^24
	if a >= m {
		a -= m
	}
	return a
}

// walkerHeap is a min-heap on (round, order); hand-rolled because only the
// root ever changes.
type walkerHeap []*walker

func less(a, b *walker) bool {
	if a.round != b.round {
		return a.round < b.round
	}
	return a.order < b.order
}

func (h walkerHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h walkerHeap) fix0() { h.down(0) }

func (h walkerHeap) down(i int) {
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && less(h[r], h[l]) {
			m = r
		}
		if !less(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// Moved counts slots whose backend differs between two tables of the same
// size; the agent uses it to report how many flows a rebuild would move.
func Moved(a, b []uint32) (int, error) {
	if len(a) != len(b) {
		return 0, fmt.Errorf("maglev: tables differ in size (%d, %d)", len(a), len(b))
	}
	n := 0
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return n, nil
}
