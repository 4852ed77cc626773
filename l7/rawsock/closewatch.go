package rawsock

import (
	"sync"
	"sync/atomic"
	"syscall"
)

// Learning that a peer closed a connection without reading from it.
//
// Go's poller tells a goroutine that a socket is readable only while the
// goroutine waits to read it, and every read first resets what it knew
// (net.Conn tries the system call before it waits). Finding out whether an
// idle connection's peer has gone thus costs a system call per look (a
// MSG_PEEK read), or a goroutine parked in a read per connection. Here one
// epoll set, shared by the process, holds the watched connections for
// EPOLLRDHUP alone (errors and hang-ups come with it): data never wakes it,
// a peer's close (FIN or RST) wakes it once, and its goroutine calls the
// connection's function. The call lands a moment after the close: the
// watcher's thread must run first.

// Watcher is the process's set of watched connections.
type Watcher struct {
	epfd   int
	mu     sync.Mutex
	fns    map[uint64]func()
	nextID uint64
	// broken is set when waiting on the set failed: closes may go
	// unreported from then on, and Trusted says so.
	broken atomic.Bool
}

var closeWatcher = sync.OnceValue(newWatcher)

// CloseWatcher returns the process's watcher, starting it on first use,
// or nil where the system has none (no epoll); its methods accept nil.
func CloseWatcher() *Watcher { return closeWatcher() }

// Watch arranges for f to be called once, on the watcher's goroutine, when
// the peer of the connection behind rc closes it or it fails. f must be
// quick and must not block. It returns the registration's id, 0 if the
// connection is not watched (no watcher, or it failed). Unwatch it before
// closing the connection.
func (w *Watcher) Watch(rc syscall.RawConn, f func()) uint64 {
	if w == nil || w.broken.Load() || rc == nil {
		return 0
	}
	w.mu.Lock()
	w.nextID++
	id := w.nextID
	w.fns[id] = f
	w.mu.Unlock()
	var err error
	if cerr := rc.Control(func(fd uintptr) { err = w.register(int(fd), id) }); cerr != nil {
		err = cerr
	}
	if err != nil {
		w.Unwatch(id)
		return 0
	}
	return id
}

// Unwatch forgets a registration (closing the descriptor takes it out of
// the epoll set; an event already taken from the set for it then finds no
// function). An id of 0 is ignored.
func (w *Watcher) Unwatch(id uint64) {
	if w == nil || id == 0 {
		return
	}
	w.mu.Lock()
	delete(w.fns, id)
	w.mu.Unlock()
}

// Trusted reports whether registration id will report its peer's close:
// it is a registration and the watcher still works.
func (w *Watcher) Trusted(id uint64) bool {
	return w != nil && id != 0 && !w.broken.Load()
}

// fire calls, once each, the functions of the registrations in ids.
func (w *Watcher) fire(ids []uint64, fns []func()) []func() {
	fns = fns[:0]
	w.mu.Lock()
	for _, id := range ids {
		if f := w.fns[id]; f != nil {
			fns = append(fns, f)
			delete(w.fns, id)
		}
	}
	w.mu.Unlock()
	for i, f := range fns {
		f()
		fns[i] = nil
	}
	return fns
}
