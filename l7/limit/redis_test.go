package limit

import (
	"errors"
	"fmt"
	"net"
	"slices"
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

var prefixSeq atomic.Int64

// testRedisTimeout is generous so a loaded CI machine does not turn slow
// replies into failures; the unreachable tests do not depend on it.
const testRedisTimeout = 2 * time.Second

// redisFactory gives every limiter its own key prefix on one server, so
// cases are isolated; clk == nil uses Redis TIME.
func redisFactory(s *redistest.Server, failOpen bool) newLimiter {
	return func(t *testing.T, clk *fakeclock.Clock, lease time.Duration) Limiter {
		o := RedisOptions{Addr: s.Addr, FailOpen: failOpen, Lease: lease, Timeout: testRedisTimeout, Prefix: fmt.Sprintf("igtest:%d:", prefixSeq.Add(1))}
		if clk != nil {
			o.Now = clk.Now
		}
		l, err := NewRedisWithOptions(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
}

func TestBehaviourRedis(t *testing.T) {
	s := redistest.Start(t)
	for _, c := range behaviour {
		t.Run(c.name, func(t *testing.T) { c.run(t, redisFactory(s, false)) })
	}
	t.Run("every key has a TTL", func(t *testing.T) {
		c := redis.NewClient(&redis.Options{Addr: s.Addr})
		defer c.Close()
		keys, err := c.Keys(ctx, "igtest:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 0 {
			t.Fatal("the suite left no keys to check")
		}
		for _, k := range keys {
			ttl, err := c.PTTL(ctx, k).Result()
			if err != nil || ttl <= 0 {
				t.Errorf("key %s has TTL %v (%v)", k, ttl, err)
			}
		}
	})
}

// replicas returns n limiters sharing one Redis (and one prefix).
func replicas(t *testing.T, s *redistest.Server, n int, clk *fakeclock.Clock) []*Redis {
	prefix := fmt.Sprintf("igtest:%d:", prefixSeq.Add(1))
	out := make([]*Redis, n)
	for i := range out {
		o := RedisOptions{Addr: s.Addr, Prefix: prefix, Timeout: testRedisTimeout}
		if clk != nil {
			o.Now = clk.Now
		}
		l, err := NewRedisWithOptions(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		out[i] = l
	}
	return out
}

// hammer admits r from goroutines on every replica and counts admissions.
func hammer(t *testing.T, ls []*Redis, r Request, perReplica, attempts int) int64 {
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for _, l := range ls {
		for range perReplica {
			wg.Go(func() {
				for range attempts {
					tk, d, err := l.Admit(ctx, r)
					if err != nil {
						t.Error(err)
						return
					}
					if d.Allowed {
						admitted.Add(1)
						if err := tk.Settle(ctx, r.ReserveTokens/2, 0); err != nil {
							t.Error(err)
						}
					}
				}
			})
		}
	}
	wg.Wait()
	return admitted.Load()
}

func TestRedisReplicasAdmitNoMoreThanLimit(t *testing.T) {
	s := redistest.Start(t)
	const limit = 300
	r := Request{Tenant: "acme", TenantLimits: policy.Limits{RequestsPerMinute: limit}, Key: "k", KeyLimits: policy.Limits{Concurrent: 10_000}}

	t.Run("frozen clock: exact", func(t *testing.T) {
		ls := replicas(t, s, 2, newClock())
		got := hammer(t, ls, r, 16, 50) // 1,600 attempts
		if got != limit {
			t.Fatalf("two replicas admitted %d with a limit of %d", got, limit)
		}
	})
	t.Run("redis TIME", func(t *testing.T) {
		ls := replicas(t, s, 2, nil)
		start := time.Now()
		got := hammer(t, ls, r, 16, 50)
		elapsed := time.Since(start)
		// GCRA refills L per minute: over the run at most L·elapsed/1min more.
		refill := int64(float64(limit)*elapsed.Seconds()/60) + 1
		if got > limit+refill || got < limit*95/100 {
			t.Fatalf("two replicas admitted %d in %v with a limit of %d (refill allowance %d)", got, elapsed, limit, refill)
		}
		t.Logf("admitted %d of 1600 in %v", got, elapsed)
	})
	t.Run("tokens", func(t *testing.T) {
		// Reserve 100, settle 50: the refunds let about 2x as many in, but
		// never more than the tokens the limit allows.
		ls := replicas(t, s, 2, newClock())
		rt := Request{Tenant: "acme", TenantLimits: policy.Limits{TokensPerMinute: 10_000}, Key: "k", ReserveTokens: 100}
		got := hammer(t, ls, rt, 16, 50)
		// Drain what refunds that landed after the last attempts freed.
		for {
			tk, d, err := ls[0].Admit(ctx, rt)
			if err != nil {
				t.Fatal(err)
			}
			if !d.Allowed {
				break
			}
			got++
			settle(t, tk, 50, 0)
		}
		// Each request nets 50 tokens once settled and needs 100 free to be
		// admitted: k admissions fit while 50k+100 <= 10,000, so exactly 199.
		if got != 199 {
			t.Fatalf("admitted %d requests reserving 100 / using 50 tokens of 10,000, want 199", got)
		}
	})
}

func TestRedisReplicasConcurrency(t *testing.T) {
	s := redistest.Start(t)
	ls := replicas(t, s, 2, nil)
	const slots = 5
	r := Request{Tenant: "acme", Key: "k", KeyLimits: policy.Limits{Concurrent: slots}}
	var inflight, peak, admitted atomic.Int64
	var wg sync.WaitGroup
	for _, l := range ls {
		for range 8 {
			wg.Go(func() {
				for range 40 {
					tk, d, err := l.Admit(ctx, r)
					if err != nil {
						t.Error(err)
						return
					}
					if !d.Allowed {
						continue
					}
					n := inflight.Add(1)
					for {
						p := peak.Load()
						if n <= p || peak.CompareAndSwap(p, n) {
							break
						}
					}
					admitted.Add(1)
					time.Sleep(200 * time.Microsecond)
					inflight.Add(-1)
					if err := tk.Settle(ctx, 0, 0); err != nil {
						t.Error(err)
					}
				}
			})
		}
	}
	wg.Wait()
	if peak.Load() > slots || admitted.Load() < slots {
		t.Fatalf("peak %d in flight (limit %d), %d admitted", peak.Load(), slots, admitted.Load())
	}
}

func TestRedisRemainingFollowsCorrections(t *testing.T) {
	s := redistest.Start(t)
	ls := replicas(t, s, 2, newClock())
	r := Request{Tenant: "acme", Key: "k", KeyLimits: policy.Limits{TokensPerMinute: 1000}, ReserveTokens: 500}
	tk, d, err := ls[0].Admit(ctx, r)
	if err != nil || !d.Allowed || d.RemainingTokens != 500 {
		t.Fatalf("replica 0: %+v %v", d, err)
	}
	probe := r
	probe.ReserveTokens = 0
	if _, d, _ := ls[1].Admit(ctx, probe); d.RemainingTokens != 500 {
		t.Fatalf("replica 1 sees %d remaining, want 500", d.RemainingTokens)
	}
	if err := tk.Settle(ctx, 900, 0); err != nil {
		t.Fatal(err)
	}
	if _, d, _ := ls[1].Admit(ctx, probe); d.RemainingTokens != 100 {
		t.Fatalf("replica 1 sees %d remaining after a 400-token overrun on replica 0, want 100", d.RemainingTokens)
	}
}

func TestRedisScriptReloadedAfterFlush(t *testing.T) {
	s := redistest.Start(t)
	l := redisFactory(s, false)(t, newClock(), time.Minute)
	r := Request{Tenant: "acme", TenantLimits: policy.Limits{RequestsPerMinute: 10}}
	wantAllowed(t, l, r)
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	tk, _ := wantAllowed(t, l, r) // EVALSHA fails with NOSCRIPT, EVAL loads it again
	settle(t, tk, 0, 0)
}

func TestRedisUnreachable(t *testing.T) {
	s := redistest.Start(t)
	r := Request{Tenant: "acme", TenantLimits: policy.Limits{RequestsPerMinute: 10}}
	open := redisFactory(s, true)(t, nil, time.Minute)
	closed := redisFactory(s, false)(t, nil, time.Minute)
	// Holds a concurrency slot, so its Settle must reach Redis.
	pending, _ := wantAllowed(t, closed, Request{Tenant: "acme", TenantLimits: policy.Limits{Concurrent: 5}})
	wantAllowed(t, open, r)
	s.Stop()

	for range 3 { // the first finds Redis gone, the next ones hit the breaker
		tk, d, err := open.Admit(ctx, r)
		if err != nil || !d.Allowed || d.Reason != ReasonStoreUnavailable || tk == nil {
			t.Fatalf("fail-open: %+v %v", d, err)
		}
		if err := tk.Settle(ctx, 1, 0); err != nil {
			t.Fatalf("fail-open ticket: %v", err)
		}
		tk, d, err = closed.Admit(ctx, r)
		if !errors.Is(err, ErrUnavailable) || d.Allowed || d.Reason != ReasonStoreUnavailable || tk != nil {
			t.Fatalf("fail-closed: %+v %v", d, err)
		}
	}
	if err := pending.Settle(ctx, 0, 0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("settle with Redis down: %v", err)
	}
	// Requests without limits need no store.
	if _, d, err := closed.Admit(ctx, Request{Tenant: "free"}); err != nil || !d.Allowed {
		t.Fatalf("unlimited request with Redis down: %+v %v", d, err)
	}
	if _, err := NewRedis("no-port", false); err == nil {
		t.Fatal("bad address accepted")
	}
}

func TestRedisUnresponsiveTimesOut(t *testing.T) {
	// A peer that accepts and never answers: the call must give up within
	// its timeout and fail closed rather than hang the request.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	l, err := NewRedisWithOptions(RedisOptions{Addr: ln.Addr().String(), Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		_, _, err := l.Admit(ctx, Request{Tenant: "acme", TenantLimits: policy.Limits{RequestsPerMinute: 1}})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("unresponsive Redis: %v, want ErrUnavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Admit hung on an unresponsive Redis")
	}
}

func BenchmarkRedisAdmitSettle(b *testing.B) {
	s := redistest.Start(b)
	// A generous timeout: the benchmark measures throughput, and a loaded
	// CI machine must not turn slow replies into failures.
	l, err := NewRedisWithOptions(RedisOptions{Addr: s.Addr, Timeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	const keys = 100_000
	lim := policy.Limits{RequestsPerMinute: 1 << 40, TokensPerMinute: 1 << 50, Concurrent: 1 << 20, BudgetUSD: 1e6}
	b.ReportAllocs()
	b.SetParallelism(8) // many requests in flight, as in a gateway: measures throughput
	stats := newServerCPU(b, s, "evalsha", "eval")
	b.ResetTimer()
	defer stats.report(b)
	var seq atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(7919) % keys
			r := Request{Tenant: "tenant-" + strconv.FormatInt(i%10_000, 10), TenantLimits: lim,
				Key: "key-" + strconv.FormatInt(i, 10), KeyLimits: lim, ReserveTokens: 1200, EstimatedCostUSD: 0.001}
			tk, d, err := l.Admit(ctx, r)
			if err != nil || !d.Allowed {
				b.Fatalf("%v %s", err, d.Reason)
			}
			tk.Settle(ctx, 800, 0.0008)
		}
	})
}

// BenchmarkPeerRedisIncrDecr is the cheapest shared counter with the same
// two round trips (INCR at admission, DECR at settle) and parallelism: the
// floor the scripts are measured against.
func BenchmarkPeerRedisIncrDecr(b *testing.B) {
	s := redistest.Start(b)
	c := redis.NewClient(&redis.Options{Addr: s.Addr, PoolSize: redisPoolSize})
	defer c.Close()
	b.ReportAllocs()
	b.SetParallelism(8)
	stats := newServerCPU(b, s, "incr", "decr")
	b.ResetTimer()
	defer stats.report(b)
	var seq atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := "peer:key-" + strconv.FormatInt(seq.Add(7919)%100_000, 10)
			if err := c.Incr(ctx, k).Err(); err != nil {
				b.Fatal(err)
			}
			if err := c.Decr(ctx, k).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPeerMutexCounter is the in-process floor: one mutex-guarded map
// counter per key, incremented at admission and decremented at settle.
func BenchmarkPeerMutexCounter(b *testing.B) {
	var mu sync.Mutex
	m := make(map[string]int64)
	keys := make([]string, 100_000)
	for i := range keys {
		keys[i] = "key-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i += 7919
			k := keys[i%len(keys)]
			mu.Lock()
			m[k]++
			mu.Unlock()
			mu.Lock()
			m[k]--
			mu.Unlock()
		}
	})
}

// serverCPU reports the CPU time redis-server spent per benchmark op in
// the benchmark's top-level commands (INFO commandstats; a script's time
// includes the commands it calls): a figure the scheduling noise of a
// shared machine moves less than wall-clock ns/op.
type serverCPU struct {
	c    *redis.Client
	cmds []string
}

func newServerCPU(b *testing.B, s *redistest.Server, cmds ...string) serverCPU {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	b.Cleanup(func() { c.Close() })
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	return serverCPU{c, cmds}
}

func (sc serverCPU) report(b *testing.B) {
	info, err := sc.c.Info(ctx, "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var usec float64
	for _, line := range strings.Split(info, "\n") {
		// cmdstat_evalsha:calls=10,usec=123,usec_per_call=12.30,...
		name, stats, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "cmdstat_"), ":")
		if !ok || !slices.Contains(sc.cmds, name) {
			continue
		}
		for _, kv := range strings.Split(stats, ",") {
			if v, ok := strings.CutPrefix(kv, "usec="); ok {
				f, _ := strconv.ParseFloat(v, 64)
				usec += f
			}
		}
	}
	b.ReportMetric(usec/float64(b.N), "redis-µs/op")
}
