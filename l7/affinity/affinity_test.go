package affinity

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"testing"
)

func newChooser(t testing.TB, cfg Config) *Chooser {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHashesChain(t *testing.T) {
	c := newChooser(t, Config{BlockBytes: 4})
	a := c.Hashes([]byte("systemprompt-Auser!"))
	b := c.Hashes([]byte("systemprompt-Buser?"))
	if len(a) != 4 || len(b) != 4 { // 19 bytes: 4 full blocks
		t.Fatalf("block counts %d %d", len(a), len(b))
	}
	for i := 0; i < 3; i++ { // "syst" "empr" "ompt" shared
		if a[i] != b[i] {
			t.Fatalf("shared block %d hashes differ", i)
		}
	}
	if a[3] == b[3] {
		t.Fatal("differing block hashes equal")
	}
	// Chaining: the same block after a different history hashes differently.
	x := c.Hashes([]byte("aaaazzzz"))
	y := c.Hashes([]byte("bbbbzzzz"))
	if x[1] == y[1] {
		t.Fatal("block hash ignores what precedes it")
	}
	if n := len(newChooser(t, Config{BlockBytes: 1, MaxBlocks: 3}).Hashes([]byte("abcdef"))); n != 3 {
		t.Fatalf("MaxBlocks not applied: %d", n)
	}
}

func TestChainIsFNV1a(t *testing.T) {
	for _, block := range [][]byte{nil, []byte("x"), []byte("a longer block of prompt text")} {
		for _, prev := range []uint64{0, 1, 0xdeadbeefcafef00d} {
			h := fnv.New64a()
			var b [8]byte
			binary.LittleEndian.PutUint64(b[:], prev)
			h.Write(b[:])
			h.Write(block)
			if got, want := Chain(prev, block), h.Sum64(); got != want {
				t.Fatalf("Chain(%x, %q) = %x, want %x", prev, block, got, want)
			}
		}
	}
}

func TestConfigBounds(t *testing.T) {
	for _, cfg := range []Config{{BlockBytes: -1}, {Bound: 0.5}, {MaxBlocks: 1 << 21}, {IndexBlocks: -3}, {Bound: math.NaN()}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestPrefixSticksWhileUnderBound(t *testing.T) {
	c := newChooser(t, Config{})
	cands := []Candidate{{Name: "a", Weight: 100}, {Name: "b", Weight: 100}, {Name: "c", Weight: 100}}
	prompt := []byte(fmt.Sprintf("%0512d", 7))
	first, err := c.Choose(c.Hashes(prompt), cands)
	if err != nil {
		t.Fatal(err)
	}
	if first.Matched != 0 {
		t.Fatalf("cold prefix matched %d blocks", first.Matched)
	}
	// Same system prompt, different user turn: same backend, full match.
	for i := 0; i < 10; i++ {
		p := append(append([]byte{}, prompt...), []byte(fmt.Sprintf("user question %d padded to a block.....................................", i))...)
		got, err := c.Choose(c.Hashes(p), cands)
		if err != nil {
			t.Fatal(err)
		}
		if got.Index != first.Index || got.Matched < len(prompt)/DefaultBlockBytes {
			t.Fatalf("request %d went to %d (matched %d), want %d", i, got.Index, got.Matched, first.Index)
		}
	}
	// Overload the home: the request goes elsewhere, within the bound.
	cands[first.Index].Load = 20
	got, err := c.Choose(c.Hashes(prompt), cands)
	if err != nil {
		t.Fatal(err)
	}
	if got.Index == first.Index {
		t.Fatal("overloaded home still chosen")
	}
	// Now two backends hold the prefix; when the home recovers it wins
	// again only if its match is as long, which it is (tie on match).
	cands[first.Index].Load = 0
	if got, _ := c.Choose(c.Hashes(prompt), cands); got.Matched == 0 {
		t.Fatal("prefix forgotten after spilling")
	}
}

// Property: whatever the loads and weights, the choice respects the bound.
func TestBoundAlwaysHolds(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	c := newChooser(t, Config{IndexBlocks: 512})
	prompts := make([][]uint64, 8)
	for i := range prompts {
		prompts[i] = c.Hashes([]byte(fmt.Sprintf("%02048d", i)))
	}
	for trial := 0; trial < 5000; trial++ {
		n := 1 + r.IntN(8)
		cands := make([]Candidate, n)
		var L, W float64
		for i := range cands {
			cands[i] = Candidate{Name: fmt.Sprint("b", i), Weight: float64(r.IntN(200)), Load: float64(r.IntN(50))}
			if cands[i].Weight > 0 {
				L += cands[i].Load
				W += cands[i].Weight
			}
		}
		got, err := c.Choose(prompts[r.IntN(len(prompts))], cands)
		if W == 0 {
			if !errors.Is(err, ErrNoCandidate) {
				t.Fatalf("no weights: err %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		ch := cands[got.Index]
		if ch.Weight == 0 {
			t.Fatal("zero-weight backend chosen")
		}
		// Within the bound, or holding the prompt and within
		// Bound+Gain*saved times the others' load per unit of weight.
		allowed := math.Ceil(DefaultBound * (L + 1) * ch.Weight / W)
		saved := float64(got.Matched) / float64(len(prompts[0]))
		beside := (DefaultBound + DefaultGain*saved) * (L - ch.Load + 1) / (W - ch.Weight)
		if ch.Load+1 > allowed && !(got.Matched > 0 && (W == ch.Weight || (ch.Load+1)/ch.Weight <= beside)) {
			t.Fatalf("chosen load %v+1 over allowance %v, matched %d", ch.Load, allowed, got.Matched)
		}
		if c.IndexLen() > 512 {
			t.Fatalf("index grew to %d", c.IndexLen())
		}
	}
}

// Cold prefixes spread by weight (rendezvous hashing).
func TestColdPrefixesFollowWeights(t *testing.T) {
	c := newChooser(t, Config{IndexBlocks: 1})
	cands := []Candidate{{Name: "h100-0", Weight: 100}, {Name: "h100-1", Weight: 100}, {Name: "a10-0", Weight: 18}, {Name: "a10-1", Weight: 18}}
	const n = 40000
	hits := make([]int, len(cands))
	for i := 0; i < n; i++ {
		got, err := c.Choose([]uint64{mix(uint64(i) + 1)}, cands)
		if err != nil {
			t.Fatal(err)
		}
		hits[got.Index]++
	}
	for i, cd := range cands {
		want := cd.Weight / 236
		if got := float64(hits[i]) / n; math.Abs(got-want) > 0.01 {
			t.Errorf("%s: share %.3f, want %.3f ± 0.01", cd.Name, got, want)
		}
	}
}

func TestForget(t *testing.T) {
	c := newChooser(t, Config{})
	cands := []Candidate{{Name: "a", Weight: 1}, {Name: "b", Weight: 1}}
	h := c.Hashes([]byte(fmt.Sprintf("%0256d", 1)))
	first, _ := c.Choose(h, cands)
	c.Forget(cands[first.Index].Name)
	if got, _ := c.Choose(h, cands); got.Matched != 0 {
		t.Fatalf("forgotten backend still matched %d blocks", got.Matched)
	}
}

func BenchmarkChoose(b *testing.B) {
	c := newChooser(b, Config{})
	cands := make([]Candidate, 8)
	for i := range cands {
		cands[i] = Candidate{Name: fmt.Sprint("gpu-", i), Weight: 100, Load: float64(i)}
	}
	prompt := []byte(fmt.Sprintf("%08192d", 3)) // 8 KiB: a long system prompt
	for b.Loop() {
		if _, err := c.Choose(c.Hashes(prompt), cands); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzChoose: arbitrary prompts, weights and loads never panic, never pick
// a zero-weight backend and always respect the load bound.
func FuzzChoose(f *testing.F) {
	f.Add([]byte("system prompt system prompt system prompt system prompt system prompt user"), []byte{10, 0, 20, 3, 0, 9})
	f.Add([]byte{}, []byte{0, 0})
	f.Add([]byte("x"), []byte{255, 255, 1, 0})
	c := newChooser(f, Config{BlockBytes: 8, IndexBlocks: 64})
	f.Fuzz(func(t *testing.T, prompt, shape []byte) {
		const maxCands = 16
		var cands []Candidate
		var L, W float64
		for i := 0; i+1 < len(shape) && len(cands) < maxCands; i += 2 {
			cd := Candidate{Name: fmt.Sprint("b", i/2), Weight: float64(shape[i]), Load: float64(shape[i+1])}
			cands = append(cands, cd)
			if cd.Weight > 0 {
				W += cd.Weight
				L += cd.Load
			}
		}
		got, err := c.Choose(c.Hashes(prompt), cands)
		if W == 0 {
			if !errors.Is(err, ErrNoCandidate) {
				t.Fatalf("no weight: err %v", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		ch := cands[got.Index]
		if ch.Weight == 0 || ch.Load+1 > math.Ceil(DefaultBound*(L+1)*ch.Weight/W) {
			t.Fatalf("chose %+v (L %v, W %v)", ch, L, W)
		}
		if c.IndexLen() > 64 {
			t.Fatalf("index grew to %d", c.IndexLen())
		}
	})
}
