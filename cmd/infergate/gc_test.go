package main

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestTuneGC: without GOGC and GOMEMLIMIT the gateway's collector
// settings apply; with them, the operator's stay.
func TestTuneGC(t *testing.T) {
	prevPct := debug.SetGCPercent(100)
	prevLim := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(prevPct); debug.SetMemoryLimit(prevLim) })

	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	tuneGC()
	if got := debug.SetGCPercent(100); got != gatewayGCPercent {
		t.Fatalf("GC percent %d after tuneGC; want %d", got, gatewayGCPercent)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != gatewayMemoryLimit {
		t.Fatalf("memory limit %d after tuneGC; want %d", got, gatewayMemoryLimit)
	}

	t.Setenv("GOGC", "100")
	t.Setenv("GOMEMLIMIT", "1GiB")
	tuneGC()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC percent %d with GOGC set; want the operator's 100", got)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != math.MaxInt64 {
		t.Fatalf("memory limit %d with GOMEMLIMIT set; want it left alone", got)
	}
}
