package tokens

import (
	"testing"

	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// TestLookupMatchesVocabulary holds the packed short table and the long map
// to the vocabulary: every entry gives its own rank, and strings that differ
// from an entry only by trailing NUL bytes or a missing last byte (which
// pack to the same bits or a near neighbour) give the vocabulary's answer.
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
		short := 0
		for k, r := range ranks {
			if got := b.lookup(k); got != int32(r) {
				t.Fatalf("%s: lookup(%q) = %d, want %d", enc, k, got, r)
			}
			if len(k) <= shortKey {
				short++
			}
			// The same entry inside longer text, where getAt loads a whole
			// word past its end.
			padded := "\x00" + k + "\xff\xff\xff\xff\xff\xff\xff\xff"
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
			}
		}
		t.Logf("%s: %d entries, %d in the short table (%d KiB), %d in the long map",
			enc, len(ranks), short, b.short.bytes()>>10, len(b.long))
	}
}
