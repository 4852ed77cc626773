package limit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/fakeclock"
	"github.com/infergate/infergate/policy"
)

func newClock() *fakeclock.Clock { return fakeclock.New(time.Unix(1_790_000_000, 0)) }

// newLimiter builds a fresh, isolated limiter on the injected clock.
type newLimiter func(t *testing.T, clk *fakeclock.Clock, lease time.Duration) Limiter

var ctx = context.Background()

func mustAdmit(t *testing.T, l Limiter, r Request) (Ticket, Decision) {
	t.Helper()
	tk, d, err := l.Admit(ctx, r)
	if err != nil {
		t.Fatalf("Admit: %v", err)
	}
	if d.Allowed != (tk != nil) {
		t.Fatalf("Allowed=%v but ticket %v", d.Allowed, tk)
	}
	return tk, d
}

func wantAllowed(t *testing.T, l Limiter, r Request) (Ticket, Decision) {
	t.Helper()
	tk, d := mustAdmit(t, l, r)
	if !d.Allowed {
		t.Fatalf("denied (%s, retry %v), want allowed", d.Reason, d.RetryAfter)
	}
	return tk, d
}

func wantDenied(t *testing.T, l Limiter, r Request, reason string) Decision {
	t.Helper()
	_, d := mustAdmit(t, l, r)
	if d.Allowed || d.Reason != reason {
		t.Fatalf("allowed=%v reason=%q, want denied %q", d.Allowed, d.Reason, reason)
	}
	return d
}

func settle(t *testing.T, tk Ticket, tokens int64, usd float64) {
	t.Helper()
	if err := tk.Settle(ctx, tokens, usd); err != nil {
		t.Fatalf("Settle: %v", err)
	}
}

func near(got, want, tol time.Duration) bool { return got >= want-tol && got <= want+tol }

// behaviour is the suite every implementation must pass.
var behaviour = []struct {
	name string
	run  func(t *testing.T, mk newLimiter)
}{
	{"requests per minute hit and recovered", func(t *testing.T, mk newLimiter) {
		clk := newClock()
		l := mk(t, clk, time.Minute)
		r := Request{Tenant: "acme", Key: "k1", KeyLimits: policy.Limits{RequestsPerMinute: 5}}
		for i := range 5 {
			_, d := wantAllowed(t, l, r)
			if d.LimitRequests != 5 || d.RemainingRequests != int64(4-i) {
				t.Fatalf("request %d: limit %d remaining %d", i, d.LimitRequests, d.RemainingRequests)
			}
			if d.LimitTokens != 0 {
				t.Fatalf("token headers without a token limit: %+v", d)
			}
		}
		d := wantDenied(t, l, r, ReasonKeyRequests)
		if !near(d.RetryAfter, 12*time.Second, time.Millisecond) || d.RemainingRequests != 0 || !near(d.ResetRequests, time.Minute, time.Millisecond) {
			t.Fatalf("denial %+v: want retry 12s, remaining 0, reset 1m", d)
		}
		clk.Add(12 * time.Second)
		wantAllowed(t, l, r)
		wantDenied(t, l, r, ReasonKeyRequests)
		clk.Add(time.Minute)
		for range 5 {
			wantAllowed(t, l, r)
		}
		wantDenied(t, l, r, ReasonKeyRequests)
	}},
	{"tenant and key must both admit", func(t *testing.T, mk newLimiter) {
		l := mk(t, newClock(), time.Minute)
		tenant := policy.Limits{RequestsPerMinute: 3}
		a := Request{Tenant: "acme", TenantLimits: tenant, Key: "a", KeyLimits: policy.Limits{RequestsPerMinute: 10}}
		b := a
		b.Key = "b"
		wantAllowed(t, l, a)
		wantAllowed(t, l, a)
		_, d := wantAllowed(t, l, b)
		if d.LimitRequests != 3 || d.RemainingRequests != 0 {
			t.Fatalf("headers should follow the tighter tenant: %+v", d)
		}
		wantDenied(t, l, b, ReasonTenantRequests)

		// A key's refusal must not consume the tenant's quota.
		tenant2 := policy.Limits{RequestsPerMinute: 2}
		c := Request{Tenant: "globex", TenantLimits: tenant2, Key: "c", KeyLimits: policy.Limits{RequestsPerMinute: 1}}
		wantAllowed(t, l, c)
		for range 3 {
			wantDenied(t, l, c, ReasonKeyRequests)
		}
		dreq := c
		dreq.Key, dreq.KeyLimits = "d", policy.Limits{}
		wantAllowed(t, l, dreq)
		wantDenied(t, l, dreq, ReasonTenantRequests)
		// Keys of different tenants with the same name are separate.
		other := Request{Tenant: "initech", Key: "c", KeyLimits: policy.Limits{RequestsPerMinute: 1}}
		wantAllowed(t, l, other)
	}},
	{"token reservation corrected at settle", func(t *testing.T, mk newLimiter) {
		clk := newClock()
		l := mk(t, clk, time.Minute)
		r := Request{Tenant: "acme", Key: "k", KeyLimits: policy.Limits{TokensPerMinute: 1000}, ReserveTokens: 1000}
		tk, d := wantAllowed(t, l, r)
		if d.LimitTokens != 1000 || d.RemainingTokens != 0 || !near(d.ResetTokens, time.Minute, time.Millisecond) {
			t.Fatalf("after reserving 1000: %+v", d)
		}
		small := r
		small.ReserveTokens = 1
		d = wantDenied(t, l, small, ReasonKeyTokens)
		if !near(d.RetryAfter, 60*time.Millisecond, time.Millisecond) {
			t.Fatalf("retry %v, want 60ms for one token at 1000/min", d.RetryAfter)
		}
		settle(t, tk, 100, 0) // 900 reserved tokens come back
		probe := r
		probe.ReserveTokens = 100
		tk, d = wantAllowed(t, l, probe)
		if d.RemainingTokens != 800 {
			t.Fatalf("remaining %d after settling 100 of 1000 and reserving 100, want 800", d.RemainingTokens)
		}
		settle(t, tk, 300, 0) // used more than reserved: 200 more are charged
		probe.ReserveTokens = 0
		_, d = wantAllowed(t, l, probe)
		if d.RemainingTokens != 600 {
			t.Fatalf("remaining %d after a 200-token overrun, want 600", d.RemainingTokens)
		}
		huge := r
		huge.ReserveTokens = 1001
		d = wantDenied(t, l, huge, ReasonKeyTooLarge)
		if d.RetryAfter != 0 {
			t.Fatalf("a request larger than the limit got retry %v", d.RetryAfter)
		}
		clk.Add(time.Minute)
		_, d = wantAllowed(t, l, r)
		if d.RemainingTokens != 0 {
			t.Fatalf("after recovery and a 1000 reservation: remaining %d", d.RemainingTokens)
		}
	}},
	{"tenant tokens shared by keys", func(t *testing.T, mk newLimiter) {
		l := mk(t, newClock(), time.Minute)
		r := Request{Tenant: "acme", TenantLimits: policy.Limits{TokensPerMinute: 500}, Key: "a", ReserveTokens: 300}
		tk, _ := wantAllowed(t, l, r)
		r.Key = "b"
		wantDenied(t, l, r, ReasonTenantTokens)
		settle(t, tk, 150, 0)
		wantAllowed(t, l, r)
	}},
	{"concurrency released by settle and by lease expiry", func(t *testing.T, mk newLimiter) {
		clk := newClock()
		l := mk(t, clk, 2*time.Minute)
		r := Request{Tenant: "acme", Key: "k", KeyLimits: policy.Limits{Concurrent: 2}, TenantLimits: policy.Limits{Concurrent: 10}}
		t1, _ := wantAllowed(t, l, r)
		wantAllowed(t, l, r) // never settled: leaks until its lease ends
		d := wantDenied(t, l, r, ReasonKeyConcurrent)
		if d.RetryAfter <= 0 {
			t.Fatal("no Retry-After on a concurrency refusal")
		}
		settle(t, t1, 0, 0)
		if err := t1.Settle(ctx, 0, 0); !errors.Is(err, ErrSettled) {
			t.Fatalf("second Settle: %v, want ErrSettled", err)
		}
		wantAllowed(t, l, r) // also never settled
		wantDenied(t, l, r, ReasonKeyConcurrent)
		clk.Add(2*time.Minute + time.Second)
		ta, _ := wantAllowed(t, l, r)
		tb, _ := wantAllowed(t, l, r)
		wantDenied(t, l, r, ReasonKeyConcurrent)
		settle(t, ta, 0, 0)
		settle(t, tb, 0, 0)
		// The tenant's slots count every key.
		tenantOnly := Request{Tenant: "globex", TenantLimits: policy.Limits{Concurrent: 1}, Key: "x"}
		tx, _ := wantAllowed(t, l, tenantOnly)
		tenantOnly.Key = "y"
		wantDenied(t, l, tenantOnly, ReasonTenantConcurrent)
		settle(t, tx, 0, 0)
		wantAllowed(t, l, tenantOnly)
	}},
	{"budget exhausted by cost and reset by window", func(t *testing.T, mk newLimiter) {
		clk := newClock()
		l := mk(t, clk, time.Minute)
		lim := policy.Limits{BudgetUSD: 1, BudgetWindow: policy.Duration(time.Hour)}
		r := Request{Tenant: "acme", TenantLimits: lim, Key: "k", EstimatedCostUSD: 0.6}
		t1, _ := wantAllowed(t, l, r)
		r.EstimatedCostUSD = 0.5
		d := wantDenied(t, l, r, ReasonTenantBudget) // 0.6 reserved + 0.5 > 1
		if !near(d.RetryAfter, time.Hour, time.Millisecond) {
			t.Fatalf("budget retry %v, want the window's end (1h)", d.RetryAfter)
		}
		settle(t, t1, 0, 0.3)
		t2, _ := wantAllowed(t, l, r) // 0.3 + 0.5
		settle(t, t2, 0, 0.5)
		r.EstimatedCostUSD = 0.3
		wantDenied(t, l, r, ReasonTenantBudget) // 0.8 + 0.3
		r.EstimatedCostUSD = 0.2
		t3, _ := wantAllowed(t, l, r) // exactly 1.0
		settle(t, t3, 0, 0.2)
		r.EstimatedCostUSD = 0
		wantDenied(t, l, r, ReasonTenantBudget) // spent == budget
		clk.Add(time.Hour + time.Second)
		r.EstimatedCostUSD = 0.01
		t4, _ := wantAllowed(t, l, r)
		settle(t, t4, 0, 2.5) // actual cost far above the estimate
		r.EstimatedCostUSD = 0
		wantDenied(t, l, r, ReasonTenantBudget)

		// Default window is 720h; key budgets are separate from the tenant's.
		kr := Request{Tenant: "globex", Key: "kb", KeyLimits: policy.Limits{BudgetUSD: 0.001}, EstimatedCostUSD: 0.0005}
		tk, _ := wantAllowed(t, l, kr)
		settle(t, tk, 0, 0.002)
		d = wantDenied(t, l, kr, ReasonKeyBudget)
		if !near(d.RetryAfter, DefaultBudgetWindow, time.Second) {
			t.Fatalf("default budget window: retry %v", d.RetryAfter)
		}
	}},
	{"no limits", func(t *testing.T, mk newLimiter) {
		l := mk(t, newClock(), time.Minute)
		for range 100 {
			tk, d := wantAllowed(t, l, Request{Tenant: "free", Key: "k", ReserveTokens: 1 << 20, EstimatedCostUSD: 100})
			h := http.Header{}
			d.WriteHeaders(h)
			if len(h) != 0 {
				t.Fatalf("headers without limits: %v", h)
			}
			settle(t, tk, 5, 1)
		}
	}},
}

func TestDecisionHeaders(t *testing.T) {
	h := http.Header{}
	Decision{
		Allowed: false, RetryAfter: 1500 * time.Millisecond, Reason: ReasonKeyTokens,
		LimitRequests: 60, RemainingRequests: 0, ResetRequests: 6 * time.Minute,
		LimitTokens: 1000, RemainingTokens: -3, ResetTokens: 20 * time.Millisecond,
	}.WriteHeaders(h)
	want := map[string]string{
		"Retry-After":                    "2",
		"X-Ratelimit-Limit-Requests":     "60",
		"X-Ratelimit-Remaining-Requests": "0",
		"X-Ratelimit-Reset-Requests":     "6m0s",
		"X-Ratelimit-Limit-Tokens":       "1000",
		"X-Ratelimit-Remaining-Tokens":   "0",
		"X-Ratelimit-Reset-Tokens":       "20ms",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if len(h) != len(want) {
		t.Errorf("headers %v", h)
	}
	// The values share one array: adding to one field must not change
	// the next.
	h.Add("X-Ratelimit-Limit-Requests", "extra")
	if got := h.Get("X-Ratelimit-Remaining-Requests"); got != "0" {
		t.Errorf("an Add to one field changed the next to %q", got)
	}
	h = http.Header{}
	Decision{Allowed: true, LimitRequests: 10, RemainingRequests: 9, ResetRequests: time.Second, RetryAfter: time.Second}.WriteHeaders(h)
	if h.Get("Retry-After") != "" || h.Get("x-ratelimit-reset-requests") != "1s" || h.Get("x-ratelimit-limit-tokens") != "" {
		t.Errorf("allowed decision headers %v", h)
	}
	h = http.Header{}
	Decision{Allowed: false, RetryAfter: time.Second}.WriteHeaders(h)
	if h.Get("Retry-After") != "1" {
		t.Errorf("exact second: %v", h)
	}
}

// TestAppendHeaderLines holds the raw lines to WriteHeaders' fields, in
// the same order for every decision shape.
func TestAppendHeaderLines(t *testing.T) {
	for _, d := range []Decision{
		{},
		{Allowed: true, LimitRequests: 10, RemainingRequests: 9, ResetRequests: time.Second},
		{Allowed: true, LimitTokens: 1 << 40, RemainingTokens: 1<<40 - 1033},
		{Allowed: false, RetryAfter: 1500 * time.Millisecond, LimitRequests: 60, RemainingRequests: -1,
			ResetRequests: 6 * time.Minute, LimitTokens: 1000, RemainingTokens: 0, ResetTokens: 20 * time.Millisecond},
		{Allowed: true, RetryAfter: time.Second},
	} {
		h := http.Header{}
		d.WriteHeaders(h)
		lines := string(d.AppendHeaderLines([]byte("X: y\r\n")))
		want := "X: y\r\n"
		for _, k := range []string{"X-Ratelimit-Limit-Requests", "X-Ratelimit-Remaining-Requests", "X-Ratelimit-Reset-Requests",
			"X-Ratelimit-Limit-Tokens", "X-Ratelimit-Remaining-Tokens", "X-Ratelimit-Reset-Tokens", "Retry-After"} {
			if v, ok := h[k]; ok {
				want += k + ": " + v[0] + "\r\n"
			}
		}
		if lines != want {
			t.Errorf("%+v:\n got %q\nwant %q", d, lines, want)
		}
		if d.LimitRequests > 0 && !strings.Contains(lines, "X-Ratelimit-Remaining-Requests: ") {
			t.Errorf("%+v: no remaining-requests line in %q", d, lines)
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		var buf [256]byte
		_ = Decision{Allowed: true, LimitRequests: 5, RemainingRequests: 4, LimitTokens: 9, RemainingTokens: 2}.AppendHeaderLines(buf[:0])
	}); n != 0 {
		t.Errorf("AppendHeaderLines with zero resets: %v allocations, want 0", n)
	}
}

func TestEmission(t *testing.T) {
	for _, c := range []struct {
		cost, limit uint64
		want        int64
	}{
		{1, 60, int64(time.Second)},
		{1, 7, int64(time.Minute)/7 + 1}, // rounded up
		{1000, 1000, int64(time.Minute)},
		{1 << 40, 1, 1<<63/4 - 1},
	} {
		if got := emission(c.cost, c.limit, time.Minute); got != c.want {
			t.Errorf("emission(%d, %d) = %d, want %d", c.cost, c.limit, got, c.want)
		}
	}
	if got := refund(1, 7, time.Minute); got != int64(time.Minute)/7 {
		t.Errorf("refund rounds down: %d", got)
	}
}

func memoryLimiter(t *testing.T, clk *fakeclock.Clock, lease time.Duration) Limiter {
	l := NewMemoryWithOptions(MemoryOptions{Now: clk.Now, Lease: lease})
	t.Cleanup(func() { l.Close() })
	return l
}

func TestBehaviourMemory(t *testing.T) {
	for _, c := range behaviour {
		t.Run(c.name, func(t *testing.T) { c.run(t, memoryLimiter) })
	}
}

func TestMemoryBoundedPrincipals(t *testing.T) {
	clk := newClock()
	l := NewMemoryWithOptions(MemoryOptions{Now: clk.Now, MaxPrincipals: memoryShards * 4})
	lim := policy.Limits{RequestsPerMinute: 100}
	// Far more principals than the bound: idle ones are evicted as time passes.
	for i := range 2000 {
		tk, d, err := l.Admit(ctx, Request{Tenant: fmt.Sprintf("t%d", i), TenantLimits: lim})
		if err != nil {
			// A full shard whose entries are all busy refuses; after the
			// buckets refill they become evictable.
			clk.Add(time.Minute)
			if tk, d, err = l.Admit(ctx, Request{Tenant: fmt.Sprintf("t%d", i), TenantLimits: lim}); err != nil {
				t.Fatalf("principal %d after idle time: %v", i, err)
			}
		}
		if !d.Allowed {
			t.Fatalf("principal %d denied: %s", i, d.Reason)
		}
		settle(t, tk, 0, 0)
	}
	n := 0
	for i := range l.shards {
		n += len(l.shards[i].m)
	}
	if n > memoryShards*4 {
		t.Fatalf("%d principals tracked, bound %d", n, memoryShards*4)
	}
	// A principal with a running budget is never evicted (that would reset it).
	// Let the loop's principals go idle first: with a random shard seed the
	// spender's shard may hold four principals admitted this very minute,
	// and a full shard of busy states refuses (as asserted above).
	clk.Add(time.Minute)
	b := Request{Tenant: "spender", TenantLimits: policy.Limits{BudgetUSD: 1}, EstimatedCostUSD: 1}
	tk, _ := wantAllowed(t, l, b)
	settle(t, tk, 0, 1)
	for i := range 2000 {
		l.Admit(ctx, Request{Tenant: fmt.Sprintf("u%d", i), TenantLimits: lim})
		if i%100 == 0 {
			clk.Add(time.Minute)
		}
	}
	b.EstimatedCostUSD = 0
	wantDenied(t, l, b, ReasonTenantBudget)
}

func TestMemoryConcurrentAdmitExact(t *testing.T) {
	clk := newClock() // frozen: no refill during the run
	l := NewMemoryWithOptions(MemoryOptions{Now: clk.Now})
	r := Request{Tenant: "acme", TenantLimits: policy.Limits{RequestsPerMinute: 500, TokensPerMinute: 100_000}, Key: "k", KeyLimits: policy.Limits{Concurrent: 1000}, ReserveTokens: 10}
	var mu sync.Mutex
	admitted := 0
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 100 {
				tk, d, err := l.Admit(ctx, r)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					mu.Lock()
					admitted++
					mu.Unlock()
					tk.Settle(ctx, 10, 0)
				}
			}
		})
	}
	wg.Wait()
	if admitted != 500 {
		t.Fatalf("admitted %d of 1600 with a limit of 500", admitted)
	}
}

func BenchmarkMemoryAdmitSettle(b *testing.B) {
	l := NewMemory()
	const keys = 100_000
	reqs := make([]Request, keys)
	for i := range reqs {
		reqs[i] = Request{
			Tenant: fmt.Sprintf("tenant-%d", i%10_000), TenantLimits: policy.Limits{RequestsPerMinute: 1 << 40, TokensPerMinute: 1 << 50, Concurrent: 1 << 20},
			Key: fmt.Sprintf("key-%d", i), KeyLimits: policy.Limits{RequestsPerMinute: 1 << 40, TokensPerMinute: 1 << 50, BudgetUSD: 1e6},
			ReserveTokens: 1200, EstimatedCostUSD: 0.001,
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i += 7919
			tk, d, err := l.Admit(ctx, reqs[i%keys])
			if err != nil || !d.Allowed {
				b.Fatalf("%v %s", err, d.Reason)
			}
			tk.Settle(ctx, 800, 0.0008)
		}
	})
}

// BenchmarkMemoryFootprint reports the heap the memory limiter holds per
// tracked principal with 100,000 keys across 10,000 tenants, all limited.
func BenchmarkMemoryFootprint(b *testing.B) {
	const keys, tenants = 100_000, 10_000
	lim := policy.Limits{RequestsPerMinute: 1000, TokensPerMinute: 1 << 20, Concurrent: 100, BudgetUSD: 100}
	reqs := make([]Request, keys)
	for i := range reqs {
		reqs[i] = Request{Tenant: fmt.Sprintf("tenant-%d", i%tenants), TenantLimits: lim, Key: fmt.Sprintf("key-%d", i), KeyLimits: lim, ReserveTokens: 100, EstimatedCostUSD: 0.001}
	}
	var perPrincipal float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		l := NewMemory()
		for _, r := range reqs {
			tk, _, _ := l.Admit(ctx, r)
			tk.Settle(ctx, 50, 0.0005)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perPrincipal = float64(after.HeapAlloc-before.HeapAlloc) / (keys + tenants)
		runtime.KeepAlive(l)
	}
	b.ReportMetric(perPrincipal, "B/principal")
}

func TestMemory100kKeys(t *testing.T) {
	clk := newClock()
	l := NewMemoryWithOptions(MemoryOptions{Now: clk.Now})
	const keys, tenants = 100_000, 10_000
	lim := policy.Limits{RequestsPerMinute: 1}
	req := func(i int) Request {
		return Request{Tenant: "t" + strconv.Itoa(i%tenants), TenantLimits: policy.Limits{RequestsPerMinute: 100}, Key: "k" + strconv.Itoa(i), KeyLimits: lim}
	}
	for i := range keys {
		if _, d, err := l.Admit(ctx, req(i)); err != nil || !d.Allowed {
			t.Fatalf("key %d: %+v %v", i, d, err)
		}
	}
	// Every key's own state survived: each is now at its limit.
	for i := 0; i < keys; i += 997 {
		if _, d, _ := l.Admit(ctx, req(i)); d.Allowed || d.Reason != ReasonKeyRequests {
			t.Fatalf("key %d admitted twice with a limit of 1/min: %+v", i, d)
		}
	}
}
