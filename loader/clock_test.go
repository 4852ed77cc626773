package loader

import (
	"net/netip"
	"testing"
)

// The rate limiter's clock (jiffies scaled by the calibrated tick and
// offset) reads CLOCK_MONOTONIC_COARSE within a tick: a new client's bucket
// is stamped with it, and idle expiry compares that stamp with Go's clock.
func TestRateLimitClockMatchesMonotonic(t *testing.T) {
	b := newBalancer(t, testConfig())
	standardSetup(t, b)
	if b.conf.ClockTickNs == 0 {
		t.Fatal("clock not calibrated: the data plane fell back to the helper clock")
	}
	if err := b.SetClasses(Limits{PacketsPerSecond: 1e6, PacketBurst: 1e6}, nil); err != nil {
		t.Fatal(err)
	}
	before := monotonicNow()
	run(t, b.Program(), tcp("198.18.44.1", "198.18.0.99", 40000, 80).build(t))
	after := monotonicNow()
	var v balancerBucket
	if err := b.objs.RlBuckets.Lookup(balancerAddrKey{Addr: addrWords(netip.MustParseAddr("198.18.44.1")), Family: familyV4}, &v); err != nil {
		t.Fatalf("bucket: %v", err)
	}
	tick := b.conf.ClockTickNs
	if v.LastSeenNs+tick < before || v.LastSeenNs > after+tick {
		t.Fatalf("bucket stamp %d outside [%d, %d] +- one tick (%d ns)", v.LastSeenNs, before, after, tick)
	}
}
