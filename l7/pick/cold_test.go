package pick

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/l7/route"
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

// A cold prompt divides by the backend's weight averaged over steadyTau,
// not by the last report's: a one-second dip in a backend's reported
// weight (a burst filled its KV cache) does not send the prompt to a
// backend with more in flight, since the in-flight count already says the
// backend is busy; a weight that stays low for a minute (a throttled GPU)
// does, and a fall to less than half counts at once.
func TestColdDividesBySteadyWeight(t *testing.T) {
	bs := backends(t, 2)
	now := time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)
	ws := score.Weights{"p/p-0": {Weight: 100}, "p/p-1": {Weight: 100}}
	p := newPicker(t, Config{Weights: func() score.Weights { return ws }, WeightsTTL: -1,
		Now: func() time.Time { return now }})
	k := 0
	cold := func() int {
		k++
		return p.PickBlocks("p", bs, []uint64{uint64(k) * 7919})
	}
	var release []func()
	defer func() {
		for _, r := range release {
			r()
		}
	}()
	for i, n := range []int{3, 4} {
		for range n {
			release = append(release, bs[i].Acquire())
		}
	}
	if got := cold(); got != 0 {
		t.Fatalf("equal weights: picked %d, want 0 (3 in flight against 4)", got)
	}
	// One second later p-0 reports weight 60: its average is still about
	// 93, so 4/93 < 5/100 and it keeps the prompt (the last report alone
	// gives 4/60 > 5/100).
	now = now.Add(time.Second)
	ws = score.Weights{"p/p-0": {Weight: 60}, "p/p-1": {Weight: 100}}
	if got := cold(); got != 0 {
		t.Fatalf("after a one-second dip: picked %d, want 0", got)
	}
	// A minute of it: the average is near 60 and p-1 takes the prompt.
	for range 60 {
		now = now.Add(time.Second)
		cold()
	}
	if got := cold(); got != 1 {
		t.Fatalf("after a minute at weight 20: picked %d, want 1", got)
	}
	if a := p.steadyWeights("p", bs, []float64{60, 100}, p.now(), nil)[0]; a < 60 || a > 61 {
		t.Fatalf("p-0's average after a minute at 60: %v", a)
	}
	// A fall of more than half (another kind of backend, not a busy
	// second) counts at once: back to 100 for a minute, then 20.
	ws = score.Weights{"p/p-0": {Weight: 100}, "p/p-1": {Weight: 100}}
	for range 60 {
		now = now.Add(time.Second)
		cold()
	}
	if got := cold(); got != 0 {
		t.Fatalf("after a minute back at 100: picked %d, want 0", got)
	}
	now = now.Add(time.Second)
	ws = score.Weights{"p/p-0": {Weight: 20}, "p/p-1": {Weight: 100}}
	if got := cold(); got != 1 {
		t.Fatalf("at once after a fall to 20: picked %d, want 1", got)
	}
}

// A backend back after an absence (failed, marked out, drained) starts
// from the mean average weight of the backends that stayed, not from its
// own first report, and at first counts a tenth of it, rising to all of
// it over slowStartWindow: an idle GPU's report beside busy ones' would
// make every cold prompt its own until its in-flight count were that
// ratio times theirs, and even at their weight until it had as many in
// flight as each of them, all to prefill at once. Here three equal
// backends run 30 requests each at a reported weight of 5 for a minute
// while p-1 is away; p-1 returns at weight 100 and empty and takes cold
// prompts until it has 3 in flight (4/0.5 > 31/5), not 619 (620/100) as
// by its report or 30 as at the others' weight; half the window later
// (its reports down to theirs as it fills) it fills to about half theirs,
// and after the window to theirs.
func TestColdSlowStartAfterAbsence(t *testing.T) {
	bs := backends(t, 4)
	now := time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)
	ws := score.Weights{"p/p-0": {Weight: 100}, "p/p-1": {Weight: 100}, "p/p-2": {Weight: 100}, "p/p-3": {Weight: 100}}
	p := newPicker(t, Config{Weights: func() score.Weights { return ws }, WeightsTTL: -1,
		Now: func() time.Time { return now }})
	k := 0
	cold := func(cands []*route.Backend) int {
		k++
		return p.PickBlocks("p", cands, []uint64{uint64(k) * 7919})
	}
	var release []func()
	defer func() {
		for _, r := range release {
			r()
		}
	}()
	all := bs
	stayed := []*route.Backend{bs[0], bs[2], bs[3]}
	cold(all) // every backend seen once
	for _, b := range stayed {
		for range 30 {
			release = append(release, b.Acquire())
		}
	}
	ws = score.Weights{"p/p-0": {Weight: 5}, "p/p-1": {Weight: 100}, "p/p-2": {Weight: 5}, "p/p-3": {Weight: 5}}
	for range 60 {
		now = now.Add(time.Second)
		cold(stayed)
	}
	// fill sends cold prompts, holding each, until one goes elsewhere,
	// and returns p-1's in-flight count then.
	fill := func() int64 {
		for range 1000 {
			i := cold(all)
			if i != 1 {
				break
			}
			release = append(release, all[i].Acquire())
		}
		return bs[1].InFlight()
	}
	now = now.Add(time.Second)
	if n := fill(); n < 2 || n > 4 {
		t.Fatalf("p-1, back and empty, filled to %d in flight at once; want about 3 (a tenth of the others' share)", n)
	}
	// Its reports fall as it fills, as the others' did.
	ws = score.Weights{"p/p-0": {Weight: 5}, "p/p-1": {Weight: 5}, "p/p-2": {Weight: 5}, "p/p-3": {Weight: 5}}
	now = now.Add(slowStartWindow / 2)
	if n := fill(); n < 12 || n > 18 {
		t.Fatalf("p-1 half the window after its return filled to %d in flight; want about 15", n)
	}
	now = now.Add(slowStartWindow)
	if n := fill(); n < 25 || n > 31 {
		t.Fatalf("p-1 after the window filled to %d in flight; want the others' 30", n)
	}
}

// coldBlocks is a cold prompt of n blocks (16 tokens each at the default
// block size) that no other call of the test shares.
func coldBlocks(seed uint64, n int) []uint64 {
	hs := make([]uint64, n)
	for i := range hs {
		hs[i] = seed*1_000_003 + uint64(i) + 1
	}
	return hs
}

// The short lane: when even the least loaded backend has a long
// prompt's worth of prompt tokens still to prefill, a long cold prompt
// goes to the next least loaded backend, which keeps the least loaded one
// for the short prompts that would otherwise queue behind its whole
// prefill; a short prompt still goes to the least loaded, and without a
// backlog (or with only two backends, or where the next one is a much
// smaller GPU, or has over twice the lane's queue) the long prompt does
// too.
func TestColdLongPromptKeepsOffShortLane(t *testing.T) {
	bs := backends(t, 4)
	ws := score.Weights{"p/p-0": {Weight: 100}, "p/p-1": {Weight: 100}, "p/p-2": {Weight: 100}, "p/p-3": {Weight: 100}}
	p := newPicker(t, Config{Weights: func() score.Weights { return ws }})
	for i, n := range []int64{40_000, 60_000, 70_000, 90_000} {
		bs[i].AddPending(n)
	}
	long := 2000 // blocks: 32,000 tokens
	if got := p.PickBlocks("p", bs, coldBlocks(1, long)); got != 1 {
		t.Fatalf("long prompt under a backlog went to %d, want 1 (0 is the short lane)", got)
	}
	if got := p.PickBlocks("p", bs, coldBlocks(2, 20)); got != 0 {
		t.Fatalf("short prompt went to %d, want the least loaded, 0", got)
	}
	// No backlog on the least loaded: the long prompt takes it.
	bs[0].AddPending(-30_000)
	if got := p.PickBlocks("p", bs, coldBlocks(3, long)); got != 0 {
		t.Fatalf("long prompt without a backlog went to %d, want 0", got)
	}
	// A backlog (33,000 on the lane), but the next least loaded, p-2
	// once p-1 has 140,000, has over twice the lane's prompt tokens
	// queued, 70,000: the lane gives way.
	bs[0].AddPending(+23_000)
	bs[1].AddPending(+80_000)
	if got := p.PickBlocks("p", bs, coldBlocks(6, long)); got != 0 {
		t.Fatalf("long prompt went to %d, want the lane, 0, with the others over twice its load", got)
	}
	bs[1].AddPending(-80_000)

	// The next least loaded is a GPU of a third the weight: the long
	// prompt goes to the one after it instead.
	ws = score.Weights{"p/p-0": {Weight: 100}, "p/p-1": {Weight: 30}, "p/p-2": {Weight: 100}, "p/p-3": {Weight: 100}}
	q := newPicker(t, Config{Weights: func() score.Weights { return ws }})
	bs[0].AddPending(+7_000)  // back to 40,000
	bs[1].AddPending(-43_000) // 17,000 left: between p-0 and p-2 per unit of weight
	if got := q.PickBlocks("p", bs, coldBlocks(4, long)); got != 2 {
		t.Fatalf("long prompt went to %d, want 2 (1 is a small GPU)", got)
	}

	// Two backends: no lane.
	two := backends(t, 2)
	two[0].AddPending(40_000)
	two[1].AddPending(60_000)
	r := newPicker(t, Config{Weights: fixed(score.Weights{"p/p-0": {Weight: 100}, "p/p-1": {Weight: 100}})})
	if got := r.PickBlocks("p", two, coldBlocks(5, long)); got != 0 {
		t.Fatalf("with two backends the long prompt went to %d, want the least loaded, 0", got)
	}
}

// Under a backlog a cold prompt weighs prompt tokens waiting for prefill
// more than requests in flight: its first token waits for every prompt
// token queued ahead of it, and only a little for sequences that are
// decoding. A backend with 10 requests in flight and 20,000 prompt tokens
// queued beats one with 2 in flight and 24,000 queued (at the load bound's
// rate of 1,024 tokens a request the second would win, 25 against 30).
// Without a backlog the load bound's rate holds: 2 in flight and 4,096
// queued beat 10 in flight and nothing queued.
func TestColdBacklogCountsQueuedPrefill(t *testing.T) {
	bs := backends(t, 2)
	p := newPicker(t, Config{Weights: fixed(score.Weights{"p/p-0": {Weight: 100}, "p/p-1": {Weight: 100}})})
	var release []func()
	defer func() {
		for _, r := range release {
			r()
		}
	}()
	for i, n := range []int{10, 2} {
		for range n {
			release = append(release, bs[i].Acquire())
		}
	}
	bs[0].AddPending(20_000)
	bs[1].AddPending(24_000)
	for k := range 20 {
		if got := p.PickBlocks("p", bs, coldBlocks(uint64(100+k), 20)); got != 0 {
			t.Fatalf("backlogged: cold prompt %d went to %d, want 0 (the shorter prefill queue)", k, got)
		}
	}
	bs[0].AddPending(-20_000)
	bs[1].AddPending(-24_000 + 4096)
	for k := range 20 {
		if got := p.PickBlocks("p", bs, coldBlocks(uint64(200+k), 20)); got != 1 {
			t.Fatalf("no backlog: cold prompt %d went to %d, want 1 (fewer in flight)", k, got)
		}
	}
}
