package affinity

import (
	"fmt"
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

// A backend holding most of a prompt keeps it past the plain bound: the
// prefill a hit saves is worth more than a few more requests in flight on
// a batching engine. With 20 in flight against 8 on each other backend
// the holder is past 1.25 shares (15) but within (1.25+4*saved) times the
// others' 8+1/3. A prompt of which it holds a tenth moves, as does one
// whose holder is past even the widened bound, and with Gain < 0 the
// plain bound rules.
func TestHolderKeepsLongPrefixPastBound(t *testing.T) {
	sys := []byte(fmt.Sprintf("%06400d", 1)) // 100 blocks
	long := append(append([]byte{}, sys...), fmt.Sprintf("%064d", 2)...)
	short := append(append([]byte{}, sys[:640]...), string(make([]byte, 5760))...) // holds 10 of 100
	for _, tc := range []struct {
		name   string
		cfg    Config
		prompt []byte
		load   float64
		stay   bool
	}{
		{"long prefix held", Config{}, long, 20, true},
		{"long prefix, holder at 43", Config{}, long, 42, true},
		{"long prefix, holder past the widened bound", Config{}, long, 43, false},
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
// with the other backend, not with a share that grows with its own load
// (1.25+4 times the fair share of two is never reached).
func TestHotPrefixSpreadsOverTwo(t *testing.T) {
	c := newChooser(t, Config{})
	sys := []byte(fmt.Sprintf("%02048d", 5))
	c.Record(c.Hashes(sys), "a")
	cands := []Candidate{{Name: "a", Weight: 100, Load: 6}, {Name: "b", Weight: 100, Load: 1}}
	if got, _ := c.Choose(c.Hashes(sys), cands); got.Index != 0 {
		t.Fatalf("holder at 6 against 1 passed over")
	}
	cands[0].Load = 11 // 12 > 5.25*2
	if got, _ := c.Choose(c.Hashes(sys), cands); got.Index != 1 {
		t.Fatalf("holder at 11 against 1 still chosen")
	}
	// Both hold it now; the less loaded of equal holders wins.
	cands[0].Load, cands[1].Load = 3, 4
	if got, _ := c.Choose(c.Hashes(sys), cands); got.Index != 0 || got.Matched != 32 {
		t.Fatalf("equal holders: chose %d matched %d, want the less loaded 0 with 32 blocks", got.Index, got.Matched)
	}
}

func TestAllowedEdges(t *testing.T) {
	for _, tc := range []struct {
		load, w, L, W, saved float64
		want                 bool
	}{
		{0, 1, 0, 1, 0, true},    // alone and idle
		{50, 1, 50, 1, 1, true},  // alone: nobody else to go to
		{10, 1, 10, 2, 0, false}, // plain bound: 11 > ceil(1.25*11/2)
		{10, 1, 10, 2, 1, false}, // 11 > 5.25 * 1
		{4, 1, 4, 2, 1, true},    // 5 <= 5.25 * 1
		{4, 1, 4, 2, -3, false},  // saved clamped to 0
		{4, 1, 4, 2, 7, true},    // saved clamped to 1
		{-5, 1, 0, 2, 0, true},   // negative load counts as 0
		{3, 1, 4, 2, 0.5, true},  // 4 <= 3.25 * 2
		{4, 1, 4, 2, 0.5, false}, // 5 > 3.25 and > ceil(1.25*5/2)
	} {
		if got := Allowed(tc.load, tc.w, tc.L, tc.W, DefaultBound, DefaultGain, tc.saved); got != tc.want {
			t.Errorf("Allowed(%v, %v, %v, %v, saved %v) = %v", tc.load, tc.w, tc.L, tc.W, tc.saved, got)
		}
	}
	if Allowed(4, 1, 4, 2, DefaultBound, 0, 1) {
		t.Error("gain 0 widened the bound")
	}
}
