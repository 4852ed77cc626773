package pick

import (
	"cmp"
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
	// blockTokens per block (0: 16).
	blockTokens int
}

func (f *fakePrecise) PromptHashes(string, []byte) []uint64 { return f.hashes }

// BlockTokens: vLLM's default 16 unless the test sets it.
func (f *fakePrecise) BlockTokens(string) int { return cmp.Or(f.blockTokens, 16) }

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

// A backend whose engine reports a long prefix keeps it past the plain
// bound (1.25 shares: 15 of 45 here) while its load less a credit of 4
// requests per 1,024 tokens held is within 1.25 times the others' per
// unit of weight: the prefill it saves is worth more than the queue.
// Here it holds 4 blocks of 1,024 tokens (credit 16) and keeps the
// prompt at 20 in flight against 8 on each other backend; at 26
// (27-16 > 1.25*25/3) the one holding a quarter gets it.
func TestPreciseHolderKeepsPrefixPastBound(t *testing.T) {
	bs := backends(t, 4)
	p := newPicker(t, Config{Weights: fixed(score.Weights{})})
	p.SetPrecise(&fakePrecise{hashes: []uint64{1, 2, 3, 4}, live: true, blockTokens: 1024,
		held: map[string]int{"p/p-0": 4, "p/p-1": 1}})
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
		t.Fatalf("holder of 4096 tokens at 20 in flight against 8: picked %d, want 0", got)
	}
	for range 6 {
		release = append(release, bs[0].Acquire())
	}
	if got := p.PickPrefix("p", bs, longPrompt); got != 1 {
		t.Fatalf("holder at 26 in flight: picked %d, want 1 (the next longest)", got)
	}
}

// A holder whose queue has grown (its GPU slowed) gives up a short prompt
// it holds whole: the live lab's shape, three equal backends and a
// 23-block (368-token) system prompt held only by the slowed one, now at
// 6 in flight against 1 on each other. The hit saves 1.4 requests' worth
// of prefill, the queue costs 5 more, so the prompt goes elsewhere; a
// 6,000-token prompt held at the same loads stays (it saves 23). The old
// rule, a factor of 1.25+4*saved on the others' load with saved the
// fraction of the prompt held, kept both on the slowed holder (7 <=
// 5.25*3/2).
func TestPreciseSlowHolderGivesUpShortPrompt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		blocks int
		stay   bool
	}{
		{"368-token prompt", 23, false},
		{"6000-token prompt", 375, true},
	} {
		bs := backends(t, 3)
		p := newPicker(t, Config{Weights: fixed(score.Weights{})})
		hashes := make([]uint64, tc.blocks)
		for i := range hashes {
			hashes[i] = uint64(i + 1)
		}
		p.SetPrecise(&fakePrecise{hashes: hashes, live: true, held: map[string]int{"p/p-2": tc.blocks}})
		var release []func()
		for i, b := range bs {
			n := 1
			if i == 2 {
				n = 6
			}
			for range n {
				release = append(release, b.Acquire())
			}
		}
		got := p.PickPrefix("p", bs, longPrompt)
		for _, r := range release {
			r()
		}
		if stayed := got == 2; stayed != tc.stay {
			t.Errorf("%s: picked %d; stay on the loaded holder: %v", tc.name, got, tc.stay)
		}
	}
}

// PickPrefixHit says how much of the prompt the chosen backend holds, so
// the gateway counts only the rest as its pending prefill: the engine's
// blocks on the precise path, the approximate index's on the other, none
// for a prompt new to every backend.
func TestPickPrefixHitFraction(t *testing.T) {
	bs := backends(t, 3)
	p := newPicker(t, Config{Weights: fixed(score.Weights{})})
	prompt := []byte(strings.Repeat("x", 640)) // 10 blocks of 64 bytes
	if i, hit := p.PickPrefixHit("p", bs, prompt); i < 0 || hit != 0 {
		t.Fatalf("cold prompt: picked %d with hit %v, want 0", i, hit)
	}
	longer := append(append([]byte{}, prompt...), strings.Repeat("y", 640)...)
	if _, hit := p.PickPrefixHit("p", bs, longer); hit != 0.5 {
		t.Fatalf("approximate index, half the prompt sent before: hit %v, want 0.5", hit)
	}
	p.SetPrecise(&fakePrecise{hashes: []uint64{1, 2, 3, 4}, live: true, held: map[string]int{"p/p-2": 3}})
	if i, hit := p.PickPrefixHit("p", bs, longer); i != 2 || hit != 0.75 {
		t.Fatalf("precise, 3 of 4 blocks on p-2: picked %d with hit %v", i, hit)
	}
}
