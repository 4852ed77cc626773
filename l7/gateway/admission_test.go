package gateway

import (
	"sync"
	"testing"
	"time"
)

// shut refuses new requests at once, and its channel closes only when the
// last request in flight has left, however enter, leave and shut
// interleave.
func TestAdmissionShutWaitsForInFlight(t *testing.T) {
	var a admission
	if !a.enter() || !a.enter() {
		t.Fatal("enter refused before shut")
	}
	done := a.shut()
	if a.enter() {
		t.Fatal("enter admitted after shut")
	}
	if !a.closing() {
		t.Fatal("closing() false after shut")
	}
	a.leave()
	select {
	case <-done:
		t.Fatal("idle with one request still in flight")
	case <-time.After(10 * time.Millisecond):
	}
	if a.shut() != done {
		t.Fatal("a second shut returned another channel")
	}
	a.leave()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("not idle after the last request left")
	}
	// Refused enters after that do not close the channel again (a panic).
	for range 3 {
		if a.enter() {
			t.Fatal("enter admitted after shut")
		}
	}
}

func TestAdmissionShutWhenIdle(t *testing.T) {
	var a admission
	if a.closing() {
		t.Fatal("closing before shut")
	}
	select {
	case <-a.shut():
	case <-time.After(time.Second):
		t.Fatal("shut of an idle gateway did not report idle")
	}
}

// Many goroutines entering and leaving while shut runs: every admitted
// request has left by the time the channel closes.
func TestAdmissionConcurrent(t *testing.T) {
	for range 50 {
		var a admission
		var inside sync.WaitGroup
		var mu sync.Mutex
		left, admitted := 0, 0
		start := make(chan struct{})
		for range 8 {
			inside.Add(1)
			go func() {
				defer inside.Done()
				<-start
				for range 100 {
					if !a.enter() {
						return
					}
					mu.Lock()
					admitted++
					mu.Unlock()
					mu.Lock()
					left++
					mu.Unlock()
					a.leave()
				}
			}()
		}
		close(start)
		<-a.shut()
		mu.Lock()
		if left != admitted {
			t.Fatalf("idle with %d of %d admitted requests still in flight", admitted-left, admitted)
		}
		mu.Unlock()
		inside.Wait()
	}
}
