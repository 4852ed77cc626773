package route

import (
	"net/netip"
	"sync/atomic"
)

// Prompt tokens waiting for prefill. A request's in-flight count says
// nothing of its size: a 32k-token prompt holds its GPU for a second of
// prefill where a 300-token one holds it for a few milliseconds, and
// requests placed behind it wait that second for their first token. The
// gateway counts each request's prompt tokens (stage_count) and sees its
// first token, so it counts against the backend the prompt tokens of
// every request it sent there that has no first token yet: the work the
// backend must still prefill for this gateway before the next request's
// turn. Pickers weigh it beside the in-flight count (l7/pick).

// pendingCounter is a's pending prompt-token counter, shared across tables
// as its in-flight count is.
func (f *InFlight) pendingCounter(a netip.AddrPort) *atomic.Int64 {
	if v, ok := f.pending.Load(a); ok {
		return v.(*atomic.Int64)
	}
	v, _ := f.pending.LoadOrStore(a, new(atomic.Int64))
	return v.(*atomic.Int64)
}

// PendingTokens is the prompt tokens of requests this gateway has open
// to the backend that have no first token yet.
func (b *Backend) PendingTokens() int64 {
	if b.pending == nil {
		return 0
	}
	return b.pending.Load()
}

// AddPending adds n (negative: takes -n back) to the backend's pending
// prompt tokens: a caller adds a request's prompt tokens when it sends it
// and takes them back at its first token, or at its end without one.
func (b *Backend) AddPending(n int64) {
	if b.pending != nil && n != 0 {
		b.pending.Add(n)
	}
}

// HitPicker is a PrefixPicker that also says what fraction of the prompt
// (0..1) the backend it chose holds in its prefix cache, as far as it
// knows: that part costs the backend no prefill, so the caller counts
// only the rest as pending.
type HitPicker interface {
	PrefixPicker
	PickPrefixHit(pool string, backends []*Backend, prompt []byte) (int, float64)
}

// BackendPromptHit is BackendPrompt that also returns the fraction of the
// prompt the chosen backend holds, from a HitPicker (0 from any other
// picker, and when the route's power of two choices decides).
func (t *Table) BackendPromptHit(r *Route, prompt []byte) (*Backend, float64) {
	hp, ok := t.picker.(HitPicker)
	if r.Pool == nil || !ok {
		return t.BackendPrompt(r, prompt), 0
	}
	i, hit := hp.PickPrefixHit(r.Pool.Name, r.Pool.Backends, prompt)
	return pickedHit(r.Pool.Backends, i, hit)
}

// pickedHit is a hit picker's answer as a backend: bs[i] with hit kept
// within 0..1, or the power of two choices' backend (holding nothing, as
// far as anyone knows) when i is no index of bs.
func pickedHit(bs []*Backend, i int, hit float64) (*Backend, float64) {
	if i < 0 || i >= len(bs) {
		return PowerOfTwo(bs), 0
	}
	if !(hit > 0) {
		hit = 0
	}
	return bs[i], min(hit, 1)
}
