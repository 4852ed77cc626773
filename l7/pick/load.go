package pick

import (
	"github.com/infergate/infergate/l7/affinity"
	"github.com/infergate/infergate/l7/route"
)

// pendingTokensPerRequest converts a backend's prompt tokens awaiting
// prefill (route.Backend.PendingTokens) into requests in flight, so that
// one load figure weighs both: a request placed behind a long prompt
// waits for its whole prefill, which a count of requests does not show.
// The rate is l7/affinity's, which credits a prefix hit at the same rate.
var pendingTokensPerRequest = float64(affinity.PrefillTokensPerRequest)

// loadOf is the backend's load as the pickers compare it: its requests in
// flight from this gateway, plus its prompt tokens still to prefill in
// units of pendingTokensPerRequest.
func loadOf(b *route.Backend) float64 { return loadAt(b, pendingTokensPerRequest) }

// loadAt is b's load with its prompt tokens to prefill counted at rate
// tokens a request.
func loadAt(b *route.Backend, rate float64) float64 {
	return float64(b.InFlight()) + float64(b.PendingTokens())/rate
}

// coldPendingTokensPerRequest is pendingTokensPerRequest for a prompt no
// backend holds (pickCold) while the pool is backlogged (backlogged). Such
// a prompt has no cache to be near, so the only question is where its
// first token comes soonest, and under a backlog a request in flight
// that is decoding delays it by little (one more sequence in each step)
// while every prompt token queued ahead of it must be prefilled first;
// the count still stands for the backend's batch and KV cache. Without a
// backlog pickCold keeps pendingTokensPerRequest: a cold prompt there is
// often a shared prefix's new home, and at the higher rate a momentary
// queue moved homes about (llm-d's shape in test/sched got slower).
const coldPendingTokensPerRequest = 256

// coldCost is b's load per unit of steady weight, one more request
// counted, with its prompt tokens to prefill at rate tokens a request.
func coldCost(b *route.Backend, steady, rate float64) float64 {
	return (loadAt(b, rate) + 1) / steady
}
