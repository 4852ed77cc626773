package pick

import (
	"fmt"
	"strings"
	"testing"

	"github.com/infergate/infergate/gpu/score"
)

// A prompt whose prefix no backend holds goes to the backend with the
// fewest requests in flight per unit of weight, not to its hash home
// within the load bound; the prompt's next request then follows it there.
// (Before, a cold prefix went to its rendezvous home while the home was
// within 1.25x its share, however idle the others were.)
func TestColdPrefixGoesToLeastLoaded(t *testing.T) {
	bs := backends(t, 4)
	p := newPicker(t, Config{Weights: fixed(score.Weights{
		"p/p-0": {Weight: 100}, "p/p-1": {Weight: 100}, "p/p-2": {Weight: 100}, "p/p-3": {Weight: 200},
	})})
	var release []func()
	defer func() {
		for _, r := range release {
			r()
		}
	}()
	// In flight 3, 3, 1, 4: per unit of weight (n+1)/w, p-2 (0.02) and
	// p-3 (0.025) beat p-0 and p-1 (0.04).
	for i, n := range []int{3, 3, 1, 4} {
		for range n {
			release = append(release, bs[i].Acquire())
		}
	}
	for k := range 20 {
		prompt := []byte(strings.Repeat(fmt.Sprintf("tenant %d system prompt. ", k), 20) + "question")
		if got := p.PickPrefix("p", bs, prompt); got != 2 {
			t.Fatalf("cold prompt %d went to %d, want the least loaded per weight, 2", k, got)
		}
		// Its next request finds it on p-2, even though p-2 now has the
		// same load per weight as p-3.
		if got := p.PickPrefix("p", bs, append(prompt, " again"...)); got != 2 {
			t.Fatalf("second request of prompt %d went to %d, want 2 where its prefix is", k, got)
		}
	}
	// Blocks without a prompt behind them (PickBlocks with none) are
	// placed by load too, and nothing panics.
	if got := p.PickBlocks("p", bs, nil); got != 2 {
		t.Fatalf("no blocks: %d", got)
	}
}
