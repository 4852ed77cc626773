package gateway

import (
	"maps"
	"slices"
	"testing"

	"github.com/infergate/infergate/test/mockllm"
)

// TestBackendStatsMatchAudit drives whole, streamed and failing requests
// over loopback HTTP to two mockllm backends and checks that the
// per-backend counters agree with what the audit log billed, then that an
// Apply keeps the counters of backends it retains and drops the others.
func TestBackendStatsMatchAudit(t *testing.T) {
	ma, mb := newMock(t, mockllm.Config{MaxTokens: 5}), newMock(t, mockllm.Config{MaxTokens: 5})
	h := newHarness(t, basePolicy(pool("p", ma, mb)), Options{})
	if got := h.g.BackendStats(); len(got) != 2 || got["p/p-a"] != (BackendStats{}) || got["p/p-b"] != (BackendStats{}) {
		t.Fatalf("before any request: %+v", got)
	}

	const whole = 6
	for i := range whole {
		if status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("request number "+string(rune('a'+i)), "")); status != 200 {
			t.Fatalf("whole %d: status %d %s", i, status, body)
		}
	}
	if status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("stream please", `,"stream":true,"max_tokens":4`)); status != 200 {
		t.Fatalf("stream: status %d %s", status, body)
	}
	// Every attempt fails upstream: the client gets a 5xx, which counts as
	// an error of the backend named in the audit record.
	ma.SetFailure(mockllm.Failure{Status: 500})
	mb.SetFailure(mockllm.Failure{Status: 500})
	if status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("doomed", "")); status < 500 {
		t.Fatalf("failing upstream: status %d %s", status, body)
	}
	ma.SetFailure(mockllm.Failure{})
	mb.SetFailure(mockllm.Failure{})
	// Refused before any backend: counted nowhere.
	if status, _, _ := h.call("sk-wrong-key", "/v1/chat/completions", chatBody("hi", "")); status != 401 {
		t.Fatalf("bad key: status %d", status)
	}

	recs := h.records(whole + 3)
	want := map[string]BackendStats{"p/p-a": {}, "p/p-b": {}}
	var streamed int
	for _, r := range recs {
		if r.Backend == "" {
			continue
		}
		w, ok := want[r.Backend]
		if !ok {
			t.Fatalf("audit names backend %q", r.Backend)
		}
		w.Requests++
		if r.Status >= 500 {
			w.Errors++
		}
		w.PromptTokens += uint64(r.PromptTokens)
		w.CompletionTokens += uint64(r.CompletionTokens)
		if r.Stream {
			streamed++
			w.TTFTCount++
		}
		want[r.Backend] = w
	}
	if streamed != 1 {
		t.Fatalf("%d streamed audit records, want 1", streamed)
	}
	got := h.g.BackendStats()
	var total BackendStats
	for label, w := range want {
		g := got[label]
		if g.Requests != w.Requests || g.Errors != w.Errors || g.PromptTokens != w.PromptTokens ||
			g.CompletionTokens != w.CompletionTokens || g.TTFTCount != w.TTFTCount {
			t.Fatalf("%s: stats %+v, audit says %+v", label, g, w)
		}
		if (g.TTFTCount > 0) != (g.TTFTSum > 0) {
			t.Fatalf("%s: TTFT sum %v over %d streams", label, g.TTFTSum, g.TTFTCount)
		}
		total.Requests += g.Requests
		total.Errors += g.Errors
		total.CompletionTokens += g.CompletionTokens
		total.TTFTCount += g.TTFTCount
	}
	// Six whole answers of 5 tokens and one stream of 4 reached a backend.
	if total.Requests != whole+2 || total.Errors != 1 || total.TTFTCount != 1 || total.CompletionTokens != whole*5+4 {
		t.Fatalf("totals %+v", total)
	}

	// A policy keeping p/p-a and adding pool q: p/p-a keeps counting from
	// where it was, p/p-b is gone, q/q-a starts at zero.
	mq := newMock(t, mockllm.Config{MaxTokens: 5})
	if err := h.g.Apply(basePolicy(pool("p", ma), pool("q", mq))); err != nil {
		t.Fatal(err)
	}
	after := h.g.BackendStats()
	if keys := slices.Sorted(maps.Keys(after)); !slices.Equal(keys, []string{"p/p-a", "q/q-a"}) {
		t.Fatalf("after apply: backends %v", keys)
	}
	if after["p/p-a"] != got["p/p-a"] || after["q/q-a"] != (BackendStats{}) {
		t.Fatalf("after apply: %+v, before %+v", after, got)
	}
	if status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("after apply", "")); status != 200 {
		t.Fatalf("after apply: status %d %s", status, body)
	}
	h.records(whole + 4)
	if n := h.g.BackendStats()["p/p-a"].Requests; n != got["p/p-a"].Requests+1 {
		t.Fatalf("p/p-a requests %d after one more, want %d", n, got["p/p-a"].Requests+1)
	}
}

func BenchmarkRecordBackend(b *testing.B) {
	m := newMock(b, mockllm.Config{})
	h := newHarness(b, basePolicy(pool("p", m, m, m)), Options{})
	var last lastRecorded
	h.g.recordBackend(&last, "p/p-b", 200, 100, 20, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h.g.recordBackend(&last, "p/p-b", 200, 100, 20, 0)
	}
}

// One exchange's remembered counters follow the backend it records for
// and the policy in force: each count lands on its own backend.
func TestRecordBackendRemembersOnlyItsKey(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	h := newHarness(t, basePolicy(pool("p", m, m, m)), Options{})
	var last lastRecorded
	for _, b := range []string{"p/p-a", "p/p-b", "p/p-b", "p/p-a", "p/p-c", "p/p-b"} {
		h.g.recordBackend(&last, b, 200, 1, 0, 0)
	}
	got := h.g.BackendStats()
	for b, want := range map[string]uint64{"p/p-a": 2, "p/p-b": 3, "p/p-c": 1} {
		if got[b].Requests != want {
			t.Errorf("%s: %d requests, want %d", b, got[b].Requests, want)
		}
	}
	// p-b dropped and added again starts from zero: counts after that go
	// to the new counters, not to those remembered from before.
	if err := h.g.Apply(basePolicy(pool("p", m))); err != nil {
		t.Fatal(err)
	}
	h.g.recordBackend(&last, "p/p-b", 200, 1, 0, 0) // dropped: not counted
	if err := h.g.Apply(basePolicy(pool("p", m, m))); err != nil {
		t.Fatal(err)
	}
	h.g.recordBackend(&last, "p/p-b", 200, 1, 0, 0)
	h.g.recordBackend(&last, "p/p-a", 200, 1, 0, 0)
	after := h.g.BackendStats()
	if n := after["p/p-b"].Requests; n != 1 {
		t.Errorf("p/p-b: %d requests after it came back, want 1", n)
	}
	if n := after["p/p-a"].Requests; n != 3 {
		t.Errorf("p/p-a: %d requests after the applies, want 3 (kept across them)", n)
	}
}
