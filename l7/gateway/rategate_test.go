package gateway

import (
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/infergate/infergate/internal/redistest"
	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/l7/tokens"
	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/mockllm"
)

// countCalls swaps in a snapshot of c whose count stage counts its calls.
// The snapshot is stored after the hook is set, so requests that load it
// see the hook (the store orders them).
func countCalls(t *testing.T, h *harness, c *policy.Compiled) *atomic.Int64 {
	t.Helper()
	n := new(atomic.Int64)
	cfg, err := h.g.build(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range cfg.chain {
		if cs, ok := s.(*countStage); ok {
			cs.count = func(c *tokens.Counter, r *openai.Request, m *[]tokens.Message) int {
				n.Add(1)
				return countPrompt(c, r, m)
			}
			h.g.cfg.Store(cfg)
			return n
		}
	}
	t.Fatal("no count stage")
	return nil
}

// TestRateLimitedNotCounted: once the request-rate limit has refused a
// tenant, its requests are refused until Retry-After without being
// counted (or inspected); other tenants are counted and served as before.
func TestRateLimitedNotCounted(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	c := basePolicy(pool("p", m))
	c.Gateway.Tenants[0].Limits.RequestsPerMinute = 1
	h := newHarness(t, c, Options{})
	calls := countCalls(t, h, c)
	if status, _, body := h.call(testKey, "/v1/chat/completions", chatBody("hi", "")); status != 200 {
		t.Fatalf("first: %d %s", status, body)
	}
	if status, _, _ := h.call(testKey, "/v1/chat/completions", chatBody("hi", "")); status != 429 {
		t.Fatalf("second: %d", status)
	}
	before := calls.Load()
	for range 3 {
		status, hdr, body := h.call(testKey, "/v1/chat/completions", chatBody("a long prompt", ""))
		if status != 429 {
			t.Fatalf("refused tenant: %d %s", status, body)
		}
		if ra, _ := strconv.Atoi(hdr.Get("Retry-After")); ra < 1 || ra > 60 || hdr.Get("x-ratelimit-remaining-requests") != "0" {
			t.Fatalf("429 headers %v", hdr)
		}
		if _, code := decodeError(t, body); code != "rate_limit_exceeded" {
			t.Fatalf("code %q", code)
		}
	}
	if n := calls.Load() - before; n != 0 {
		t.Fatalf("the counter ran %d times for requests the rate limit refuses", n)
	}
	if status, _, _ := h.call(otherKey, "/v1/chat/completions", chatBody("hi", "")); status != 200 || calls.Load() != before+1 {
		t.Fatalf("other tenant: %d, counted %d", status, calls.Load()-before)
	}
}

// TestRefusalNotShownAsCharged: a 429 shows the tokens remaining as they
// are, not as if the refused request had been charged.
func TestRefusalNotShownAsCharged(t *testing.T) { refusalNotShownAsCharged(t, "") }

// TestRefusalNotShownAsChargedRedis: the same with the limits in Redis.
func TestRefusalNotShownAsChargedRedis(t *testing.T) {
	refusalNotShownAsCharged(t, redistest.Start(t).Addr)
}

func refusalNotShownAsCharged(t *testing.T, redis string) {
	m := newMock(t, mockllm.Config{})
	c := basePolicy(pool("p", m))
	c.Gateway.LimitStore.Redis = redis
	c.Gateway.Tenants[0].Limits.RequestsPerMinute = 1
	c.Gateway.Tenants[0].Limits.TokensPerMinute = 100000
	h := newHarness(t, c, Options{})
	body := chatBody("hi", `,"max_tokens":5000`)
	status, hdr, b := h.call(testKey, "/v1/chat/completions", body)
	if status != 200 {
		t.Fatalf("%d %s", status, b)
	}
	after1, _ := strconv.Atoi(hdr.Get("x-ratelimit-remaining-tokens"))
	status, hdr, _ = h.call(testKey, "/v1/chat/completions", body)
	if status != 429 {
		t.Fatalf("second: %d", status)
	}
	shown, _ := strconv.Atoi(hdr.Get("x-ratelimit-remaining-tokens"))
	if shown < after1 || after1 <= 0 {
		t.Fatalf("429 shows %d tokens remaining, %d were left after the admitted request", shown, after1)
	}
}
