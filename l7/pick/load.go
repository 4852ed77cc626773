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
func loadOf(b *route.Backend) float64 {
	return float64(b.InFlight()) + float64(b.PendingTokens())/pendingTokensPerRequest
}
