package tokens

import (
	"slices"
	"strings"
	"testing"

	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// TestLookupMatchesVocabulary holds the packed short and mid tables and the
// long map to the vocabulary: every entry gives its own rank, alone and
// inside longer text, and strings that differ from an entry only by
// trailing NUL bytes or a missing last byte (which pack to the same bits or
// a near neighbour) give the vocabulary's answer.
func TestLookupMatchesVocabulary(t *testing.T) {
	for _, enc := range []string{CL100K, O200K} {
		ranks, err := tiktoken_loader.NewOfflineLoader().LoadTiktokenBpe(enc + ".tiktoken")
		if err != nil {
			t.Fatal(err)
		}
		b := newBPE(ranks, enc)
		want := func(s string) int32 {
			if r, ok := ranks[s]; ok {
				return int32(r)
			}
			return -1
		}
		short, mid := 0, 0
		for k, r := range ranks {
			if got := b.lookup(k); got != int32(r) {
				t.Fatalf("%s: lookup(%q) = %d, want %d", enc, k, got, r)
			}
			switch {
			case len(k) <= shortKey:
				short++
			case len(k) <= midKey:
				mid++
			}
			// At the end of the text, where getAt cannot load whole words.
			if got := b.rankAt(k, 0, len(k)); got != r {
				t.Fatalf("%s: rankAt(%q) at the end = %d, want %d", enc, k, got, r)
			}
			// The same entry inside longer text, where getAt loads whole
			// words past its end.
			padded := "\x00" + k + strings.Repeat("\xff", midKey)
			if got := b.rankAt(padded, 1, 1+len(k)); got != r {
				t.Fatalf("%s: rankAt(%q) = %d, want %d", enc, k, got, r)
			}
			for _, v := range []string{k + "\x00", k + "\x00\x00", k[:len(k)-1]} {
				if v == "" {
					continue
				}
				if got := b.lookup(v); got != want(v) {
					t.Fatalf("%s: lookup(%q) = %d, want %d", enc, v, got, want(v))
				}
				padded := v + strings.Repeat("\x00", midKey)
				if got, w := b.rankAt(padded, 0, len(v)), want(v); got != int(w) && !(w < 0 && got == noRank) {
					t.Fatalf("%s: rankAt(%q) in text = %d, want %d", enc, v, got, w)
				}
			}
		}
		// The tables insert in rank order so that the most common entries
		// sit at their first probe.
		vocab := byRank(ranks)
		if len(vocab) != len(ranks) || !slices.IsSortedFunc(vocab, func(a, b rankedKey) int { return a.rank - b.rank }) {
			t.Fatalf("%s: byRank gives %d entries, not all %d in rank order", enc, len(vocab), len(ranks))
		}
		first, common := 0, 0
		for _, e := range vocab[:commonEntries] {
			if len(e.key) <= shortKey {
				common++
				if s := b.short.slots[b.short.slot(packShort(e.key), uint32(len(e.key)))]; s.rank == int32(e.rank) {
					first++
				}
			}
		}
		if first*10 < common*9 {
			t.Errorf("%s: %d of the %d most common short entries at their first probe, want 90%%", enc, first, common)
		}
		if mid != countIn(b.mid.slots) {
			t.Fatalf("%s: mid table holds %d entries, want %d", enc, countIn(b.mid.slots), mid)
		}
		t.Logf("%s: %d entries, %d in the short table (%d KiB), %d in the mid table (%d KiB), %d in the long map; %d of the %d most common short entries at their first probe",
			enc, len(ranks), short, b.short.bytes()>>10, mid, b.mid.bytes()>>10, len(b.long), first, common)
	}
}

// commonEntries is how many of the lowest-ranked vocabulary entries
// TestLookupMatchesVocabulary expects at their first probe.
const commonEntries = 1000

// countIn counts a mid table's filled slots.
func countIn(slots []midEntry) int {
	n := 0
	for _, e := range slots {
		if e.n != 0 {
			n++
		}
	}
	return n
}
