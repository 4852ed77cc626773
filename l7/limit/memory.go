package limit

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infergate/infergate/policy"
)

const (
	memoryShards = 64
	// DefaultMaxPrincipals bounds the tenants and keys the memory limiter
	// tracks (≈200 B each). Principals come from the policy, so this is a
	// guard, far above 100,000 keys plus their tenants.
	DefaultMaxPrincipals = 1 << 21
	// concurrentRetryAfter is the wait suggested when all slots are taken:
	// slots free as requests finish, which no timestamp predicts.
	concurrentRetryAfter = time.Second
)

// MemoryOptions tune NewMemoryWithOptions; zero values take defaults.
type MemoryOptions struct {
	Now           func() time.Time // clock (tests inject one)
	Lease         time.Duration    // concurrency slot lease (DefaultLease)
	MaxPrincipals int              // DefaultMaxPrincipals
}

// Memory keeps limit state in this process: sharded maps, one lock per
// shard for lookups and one per principal for decisions.
type Memory struct {
	shards   [memoryShards]memShard
	seed     maphash.Seed
	now      func() time.Time
	lease    int64
	perShard int
	nextID   atomic.Uint64
}

type memShard struct {
	mu sync.RWMutex
	m  map[principal]*memState
}

// principal names a tenant (key empty) or a key of a tenant.
type principal struct{ tenant, key string }

// memLease is one held concurrency slot.
type memLease struct{ id, expiry int64 }

// pruneExpired drops slots whose lease ran out: their tickets leaked.
func (st *memState) pruneExpired(now int64) {
	kept := st.inflight[:0]
	for _, l := range st.inflight {
		if l.expiry > now {
			kept = append(kept, l)
		}
	}
	clear(st.inflight[len(kept):])
	st.inflight = kept
}

func (st *memState) release(id int64) {
	for i, l := range st.inflight {
		if l.id == id {
			last := len(st.inflight) - 1
			st.inflight[i] = st.inflight[last]
			st.inflight = st.inflight[:last]
			return
		}
	}
}

type memState struct {
	mu      sync.Mutex
	evicted bool // removed from its shard; callers look it up again

	reqTAT, tokTAT int64      // GCRA theoretical arrival times, ns
	inflight       []memLease // held concurrency slots (few: at most the limit)
	budgetEnd      int64      // end of the current budget window, ns; 0 none
	budgetSpent    int64      // nano-USD spent or reserved in the window
}

// NewMemory returns an in-process limiter with default options.
func NewMemory() Limiter { return NewMemoryWithOptions(MemoryOptions{}) }

// NewMemoryWithOptions returns an in-process limiter.
func NewMemoryWithOptions(o MemoryOptions) *Memory {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.MaxPrincipals <= 0 {
		o.MaxPrincipals = DefaultMaxPrincipals
	}
	m := &Memory{seed: maphash.MakeSeed(), now: o.Now, lease: int64(o.Lease), perShard: max(1, o.MaxPrincipals/memoryShards)}
	for i := range m.shards {
		m.shards[i].m = make(map[principal]*memState)
	}
	return m
}

// Close releases nothing; it exists for the Limiter interface.
func (m *Memory) Close() error { return nil }

func (m *Memory) shard(p principal) *memShard {
	h := maphash.String(m.seed, p.tenant)
	if p.key != "" {
		h = h*0x9E3779B97F4A7C15 ^ maphash.String(m.seed, p.key)
	}
	return &m.shards[h%memoryShards]
}

// lookup returns p's state, locked. It creates the state if needed, evicting
// idle states from a full shard first.
func (m *Memory) lookup(p principal, now int64) (*memState, error) {
	sh := m.shard(p)
	for {
		sh.mu.RLock()
		st := sh.m[p]
		sh.mu.RUnlock()
		if st == nil {
			sh.mu.Lock()
			if st = sh.m[p]; st == nil {
				if len(sh.m) >= m.perShard {
					sh.evictIdle(now)
				}
				if len(sh.m) >= m.perShard {
					sh.mu.Unlock()
					return nil, fmt.Errorf("%w: more than %d principals tracked", ErrUnavailable, m.perShard*memoryShards)
				}
				st = &memState{}
				sh.m[p] = st
			}
			sh.mu.Unlock()
		}
		st.mu.Lock()
		if !st.evicted {
			return st, nil
		}
		st.mu.Unlock()
	}
}

// evictIdle drops states that are indistinguishable from fresh ones: full
// buckets, no slots held, no budget window running. Caller holds sh.mu.
func (sh *memShard) evictIdle(now int64) {
	for p, st := range sh.m {
		if !st.mu.TryLock() {
			continue
		}
		st.pruneExpired(now)
		if st.reqTAT <= now && st.tokTAT <= now && len(st.inflight) == 0 && st.budgetEnd <= now {
			st.evicted = true
			delete(sh.m, p)
		}
		st.mu.Unlock()
	}
}

func limited(l policy.Limits) bool {
	return l.RequestsPerMinute > 0 || l.TokensPerMinute > 0 || l.Concurrent > 0 || l.BudgetUSD > 0
}

// memPlan is one principal's state after admission, applied only when
// every principal admits.
type memPlan struct {
	st                 *memState
	reqTAT, tokTAT     int64
	budgetEnd, spent   int64
	concurrent, budget bool
}

// verdict accumulates refusals over principals and limits.
type verdict struct {
	reason   string
	retry    time.Duration
	tooLarge bool
}

func (v *verdict) deny(reason string, retry time.Duration) {
	if v.tooLarge {
		return
	}
	if v.reason == "" {
		v.reason = reason
	}
	v.retry = max(v.retry, retry)
}

func (v *verdict) denyForever(reason string) {
	if !v.tooLarge {
		v.reason, v.retry, v.tooLarge = reason, 0, true
	}
}

type reasons struct{ requests, tokens, concurrent, budget, tooLarge string }

var (
	tenantReasons = reasons{ReasonTenantRequests, ReasonTenantTokens, ReasonTenantConcurrent, ReasonTenantBudget, ReasonTenantTooLarge}
	keyReasons    = reasons{ReasonKeyRequests, ReasonKeyTokens, ReasonKeyConcurrent, ReasonKeyBudget, ReasonKeyTooLarge}
)

// check decides one principal; it reads st and returns the new values.
func check(st *memState, l policy.Limits, rs reasons, reserve, cost, now int64, v *verdict, rq, tk *headerPick) memPlan {
	p := memPlan{st: st, reqTAT: st.reqTAT, tokTAT: st.tokTAT, budgetEnd: st.budgetEnd, spent: st.budgetSpent}
	w := int64(rateWindow)
	if n := l.RequestsPerMinute; n > 0 {
		tat := max(st.reqTAT, now)
		next := tat + emission(1, n, rateWindow)
		if next-now > w {
			v.deny(rs.requests, time.Duration(next-now-w))
			rq.offer(n, remainingUnits(tat, now, n, rateWindow), time.Duration(tat-now))
		} else {
			p.reqTAT = next
			rq.offer(n, remainingUnits(next, now, n, rateWindow), time.Duration(next-now))
		}
	}
	if n := l.TokensPerMinute; n > 0 {
		tat := max(st.tokTAT, now)
		next := tat + emission(uint64(reserve), n, rateWindow)
		switch {
		case uint64(reserve) > n:
			v.denyForever(rs.tooLarge)
			tk.offer(n, remainingUnits(tat, now, n, rateWindow), time.Duration(tat-now))
		case next-now > w:
			v.deny(rs.tokens, time.Duration(next-now-w))
			tk.offer(n, remainingUnits(tat, now, n, rateWindow), time.Duration(tat-now))
		default:
			p.tokTAT = next
			tk.offer(n, remainingUnits(next, now, n, rateWindow), time.Duration(next-now))
		}
	}
	if n := l.Concurrent; n > 0 {
		if uint64(len(st.inflight)) >= n {
			st.pruneExpired(now)
		}
		if uint64(len(st.inflight)) >= n {
			v.deny(rs.concurrent, concurrentRetryAfter)
		} else {
			p.concurrent = true
		}
	}
	if l.BudgetUSD > 0 {
		budget := toNanoUSD(l.BudgetUSD)
		if p.budgetEnd <= now {
			p.budgetEnd, p.spent = now+int64(budgetWindow(l)), 0
		}
		if p.spent >= budget || p.spent+cost > budget {
			v.deny(rs.budget, time.Duration(p.budgetEnd-now))
		} else {
			p.spent += cost
			p.budget = true
		}
	}
	return p
}

// offerState offers one principal's request and token figures as they
// stand (nothing charged).
func offerState(st *memState, l policy.Limits, now int64, rq, tk *headerPick) {
	if n := l.RequestsPerMinute; n > 0 {
		tat := max(st.reqTAT, now)
		rq.offer(n, remainingUnits(tat, now, n, rateWindow), time.Duration(tat-now))
	}
	if n := l.TokensPerMinute; n > 0 {
		tat := max(st.tokTAT, now)
		tk.offer(n, remainingUnits(tat, now, n, rateWindow), time.Duration(tat-now))
	}
}

func (p *memPlan) apply(id uint64, leaseEnd int64) {
	st := p.st
	st.reqTAT, st.tokTAT = p.reqTAT, p.tokTAT
	if p.concurrent {
		st.inflight = append(st.inflight, memLease{id: int64(id), expiry: leaseEnd})
	}
	if p.budget {
		st.budgetEnd, st.budgetSpent = p.budgetEnd, p.spent
	}
}

// Admit decides r against the tenant's and the key's limits together.
func (m *Memory) Admit(_ context.Context, r Request) (Ticket, Decision, error) {
	now := m.now().UnixNano()
	reserve, cost := clampTokens(r.ReserveTokens), toNanoUSD(r.EstimatedCostUSD)
	tlim, klim := limited(r.TenantLimits), r.Key != "" && limited(r.KeyLimits)
	t := &memTicket{m: m, tenant: r.Tenant, key: r.Key, reserve: reserve, cost: cost}
	if !tlim && !klim {
		return t, Decision{Allowed: true}, nil
	}
	t.id = m.nextID.Add(1)

	// Locks are taken tenant first, then key: one global order, no deadlock.
	var ts, ks *memState
	var err error
	if tlim {
		if ts, err = m.lookup(principal{r.Tenant, ""}, now); err != nil {
			return nil, Decision{Reason: ReasonTooManyPrincipals}, err
		}
		defer ts.mu.Unlock()
	}
	if klim {
		if ks, err = m.lookup(principal{r.Tenant, r.Key}, now); err != nil {
			return nil, Decision{Reason: ReasonTooManyPrincipals}, err
		}
		defer ks.mu.Unlock()
	}
	var v verdict
	var rq, tk headerPick
	var tp, kp memPlan
	if tlim {
		tp = check(ts, r.TenantLimits, tenantReasons, reserve, cost, now, &v, &rq, &tk)
	}
	if klim {
		kp = check(ks, r.KeyLimits, keyReasons, reserve, cost, now, &v, &rq, &tk)
	}
	d := Decision{
		Allowed: v.reason == "", Reason: v.reason, RetryAfter: v.retry,
		LimitRequests: rq.limit, RemainingRequests: rq.remaining, ResetRequests: rq.reset,
		LimitTokens: tk.limit, RemainingTokens: tk.remaining, ResetTokens: tk.reset,
	}
	if !d.Allowed {
		// A refused request is charged nothing, so its figures are the
		// state as it stands, not as check planned it for an admission.
		var rq, tk headerPick
		if tlim {
			offerState(ts, r.TenantLimits, now, &rq, &tk)
		}
		if klim {
			offerState(ks, r.KeyLimits, now, &rq, &tk)
		}
		d.LimitRequests, d.RemainingRequests, d.ResetRequests = rq.limit, rq.remaining, rq.reset
		d.LimitTokens, d.RemainingTokens, d.ResetTokens = tk.limit, tk.remaining, tk.reset
		return nil, d, nil
	}
	leaseEnd := now + m.lease
	if tlim {
		tp.apply(t.id, leaseEnd)
		t.tenantLimits, t.tenantBudgetEnd, t.states[0] = r.TenantLimits, tp.budgetEnd, ts
	}
	if klim {
		kp.apply(t.id, leaseEnd)
		t.keyLimits, t.keyBudgetEnd, t.states[1] = r.KeyLimits, kp.budgetEnd, ks
	}
	t.tracked = [2]bool{tlim, klim}
	return t, d, nil
}

type memTicket struct {
	m                             *Memory
	id                            uint64
	tenant, key                   string
	reserve, cost                 int64
	tracked                       [2]bool // tenant, key
	states                        [2]*memState
	tenantLimits, keyLimits       policy.Limits
	tenantBudgetEnd, keyBudgetEnd int64
	settled                       atomic.Bool
}

// Settle applies the real usage; see Ticket.
func (t *memTicket) Settle(_ context.Context, actualTokens int64, actualCostUSD float64) error {
	if t.settled.Swap(true) {
		return ErrSettled
	}
	now := t.m.now().UnixNano()
	actual, cost := clampTokens(actualTokens), toNanoUSD(actualCostUSD)
	if t.tracked[0] {
		if err := t.settleOne(t.states[0], principal{t.tenant, ""}, t.tenantLimits, t.tenantBudgetEnd, actual, cost, now); err != nil {
			return err
		}
	}
	if t.tracked[1] {
		return t.settleOne(t.states[1], principal{t.tenant, t.key}, t.keyLimits, t.keyBudgetEnd, actual, cost, now)
	}
	return nil
}

func (t *memTicket) settleOne(st *memState, p principal, l policy.Limits, budgetEnd, actual, cost, now int64) error {
	// The state admitted into is still current unless evicted since (it
	// then had no slot held and full buckets); only then look it up again.
	st.mu.Lock()
	if st.evicted {
		st.mu.Unlock()
		var err error
		if st, err = t.m.lookup(p, now); err != nil {
			return err
		}
	}
	defer st.mu.Unlock()
	if n := l.TokensPerMinute; n > 0 && actual != t.reserve {
		tat := max(st.tokTAT, now)
		if actual < t.reserve {
			tat -= refund(uint64(t.reserve-actual), n, rateWindow)
		} else {
			tat += emission(uint64(actual-t.reserve), n, rateWindow)
		}
		st.tokTAT = tat
	}
	st.release(int64(t.id))
	if l.BudgetUSD > 0 {
		settleBudget(&st.budgetEnd, &st.budgetSpent, budgetEnd, t.cost, cost, now, budgetWindow(l))
	}
	return nil
}

// settleBudget replaces the reserved estimate by the actual cost when the
// window the reservation went into is still running; otherwise the actual
// cost counts in the window running now (opening one if none is).
func settleBudget(end, spent *int64, reservedEnd, estimate, actual, now int64, window time.Duration) {
	switch {
	case *end == reservedEnd && *end > now:
		*spent = max(0, *spent-estimate+actual)
	case *end > now:
		*spent += actual
	case actual > 0:
		*end, *spent = now+int64(window), actual
	}
}
