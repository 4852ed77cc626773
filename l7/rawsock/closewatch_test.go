package rawsock

import (
	"testing"
	"time"
)

// TestWatcher: data in both directions does not call a watched
// connection's function; the peer's close calls it once; an unwatched
// connection's function is never called.
func TestWatcher(t *testing.T) {
	w := CloseWatcher()
	if w == nil {
		t.Fatal("no close watcher on this system")
	}
	c, srv := pair(t)
	calls := make(chan struct{}, 4)
	id := w.Watch(c.rc, func() { calls <- struct{}{} })
	if !w.Trusted(id) {
		t.Fatalf("not watched: id %d", id)
	}
	c2, srv2 := pair(t)
	id2 := w.Watch(c2.rc, func() { t.Error("an unwatched connection's function ran") })
	w.Unwatch(id2)

	var buf [16]byte
	for range 100 {
		if _, err := srv.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf[:]); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("pong")); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Read(buf[:]); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-calls:
		t.Fatal("data called the close function")
	case <-time.After(50 * time.Millisecond):
	}
	srv.Close()
	srv2.Close()
	select {
	case <-calls:
	case <-time.After(5 * time.Second):
		t.Fatal("the peer's close was never reported")
	}
	select {
	case <-calls:
		t.Fatal("close reported twice")
	case <-time.After(50 * time.Millisecond):
	}
	w.Unwatch(id) // after firing: a no-op
}
