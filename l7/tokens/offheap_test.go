package tokens

import (
	"runtime"
	"testing"

	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// TestTablesOffHeap: an encoding's finished tables must not count toward
// the collector's live heap (see offHeap): only the few long tokens' map
// and the small headers stay on it.
func TestTablesOffHeap(t *testing.T) {
	const maxOnHeap = 2 << 20
	for _, encoding := range []string{O200K, CL100K} {
		ranks, err := tiktoken_loader.NewOfflineLoader().LoadTiktokenBpe(encoding + ".tiktoken")
		if err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b := newBPE(ranks, encoding)
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(ranks)
		if b.bt == nil {
			t.Fatalf("%s: no backtracking encoder", encoding)
		}
		grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
		if grew > maxOnHeap {
			t.Errorf("%s: building the tables left %.1f MB more on the Go heap, want at most %.1f MB", encoding, float64(grew)/(1<<20), float64(maxOnHeap)/(1<<20))
		}
		// The copies still count as the originals did.
		if got, want := b.count("The quarterly report shows steady growth in every region."), 10; got != want {
			t.Errorf("%s: count = %d, want %d", encoding, got, want)
		}
	}
}
