package limit

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/infergate/infergate/internal/fakeclock"
	"github.com/infergate/infergate/internal/redistest"
	"github.com/infergate/infergate/policy"
)

// exactLimits make the counters read back exactly with a frozen clock: one
// request or one token moves a GCRA timestamp by exactly 1 µs, and budgets
// count nano-USD.
var exactLimits = policy.Limits{RequestsPerMinute: 60_000_000, TokensPerMinute: 60_000_000, Concurrent: 1000, BudgetUSD: 1e6}

// principalState reads a principal's counters as the scripts store them.
type principalState struct {
	requests, tokens int64 // µs past now = units charged
	nanoUSD          int64
	slots            int64
}

func readPrincipal(t *testing.T, c *redis.Client, stateKey, leaseKey string, now int64) principalState {
	t.Helper()
	h, err := c.HMGet(ctx, stateKey, "r", "k", "s").Result()
	if err != nil {
		t.Fatal(err)
	}
	num := func(v any) int64 {
		if v == nil {
			return 0
		}
		n, err := strconv.ParseInt(v.(string), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	st := principalState{nanoUSD: num(h[2])}
	if r := num(h[0]); r > 0 {
		st.requests = r - now
	}
	if k := num(h[1]); k > 0 {
		st.tokens = k - now
	}
	if st.slots, err = c.ZCard(ctx, leaseKey).Result(); err != nil {
		t.Fatal(err)
	}
	return st
}

// standingTickets counts ticket keys under prefix that still hold an
// admission (not a settled marker).
func standingTickets(t *testing.T, c *redis.Client, prefix string) int {
	t.Helper()
	keys, err := c.Keys(ctx, prefix+"*:t:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, k := range keys {
		if v, err := c.Get(ctx, k).Result(); err == nil && v != "s" {
			n++
		}
	}
	return n
}

// charged is what a run served and must find booked in Redis.
type charged struct {
	requests, tokens, nanoUSD atomic.Int64
	refused                   atomic.Int64
}

// TestRedisPauseLeaksNothingAndSettlesOnce stalls Redis for 1.5 s (DEBUG
// SLEEP) while gateways admit and settle with a short timeout: admissions
// time out (some run late inside Redis), settlements time out (some land
// late, some are queued), fail-open requests are served without Redis.
// After recovery and Close, Redis must hold no slot and no standing ticket,
// and its counters must equal exactly what the served requests used:
// nothing lost, nothing booked twice.
func TestRedisPauseLeaksNothingAndSettlesOnce(t *testing.T) {
	s := redistest.StartWith(t, redistest.Options{Debug: true})
	clk := fakeclock.New(time.Unix(1_790_000_000, 0)) // frozen: counters read back exactly
	for _, failOpen := range []bool{true, false} {
		t.Run(fmt.Sprintf("failOpen=%v", failOpen), func(t *testing.T) {
			t.Parallel()
			prefix := fmt.Sprintf("igtest:%d:", prefixSeq.Add(1))
			l, err := NewRedisWithOptions(RedisOptions{Addr: s.Addr, FailOpen: failOpen, Now: clk.Now, Prefix: prefix,
				Timeout: 100 * time.Millisecond, DrainTimeout: 20 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			var sum charged
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(w), 1))
					for {
						select {
						case <-stop:
							return
						default:
						}
						req := Request{Tenant: "acme", TenantLimits: exactLimits, Key: "k" + strconv.Itoa(w%2), KeyLimits: exactLimits,
							ReserveTokens: 100 + rng.Int64N(900), EstimatedCostUSD: 0.001}
						tk, d, err := l.Admit(ctx, req)
						switch {
						case errors.Is(err, ErrUnavailable):
							sum.refused.Add(1)
							time.Sleep(time.Millisecond) // the breaker answers at once: do not spin
							continue
						case err != nil:
							t.Error(err)
							return
						case !d.Allowed:
							t.Errorf("refused %s with limits that admit everything", d.Reason)
							return
						}
						time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
						used, cost := rng.Int64N(req.ReserveTokens*3/2), rng.Float64()*0.002
						sum.requests.Add(1)
						sum.tokens.Add(used)
						sum.nanoUSD.Add(toNanoUSD(cost))
						if err := tk.Settle(ctx, used, cost); err != nil && !errors.Is(err, ErrSettleQueued) {
							t.Errorf("settle: %v", err)
						}
					}
				})
			}
			time.Sleep(300 * time.Millisecond)
			s.Sleep(t, 1500*time.Millisecond)
			time.Sleep(700 * time.Millisecond) // past the breaker: Redis answers again
			close(stop)
			wg.Wait()
			if err := l.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			c := s.Client()
			now := clk.Now().UnixMicro()
			keys := l.keys("acme", "", "")
			ten := readPrincipal(t, c, keys[0], keys[1], now)
			var key principalState
			for _, k := range []string{"k0", "k1"} {
				ks := l.keys("acme", k, "")
				st := readPrincipal(t, c, ks[2], ks[3], now)
				key.requests += st.requests
				key.tokens += st.tokens
				key.nanoUSD += st.nanoUSD
				key.slots += st.slots
			}
			want := principalState{requests: sum.requests.Load(), tokens: sum.tokens.Load(), nanoUSD: sum.nanoUSD.Load()}
			t.Logf("served %d, refused %d; tenant %+v, keys %+v", want.requests, sum.refused.Load(), ten, key)
			if ten != want || key != want {
				t.Fatalf("booked tenant %+v and keys %+v, want %+v (served requests, tokens, nano-USD; no slots)", ten, key, want)
			}
			if n := standingTickets(t, c, prefix); n != 0 {
				t.Fatalf("%d tickets still stand after every request settled", n)
			}
		})
	}
}

// exactRequest is one request on exactLimits for the idempotence tests.
var exactRequest = Request{Tenant: "acme", TenantLimits: exactLimits, Key: "k", KeyLimits: exactLimits, ReserveTokens: 500, EstimatedCostUSD: 0.004}

func exactLimiter(t *testing.T, s *redistest.Server, clk *fakeclock.Clock) *Redis {
	t.Helper()
	l, err := NewRedisWithOptions(RedisOptions{Addr: s.Addr, Now: clk.Now, Prefix: fmt.Sprintf("igtest:%d:", prefixSeq.Add(1)), Timeout: testRedisTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestRedisScriptsIdempotentByTicket runs each script twice with the same
// ticket, as a retry after a lost reply (or a copy delivered late) would:
// the second run changes nothing.
func TestRedisScriptsIdempotentByTicket(t *testing.T) {
	s := redistest.Start(t)
	clk := newClock()
	now := clk.Now().UnixMicro()
	booked := func(t *testing.T, l *Redis) principalState {
		t.Helper()
		ks := l.keys("acme", "k", "")
		return readPrincipal(t, s.Client(), ks[2], ks[3], now)
	}
	admitTwice := func(t *testing.T, l *Redis, tk *redisTicket) {
		t.Helper()
		first, err := l.runAdmit(ctx, tk)
		if err != nil || first[0] != 1 {
			t.Fatalf("admission: %v %v", first, err)
		}
		again, err := l.runAdmit(ctx, tk)
		if err != nil || fmt.Sprint(again) != fmt.Sprint(first) {
			t.Fatalf("retried admission answered %v (%v), want the first answer %v", again, err, first)
		}
	}
	settleTwice := func(t *testing.T, l *Redis, c settleCall, want int64) {
		t.Helper()
		if n, err := l.runSettle(ctx, c); err != nil || n != want {
			t.Fatalf("settle: %d %v, want %d", n, err, want)
		}
		if n, err := l.runSettle(ctx, c); err != nil || n != 0 {
			t.Fatalf("retried settle: %d %v, want 0 (already settled)", n, err)
		}
	}

	t.Run("admit and settle", func(t *testing.T) {
		l := exactLimiter(t, s, clk)
		tk := l.newTicket(exactRequest, true, true)
		admitTwice(t, l, tk)
		if got, want := booked(t, l), (principalState{1, 500, 4_000_000, 1}); got != want {
			t.Fatalf("after two runs of one admission: %+v, want %+v", got, want)
		}
		settleTwice(t, l, settleCall{t: tk, served: true, actual: 320, spend: 3_000_000}, 1)
		if got, want := booked(t, l), (principalState{1, 320, 3_000_000, 0}); got != want {
			t.Fatalf("after two runs of one settle: %+v, want %+v", got, want)
		}
	})
	t.Run("in doubt: admission landed, settle, then a late copy of the admission", func(t *testing.T) {
		l := exactLimiter(t, s, clk)
		tk := l.newTicket(exactRequest, true, true)
		tk.doubt = true
		admitTwice(t, l, tk)
		settleTwice(t, l, settleCall{t: tk, served: true, actual: 700, spend: 5_000_000}, 1)
		if res, err := l.runAdmit(ctx, tk); err != nil || res[0] != 0 || res[1] != reasonSettled {
			t.Fatalf("late copy of a settled admission: %v %v, want refused as settled", res, err)
		}
		if got, want := booked(t, l), (principalState{1, 700, 5_000_000, 0}); got != want {
			t.Fatalf("%+v, want %+v", got, want)
		}
	})
	t.Run("in doubt: admission never landed, served request booked once", func(t *testing.T) {
		l := exactLimiter(t, s, clk)
		tk := l.newTicket(exactRequest, true, true)
		tk.doubt = true
		settleTwice(t, l, settleCall{t: tk, served: true, actual: 640, spend: 2_500_000}, 2)
		if res, err := l.runAdmit(ctx, tk); err != nil || res[1] != reasonSettled {
			t.Fatalf("admission arriving after its settle: %v %v, want refused as settled", res, err)
		}
		if got, want := booked(t, l), (principalState{1, 640, 2_500_000, 0}); got != want {
			t.Fatalf("%+v, want %+v", got, want)
		}
	})
	t.Run("in doubt: refused request undone once", func(t *testing.T) {
		l := exactLimiter(t, s, clk)
		tk := l.newTicket(exactRequest, true, true)
		tk.doubt = true
		admitTwice(t, l, tk)
		settleTwice(t, l, settleCall{t: tk}, 1)
		if got := booked(t, l); got != (principalState{}) {
			t.Fatalf("after undoing the only admission: %+v, want nothing booked", got)
		}
	})
}

// TestRedisDeadHolderFreesSlot: a slot stays held while its holder
// heartbeats (well past the lease TTL) and frees within about the TTL once
// the holder stops, long before the 15-minute lease.
func TestRedisDeadHolderFreesSlot(t *testing.T) {
	s := redistest.Start(t)
	const ttl = 2 * time.Second
	prefix := fmt.Sprintf("igtest:%d:", prefixSeq.Add(1))
	mk := func() *Redis {
		l, err := NewRedisWithOptions(RedisOptions{Addr: s.Addr, Prefix: prefix, LeaseTTL: ttl, Timeout: testRedisTimeout})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	holder, other := mk(), mk()
	r := Request{Tenant: "acme", TenantLimits: policy.Limits{Concurrent: 1}}
	if _, d, err := holder.Admit(ctx, r); err != nil || !d.Allowed {
		t.Fatalf("holder: %+v %v", d, err)
	}
	time.Sleep(3 * ttl)
	if _, d, err := other.Admit(ctx, r); err != nil || d.Allowed || d.Reason != ReasonTenantConcurrent {
		t.Fatalf("a live holder's slot was free after 3 TTLs: %+v %v", d, err)
	}
	// The holder dies: no settle, no more heartbeats.
	holder.Close()
	died := time.Now()
	for {
		tk, d, err := other.Admit(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			t.Logf("slot free %v after the holder died (TTL %v)", time.Since(died).Round(10*time.Millisecond), ttl)
			settle(t, tk, 0, 0)
			return
		}
		if time.Since(died) > 10*ttl {
			t.Fatalf("slot still held %v after its holder died (TTL %v)", time.Since(died), ttl)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRedisSettleQueuedUntilRedisAnswers: a settlement made while Redis
// does not answer is queued, then lands once when it does.
func TestRedisSettleQueuedUntilRedisAnswers(t *testing.T) {
	s := redistest.StartWith(t, redistest.Options{Debug: true})
	clk := newClock()
	l, err := NewRedisWithOptions(RedisOptions{Addr: s.Addr, Now: clk.Now, Prefix: fmt.Sprintf("igtest:%d:", prefixSeq.Add(1)),
		Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tk, _ := wantAllowed(t, l, exactRequest)
	done := make(chan struct{})
	go func() { s.Sleep(t, time.Second); close(done) }()
	time.Sleep(100 * time.Millisecond) // the server is asleep
	if err := tk.Settle(context.Background(), 123, 0.001); !errors.Is(err, ErrSettleQueued) {
		t.Fatalf("settle while Redis sleeps: %v, want ErrSettleQueued", err)
	}
	<-done
	ks := l.keys("acme", "k", "")
	want := principalState{1, 123, 1_000_000, 0}
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := readPrincipal(t, s.Client(), ks[2], ks[3], clk.Now().UnixMicro())
		if got == want && l.queue.len() == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queued settlement: booked %+v (queue %d), want %+v", got, l.queue.len(), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRedisSettleQueueBounded: with Redis gone, settlements queue up to
// the bound, the next one is refused as dropped, and Close reports what it
// could not deliver.
func TestRedisSettleQueueBounded(t *testing.T) {
	s := redistest.Start(t)
	l, err := NewRedisWithOptions(RedisOptions{Addr: s.Addr, Prefix: fmt.Sprintf("igtest:%d:", prefixSeq.Add(1)),
		Timeout: testRedisTimeout, SettleQueue: 2, DrainTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var tickets []Ticket
	for range 3 {
		tk, _ := wantAllowed(t, l, exactRequest)
		tickets = append(tickets, tk)
	}
	s.Stop()
	for i, tk := range tickets {
		err := tk.Settle(ctx, 1, 0)
		switch queued := errors.Is(err, ErrSettleQueued); {
		case i < 2 && !queued:
			t.Fatalf("settle %d with Redis gone: %v, want ErrSettleQueued", i, err)
		case i == 2 && (queued || !errors.Is(err, ErrUnavailable)):
			t.Fatalf("settle past the queue's bound: %v, want dropped (ErrUnavailable, not queued)", err)
		}
	}
	if err := l.Close(); err == nil || !strings.Contains(err.Error(), "2 settlements") {
		t.Fatalf("close with 2 undeliverable settlements: %v", err)
	}
}
