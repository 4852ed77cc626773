package pick

import (
	"strings"
	"testing"

	"github.com/infergate/infergate/gpu/score"
)

// fakePrecise reports fixed matches per backend label; live false says no
// engine of the pool publishes.
type fakePrecise struct {
	hashes []uint64
	held   map[string]int
	live   bool
}

func (f *fakePrecise) PromptHashes(string, []byte) []uint64 { return f.hashes }

func (f *fakePrecise) Match(_ []uint64, names []string, out []int) bool {
	for i, n := range names {
		out[i] = f.held[n]
	}
	return f.live
}

var longPrompt = []byte(strings.Repeat("a shared system prompt of some length. ", 20))

// The engines' account wins over the approximate index: a prompt the
// gateway sent to one backend goes to the one whose engine reports more of
// it (it got there another way, or the first evicted it).
func TestPrecisePrefersLongestReported(t *testing.T) {
	bs := backends(t, 3)
	p := newPicker(t, Config{Weights: fixed(score.Weights{})})
	first := p.PickPrefix("p", bs, longPrompt)
	other := (first + 1) % 3
	p.SetPrecise(&fakePrecise{hashes: []uint64{1, 2, 3}, live: true,
		held: map[string]int{"p/" + bs[first].Name: 1, "p/" + bs[other].Name: 3}})
	for range 20 {
		if got := p.PickPrefix("p", bs, longPrompt); got != other {
			t.Fatalf("picked %d, want %d (3 blocks) over %d (1 block, and the approximate index)", got, other, first)
		}
	}
	if hits, miss := p.PreciseStats(); hits != 20 || miss != 0 {
		t.Fatalf("stats %d/%d", hits, miss)
	}
}

// Without live event streams, or with no backend holding even the first
// block, or for a pool without events, the approximate index decides, as
// it would with no Precise at all.
func TestPreciseFallsBack(t *testing.T) {
	bs := backends(t, 3)
	for name, pr := range map[string]*fakePrecise{
		"no live stream": {hashes: []uint64{1}, held: map[string]int{"p/p-0": 1, "p/p-1": 1, "p/p-2": 1}},
		"nothing held":   {hashes: []uint64{1}, live: true, held: map[string]int{}},
		"pool silent":    {live: true, held: map[string]int{"p/p-1": 1}},
	} {
		with := newPicker(t, Config{Weights: fixed(score.Weights{})})
		with.SetPrecise(pr)
		without := newPicker(t, Config{Weights: fixed(score.Weights{})})
		for i := range 30 {
			prompt := []byte(strings.Repeat(string(rune('a'+i%26)), 200))
			if a, b := with.PickPrefix("p", bs, prompt), without.PickPrefix("p", bs, prompt); a != b {
				t.Fatalf("%s: prompt %d picked %d, the approximate index %d", name, i, a, b)
			}
		}
		if hits, _ := with.PreciseStats(); hits != 0 {
			t.Fatalf("%s: %d precise decisions", name, hits)
		}
	}
}

// The load bound holds for precise matches too: a backend over its share
// of the in-flight requests is passed over however much it holds.
func TestPreciseKeepsLoadBound(t *testing.T) {
	bs := backends(t, 2)
	p := newPicker(t, Config{Weights: fixed(score.Weights{})})
	p.SetPrecise(&fakePrecise{hashes: []uint64{1, 2}, live: true, held: map[string]int{"p/p-0": 2, "p/p-1": 1}})
	if got := p.PickPrefix("p", bs, longPrompt); got != 0 {
		t.Fatalf("idle: picked %d, want 0", got)
	}
	for range 10 {
		defer bs[0].Acquire()()
	}
	if got := p.PickPrefix("p", bs, longPrompt); got != 1 {
		t.Fatalf("p-0 at 10 in flight against 0: picked %d, want 1", got)
	}
}

// A backend whose engine reports most of the prompt keeps it past the
// plain bound (1.25 shares: 15 of 45 here) while within (1.25+4*saved)
// times the others' load: the prefill it saves is worth more than the
// queue. The one holding a quarter gets it only once the holder is past
// that.
func TestPreciseHolderKeepsPrefixPastBound(t *testing.T) {
	bs := backends(t, 4)
	p := newPicker(t, Config{Weights: fixed(score.Weights{})})
	p.SetPrecise(&fakePrecise{hashes: []uint64{1, 2, 3, 4}, live: true, held: map[string]int{"p/p-0": 4, "p/p-1": 1}})
	var release []func()
	defer func() {
		for _, r := range release {
			r()
		}
	}()
	for i, b := range bs {
		n := 8
		if i == 0 {
			n = 20
		}
		for range n {
			release = append(release, b.Acquire())
		}
	}
	if got := p.PickPrefix("p", bs, longPrompt); got != 0 {
		t.Fatalf("holder of 4 blocks at 20 in flight against 8: picked %d, want 0", got)
	}
	for range 23 { // 43 in flight: 44 > 5.25*(24+1)/3
		release = append(release, bs[0].Acquire())
	}
	if got := p.PickPrefix("p", bs, longPrompt); got != 1 {
		t.Fatalf("holder at 43 in flight: picked %d, want 1 (the next longest)", got)
	}
}
