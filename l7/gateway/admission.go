package gateway

import (
	"sync"
	"sync/atomic"
)

// admission counts the requests in flight and refuses new ones once the
// gateway is shutting down. Every request passes it twice, so each side is
// one atomic add on one word (a mutex around a flag and a WaitGroup cost
// four read-modify-writes of lines both cores share).
type admission struct {
	// n is the requests in flight, plus closingBit once shutting down.
	n     atomic.Int64
	once  sync.Once
	idle  chan struct{} // closed once shutting down with none in flight
	close sync.Once
}

const closingBit = 1 << 62

// enter registers a request unless shutting down.
func (a *admission) enter() bool {
	if a.n.Add(1)&closingBit != 0 {
		a.leave()
		return false
	}
	return true
}

// leave ends a request that enter registered.
func (a *admission) leave() {
	if a.n.Add(-1) == closingBit {
		a.signalIdle()
	}
}

// shut refuses requests from now on and returns a channel closed once
// none is in flight. It may be called more than once.
func (a *admission) shut() <-chan struct{} {
	a.once.Do(func() {
		a.idle = make(chan struct{})
		// idle is set before the bit, so a leave that sees the bit sees it.
		if a.n.Or(closingBit) == 0 {
			a.signalIdle()
		}
	})
	return a.idle
}

func (a *admission) signalIdle() { a.close.Do(func() { close(a.idle) }) }

// closing reports whether shut was called.
func (a *admission) closing() bool { return a.n.Load()&closingBit != 0 }
