package loader

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
)

// ctSeenShift is CT_SEEN_SHIFT: established flows stamp their last packet
// in units of 2^ctSeenShift ns of the rate limiter's clock.
const ctSeenShift = 30

// ExpireIdleFlows deletes established flows (ct_est4, ct_est6) whose last
// packet is older than idle, and returns how many it deleted. The kernel
// never evicts these tables, so the agent calls it periodically; idle is
// the longest a keep-alive connection may stay silent and keep its backend.
// A flow that sends again after expiry is steered afresh, as after an LRU
// eviction.
func (b *Balancer) ExpireIdleFlows(idle time.Duration) (int, error) {
	now := uint32(monotonicNow() >> ctSeenShift)
	limit := uint32(uint64(idle) >> ctSeenShift)
	old := func(v *balancerCtVal) bool { return now-v.Seen > limit && int32(now-v.Seen) > 0 }
	n4, err := expireFlows[balancerFlowKey4](b.objs.CtEst4, old)
	if err != nil {
		return n4, fmt.Errorf("loader: expire established flows: %w", err)
	}
	n6, err := expireFlows[balancerFlowKey](b.objs.CtEst6, old)
	if err != nil {
		return n4 + n6, fmt.Errorf("loader: expire established IPv6 flows: %w", err)
	}
	return n4 + n6, nil
}

func expireFlows[K comparable](m *ebpf.Map, old func(*balancerCtVal) bool) (int, error) {
	var k K
	var v balancerCtVal
	var stale []K
	it := m.Iterate()
	for it.Next(&k, &v) {
		if old(&v) {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return 0, err
	}
	n := 0
	for _, k := range stale {
		if err := m.Delete(k); err == nil {
			n++
		} else if !errors.Is(err, ebpf.ErrKeyNotExist) {
			return n, err
		}
	}
	return n, nil
}
