package gateway

import (
	"net/http"

	"github.com/infergate/infergate/l7/limit"
	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/policy"
)

// limitStage admits the request against its tenant's and key's limits,
// reserving the prompt's tokens plus the most it may generate, and sets the
// x-ratelimit-* fields of the answer.
//
// Reads: x.principal, x.promptTokens, x.req, x.model. Writes: x.ticket
// (settled by finish), x.decision.
type limitStage struct {
	limiter limit.Limiter
	tenants []policy.Tenant
	keys    []policy.CompiledKey
}

func newLimitStage(g *Gateway, cfg *config) (stage, error) {
	return &limitStage{limiter: g.limiter, tenants: cfg.c.Gateway.Tenants, keys: cfg.c.Gateway.Keys}, nil
}

func (s *limitStage) serve(x *exchange) *openai.Error {
	var completion int64
	if x.ep != openai.Embeddings {
		completion = x.req.CompletionBudget(defaultCompletionReserve)
	}
	lr := limit.Request{Tenant: x.principal.Tenant, ReserveTokens: x.promptTokens + completion,
		EstimatedCostUSD: x.price(x.promptTokens, completion)}
	if i := x.principal.TenantIndex; i >= 0 && i < len(s.tenants) {
		lr.TenantLimits = s.tenants[i].Limits
	}
	if i := x.principal.KeyIndex; i >= 0 && i < len(s.keys) {
		lr.Key = x.principal.KeyName
		lr.KeyLimits = s.keys[i].Limits
	}
	t, d, err := s.limiter.Admit(x.r.Context(), lr)
	x.decision = d
	x.writeDecision(d)
	if err != nil {
		return &openai.Error{Status: http.StatusServiceUnavailable, Type: openai.TypeServer, Code: "limit_store_unavailable",
			Message: "rate limits cannot be checked right now; retry later"}
	}
	if !d.Allowed {
		x.g.metrics.limited.WithLabelValues(x.principal.Tenant, d.Reason).Inc()
		return rateLimited(d)
	}
	x.ticket = t
	return nil
}

// writeDecision sets the x-ratelimit-* fields (and Retry-After) of d.
func (x *exchange) writeDecision(d limit.Decision) {
	if x.raw != nil {
		*x.raw = d.AppendHeaderLines(*x.raw)
	} else {
		d.WriteHeaders(x.w.Header())
	}
}
