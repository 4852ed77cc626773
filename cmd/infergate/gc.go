package main

import (
	"os"
	"runtime/debug"
)

// The gateway's live heap is small (a few MB: the token counters' tables
// live off the heap) and its garbage per request high: a larger GC target
// trades some memory for CPU (at 200 the collector ran often enough to
// cost 4% more CPU per 4 KB request than at 400), and the soft memory
// limit pulls collection forward again before RSS grows large, whatever
// the policy's size.
const (
	gatewayGCPercent   = 400
	gatewayMemoryLimit = 256 << 20
)

// tuneGC applies the gateway's collector settings, unless GOGC or
// GOMEMLIMIT say otherwise. Both commands that serve the L7 gateway (the
// agent and `infergate gateway`) call it, so the gateway runs alike under
// either.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gatewayGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(gatewayMemoryLimit)
	}
}
