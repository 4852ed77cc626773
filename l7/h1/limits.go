package h1

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
)

// Stats are a Server's counters.
type Stats struct {
	// Conns is the number of connections served now.
	Conns int
	// RefusedConns counts connections closed on accept for being over
	// MaxConns or MaxConnsPerAddr.
	RefusedConns uint64
	// AcceptRetries counts accept errors waited out (descriptors or
	// kernel memory exhausted).
	AcceptRetries uint64
	// BodyBytesInFlight is what the request bodies being received count
	// for (MaxBodyBytesInFlight); BodyRefused counts the requests refused
	// for it.
	BodyBytesInFlight int64
	BodyRefused       uint64
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := s.count.open
	s.mu.Unlock()
	return Stats{Conns: n, RefusedConns: s.refusedConns.Load(), AcceptRetries: s.acceptRetries.Load(),
		BodyBytesInFlight: s.bodyInFlight.Load(), BodyRefused: s.bodyRefused.Load()}
}

// Serving reports whether a Serve call is accepting connections now. A
// health or readiness check uses it (with Err) to see a listener that
// stopped.
func (s *Server) Serving() bool { return s.serving.Load() > 0 }

// Err returns the error the last Serve call that failed stopped with; nil
// if none failed (a Shutdown or Close is not a failure).
func (s *Server) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.serveErr
}

func (s *Server) maxConns() int {
	if s.MaxConns != 0 {
		return s.MaxConns
	}
	return DefaultMaxConns
}

func (s *Server) maxConnsPerAddr() int {
	if s.MaxConnsPerAddr != 0 {
		return s.MaxConnsPerAddr
	}
	return DefaultMaxConnsPerAddr
}

// connCount counts the connections served now, in total and per client
// address (clientKey), against caps: the Server's and LimitListener's one
// mechanism. Its owner's mutex guards it.
type connCount struct {
	open    int
	perAddr map[netip.Addr]int
}

// admit counts a new connection from key in, unless that would pass
// maxConns or maxPerAddr (a cap of 0 or less is off).
func (n *connCount) admit(key netip.Addr, maxConns, maxPerAddr int) bool {
	if maxConns > 0 && n.open >= maxConns {
		return false
	}
	if key.IsValid() {
		if maxPerAddr > 0 && n.perAddr[key] >= maxPerAddr {
			return false
		}
		if n.perAddr == nil {
			n.perAddr = map[netip.Addr]int{}
		}
		n.perAddr[key]++
	}
	n.open++
	return true
}

// release counts a connection admitted from key out.
func (n *connCount) release(key netip.Addr) {
	n.open--
	if !key.IsValid() {
		return
	}
	if c := n.perAddr[key] - 1; c > 0 {
		n.perAddr[key] = c
	} else {
		delete(n.perAddr, key)
	}
}

// clientKey is the address a connection's peer is counted under: its IPv4
// address, or the /64 of its IPv6 address (one host usually holds a whole
// /64, so counting single IPv6 addresses would cap nothing). The zero Addr
// for a peer that is not TCP/IP: it is not counted.
func clientKey(a net.Addr) netip.Addr {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return netip.Addr{}
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// refuse closes a connection over a cap at once. A reset (linger 0)
// rather than a FIN: the server keeps no TIME_WAIT state for a client
// that is flooding it.
func refuse(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// retryAccept reports whether an accept error is worth waiting out: a
// timeout, or a shortage (descriptors, per process or system-wide; socket
// buffers; memory) that connections ending will relieve.
func retryAccept(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.ECONNABORTED)
}
