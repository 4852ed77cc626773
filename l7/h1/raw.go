package h1

import (
	"bytes"
	"syscall"

	"github.com/infergate/infergate/l7/rawsock"
)

// source is the read buffer's reader: the connection, or inside
// serveRaw's RawConn.Read, which holds the descriptor's read lock, one
// non-blocking read of the descriptor (syscall.EAGAIN when it has nothing).
type source struct{ c *conn }

func (s *source) Read(p []byte) (int, error) {
	c := s.c
	if !c.rawMode {
		c.slowReads++
		return c.rwc.Read(p)
	}
	c.rawReads++
	n, err := rawsock.ReadFD(c.fd, p)
	c.drained = n < len(p)
	return n, err
}

// sink is the write buffer's writer: the connection, or inside serveRaw's
// read callback raw writes of the descriptor (rawsock.WriteOr; only the
// connection's goroutine writes to it), unless the handler set a write
// deadline.
type sink struct{ c *conn }

func (s *sink) Write(p []byte) (int, error) {
	c := s.c
	if !c.rawMode || c.writeDeadline || len(p) == 0 {
		return c.rwc.Write(p)
	}
	return rawsock.WriteOr(c.fd, p, c.rwc)
}

// What serveRaw leaves to serve next.
const (
	rawDone = iota // the connection is finished
	rawSlow        // serveOne serves the next request
)

// serveRaw serves requests that arrive whole, head and body, all inside
// one RawConn.Read on the client's socket, and returns true when serveOne
// must serve the next one (its head came in pieces, or its body is still
// arriving), false when the connection is finished.
//
// Go's poller resets what it knew of a socket's readiness at the start of
// every read, so net.Conn first tries a read, which fails with EAGAIN,
// then waits: on a keep-alive connection that is one wasted system call
// per request, the client's next request never being there yet. Inside one
// RawConn.Read nothing resets: data that arrives after a read emptied the
// socket raises an edge the poller keeps, so after answering, the server
// waits for the next request straight away and reads it once it is there
// (nginx does the same with its own readiness flags). The handler runs
// inside the read callback; it reads its body from the buffer only, and
// the close watcher, not a read, tells that the client left.
func (c *conn) serveRaw() bool {
	c.rawMode, c.drained, c.rawNext = true, false, rawDone
	err := c.rc.Read(c.rawStep)
	c.rawMode = false
	return err == nil && c.rawNext == rawSlow
}

// step is serveRaw's RawConn.Read callback: true leaves the read.
func (c *conn) step(fd uintptr) bool {
	c.fd = fd
	br := c.br
	for {
		if br.Buffered() == 0 {
			if !c.drained {
				_, err := br.Peek(1)
				if err == syscall.EAGAIN {
					c.drained = true
				} else if err != nil {
					return true // end of stream or a failed read
				}
			}
			if br.Buffered() == 0 {
				// Nothing arrived since the socket was emptied, and the
				// poller keeps any edge since: wait for the next request.
				c.drained = false
				c.armIdle()
				return false
			}
		}
		b, _ := br.Peek(br.Buffered())
		if len(b) < 2 || b[0] == '\r' || b[0] == '\n' || bytes.Index(b, headEnd) < 0 {
			// A head in pieces, or leading empty lines: serveOne reads
			// it as it comes, with its deadline.
			c.rawNext = rawSlow
			return true
		}
		if !c.state.CompareAndSwap(stateIdle, stateActive) {
			return true // Shutdown closed it
		}
		if !c.readRequestHead() {
			return true
		}
		if h := &c.head; h.chunked || h.expect || h.length > int64(br.Buffered()) {
			c.headReady = true
			c.rawNext = rawSlow
			return true
		}
		if !c.serveRequest() {
			return true
		}
	}
}
