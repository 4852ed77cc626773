package gateway

import (
	"net/http"
	"strconv"
	"time"

	"github.com/infergate/infergate/l7/limit"
)

// writeLimitHeaders sets the same fields as limit.Decision.WriteHeaders
// (TestLimitHeadersMatch holds them equal), with canonical keys assigned
// directly and every value in one allocation: on the gateway's hot path
// Header.Set's key canonicalisation and per-field slices cost more than
// the limit check itself.
func writeLimitHeaders(h http.Header, d limit.Decision) {
	vals := new([7]string)
	n := 0
	set := func(key, v string) {
		vals[n] = v
		h[key] = vals[n : n+1 : n+1]
		n++
	}
	if d.LimitRequests > 0 {
		set("X-Ratelimit-Limit-Requests", strconv.FormatInt(d.LimitRequests, 10))
		set("X-Ratelimit-Remaining-Requests", strconv.FormatInt(max(d.RemainingRequests, 0), 10))
		set("X-Ratelimit-Reset-Requests", formatReset(d.ResetRequests))
	}
	if d.LimitTokens > 0 {
		set("X-Ratelimit-Limit-Tokens", strconv.FormatInt(d.LimitTokens, 10))
		set("X-Ratelimit-Remaining-Tokens", strconv.FormatInt(max(d.RemainingTokens, 0), 10))
		set("X-Ratelimit-Reset-Tokens", formatReset(d.ResetTokens))
	}
	if !d.Allowed && d.RetryAfter > 0 {
		secs := (d.RetryAfter + time.Second - 1) / time.Second
		set("Retry-After", strconv.FormatInt(int64(secs), 10))
	}
}

// formatReset is l7/limit's: durations the way OpenAI writes them ("1s",
// "6m0s", "20ms").
func formatReset(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}
