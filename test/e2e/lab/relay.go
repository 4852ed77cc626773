package lab

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/infergate/infergate/test/netns"
)

// relayDialTimeout bounds one connection to the relay's target.
const relayDialTimeout = 5 * time.Second

// relay carries TCP connections accepted inside a namespace to a target in
// the host's own network namespace.
type relay struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup
}

// RelayToHost listens at addr inside the store node's namespace and relays
// every connection to target, an address in the test's own network
// namespace: a server the test runs on loopback (the Kubernetes API server)
// becomes a service on the fleet's segment, reached by the agents as a
// cluster's nodes reach theirs. Close stops it.
func (f *Fleet) RelayToHost(addr netip.AddrPort, target string) error {
	var ln net.Listener
	// A socket stays in the namespace it was created in.
	if err := netns.Do(f.Store.NS, func() error {
		var err error
		ln, err = net.Listen("tcp", addr.String())
		return err
	}); err != nil {
		return fmt.Errorf("relay listen %s in %s: %w", addr, f.Store.NS, err)
	}
	r := &relay{ln: ln, target: target, conns: map[net.Conn]bool{}}
	f.relays = append(f.relays, r)
	r.wg.Add(1)
	go r.serve()
	return nil
}

func (r *relay) serve() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.wg.Add(1)
		go r.carry(c)
	}
}

func (r *relay) carry(in net.Conn) {
	defer r.wg.Done()
	out, err := net.DialTimeout("tcp", r.target, relayDialTimeout)
	if err != nil {
		in.Close()
		return
	}
	if !r.track(in, out) {
		in.Close()
		out.Close()
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	// One side ended: end both, as a proxy that does not half-close.
	in.Close()
	out.Close()
	<-done
	r.untrack(in, out)
}

func (r *relay) track(cs ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	for _, c := range cs {
		r.conns[c] = true
	}
	return true
}

func (r *relay) untrack(cs ...net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cs {
		delete(r.conns, c)
	}
}

// close stops accepting and cuts every relayed connection, so no socket
// keeps the namespace alive once the lab deletes it.
func (r *relay) close() error {
	err := r.ln.Close()
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
