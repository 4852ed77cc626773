package gpumodel

import (
	"math"
	"testing"
)

func req(id, prompt, output, adapter int) *Request[int] {
	return &Request[int]{ID: id, Prompt: prompt, Output: output, Prefix: -1, Adapter: adapter, FirstToken: -1, Done: -1}
}

func drain(t *testing.T, e *Engine[int], now float64) float64 {
	t.Helper()
	for !e.Idle() {
		d, ok := e.Start(now)
		if !ok {
			t.Fatal("engine stuck")
		}
		now += d
		e.Finish(now)
	}
	return now
}

// A GPU at 60% speed takes 1/0.6 as long for the same work.
func TestSpeedScalesSteps(t *testing.T) {
	full, slow := NewEngine[int](H100, 0, false), NewEngine[int](H100, 0, false)
	if err := slow.SetSpeed(0.6); err != nil {
		t.Fatal(err)
	}
	if slow.SetSpeed(0) == nil || slow.SetSpeed(math.NaN()) == nil {
		t.Fatal("speed 0 or NaN accepted")
	}
	full.Enqueue(req(1, 2000, 50, 0))
	slow.Enqueue(req(1, 2000, 50, 0))
	a, b := drain(t, full, 0), drain(t, slow, 0)
	if math.Abs(b-a/0.6) > 1e-9 {
		t.Fatalf("slow engine took %v, want %v", b, a/0.6)
	}
}

// With max-loras 1, a request for a second adapter waits until the first
// adapter's requests leave the batch, while a base-model request behind it
// is not held up; a newly used adapter costs a load.
func TestLoraSlots(t *testing.T) {
	spec := H100
	spec.MaxLoras, spec.AdapterLoad = 1, 0.01
	e := NewEngine[int](spec, 0, false)
	a, b, base := req(1, 100, 20, 1), req(2, 100, 1, 2), req(3, 100, 1, 0)
	e.Enqueue(a)
	e.Enqueue(b)
	e.Enqueue(base)
	d, _ := e.Start(0)
	if e.Running() != 2 || e.Waiting() != 1 {
		t.Fatalf("running %d waiting %d, want a and the base request running, b waiting", e.Running(), e.Waiting())
	}
	if want := H100.StepTime(0, 0, 200) + 0.01; math.Abs(d-want) > 1e-12 {
		t.Fatalf("first step %v, want %v (one adapter load)", d, want)
	}
	e.Finish(d)
	drain(t, e, d)
	if !(b.FirstToken >= a.Done) || e.AdapterLoads != 2 || !e.Loaded(2) || e.Loaded(1) {
		t.Fatalf("b first token %v, a done %v, %d loads", b.FirstToken, a.Done, e.AdapterLoads)
	}
}

// KV events: every block the prefix cache indexes is announced, an
// eviction and a failure announce removals, and after a failure nothing is
// cached or running.
func TestEventsAndFail(t *testing.T) {
	e := NewEngine[int](H100, 0, true)
	stored, removed := map[BlockKey]bool{}, 0
	e.OnStored = func(k BlockKey) { stored[k] = true }
	e.OnRemoved = func(BlockKey) { removed++ }
	r := &Request[int]{ID: 1, Prompt: 3100, Prefix: 7, PrefixLen: 3000, Output: 5, FirstToken: -1, Done: -1}
	e.Enqueue(r)
	drain(t, e, 0)
	for i := range 3000 / BlockTokens {
		if !stored[BlockKey{Owner: -8, Idx: i}] || !e.Cached(BlockKey{Owner: -8, Idx: i}) {
			t.Fatalf("prefix block %d not announced or not cached", i)
		}
	}
	if len(stored) != e.CachedBlocks() {
		t.Fatalf("%d stored events, %d blocks cached", len(stored), e.CachedBlocks())
	}
	e.Enqueue(req(2, 500, 100, 0))
	e.Start(1)
	lost := e.Fail(1.001)
	if len(lost) != 1 || !e.Idle() || e.CachedBlocks() != 0 || e.UsedBlocks() != 0 || removed != len(stored) {
		t.Fatalf("after fail: %d lost, idle %v, %d cached, %d used, %d of %d removed", len(lost), e.Idle(), e.CachedBlocks(), e.UsedBlocks(), removed, len(stored))
	}
}

// Fixed timings: a prefill step takes the TTFT, a decode step the token
// interval, and the cache never runs out; usage is the batch's occupancy.
func TestFixedTiming(t *testing.T) {
	e := NewEngine[int](FixedTiming(0.15, 0.01, 2), 0, false)
	a := req(1, 1_000_000, 3, 0)
	e.Enqueue(a)
	e.Enqueue(req(2, 10, 1, 0))
	e.Enqueue(req(3, 10, 1, 0))
	d, _ := e.Start(0)
	if d != 0.15 || e.Running() != 2 || e.KVUsage() != 1 {
		t.Fatalf("step %v, running %d, usage %v", d, e.Running(), e.KVUsage())
	}
	e.Finish(d)
	now := drain(t, e, d)
	if a.FirstToken != 0.15 || math.Abs(a.Done-(0.15+0.15+0.01)) > 1e-12 || now <= 0.3 {
		t.Fatalf("first token %v, done %v", a.FirstToken, a.Done)
	}
}

// Abort frees a running request's blocks and takes a waiting one out.
func TestAbort(t *testing.T) {
	e := NewEngine[int](A10, 0, false)
	a, b := req(1, 1000, 100, 0), req(2, 1000, 100, 0)
	e.Enqueue(a)
	d, _ := e.Start(0)
	e.Finish(d)
	e.Enqueue(b)
	if !e.Abort(a) || !e.Abort(b) || e.Abort(a) || !e.Idle() || e.UsedBlocks() != 0 {
		t.Fatalf("abort left running %d waiting %d used %d", e.Running(), e.Waiting(), e.UsedBlocks())
	}
}
