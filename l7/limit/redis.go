package limit

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
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
	// DefaultLeaseTTL is how long a concurrency slot outlives its holder's
	// last heartbeat: a gateway that dies frees its slots within this.
	// Holders renew every third of it, so two lost heartbeats in a row do
	// not free a slot that is still in use.
	DefaultLeaseTTL = 30 * time.Second
	// DefaultSettleQueue bounds the settlements waiting for Redis in one
	// gateway; past it a settlement is dropped and logged (its slot still
	// frees within the lease TTL).
	DefaultSettleQueue = 1 << 16
	// DefaultDrainTimeout bounds how long Close keeps trying to deliver
	// queued settlements.
	DefaultDrainTimeout = 3 * time.Second
	// settleHorizon is how long a settlement may wait for Redis: a queued
	// one older than this is dropped, a ticket outlives its holder's last
	// heartbeat by this, and a settled marker lasts this long. A copy of
	// an admission delayed inside Redis for longer than this would be
	// applied again; no pause of a working server comes near it.
	settleHorizon = 10 * time.Minute
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
	Now func() time.Time
	// Lease is the longest a ticket holds a concurrency slot, heartbeats
	// or not (DefaultLease): a ticket its holder forgot to settle frees
	// its slot by then.
	Lease time.Duration
	// LeaseTTL is how long a slot outlives its holder's last heartbeat
	// (DefaultLeaseTTL).
	LeaseTTL time.Duration
	Timeout  time.Duration // DefaultRedisTimeout
	Prefix   string        // DefaultRedisPrefix
	Logger   *slog.Logger  // default slog.Default()
	// Username and Password authenticate to Redis (AUTH, or an ACL user
	// when Username is set). The password is never logged.
	Username, Password string
	// TLS, when set, speaks TLS to Redis.
	TLS *tls.Config
	// SettleQueue bounds the settlements waiting for Redis
	// (DefaultSettleQueue).
	SettleQueue int
	// DrainTimeout bounds Close's last delivery of queued settlements
	// (DefaultDrainTimeout).
	DrainTimeout time.Duration
}

// Redis keeps all limit state in a redis-server shared by gateway replicas.
type Redis struct {
	client    *redis.Client
	admit     *redis.Script
	settle    *redis.Script
	renew     *redis.Script
	failOpen  bool
	now       func() time.Time
	lease     int64 // µs: a slot's first lease, min(LeaseTTL, Lease)
	maxLease  int64 // µs: the longest a slot is held
	ttl       int64 // µs: how long a slot outlives the last heartbeat
	beat      time.Duration
	ticketTTL int64 // ms: a ticket outlives the last heartbeat by this
	timeout   time.Duration
	drainFor  time.Duration
	prefix    string
	log       *slog.Logger
	instance  string
	nextID    atomic.Uint64
	downUntil atomic.Int64 // unix ns; breaker open until then

	live   liveSet
	queue  settleQueue
	stop   chan struct{}
	wg     sync.WaitGroup
	close  sync.Once
	closed atomic.Bool // no more settlements are queued
	cerr   error
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
// require Redis to be up: until it is, requests fail open or closed. A
// server that answers but refuses it (wrong password, unknown user, a
// certificate that does not verify) is an error here, not a silent
// fail-open later.
func NewRedisWithOptions(o RedisOptions) (*Redis, error) {
	if _, _, err := net.SplitHostPort(o.Addr); err != nil {
		return nil, fmt.Errorf("limit: redis address %q: %w", o.Addr, err)
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
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
	if o.SettleQueue <= 0 {
		o.SettleQueue = DefaultSettleQueue
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	var inst [8]byte
	if _, err := rand.Read(inst[:]); err != nil {
		return nil, fmt.Errorf("limit: instance id: %w", err)
	}
	r := &Redis{
		client: redis.NewClient(&redis.Options{
			Addr:         o.Addr,
			Username:     o.Username,
			Password:     o.Password,
			TLSConfig:    o.TLS,
			DialTimeout:  o.Timeout,
			ReadTimeout:  o.Timeout,
			WriteTimeout: o.Timeout,
			PoolTimeout:  o.Timeout,
			PoolSize:     redisPoolSize,
			// No blind retries: a retried call whose first copy timed out
			// may run twice. The limiter retries settlements itself, and
			// every script is idempotent by ticket.
			MaxRetries: -1,
			// One dial attempt: a refused or timed-out dial must fail the
			// call within Timeout, not after go-redis's default 5 retries.
			DialerRetries:         1,
			DialerRetryTimeout:    time.Millisecond,
			ContextTimeoutEnabled: true,
		}),
		admit:     redis.NewScript(admitScript),
		settle:    redis.NewScript(settleScript),
		renew:     redis.NewScript(renewScript),
		failOpen:  o.FailOpen,
		now:       o.Now,
		lease:     min(o.Lease, o.LeaseTTL).Microseconds(),
		maxLease:  o.Lease.Microseconds(),
		ttl:       o.LeaseTTL.Microseconds(),
		beat:      o.LeaseTTL / 3,
		ticketTTL: (o.LeaseTTL + settleHorizon).Milliseconds(),
		timeout:   o.Timeout,
		drainFor:  o.DrainTimeout,
		prefix:    o.Prefix,
		log:       o.Logger,
		instance:  hex.EncodeToString(inst[:]),
		stop:      make(chan struct{}),
	}
	r.live.init()
	r.queue.init(o.SettleQueue)
	if err := r.check(o); err != nil {
		r.client.Close()
		return nil, err
	}
	r.wg.Add(2)
	go r.heartbeatLoop()
	go r.drainLoop()
	return r, nil
}

// Close stops the heartbeats, delivers what settlements it can within
// DrainTimeout and closes the connection pool. Tickets still unsettled stop
// being renewed: their slots free within the lease TTL. It reports
// settlements it had to drop.
func (r *Redis) Close() error {
	r.close.Do(func() {
		r.closed.Store(true)
		close(r.stop)
		r.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), r.drainFor)
		defer cancel()
		lost := r.drainBefore(ctx)
		if err := r.client.Close(); err != nil {
			r.cerr = fmt.Errorf("limit: closing redis client: %w", err)
		}
		if lost > 0 {
			r.cerr = fmt.Errorf("limit: %d settlements could not reach Redis before close and are lost: %w", lost, ErrUnavailable)
		}
	})
	return r.cerr
}

// nowArg is the scripts' clock argument: caller time, or -1 for Redis TIME.
func (r *Redis) nowArg() int64 {
	if r.now == nil {
		return -1
	}
	return r.now().UnixMicro()
}

// keys names the 5 keys of a request: state and leases of the tenant,
// then of the key, then the ticket. The tenant in a hash tag puts a tenant,
// its keys and its tickets in one slot, as Redis Cluster requires of a
// script; length prefixes keep names injective whatever characters they
// hold.
func (r *Redis) keys(tenant, key, id string) []string {
	base := r.prefix + strconv.Itoa(len(tenant)) + "{" + tenant + "}"
	k := base + ":k:" + strconv.Itoa(len(key)) + ":" + key
	return []string{base + ":s", base + ":c", k + ":s", k + ":c", base + ":t:" + id}
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

// reasonSettled is the admission script's answer for a ticket settled
// already: only a copy of an old call can meet it.
const reasonSettled = 11

// unavailable decides when Redis cannot: fail open or closed. t is the
// ticket the admission was for; sent says whether the script may have run
// (a timeout): then a refusal undoes it later, should it land.
func (r *Redis) unavailable(t *redisTicket, sent bool, cause error) (Ticket, Decision, error) {
	t.doubt = true
	if r.failOpen {
		// Served without Redis: Settle books what it used once Redis
		// answers, and the heartbeat keeps its slot should the admission
		// have landed after all.
		if sent {
			r.live.add(t)
		}
		return t, Decision{Allowed: true, Reason: ReasonStoreUnavailable}, nil
	}
	if sent {
		r.undo(t)
	}
	return nil, Decision{Reason: ReasonStoreUnavailable}, fmt.Errorf("%w: %w", ErrUnavailable, cause)
}

// undo queues the reversal of an admission whose outcome is unknown and
// whose request was refused: if it landed (now or later), its charges and
// slot are given back exactly once.
func (r *Redis) undo(t *redisTicket) {
	t.settled.Store(true)
	r.enqueue(settleCall{t: t})
}

var errBreakerOpen = errors.New("redis failed recently; not retrying yet")

func (r *Redis) trip(err error) {
	r.downUntil.Store(time.Now().Add(redisBreaker).UnixNano())
	r.log.Warn("limit store unreachable", "err", err, "failOpen", r.failOpen)
}

func (r *Redis) breakerOpen() bool { return time.Now().UnixNano() < r.downUntil.Load() }

// Admit runs the admission script: one round trip, decided inside Redis.
func (r *Redis) Admit(ctx context.Context, req Request) (Ticket, Decision, error) {
	tlim, klim := limited(req.TenantLimits), req.Key != "" && limited(req.KeyLimits)
	if !tlim && !klim {
		return settledTicket{}, Decision{Allowed: true}, nil
	}
	if err := ctx.Err(); err != nil {
		// Not sent, so nothing to undo later.
		return nil, Decision{Reason: ReasonStoreUnavailable}, fmt.Errorf("limit: admission: %w", err)
	}
	t := r.newTicket(req, tlim, klim)
	if r.breakerOpen() {
		return r.unavailable(t, false, errBreakerOpen)
	}
	res, err := r.runAdmit(ctx, t)
	if err != nil {
		if ctx.Err() != nil {
			// The caller gave up; the script may run all the same.
			t.doubt = true
			r.undo(t)
			return nil, Decision{Reason: ReasonStoreUnavailable}, fmt.Errorf("limit: admission: %w", ctx.Err())
		}
		r.trip(err)
		return r.unavailable(t, true, err)
	}
	if len(res) != 12 || res[1] == reasonSettled {
		return r.unavailable(t, true, fmt.Errorf("admission script returned %v", res))
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
	r.live.add(t)
	return t, d, nil
}

// newTicket names a new ticket for req; tlim and klim say whether the
// tenant's and the key's limits apply.
func (r *Redis) newTicket(req Request, tlim, klim bool) *redisTicket {
	seq := r.nextID.Add(1)
	id := r.instance + "-" + strconv.FormatUint(seq, 36)
	return &redisTicket{
		r: r, id: id, seq: seq, keys: r.keys(req.Tenant, req.Key, id),
		reserve: clampTokens(req.ReserveTokens), cost: toNanoUSD(req.EstimatedCostUSD),
		tracked: [2]bool{tlim, klim}, limits: [2]policy.Limits{req.TenantLimits, req.KeyLimits},
	}
}

// runAdmit runs the admission script once for t. Running it again with the
// same ticket returns the first answer and charges nothing more.
func (r *Redis) runAdmit(ctx context.Context, t *redisTicket) ([]int64, error) {
	args := make([]any, 0, 18)
	args = append(args, r.nowArg(), r.lease, t.id, t.reserve, t.cost)
	args = append(args, limitArgs(t.tracked[0], t.limits[0])...)
	args = append(args, limitArgs(t.tracked[1], t.limits[1])...)
	args = append(args, r.ticketTTL)
	// One bound for the whole call, NOSCRIPT fallback included.
	callCtx, cancel := context.WithTimeout(ctx, 2*r.timeout)
	defer cancel()
	return r.admit.Run(callCtx, r.client, t.keys, args...).Int64Slice()
}

type redisTicket struct {
	r             *Redis
	id            string
	seq           uint64
	keys          []string
	reserve, cost int64
	tracked       [2]bool
	limits        [2]policy.Limits
	// doubt: whether the admission landed is unknown (it timed out, or was
	// never sent and the request was served anyway). Its settle then books
	// the request itself if the admission is missing, and leaves a settled
	// marker so that a late copy of the admission changes nothing.
	doubt   bool
	settled atomic.Bool
}

// ErrSettleQueued is returned (wrapped, and matching ErrUnavailable) by a
// Settle that could not reach Redis: the settlement is queued and will land
// exactly once when Redis answers, within the settle horizon.
var ErrSettleQueued = fmt.Errorf("%w: settlement queued until it answers", ErrUnavailable)

// Settle corrects the reservation to what was used and frees the slot. If
// Redis cannot take it now, the settlement is queued and retried in the
// background; a ticket admitted while Redis was unavailable (fail open)
// returns nil then, since its settlement is always a deferred booking.
func (t *redisTicket) Settle(ctx context.Context, actualTokens int64, actualCostUSD float64) error {
	if t.settled.Swap(true) {
		return ErrSettled
	}
	t.r.live.remove(t)
	c := settleCall{t: t, served: true, actual: clampTokens(actualTokens), spend: toNanoUSD(actualCostUSD)}
	err := errBreakerOpen
	if !t.r.breakerOpen() {
		if _, err = t.r.runSettle(ctx, c); err == nil {
			return nil
		}
		if ctx.Err() == nil {
			t.r.trip(err)
		}
	}
	if !t.r.enqueue(c) {
		return fmt.Errorf("%w: settlement dropped (queue full or limiter closed): %w", ErrUnavailable, err)
	}
	if t.doubt {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrSettleQueued, err)
}

// runSettle runs the settle script once for c: 1 when it corrected a
// standing admission, 2 when it booked a served request whose admission
// never landed, 0 when the ticket was settled already.
func (r *Redis) runSettle(ctx context.Context, c settleCall) (int64, error) {
	callCtx, cancel := context.WithTimeout(ctx, 2*r.timeout)
	defer cancel()
	return r.settle.Run(callCtx, r.client, c.t.keys, c.args(r.nowArg())...).Int64()
}

// settleCall is one settlement, delivered now or from the queue.
type settleCall struct {
	t *redisTicket
	// served: the request ran and used actual tokens and spend nano-USD;
	// false undoes the admission.
	served        bool
	actual, spend int64
	queued        time.Time
}

func boolArg(b bool) int {
	if b {
		return 1
	}
	return 0
}

// args are the settle script's ARGV for c at now.
func (c settleCall) args(now int64) []any {
	t := c.t
	args := make([]any, 0, 17)
	args = append(args, now, t.id, boolArg(t.doubt), boolArg(c.served), t.reserve, c.actual, t.cost, c.spend,
		settleHorizon.Milliseconds())
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
		args = append(args, 1, l.RequestsPerMinute, l.TokensPerMinute, window)
	}
	return args
}

// settledTicket stands for an admission that claimed nothing.
type settledTicket struct{}

func (settledTicket) Settle(context.Context, int64, float64) error { return nil }
