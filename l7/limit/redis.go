package limit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/infergate/infergate/policy"
)

const (
	// DefaultRedisTimeout bounds dial, read and write of one command: a
	// limit check must never add more than this to a request.
	DefaultRedisTimeout = 250 * time.Millisecond
	// DefaultRedisPrefix namespaces every key the limiter writes.
	DefaultRedisPrefix = "ig:lim:"
	// redisBreaker is how long after a failure the limiter decides without
	// asking Redis (fail open or closed), so an outage costs one timeout per
	// period instead of one per request.
	redisBreaker = 500 * time.Millisecond
	// redisPoolSize keeps enough connections for a busy gateway; each
	// admission is one round trip.
	redisPoolSize = 64
)

// RedisOptions configure NewRedisWithOptions.
type RedisOptions struct {
	Addr string
	// FailOpen admits requests when Redis cannot be reached; otherwise Admit
	// returns ErrUnavailable.
	FailOpen bool
	// Now, when set, supplies the time passed to the scripts (tests). When
	// nil the scripts use Redis TIME, one clock for every replica.
	Now     func() time.Time
	Lease   time.Duration // DefaultLease
	Timeout time.Duration // DefaultRedisTimeout
	Prefix  string        // DefaultRedisPrefix
	Logger  *slog.Logger  // default slog.Default()
}

// Redis keeps all limit state in a redis-server shared by gateway replicas.
type Redis struct {
	client    *redis.Client
	admit     *redis.Script
	settle    *redis.Script
	failOpen  bool
	now       func() time.Time
	lease     int64 // µs
	timeout   time.Duration
	prefix    string
	log       *slog.Logger
	instance  string
	nextID    atomic.Uint64
	downUntil atomic.Int64 // unix ns; breaker open until then
}

// NewRedis returns a limiter on the redis-server at addr (host:port).
func NewRedis(addr string, failOpen bool) (Limiter, error) {
	r, err := NewRedisWithOptions(RedisOptions{Addr: addr, FailOpen: failOpen})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// NewRedisWithOptions returns a limiter on a redis-server. It does not
// require Redis to be up: until it is, requests fail open or closed.
func NewRedisWithOptions(o RedisOptions) (*Redis, error) {
	if _, _, err := net.SplitHostPort(o.Addr); err != nil {
		return nil, fmt.Errorf("limit: redis address %q: %w", o.Addr, err)
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultRedisTimeout
	}
	if o.Prefix == "" {
		o.Prefix = DefaultRedisPrefix
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	var inst [8]byte
	if _, err := rand.Read(inst[:]); err != nil {
		return nil, fmt.Errorf("limit: instance id: %w", err)
	}
	return &Redis{
		client: redis.NewClient(&redis.Options{
			Addr:         o.Addr,
			DialTimeout:  o.Timeout,
			ReadTimeout:  o.Timeout,
			WriteTimeout: o.Timeout,
			PoolTimeout:  o.Timeout,
			PoolSize:     redisPoolSize,
			MaxRetries:   1,
			// One dial attempt: a refused or timed-out dial must fail the
			// call within Timeout, not after go-redis's default 5 retries.
			DialerRetries:         1,
			DialerRetryTimeout:    time.Millisecond,
			ContextTimeoutEnabled: true,
		}),
		admit:    redis.NewScript(admitScript),
		settle:   redis.NewScript(settleScript),
		failOpen: o.FailOpen,
		now:      o.Now,
		lease:    o.Lease.Microseconds(),
		timeout:  o.Timeout,
		prefix:   o.Prefix,
		log:      o.Logger,
		instance: hex.EncodeToString(inst[:]),
	}, nil
}

// Close closes the connection pool.
func (r *Redis) Close() error { return r.client.Close() }

// nowArg is the scripts' clock argument: caller time, or -1 for Redis TIME.
func (r *Redis) nowArg() int64 {
	if r.now == nil {
		return -1
	}
	return r.now().UnixMicro()
}

// keys names the 4 keys of a request: state and leases of the tenant,
// then of the key. The tenant in a hash tag puts a tenant and its keys in
// one slot, as Redis Cluster requires of a script; length prefixes keep
// names injective whatever characters they hold.
func (r *Redis) keys(tenant, key string) []string {
	base := r.prefix + strconv.Itoa(len(tenant)) + "{" + tenant + "}"
	k := base + ":k:" + strconv.Itoa(len(key)) + ":" + key
	return []string{base + ":s", base + ":c", k + ":s", k + ":c"}
}

func limitArgs(tracked bool, l policy.Limits) []any {
	if !tracked {
		return []any{0, 0, 0, 0, 0, 0}
	}
	var budget, window int64
	if l.BudgetUSD > 0 {
		budget, window = toNanoUSD(l.BudgetUSD), budgetWindow(l).Microseconds()
	}
	return []any{1, l.RequestsPerMinute, l.TokensPerMinute, l.Concurrent, budget, window}
}

var reasonCodes = [...]string{
	1: ReasonTenantRequests, 2: ReasonTenantTokens, 3: ReasonTenantConcurrent, 4: ReasonTenantBudget, 5: ReasonTenantTooLarge,
	6: ReasonKeyRequests, 7: ReasonKeyTokens, 8: ReasonKeyConcurrent, 9: ReasonKeyBudget, 10: ReasonKeyTooLarge,
}

// unavailable decides when Redis cannot: fail open or closed.
func (r *Redis) unavailable(cause error) (Ticket, Decision, error) {
	if r.failOpen {
		return settledTicket{}, Decision{Allowed: true, Reason: ReasonStoreUnavailable}, nil
	}
	return nil, Decision{Reason: ReasonStoreUnavailable}, fmt.Errorf("%w: %w", ErrUnavailable, cause)
}

var errBreakerOpen = errors.New("redis failed recently; not retrying yet")

func (r *Redis) trip(err error) {
	r.downUntil.Store(time.Now().Add(redisBreaker).UnixNano())
	r.log.Warn("limit store unreachable", "err", err, "failOpen", r.failOpen)
}

// Admit runs the admission script: one round trip, decided inside Redis.
func (r *Redis) Admit(ctx context.Context, req Request) (Ticket, Decision, error) {
	tlim, klim := limited(req.TenantLimits), req.Key != "" && limited(req.KeyLimits)
	if !tlim && !klim {
		return settledTicket{}, Decision{Allowed: true}, nil
	}
	if time.Now().UnixNano() < r.downUntil.Load() {
		return r.unavailable(errBreakerOpen)
	}
	reserve, cost := clampTokens(req.ReserveTokens), toNanoUSD(req.EstimatedCostUSD)
	id := r.instance + "-" + strconv.FormatUint(r.nextID.Add(1), 36)
	args := make([]any, 0, 17)
	args = append(args, r.nowArg(), r.lease, id, reserve, cost)
	args = append(args, limitArgs(tlim, req.TenantLimits)...)
	args = append(args, limitArgs(klim, req.KeyLimits)...)
	keys := r.keys(req.Tenant, req.Key)
	// One bound for the whole call, retries and NOSCRIPT fallback included.
	callCtx, cancel := context.WithTimeout(ctx, 2*r.timeout)
	res, err := r.admit.Run(callCtx, r.client, keys, args...).Int64Slice()
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, Decision{Reason: ReasonStoreUnavailable}, fmt.Errorf("limit: admission: %w", ctx.Err())
		}
		r.trip(err)
		return r.unavailable(err)
	}
	if len(res) != 12 {
		return r.unavailable(fmt.Errorf("admission script returned %d values", len(res)))
	}
	d := Decision{
		Allowed:       res[0] == 1,
		RetryAfter:    time.Duration(res[2]) * time.Microsecond,
		LimitRequests: res[4], RemainingRequests: res[5], ResetRequests: time.Duration(res[6]) * time.Microsecond,
		LimitTokens: res[7], RemainingTokens: res[8], ResetTokens: time.Duration(res[9]) * time.Microsecond,
	}
	if c := res[1]; c > 0 && c < int64(len(reasonCodes)) {
		d.Reason = reasonCodes[c]
	}
	if !d.Allowed {
		return nil, d, nil
	}
	return &redisTicket{
		r: r, id: id, keys: keys, reserve: reserve, cost: cost,
		tracked: [2]bool{tlim, klim}, limits: [2]policy.Limits{req.TenantLimits, req.KeyLimits},
		budgetEnd: [2]int64{res[10], res[11]},
	}, d, nil
}

type redisTicket struct {
	r             *Redis
	id            string
	keys          []string
	reserve, cost int64
	tracked       [2]bool
	limits        [2]policy.Limits
	budgetEnd     [2]int64 // µs, as the admission script set them
	settled       atomic.Bool
}

// Settle runs the settle script. If Redis is unreachable the correction is
// lost and the concurrency slot frees when its lease ends.
func (t *redisTicket) Settle(ctx context.Context, actualTokens int64, actualCostUSD float64) error {
	if t.settled.Swap(true) {
		return ErrSettled
	}
	actual, spend := clampTokens(actualTokens), toNanoUSD(actualCostUSD)
	if !t.needsSettle(actual, spend) {
		return nil // nothing to correct or release: save the round trip
	}
	args := make([]any, 0, 14)
	args = append(args, t.r.nowArg(), t.id, t.reserve, actual, t.cost, spend)
	for i := range 2 {
		if !t.tracked[i] {
			args = append(args, 0, 0, 0, 0)
			continue
		}
		l := t.limits[i]
		var window int64
		if l.BudgetUSD > 0 {
			window = budgetWindow(l).Microseconds()
		}
		args = append(args, 1, l.TokensPerMinute, window, t.budgetEnd[i])
	}
	callCtx, cancel := context.WithTimeout(ctx, 2*t.r.timeout)
	defer cancel()
	if err := t.r.settle.Run(callCtx, t.r.client, t.keys, args...).Err(); err != nil {
		return fmt.Errorf("%w: settling: %w", ErrUnavailable, err)
	}
	return nil
}

func (t *redisTicket) needsSettle(actual, spend int64) bool {
	for i, l := range t.limits {
		if !t.tracked[i] {
			continue
		}
		if l.Concurrent > 0 || (l.TokensPerMinute > 0 && actual != t.reserve) || (l.BudgetUSD > 0 && spend != t.cost) {
			return true
		}
	}
	return false
}

// settledTicket stands for an admission that claimed nothing.
type settledTicket struct{}

func (settledTicket) Settle(context.Context, int64, float64) error { return nil }
