package gateway

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infergate/infergate/l7/limit"
	"github.com/infergate/infergate/l7/openai"
)

// rateGateStage refuses a request whose principal the request-rate limit
// has refused, until the Retry-After it was given, before the request is
// inspected or counted: a tenant over its requests per minute that keeps
// sending megabyte prompts then costs no inspection or counting CPU. The
// refusal is certain, not a guess: requests per minute are charged one per
// request, nothing but time frees them, and until Retry-After none is free
// (other replicas sharing the limit store can only take more). The limit
// stage's decisions are what it learns from (finish); a new policy starts
// with a new gate, so raised limits apply at once.
//
// Reads: x.principal, and at finish x.decision. Writes: nothing on
// success; on refusal the x-ratelimit-* fields and Retry-After.
type rateGateStage struct {
	now func() time.Time
	// held counts the entries of refused, so the common case (nobody
	// refused) costs one atomic load.
	held    atomic.Int32
	mu      sync.Mutex
	refused map[principalKey]rateRefusal
}

// principalKey names a tenant (key "") or one key of a tenant.
type principalKey struct{ tenant, key string }

type rateRefusal struct {
	until int64 // unix nanoseconds
	d     limit.Decision
}

// maxRateRefusals bounds the gate's memory; when it is full of live
// refusals a new one is not remembered (the limiter still refuses it).
const maxRateRefusals = 4096

func newRateGateStage(*Gateway, *config) (stage, error) {
	return &rateGateStage{now: time.Now, refused: map[principalKey]rateRefusal{}}, nil
}

func (s *rateGateStage) serve(x *exchange) *openai.Error {
	if s.held.Load() == 0 {
		return nil
	}
	now := s.now().UnixNano()
	p := x.principal
	s.mu.Lock()
	r, ok := s.lookup(principalKey{p.Tenant, ""}, now)
	if !ok && p.KeyName != "" {
		r, ok = s.lookup(principalKey{p.Tenant, p.KeyName}, now)
	}
	s.mu.Unlock()
	if !ok {
		return nil
	}
	d := r.d
	d.RetryAfter = time.Duration(r.until - now)
	d.RemainingRequests = 0
	x.writeDecision(d)
	x.g.metrics.limited.WithLabelValues(p.Tenant, d.Reason).Inc()
	return rateLimited(d)
}

// lookup finds a live refusal of k, dropping an expired one. Caller holds s.mu.
func (s *rateGateStage) lookup(k principalKey, now int64) (rateRefusal, bool) {
	r, ok := s.refused[k]
	if !ok {
		return r, false
	}
	if now >= r.until {
		delete(s.refused, k)
		s.held.Add(-1)
		return r, false
	}
	return r, true
}

// finish remembers a refusal for request rate.
func (s *rateGateStage) finish(x *exchange) {
	d := &x.decision
	if d.Allowed || d.RetryAfter <= 0 {
		return
	}
	var k principalKey
	switch d.Reason {
	case limit.ReasonTenantRequests:
		k = principalKey{x.principal.Tenant, ""}
	case limit.ReasonKeyRequests:
		k = principalKey{x.principal.Tenant, x.principal.KeyName}
	default:
		return
	}
	now := s.now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.refused[k]; !ok {
		if len(s.refused) >= maxRateRefusals {
			for k, r := range s.refused {
				if now >= r.until {
					delete(s.refused, k)
					s.held.Add(-1)
				}
			}
			if len(s.refused) >= maxRateRefusals {
				return
			}
		}
		s.held.Add(1)
	}
	s.refused[k] = rateRefusal{until: now + int64(d.RetryAfter), d: *d}
}

// rateLimited is the 429 for a refused decision.
func rateLimited(d limit.Decision) *openai.Error {
	code := "rate_limit_exceeded"
	if d.Reason == limit.ReasonTenantBudget || d.Reason == limit.ReasonKeyBudget {
		code = "insufficient_quota"
	}
	return &openai.Error{Status: http.StatusTooManyRequests, Type: openai.TypeRateLimit, Code: code,
		Message: "limit reached (" + d.Reason + ")"}
}
