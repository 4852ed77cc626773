// Package affinity chooses a backend for a prompt so that requests sharing
// a prefix (system prompt, few-shot examples, earlier turns) land where that
// prefix's KV cache already is, without letting a popular prefix overload
// one GPU.
//
// It follows the Gateway API Inference Extension's prefix scorer: the
// prompt is cut into fixed-size blocks, each block's hash chains the hashes
// before it (so a block hash names the whole prefix up to it), and an index
// remembers which backends recently served which block hashes. The choice
// is consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam,
// "Consistent Hashing with Bounded Loads", SODA 2018), weighted: a backend
// may take a request only while its in-flight count stays within Bound
// times its weighted fair share; among those, the longest cached prefix
// wins, and a prefix nobody has cached goes to its weighted rendezvous
// (highest random weight) home, so router replicas agree without talking.
//
// The bound is widened for a backend that holds part of the prompt
// (Allowed, Config.Gain): a cache hit saves the prefill of what it holds,
// which on a long shared prompt is worth far more than a few more requests
// in flight on a batching engine, so the holder keeps the prompt while its
// load, less a credit of Gain requests per 1,024 tokens it holds, is within
// Bound times the other backends' per unit of weight.
// llm-d's precise scheduler makes the same trade by scoring (prefix match
// weight 3 against queue and KV-cache weights 2 each); a bound keeps ours
// a rule a reader can check, and one that still spreads a hot prefix.
package affinity

import (
	"cmp"
	"container/list"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
)

// Defaults for Config's zero fields.
const (
	// DefaultBlockBytes: prompt bytes per block. 64 is the Inference
	// Extension prefix plugin's default; at about 4 bytes a token it is
	// near vLLM's 16-token KV block.
	DefaultBlockBytes = 64
	// DefaultMaxBlocks caps the blocks hashed per prompt (256 KiB of
	// prompt at the default block size): enough to cover any system
	// prompt, and it bounds the work per request.
	DefaultMaxBlocks = 4096
	// DefaultBound is c in the bounded-loads rule: a backend may hold at
	// most c times its weighted share of the in-flight requests. Mirrokni
	// et al. use 1.25; smaller spreads load more evenly, larger keeps more
	// affinity.
	DefaultBound = 1.25
	// DefaultIndexBlocks bounds the index (least recently used evicted).
	DefaultIndexBlocks = 1 << 18
	// backendsPerBlock: how many recent servers of one block are kept.
	backendsPerBlock = 4
)

// Config tunes a Chooser; zero fields take the defaults.
type Config struct {
	BlockBytes  int
	MaxBlocks   int
	Bound       float64
	IndexBlocks int
	// Gain widens the bound for a backend that holds part of the prompt
	// (Allowed; default DefaultGain; negative: none, the plain bound).
	Gain float64
}

func (c Config) withDefaults() (Config, error) {
	c.BlockBytes = cmp.Or(c.BlockBytes, DefaultBlockBytes)
	c.MaxBlocks = cmp.Or(c.MaxBlocks, DefaultMaxBlocks)
	c.Bound = cmp.Or(c.Bound, DefaultBound)
	c.IndexBlocks = cmp.Or(c.IndexBlocks, DefaultIndexBlocks)
	switch {
	case c.Gain == 0:
		c.Gain = DefaultGain
	case c.Gain < 0:
		c.Gain = 0
	}
	switch {
	case !(c.Gain <= 100):
		return c, fmt.Errorf("affinity: gain %v above 100", c.Gain)
	case c.BlockBytes < 1 || c.BlockBytes > 1<<20:
		return c, fmt.Errorf("affinity: block size %d outside [1, 1Mi]", c.BlockBytes)
	case c.MaxBlocks < 1 || c.MaxBlocks > 1<<20:
		return c, fmt.Errorf("affinity: max blocks %d outside [1, 1Mi]", c.MaxBlocks)
	case !(c.Bound >= 1 && c.Bound <= 100):
		return c, fmt.Errorf("affinity: bound %v outside [1, 100]", c.Bound)
	case c.IndexBlocks < 1 || c.IndexBlocks > 1<<26:
		return c, fmt.Errorf("affinity: index size %d outside [1, 64Mi]", c.IndexBlocks)
	}
	return c, nil
}

// Candidate is one backend the caller may route to.
type Candidate struct {
	// Name identifies the backend in the index; stable across calls.
	Name string
	// Weight is its capacity share (e.g. score.Weighter.Current); a
	// backend with weight 0 is never chosen.
	Weight float64
	// Load is its in-flight request count as the router sees it.
	Load float64
}

// ErrNoCandidate: no candidate has a positive weight.
var ErrNoCandidate = errors.New("affinity: no candidate with a positive weight")

// Chooser picks backends and remembers what it sent where. It is safe for
// concurrent use.
type Chooser struct {
	cfg Config

	mu    sync.Mutex
	index map[uint64]*list.Element
	lru   *list.List // of *entry, most recent at front
}

type entry struct {
	hash     uint64
	backends []string // most recent first, at most backendsPerBlock
}

// New returns a Chooser; zero Config fields take the defaults.
func New(cfg Config) (*Chooser, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Chooser{cfg: c, index: make(map[uint64]*list.Element), lru: list.New()}, nil
}

// Hashes returns the chained block hashes of prompt: element i names the
// prompt's first (i+1)*BlockBytes bytes. A trailing partial block is not
// hashed (it cannot be a full cached KV block either).
func (c *Chooser) Hashes(prompt []byte) []uint64 {
	n := min(len(prompt)/c.cfg.BlockBytes, c.cfg.MaxBlocks)
	out := make([]uint64, n)
	var prev uint64
	for i := range n {
		prev = Chain(prev, prompt[i*c.cfg.BlockBytes:(i+1)*c.cfg.BlockBytes])
		out[i] = prev
	}
	return out
}

// Chain hashes one block after the chain value prev (0 for the first
// block). Exposed so callers that already hold token blocks (or a
// simulation) can build the same chains.
func Chain(prev uint64, block []byte) uint64 {
	// FNV-1a over prev (little-endian) then the block, written out so the
	// per-block hash does not allocate; equal to hash/fnv's New64a.
	h := uint64(fnvOffset)
	for i := 0; i < 8; i++ {
		h ^= prev >> (8 * i) & 0xff
		h *= fnvPrime
	}
	for _, b := range block {
		h ^= uint64(b)
		h *= fnvPrime
	}
	return h
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// Choice is the outcome of Choose.
type Choice struct {
	// Index into the candidates.
	Index int
	// Matched is how many leading blocks the chosen backend served
	// recently (0: a cold prefix, or affinity gave way to the bound).
	Matched int
}

// Choose picks a candidate for a prompt with the given chained block hashes
// and records the choice (the chosen backend will now hold those blocks).
//
// Eligible candidates have Load+1 <= ceil(Bound*(L+1)*w/W), L the total
// load and W the total weight. Some candidate is always eligible: if none
// were, every load would be at least its allowance and L >= Bound*(L+1) >
// L. Among the eligible, the longest recently-served prefix wins; ties
// (including "nobody has it") go to the highest weighted rendezvous score
// of the first block, so a prefix has a stable, weight-proportional home.
func (c *Chooser) Choose(hashes []uint64, cands []Candidate) (Choice, error) {
	return c.chooseWith(hashes, cands, nil, false)
}

// ChooseMatched is Choose with the cached prefix lengths given instead of
// guessed: matches[name] is how many leading blocks of hashes backend name
// holds (from an index the engines' KV-cache events feed). The choice is
// still recorded, so the guess stands in when events stop.
func (c *Chooser) ChooseMatched(hashes []uint64, cands []Candidate, matches map[string]int) (Choice, error) {
	return c.chooseWith(hashes, cands, matches, true)
}

// chooseWith is Choose (given false: the prefix lengths are guessed from
// the chooser's own records) and ChooseMatched (given: matches are the
// engines' own).
func (c *Chooser) chooseWith(hashes []uint64, cands []Candidate, matches map[string]int, given bool) (Choice, error) {
	if len(hashes) > c.cfg.MaxBlocks {
		hashes = hashes[:c.cfg.MaxBlocks]
	}
	var totalW, totalL float64
	for _, cd := range cands {
		if cd.Weight > 0 && !math.IsInf(cd.Weight, 0) {
			totalW += cd.Weight
			totalL += max(cd.Load, 0)
		}
	}
	if totalW == 0 {
		return Choice{}, ErrNoCandidate
	}
	var home uint64 // rendezvous key: the first block names the prefix
	if len(hashes) > 0 {
		home = hashes[0]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !given {
		matches = c.matched(hashes)
	}
	return c.choose(hashes, cands, matches, totalW, totalL, home)
}

// choose is Choose's rule over given matches; c.mu is held.
func (c *Chooser) choose(hashes []uint64, cands []Candidate, matches map[string]int, totalW, totalL float64, home uint64) (Choice, error) {
	best, bestMatch, bestRank, bestRel := -1, -1, math.Inf(-1), math.Inf(1)
	blockTokens := c.BlockTokens()
	for i, cd := range cands {
		if !(cd.Weight > 0) || math.IsInf(cd.Weight, 0) {
			continue
		}
		m := matches[cd.Name]
		if !c.Allowed(cd.Load, cd.Weight, totalL, totalW, m, blockTokens) {
			continue
		}
		rank := rendezvous(home, cd.Name, cd.Weight)
		rel := (max(cd.Load, 0) + 1) / cd.Weight
		// Among holders of equally long prefixes the less loaded wins (a
		// prefix spilled to a second backend shares its load); among
		// backends holding none, the prefix's rendezvous home.
		if m > bestMatch || (m == bestMatch && (m > 0 && rel < bestRel || (m == 0 || rel == bestRel) && rank > bestRank)) {
			best, bestMatch, bestRank, bestRel = i, m, rank, rel
		}
	}
	if best < 0 {
		// Unreachable by the argument above unless loads are NaN; fall
		// back to the least loaded relative to weight.
		least := math.Inf(1)
		for i, cd := range cands {
			if cd.Weight > 0 && !math.IsInf(cd.Weight, 0) && cd.Load/cd.Weight < least {
				best, least = i, cd.Load/cd.Weight
			}
		}
		bestMatch = 0
		if best < 0 {
			return Choice{}, ErrNoCandidate
		}
	}
	c.record(hashes, cands[best].Name)
	return Choice{Index: best, Matched: bestMatch}, nil
}

// matched returns, for every backend that served at least the first
// block, how many leading blocks it served recently. Blocks chain, so a
// backend's match ends at its first miss; one pass over the blocks serves
// all backends, and at most backendsPerBlock are ever in play.
func (c *Chooser) matched(hashes []uint64) map[string]int {
	out := make(map[string]int, backendsPerBlock)
	if len(hashes) == 0 {
		return out
	}
	el, ok := c.index[hashes[0]]
	if !ok {
		return out
	}
	alive := append([]string(nil), el.Value.(*entry).backends...)
	for i, h := range hashes {
		var have []string
		if el, ok := c.index[h]; ok {
			have = el.Value.(*entry).backends
		}
		kept := alive[:0]
		for _, name := range alive {
			if contains(have, name) {
				kept = append(kept, name)
			} else {
				out[name] = i
			}
		}
		alive = kept
		if len(alive) == 0 {
			return out
		}
	}
	for _, name := range alive {
		out[name] = len(hashes)
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// record notes that name now holds every block in hashes.
func (c *Chooser) record(hashes []uint64, name string) {
	for _, h := range hashes {
		if el, ok := c.index[h]; ok {
			e := el.Value.(*entry)
			e.backends = moveFront(e.backends, name)
			c.lru.MoveToFront(el)
			continue
		}
		if c.lru.Len() >= c.cfg.IndexBlocks {
			old := c.lru.Back()
			delete(c.index, old.Value.(*entry).hash)
			c.lru.Remove(old)
		}
		bs := make([]string, 1, backendsPerBlock)
		bs[0] = name
		c.index[h] = c.lru.PushFront(&entry{hash: h, backends: bs})
	}
}

// moveFront puts name first, keeping at most backendsPerBlock names; it
// reuses s's storage (the common case, name already first, is free).
func moveFront(s []string, name string) []string {
	if len(s) > 0 && s[0] == name {
		return s
	}
	i := slices.Index(s, name)
	if i < 0 {
		if len(s) < backendsPerBlock {
			s = append(s, "")
		}
		i = len(s) - 1
	}
	copy(s[1:i+1], s[:i])
	s[0] = name
	return s
}

// Forget drops name from the index (the backend left or restarted and lost
// its cache).
func (c *Chooser) Forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for el := c.lru.Front(); el != nil; el = el.Next() {
		e := el.Value.(*entry)
		out := e.backends[:0]
		for _, x := range e.backends {
			if x != name {
				out = append(out, x)
			}
		}
		e.backends = out
	}
}

// BlockBytes is the prompt bytes per block Hashes cuts.
func (c *Chooser) BlockBytes() int { return c.cfg.BlockBytes }

// BlockTokens is the prompt tokens a block stands for (BlockBytes at
// bytesPerToken, at least 1), as the load bound's prefix credit counts
// them.
func (c *Chooser) BlockTokens() int { return max(c.cfg.BlockBytes/bytesPerToken, 1) }

// IndexLen is the number of blocks the index holds.
func (c *Chooser) IndexLen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// rendezvous is the weighted highest-random-weight score -w/ln(u) of
// (key, name), u uniform in (0,1) from a hash: each backend wins a
// fraction of keys proportional to its weight, and removing one moves only
// its keys.
func rendezvous(key uint64, name string, weight float64) float64 {
	h := Chain(key, nil)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= fnvPrime
	}
	x := mix(h)
	u := (float64(x>>11) + 0.5) / (1 << 53) // (0,1), never 0 or 1
	return -weight / math.Log(u)
}

// mix is splitmix64's finaliser: FNV's low bits are weak for short inputs.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Cold reports whether no backend is known to hold the first block of
// hashes: the prompt's prefix is new to the index, so there is no cache to
// be near and the caller may place it by load alone (then Record it).
func (c *Chooser) Cold(hashes []uint64) bool {
	if len(hashes) == 0 {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.index[hashes[0]]
	return !ok || len(el.Value.(*entry).backends) == 0
}

// Record notes that backend name now holds every block in hashes (the
// caller chose it without Choose).
func (c *Chooser) Record(hashes []uint64, name string) {
	if len(hashes) > c.cfg.MaxBlocks {
		hashes = hashes[:c.cfg.MaxBlocks]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.record(hashes, name)
}

// Rank is the weighted rendezvous score of backend name for a prefix
// whose first block hash is key: the highest-ranked backend is the
// prefix's home, the one Choose gives a prefix nobody holds.
func Rank(key uint64, name string, weight float64) float64 { return rendezvous(key, name, weight) }
