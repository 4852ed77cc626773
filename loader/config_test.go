package loader

import (
	"net/netip"
	"testing"
)

func TestGCRAConversion(t *testing.T) {
	const tick = 4_000_000
	cases := []struct {
		rate, burst, tick, interval, tolerance uint64
	}{
		{0, 5, tick, 0, 0},                      // unlimited
		{1, 3, tick, 1e9, 3e9},                  // burst dominates
		{1000, 1, tick, 1e6, tick + 1e6},        // raised to a tick plus an interval
		{1000, 0, 0, 1e6, 1e6},                  // burst 0 means 1
		{2e9, 10, 0, 1, 10},                     // faster than 1/ns: 1 ns interval
		{1, ^uint64(0), 0, 1e9, ^uint64(0) / 2}, // no overflow
	}
	for _, c := range cases {
		i, tol := gcra(c.rate, c.burst, c.tick)
		if i != c.interval || tol != c.tolerance {
			t.Errorf("gcra(%d, %d, %d) = %d, %d; want %d, %d", c.rate, c.burst, c.tick, i, tol, c.interval, c.tolerance)
		}
	}
}

func TestAddressLayout(t *testing.T) {
	w := addrWords(netip.MustParseAddr("198.18.0.1"))
	if b := [4]byte{byte(w[0]), byte(w[0] >> 8), byte(w[0] >> 16), byte(w[0] >> 24)}; b != [4]byte{198, 18, 0, 1} || w[1]|w[2]|w[3] != 0 {
		t.Fatalf("v4 words %x", w)
	}
	if addrWords(netip.MustParseAddr("::ffff:198.18.0.1")) != w {
		t.Fatal("v4-mapped address not stored as v4")
	}
	m := maskWords(24, true)
	if m[0] != addrWords(netip.MustParseAddr("255.255.255.0"))[0] {
		t.Fatalf("/24 mask %x", m[0])
	}
	m6 := maskWords(64, false)
	if m6 != addrWords(netip.MustParseAddr("ffff:ffff:ffff:ffff::")) {
		t.Fatalf("/64 mask %x", m6)
	}
	if err := (Config{AggregateV4: 33, AggregateV6: 64}).validate(); err == nil {
		t.Fatal("aggregate /33 accepted")
	}
	if err := (Config{AggregateV4: 24, AggregateV6: 64, EncapSourceV4: netip.MustParsePrefix("2001:db8::/64")}).validate(); err == nil {
		t.Fatal("IPv6 prefix accepted as EncapSourceV4")
	}
}
