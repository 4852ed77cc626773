package affinity

import (
	"fmt"
	"math"
	"testing"
)

// holdAndLoad returns a chooser in which backend "a" holds sys's blocks,
// and four candidates with eight requests in flight on each but a, which
// has aLoad.
func holdAndLoad(t *testing.T, cfg Config, sys []byte, aLoad float64) (*Chooser, []Candidate) {
	t.Helper()
	c := newChooser(t, cfg)
	c.Record(c.Hashes(sys), "a")
	return c, []Candidate{{Name: "a", Weight: 100, Load: aLoad}, {Name: "b", Weight: 100, Load: 8},
		{Name: "c", Weight: 100, Load: 8}, {Name: "d", Weight: 100, Load: 8}}
}

// A backend holding a long prompt keeps it past the plain bound: the
// prefill a hit saves is worth more than a few more requests in flight on
// a batching engine. The system prompt is 400 blocks of 64 bytes (6400
// tokens at 4 bytes a token), so its holder has a credit of 4*6400/1024 =
// 25 requests: with 8 in flight on each other backend it is past 1.25
// shares (15) at 20 yet keeps the prompt up to 34 in flight (35-25 <=
// 1.25*25/3). A prompt of which it holds a tenth (credit 2.5) moves, as
// does one whose holder is past even the credit, and with Gain < 0 the
// plain bound rules.
func TestHolderKeepsLongPrefixPastBound(t *testing.T) {
	sys := []byte(fmt.Sprintf("%025600d", 1)) // 400 blocks
	long := append(append([]byte{}, sys...), fmt.Sprintf("%064d", 2)...)
	short := append(append([]byte{}, sys[:2560]...), string(make([]byte, 23040))...) // holds 40 of 400
	for _, tc := range []struct {
		name   string
		cfg    Config
		prompt []byte
		load   float64
		stay   bool
	}{
		{"long prefix held", Config{}, long, 20, true},
		{"long prefix, holder at 34", Config{}, long, 34, true},
		{"long prefix, holder past the credit", Config{}, long, 35, false},
		{"a tenth held", Config{}, short, 20, false},
		{"no gain", Config{Gain: -1}, long, 20, false},
	} {
		c, cands := holdAndLoad(t, tc.cfg, sys, tc.load)
		got, err := c.Choose(c.Hashes(tc.prompt), cands)
		if err != nil {
			t.Fatal(err)
		}
		if stayed := got.Index == 0; stayed != tc.stay {
			t.Errorf("%s: chose %s (matched %d), stay on the holder %v", tc.name, cands[got.Index].Name, got.Matched, tc.stay)
		}
	}
}

// With two backends a hot prefix still spreads: the holder is compared
// with the other backend, not with a share that grows with its own load.
// A 4096-token prompt (credit 16) stays on its holder at 6 in flight
// against 1 and moves at 18 (19-16 > 1.25*2).
func TestHotPrefixSpreadsOverTwo(t *testing.T) {
	c := newChooser(t, Config{})
	sys := []byte(fmt.Sprintf("%016384d", 5))
	c.Record(c.Hashes(sys), "a")
	cands := []Candidate{{Name: "a", Weight: 100, Load: 6}, {Name: "b", Weight: 100, Load: 1}}
	if got, _ := c.Choose(c.Hashes(sys), cands); got.Index != 0 {
		t.Fatalf("holder at 6 against 1 passed over")
	}
	cands[0].Load = 18
	if got, _ := c.Choose(c.Hashes(sys), cands); got.Index != 1 {
		t.Fatalf("holder at 18 against 1 still chosen")
	}
	// Both hold it now; the less loaded of equal holders wins.
	cands[0].Load, cands[1].Load = 3, 4
	if got, _ := c.Choose(c.Hashes(sys), cands); got.Index != 0 || got.Matched != 256 {
		t.Fatalf("equal holders: chose %d matched %d, want the less loaded 0 with 256 blocks", got.Index, got.Matched)
	}
}

func TestAllowedEdges(t *testing.T) {
	for _, tc := range []struct {
		load, w, L, W, saved float64
		want                 bool
	}{
		{0, 1, 0, 1, 0, true},            // alone and idle
		{50, 1, 50, 1, 1024, true},       // alone: nobody else to go to
		{10, 1, 10, 2, 0, false},         // plain bound: 11 > ceil(1.25*11/2)
		{10, 1, 10, 2, 1024, false},      // credit 4: 11-4 > 1.25 * 1
		{4, 1, 4, 2, 1024, true},         // 5-4 <= 1.25 * 1
		{4, 1, 4, 2, -3000, false},       // negative tokens count as none
		{20, 1, 20, 2, 5120, true},       // credit 20: 21-20 <= 1.25
		{-5, 1, 0, 2, 0, true},           // negative load counts as 0
		{3, 1, 4, 2, 512, true},          // plain bound: 4 <= ceil(1.25*5/2)
		{4, 1, 4, 2, 512, false},         // credit 2: 5-2 > 1.25
		{4, 1, 4, 2, math.Inf(1), false}, // no credit from nonsense
	} {
		if got := Allowed(tc.load, tc.w, tc.L, tc.W, DefaultBound, DefaultGain, tc.saved); got != tc.want {
			t.Errorf("Allowed(%v, %v, %v, %v, saved %v tokens) = %v", tc.load, tc.w, tc.L, tc.W, tc.saved, got)
		}
	}
	if Allowed(4, 1, 4, 2, DefaultBound, 0, 1024) {
		t.Error("gain 0 widened the bound")
	}
}
