package gateway

import (
	"fmt"

	"github.com/infergate/infergate/l7/limit"
	"github.com/infergate/infergate/policy"
)

// newLimiter picks the limit store the policy names: memory, or a
// redis-server shared by every replica.
func newLimiter(ls policy.LimitStore) (limit.Limiter, error) {
	if ls.Redis == "" {
		return limit.NewMemory(), nil
	}
	l, err := limit.NewRedisFromPolicy(ls)
	if err != nil {
		return nil, fmt.Errorf("limit store: %w", err)
	}
	return l, nil
}
