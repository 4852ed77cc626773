package kvindex

import (
	"slices"
	"testing"
	"time"

	"github.com/infergate/infergate/l7/kvevents"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{t: time.Unix(1000, 0)} }
func stored(hs ...uint64) kvevents.Event {
	return kvevents.Event{Kind: kvevents.BlockStored, Hashes: hs}
}
func removed(hs ...uint64) kvevents.Event {
	return kvevents.Event{Kind: kvevents.BlockRemoved, Hashes: hs}
}
func batch(evs ...kvevents.Event) *kvevents.Batch { return &kvevents.Batch{Events: evs} }

func newIndex(t *testing.T, cfg Config, c *clock) *Index {
	t.Helper()
	cfg.Now = c.now
	x, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func match(x *Index, hashes []uint64, names ...string) []int {
	out := make([]int, len(names))
	x.Match(hashes, names, out)
	return out
}

// Each backend's match is its longest run of leading blocks; a removed
// block ends it there; a backend never heard from is -1.
func TestMatchPrefix(t *testing.T) {
	c := newClock()
	x := newIndex(t, Config{}, c)
	x.Up("p/a")
	x.Up("p/b")
	x.Apply("p/a", 0, batch(stored(1, 2, 3)))
	x.Apply("p/b", 0, batch(stored(1, 2), stored(9)))
	if got := match(x, []uint64{1, 2, 3, 4}, "p/a", "p/b", "p/c"); !slices.Equal(got, []int{3, 2, -1}) {
		t.Fatalf("match %v", got)
	}
	x.Apply("p/a", 1, batch(removed(2)))
	if got := match(x, []uint64{1, 2, 3}, "p/a", "p/b"); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("after removal %v", got)
	}
	// Block 9 alone, not following 1, is no prefix of [1 ...].
	if got := match(x, []uint64{9}, "p/b"); !slices.Equal(got, []int{1}) {
		t.Fatalf("9: %v", got)
	}
}

// The index never holds more than MaxEntries pairs; the least recently
// stored go first, and a re-stored block is recent again.
func TestBounded(t *testing.T) {
	c := newClock()
	x := newIndex(t, Config{MaxEntries: 4}, c)
	x.Up("a")
	x.Apply("a", 0, batch(stored(1, 2, 3, 4)))
	x.Apply("a", 1, batch(stored(1)))    // 1 is recent again
	x.Apply("a", 2, batch(stored(5, 6))) // evicts 2 then 3
	if s := x.Stats(); s.Entries != 4 || s.Backends["a"].Blocks != 4 {
		t.Fatalf("stats %+v", s)
	}
	if got := match(x, []uint64{1}, "a"); got[0] != 1 {
		t.Fatal("re-stored block 1 evicted")
	}
	if got := match(x, []uint64{1, 2}, "a"); got[0] != 1 {
		t.Fatalf("block 2 kept: %v", got)
	}
	for i := range uint64(1000) {
		x.Apply("a", 3+i, batch(stored(100+i)))
	}
	if s := x.Stats(); s.Entries != 4 || len(x.blocks) != 4 {
		t.Fatalf("after 1000 stores: %d entries, %d blocks", s.Entries, len(x.blocks))
	}
}

// A sequence gap, an engine restart (sequence 0 again) and
// AllBlocksCleared each clear the backend; the batch after a gap applies.
func TestGapsAndClears(t *testing.T) {
	c := newClock()
	x := newIndex(t, Config{}, c)
	x.Up("a")
	x.Apply("a", 10, batch(stored(1, 2)))
	x.Apply("a", 11, batch(stored(3)))
	x.Apply("a", 13, batch(stored(7))) // 12 lost
	if got := match(x, []uint64{1}, "a"); got[0] != 0 {
		t.Fatalf("gap kept block 1: %v", got)
	}
	if got := match(x, []uint64{7}, "a"); got[0] != 1 {
		t.Fatal("batch after the gap not applied")
	}
	x.Apply("a", 0, batch(stored(8))) // restarted engine
	if got := match(x, []uint64{7}, "a"); got[0] != 0 {
		t.Fatal("restart kept old blocks")
	}
	x.Apply("a", 1, batch(kvevents.Event{Kind: kvevents.AllBlocksCleared}, stored(9)))
	if got := match(x, []uint64{8}, "a"); got[0] != 0 {
		t.Fatal("AllBlocksCleared kept block 8")
	}
	if got := match(x, []uint64{9}, "a"); got[0] != 1 {
		t.Fatal("store after the clear lost")
	}
	if s := x.Stats().Backends["a"]; s.Gaps != 2 || s.Clears != 3 {
		t.Fatalf("stats %+v", s)
	}
}

// A lost subscription keeps its blocks for DownGrace; a redial starts the
// backend afresh (live again from its next batch); silence longer than
// StaleAfter, or a loss longer than the grace, makes the backend not live,
// and Sweep frees its blocks.
func TestStaleness(t *testing.T) {
	c := newClock()
	x := newIndex(t, Config{StaleAfter: time.Minute, DownGrace: 5 * time.Second}, c)
	x.Up("a")
	x.Up("b")
	x.Apply("a", 0, batch(stored(1)))
	x.Apply("b", 0, batch(stored(1)))
	x.Down("a")
	c.add(4 * time.Second)
	if got := match(x, []uint64{1}, "a", "b"); !slices.Equal(got, []int{1, 1}) {
		t.Fatalf("within grace: %v", got)
	}
	x.Up("a")
	if x.Live("a") {
		t.Fatal("live after a redial before any batch")
	}
	x.Apply("a", 1, batch(stored(1)))
	if got := match(x, []uint64{1, 2}, "a"); got[0] != 1 {
		t.Fatalf("after the redial: %v", got)
	}
	x.Down("a")
	c.add(6 * time.Second)
	if x.Live("a") || !x.Live("b") {
		t.Fatal("a live past its grace, or b not live")
	}
	if got := match(x, []uint64{1}, "a", "b"); !slices.Equal(got, []int{-1, 1}) {
		t.Fatalf("past grace: %v", got)
	}
	c.add(time.Minute)
	if any := x.Match([]uint64{1}, []string{"a", "b"}, make([]int, 2)); any {
		t.Fatal("a silent backend still live")
	}
	x.Sweep()
	if s := x.Stats(); s.Entries != 0 {
		t.Fatalf("sweep left %d entries", s.Entries)
	}
}

func TestForgetReusesID(t *testing.T) {
	c := newClock()
	x := newIndex(t, Config{}, c)
	x.Up("a")
	x.Apply("a", 0, batch(stored(1)))
	x.Forget("a")
	x.Up("b")
	x.Apply("b", 0, batch(stored(2)))
	if got := match(x, []uint64{1}, "b"); got[0] != 0 {
		t.Fatal("b inherited a's block")
	}
	if len(x.byID) != 1 || x.Stats().Entries != 1 {
		t.Fatalf("ids %d entries %d", len(x.byID), x.Stats().Entries)
	}
}
