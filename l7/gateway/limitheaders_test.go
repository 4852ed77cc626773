package gateway

import (
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/infergate/infergate/l7/limit"
)

// TestLimitHeadersMatch: the gateway's header writer produces exactly what
// limit.Decision.WriteHeaders does, for allowed and refused decisions with
// and without each kind of limit.
func TestLimitHeadersMatch(t *testing.T) {
	ds := []limit.Decision{
		{},
		{Allowed: true, LimitRequests: 100, RemainingRequests: 99, ResetRequests: 600 * time.Millisecond},
		{Allowed: true, LimitTokens: 1e9, RemainingTokens: -5, ResetTokens: 6*time.Minute + 1234*time.Microsecond},
		{Allowed: false, RetryAfter: 1500 * time.Millisecond, Reason: limit.ReasonTenantBudget, LimitRequests: 1, RemainingRequests: 0,
			ResetRequests: 59 * time.Second, LimitTokens: 10, RemainingTokens: 3, ResetTokens: 0},
		{Allowed: false, RetryAfter: time.Nanosecond, LimitRequests: 5},
		{Allowed: true, RetryAfter: time.Second, LimitRequests: 5},
	}
	for i, d := range ds {
		want, got := http.Header{}, http.Header{}
		d.WriteHeaders(want)
		writeLimitHeaders(got, d)
		if !reflect.DeepEqual(want, got) {
			t.Errorf("decision %d: got %v, want %v", i, got, want)
		}
	}
}
