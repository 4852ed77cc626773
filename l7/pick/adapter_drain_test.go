package pick

import (
	"testing"
	"time"

	"github.com/infergate/infergate/gpu/score"
)

// A backend whose batch is full keeps an adapter waiting for a slot: once
// it has waited drainAfter, the running adapter the picker sent the
// fewest requests there gets no new ones there (so its slot frees), while
// the busy ones stay; before then, nothing is drained.
func TestAdapterDrainsLightestForWaiter(t *testing.T) {
	bs := backends(t, 2)
	full := &score.Adapters{Running: []string{"a", "b", "c", "d"}, Waiting: []string{"a", "w"}, Max: 4, At: adapterT0}
	ws := score.Weights{
		"p/p-0": {Weight: 100, Adapters: full},
		"p/p-1": {Weight: 100, Adapters: lora(4, "e", "f", "g", "h")},
	}
	now := adapterT0.Add(100 * time.Millisecond)
	p := newPicker(t, Config{Weights: fixed(ws), Now: func() time.Time { return now }, WeightsTTL: -1})
	prompt := []byte("a prompt long enough to fill more than one block of sixty-four bytes, so prefix affinity has a say")
	send := func(adapter string, want int) {
		t.Helper()
		if i := p.PickModel("p", adapter, bs, prompt); i != want {
			t.Fatalf("at +%v adapter %s went to %d, want %d", now.Sub(adapterT0), adapter, i, want)
		}
	}
	for range 5 {
		for _, a := range []string{"a", "b", "c"} {
			send(a, 0)
		}
	}
	send("d", 0) // w has waited only 0.1 s: d keeps its slot
	now = adapterT0.Add(drainAfter + time.Second)
	send("d", 1) // w has waited past drainAfter: d, the lightest, drains
	send("a", 0)
	send("b", 0)
	send("d", 1)
	// A report in which w runs and nothing waits ends the drain.
	ws["p/p-0"] = score.Weight{Weight: 100, Adapters: &score.Adapters{Running: []string{"a", "b", "d", "w"}, Max: 4, At: now}}
	send("d", 0)
}

// Sends are counted over the window under way and the one before it:
// older ones no longer make an adapter look busy.
func TestAdapterSendWindows(t *testing.T) {
	var s adapterSend
	at := func(d time.Duration) time.Time { return adapterT0.Add(d) }
	s.add(at(0))
	s.add(at(time.Second))
	for _, c := range []struct {
		d    time.Duration
		want uint32
	}{{2 * time.Second, 2}, {sendWindow + time.Second, 2}, {2*sendWindow + time.Second, 0}} {
		if got := s.recent(at(c.d)); got != c.want {
			t.Errorf("at +%v: %d recent sends, want %d", c.d, got, c.want)
		}
	}
	s.add(at(sendWindow + time.Second)) // a new window; the first one's 2 are its previous
	if got := s.recent(at(sendWindow + 2*time.Second)); got != 3 {
		t.Errorf("after a third send in the next window: %d, want 3", got)
	}
	if got := s.recent(at(2*sendWindow + 2*time.Second)); got != 1 {
		t.Errorf("a window later: %d, want 1", got)
	}
}
