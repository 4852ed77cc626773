package gateway

import (
	"sync"
	"sync/atomic"
	"time"
)

// Learning that a backend closed an idle pooled connection.
//
// A request must not go out on a connection the backend has already
// closed: it would fail, and a POST that fails after sending cannot be
// retried blindly. Peeking at the socket before each reuse (MSG_PEEK, one
// system call) was a sixth of the gateway's system calls per request. Here
// one epoll set, shared by every pool in the process, holds each pooled
// connection for EPOLLRDHUP alone (errors and hang-ups come with it): a
// response never wakes it, the backend's close wakes it once, and its
// goroutine marks the connection. Taking a connection from the pool is then
// an atomic load.
//
// The mark lands a moment after the close (the watcher thread must run),
// so a connection idle for longer than peekAfterIdle, the kind a backend's
// idle timeout closes, is still peeked before use; a busy connection, which
// a backend closes only when it shuts down, is trusted to the watcher.
// Where the epoll set cannot be made, every reuse peeks as before.

// peekAfterIdle: a pooled connection idle longer than this is peeked
// before reuse even when it is watched. Backends' keep-alive timeouts are
// seconds (uvicorn's, vLLM's, is 5 s).
const peekAfterIdle = time.Second

// closeWatch is the process's set of watched connections.
type closeWatch struct {
	epfd   int
	mu     sync.Mutex
	conns  map[uint64]*atomic.Bool
	nextID uint64
	// broken is set when waiting on the set failed: marks may be missed,
	// so every reuse peeks again.
	broken atomic.Bool
}

var closeWatcher = sync.OnceValue(newCloseWatch) // nil where unavailable

// add watches the connection on fd; closed is set once the peer closes it
// or it fails. It returns the registration's id, 0 if it is not watched.
func (w *closeWatch) add(fd int, closed *atomic.Bool) uint64 {
	if w == nil || w.broken.Load() {
		return 0
	}
	w.mu.Lock()
	w.nextID++
	id := w.nextID
	w.conns[id] = closed
	w.mu.Unlock()
	if err := w.register(fd, id); err != nil {
		w.remove(id)
		return 0
	}
	return id
}

// remove forgets a registration before its connection is closed (closing
// the descriptor takes it out of the epoll set; an event already taken
// from the set for it then finds no entry).
func (w *closeWatch) remove(id uint64) {
	if w == nil || id == 0 {
		return
	}
	w.mu.Lock()
	delete(w.conns, id)
	w.mu.Unlock()
}

// trusted reports whether marks can be relied on.
func (w *closeWatch) trusted(id uint64) bool {
	return id != 0 && !w.broken.Load()
}

// mark flags the registrations in ids as closed by their peers.
func (w *closeWatch) mark(ids []uint64) {
	w.mu.Lock()
	for _, id := range ids {
		if c := w.conns[id]; c != nil {
			c.Store(true)
		}
	}
	w.mu.Unlock()
}
