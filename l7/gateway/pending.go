package gateway

import "github.com/infergate/infergate/l7/route"

// startPending counts the request's prompt tokens against b as awaiting
// prefill (route.Backend.PendingTokens), for the picker's load: the
// first event of a stream, or the attempt's end, takes them back. The
// part of the prompt the picker knows b holds cached (pickHit) is left
// out: b will not prefill it.
func (x *exchange) startPending(b *route.Backend) {
	n := max(x.promptTokens, 0)
	if h := x.pickHit; h > 0 {
		n -= int64(float64(n) * min(h, 1))
	}
	x.pendBackend, x.pendTokens = b, n
	b.AddPending(x.pendTokens)
}

// endPending takes back what startPending counted; a second call does
// nothing.
func (x *exchange) endPending() {
	if x.pendBackend != nil {
		x.pendBackend.AddPending(-x.pendTokens)
		x.pendBackend, x.pendTokens = nil, 0
	}
}
