// Package limit enforces per-tenant and per-key limits on L7 requests:
// requests per minute, tokens per minute, concurrent requests and USD
// budgets. Both the tenant's and the key's limits must admit a request.
//
// # Algorithm
//
// Requests and tokens per minute use GCRA (the generic cell rate algorithm,
// a token bucket stored as one timestamp): a limit of L per minute refills
// continuously at L/min into a bucket of capacity L. It was chosen over
// fixed and sliding windows because
//   - its state is a single number per limit, so the Redis script reads and
//     writes one key per limit and the memory limiter one int64;
//   - it is exact for the bucket it models, with no sub-bucket rounding:
//     over any interval d it admits at most L + L·d/1min, and a client that
//     spends the bucket is told precisely when capacity returns (Retry-After);
//   - a token reservation is corrected by moving the timestamp back (refund)
//     or forward (debt), which a window of counters cannot do for a request
//     that straddles a window boundary.
//
// Concurrency slots are leases with an expiry, so a ticket that is never
// settled (a crashed gateway, a lost goroutine) frees its slot after the
// lease instead of leaking it forever. Budgets are fixed windows (default
// 720h) that start with the first spend; estimated cost is reserved at
// admission and replaced by the actual cost at Settle.
//
// Two implementations share these semantics: NewMemory for one gateway and
// NewRedis for replicas sharing one redis-server, where every admission is
// decided by a Lua script over the shared state.
//
// # Redis under faults
//
// A call that times out may still run inside Redis later (a stalled server
// runs what queued up), and a retried call may run twice. So every script
// is idempotent by ticket: the admission writes a ticket key holding its
// reply, a second run of it returns that reply and charges nothing, and
// the settle deletes the key, so a second settle changes nothing. When the
// admission's fate is unknown (it timed out, or the request was served
// without Redis by failOpen) the settle says so: if the admission landed it
// is corrected, if not the settle books the request, its tokens and its
// cost itself, and either way it leaves a settled marker for the settle
// horizon (10 min) so that a late copy of the admission is refused. A
// fail-closed refusal whose admission may land later is undone the same
// way. go-redis does not retry; the limiter retries only settlements, from
// a bounded queue (DefaultSettleQueue) with backoff, in the background and
// on Close (DefaultDrainTimeout). A settlement dropped (queue full, or
// Redis away longer than the horizon) is logged; its slot still frees by
// lease. Fail-open requests hold no concurrency slot: none can be taken
// without Redis.
//
// Concurrency leases in Redis are bounded by heartbeat: each gateway
// renews the slots of its requests in flight every LeaseTTL/3, to now +
// LeaseTTL (DefaultLeaseTTL, 30 s), and never past admission + Lease
// (DefaultLease), so a gateway that dies frees its slots within the TTL and
// a ticket its holder forgot frees within the lease. A heartbeat that
// cannot reach Redis for a whole TTL lets the slot go: the limit is then
// briefly lenient, never leaky.
package limit

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/bits"
	"net/http"
	"strconv"
	"time"

	"github.com/infergate/infergate/policy"
)

// Tunables shared by both implementations.
const (
	// rateWindow is the period of requests/tokens "per minute" limits.
	rateWindow = time.Minute
	// DefaultBudgetWindow applies when a budget has no window.
	DefaultBudgetWindow = 720 * time.Hour
	// DefaultLease bounds how long an unsettled ticket holds a concurrency
	// slot. It must outlast the longest legitimate stream. In Redis a
	// slot also frees DefaultLeaseTTL after its holder's last heartbeat.
	DefaultLease = 15 * time.Minute
	// maxReserveTokens bounds one request's reservation (well above any
	// model's context window) so arithmetic stays in range.
	maxReserveTokens = 1 << 32
	// maxUSD bounds costs and budgets so nano-USD sums stay exact in int64
	// and within a few hundred nano-USD in the Redis scripts' doubles.
	maxUSD = 1e9
	// nanoUSD is the unit budgets are counted in: integers, so that
	// millions of additions neither drift nor differ between replicas.
	nanoUSD = 1e9
)

// Reasons a request is refused (Decision.Reason).
const (
	ReasonTenantRequests    = "tenant_requests_per_minute"
	ReasonKeyRequests       = "key_requests_per_minute"
	ReasonTenantTokens      = "tenant_tokens_per_minute"
	ReasonKeyTokens         = "key_tokens_per_minute"
	ReasonTenantConcurrent  = "tenant_concurrent_requests"
	ReasonKeyConcurrent     = "key_concurrent_requests"
	ReasonTenantBudget      = "tenant_budget"
	ReasonKeyBudget         = "key_budget"
	ReasonTenantTooLarge    = "tenant_request_exceeds_tokens_per_minute" // never admissible; RetryAfter 0
	ReasonKeyTooLarge       = "key_request_exceeds_tokens_per_minute"
	ReasonStoreUnavailable  = "limit_store_unavailable" // with Allowed=true when failing open
	ReasonTooManyPrincipals = "limit_store_full"
)

// ErrUnavailable is returned (wrapped) by Admit when the limit store cannot
// decide and the limiter fails closed; the gateway answers 503.
var ErrUnavailable = errors.New("limit store unavailable")

// ErrSettled is returned by a second Settle of the same ticket.
var ErrSettled = errors.New("ticket already settled")

// Request is one admission query. Key is empty for principals without a
// key (JWT); then only the tenant's limits apply.
type Request struct {
	Tenant        string
	TenantLimits  policy.Limits
	Key           string
	KeyLimits     policy.Limits
	ReserveTokens int64 // prompt + max_tokens
	// EstimatedCostUSD is reserved against budgets until Settle.
	EstimatedCostUSD float64
}

// Decision is the outcome of Admit. The header figures come from whichever
// of tenant and key has the least remaining; a zero Limit means no limit of
// that kind applies and its headers are left out.
type Decision struct {
	Allowed    bool
	RetryAfter time.Duration
	Reason     string

	LimitRequests     int64
	RemainingRequests int64
	ResetRequests     time.Duration
	LimitTokens       int64
	RemainingTokens   int64
	ResetTokens       time.Duration
}

// WriteHeaders sets OpenAI-style x-ratelimit-* headers and, on refusal with
// a known wait, Retry-After in whole seconds (rounded up): the fields of
// AppendHeaderLines, for a response writer that has only the header map.
func (d Decision) WriteHeaders(h http.Header) {
	var buf [512]byte
	lines := d.AppendHeaderLines(buf[:0])
	for len(lines) > 0 {
		line, rest, _ := bytes.Cut(lines, crlf)
		k, v, _ := bytes.Cut(line, colonSpace)
		h[string(k)] = []string{string(v)}
		lines = rest
	}
}

var crlf, colonSpace = []byte("\r\n"), []byte(": ")

// AppendHeaderLines appends the fields WriteHeaders sets to b, each as
// "Name: value\r\n" in canonical form. On the gateway's hot path this
// spares a map entry, a value slice and a string per field.
func (d Decision) AppendHeaderLines(b []byte) []byte {
	if d.LimitRequests > 0 {
		b = appendField(b, "X-Ratelimit-Limit-Requests: ", d.LimitRequests)
		b = appendField(b, "X-Ratelimit-Remaining-Requests: ", max(d.RemainingRequests, 0))
		b = appendReset(append(b, "X-Ratelimit-Reset-Requests: "...), d.ResetRequests)
	}
	if d.LimitTokens > 0 {
		b = appendField(b, "X-Ratelimit-Limit-Tokens: ", d.LimitTokens)
		b = appendField(b, "X-Ratelimit-Remaining-Tokens: ", max(d.RemainingTokens, 0))
		b = appendReset(append(b, "X-Ratelimit-Reset-Tokens: "...), d.ResetTokens)
	}
	if !d.Allowed && d.RetryAfter > 0 {
		secs := (d.RetryAfter + time.Second - 1) / time.Second
		b = appendField(b, "Retry-After: ", int64(secs))
	}
	return b
}

func appendField(b []byte, nameColon string, v int64) []byte {
	b = append(b, nameColon...)
	b = strconv.AppendInt(b, v, 10)
	return append(b, "\r\n"...)
}

func appendReset(b []byte, d time.Duration) []byte {
	if d <= 0 {
		return append(b, "0s\r\n"...) // the usual case: no string to build
	}
	b = append(b, formatReset(d)...)
	return append(b, "\r\n"...)
}

// formatReset writes durations the way OpenAI does ("1s", "6m0s", "20ms").
func formatReset(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

// Ticket is an admitted request's claim on its limits.
type Ticket interface {
	// Settle corrects the token reservation to actualTokens, replaces the
	// estimated cost with actualCostUSD and releases the concurrency slot.
	// Call it exactly once.
	Settle(ctx context.Context, actualTokens int64, actualCostUSD float64) error
}

// Limiter admits requests.
type Limiter interface {
	Admit(ctx context.Context, r Request) (Ticket, Decision, error)
	Close() error
}

// budgetWindow resolves a limit's budget window.
func budgetWindow(l policy.Limits) time.Duration {
	if w := l.BudgetWindow.D(); w > 0 {
		return w
	}
	return DefaultBudgetWindow
}

// toNanoUSD converts a bounded, non-negative cost.
func toNanoUSD(usd float64) int64 {
	if !(usd > 0) { // also NaN
		return 0
	}
	return int64(math.Round(math.Min(usd, maxUSD) * nanoUSD))
}

func clampTokens(n int64) int64 {
	return min(max(n, 0), maxReserveTokens)
}

// emission is the GCRA increment of cost units at limit units per window,
// rounded up so rounding never admits more than the limit.
func emission(cost, limit uint64, window time.Duration) int64 {
	return emissionRounded(cost, limit, window, true)
}

// refund is the increment given back for unused tokens, rounded down for
// the same reason.
func refund(cost, limit uint64, window time.Duration) int64 {
	return emissionRounded(cost, limit, window, false)
}

func emissionRounded(cost, limit uint64, window time.Duration, up bool) int64 {
	if cost == 0 || limit == 0 {
		return 0
	}
	hi, lo := bits.Mul64(cost, uint64(window))
	if hi >= limit {
		return math.MaxInt64 / 4
	}
	q, rem := bits.Div64(hi, lo, limit)
	if rem != 0 && up {
		q++
	}
	if q > math.MaxInt64/4 {
		return math.MaxInt64 / 4
	}
	return int64(q)
}

// remainingUnits is how many units the bucket holds when the theoretical
// arrival time is tat.
func remainingUnits(tat, now int64, limit uint64, window time.Duration) int64 {
	free := now + int64(window) - max(tat, now)
	if free <= 0 {
		return 0
	}
	return int64(math.Floor(float64(free) / float64(window) * float64(limit)))
}

// headerPick keeps the most constrained principal's figures.
type headerPick struct {
	limit, remaining int64
	reset            time.Duration
}

func (p *headerPick) offer(limit uint64, remaining int64, reset time.Duration) {
	if limit == 0 {
		return
	}
	if p.limit == 0 || remaining < p.remaining {
		p.limit, p.remaining, p.reset = int64(limit), remaining, reset
	}
}
