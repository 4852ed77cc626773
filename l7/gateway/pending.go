package gateway

import "github.com/infergate/infergate/l7/route"

// startPending counts the request's prompt tokens against b as awaiting
// prefill (route.Backend.PendingTokens), for the picker's load: the
// first event of a stream, or the attempt's end, takes them back.
func (x *exchange) startPending(b *route.Backend) {
	x.pendBackend, x.pendTokens = b, max(x.promptTokens, 0)
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
