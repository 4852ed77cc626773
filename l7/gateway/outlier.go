package gateway

import (
	"net/http"
	"net/netip"

	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/l7/route"
)

// outcome is what an attempt that ended with err (nil: answered) says of
// its backend's health, for the route table's passive failure marking: a
// refused or reset connection, a 5xx or a stream that broke off is a
// failure; an answer (a 4xx included) is a success; a timeout, a 429, a
// loop or the client leaving say nothing (a busy engine is slow, not
// broken, and marking it out would pile its load on the others).
func (x *exchange) outcome(err *openai.Error) route.Outcome {
	switch {
	case x.clientGone:
		return route.OutcomeNeutral
	case err == nil:
		if x.errMsg == "upstream_stream_broken" {
			return route.OutcomeFailure
		}
		return route.OutcomeSuccess
	case err.Status == http.StatusBadGateway && (err.Code == "upstream_error" || err.Code == "upstream_unavailable"):
		return route.OutcomeFailure
	}
	return route.OutcomeNeutral
}

// Reinstate ends the passive marking of the backend at addr, if any: an
// active health check of it has just passed, which says more than the
// failures that marked it (Envoy unmarks a host on a passing check alike).
func (g *Gateway) Reinstate(addr netip.AddrPort) {
	if g.outliers != nil {
		g.outliers.Reinstate(addr)
	}
}
