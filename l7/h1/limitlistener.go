package h1

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// LimitListener caps the connections ln hands out, in total and per
// client address (an IPv6 client by its /64), as a Server caps its own:
// one over a cap is reset at once and counted, and the Accept goes on. A
// cap of 0 takes the Server's default, a negative one turns it off. It is
// for servers that are not a Server (the gateway's TLS listener, served by
// net/http).
func LimitListener(ln net.Listener, maxConns, maxPerAddr int) *Limited {
	if maxConns == 0 {
		maxConns = DefaultMaxConns
	}
	if maxPerAddr == 0 {
		maxPerAddr = DefaultMaxConnsPerAddr
	}
	return &Limited{Listener: ln, max: maxConns, maxPerAddr: maxPerAddr}
}

// Limited is a listener with connection caps (LimitListener).
type Limited struct {
	net.Listener
	max, maxPerAddr int
	refused         atomic.Uint64

	mu    sync.Mutex
	count connCount
}

// Accept returns the next connection within the caps.
func (l *Limited) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := clientKey(c.RemoteAddr())
		l.mu.Lock()
		ok := l.count.admit(key, l.max, l.maxPerAddr)
		l.mu.Unlock()
		if !ok {
			l.refused.Add(1)
			refuse(c)
			continue
		}
		return &limitedConn{Conn: c, l: l, key: key}, nil
	}
}

// Refused counts the connections reset for being over a cap.
func (l *Limited) Refused() uint64 { return l.refused.Load() }

// limitedConn gives its slot back when closed, once.
type limitedConn struct {
	net.Conn
	l    *Limited
	key  netip.Addr
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.count.release(c.key)
		c.l.mu.Unlock()
	})
	return err
}
