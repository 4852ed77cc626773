package h1

import "errors"

// ErrBodyBudget is returned by a chunked request body's Read once the
// bodies the server is receiving would pass MaxBodyBytesInFlight.
var ErrBodyBudget = errors.New("h1: request bodies in flight exceed the server's budget")

func (s *Server) maxBodyBytesInFlight() int64 {
	if s.MaxBodyBytesInFlight != 0 {
		return s.MaxBodyBytesInFlight
	}
	return DefaultMaxBodyBytesInFlight
}

// reserveBody counts n more body bytes in flight for c, unless that would
// pass the budget.
func (c *conn) reserveBody(n int64) bool {
	s := c.srv
	limit := s.maxBodyBytesInFlight()
	if limit < 0 {
		return true
	}
	if s.bodyInFlight.Add(n) > limit {
		s.bodyInFlight.Add(-n)
		return false
	}
	c.reserved += n
	return true
}

// releaseBody gives back what c's body counted for: its end was read, or
// its handler returned.
func (c *conn) releaseBody() {
	if c.reserved != 0 {
		c.srv.bodyInFlight.Add(-c.reserved)
		c.reserved = 0
	}
}

// admitBody reserves the declared length of a body that is still to come
// from the socket, or answers 503 (413 for a body larger than the whole
// budget) and reports false.
func (c *conn) admitBody() bool {
	h := &c.head
	if h.chunked || h.length <= int64(c.br.Buffered()) || c.reserveBody(h.length) {
		return true
	}
	c.srv.bodyRefused.Add(1)
	if h.length > c.srv.maxBodyBytesInFlight() {
		c.writeError(413, "request body larger than the server accepts")
	} else {
		c.writeError(503, "too many request bodies in flight; retry")
	}
	return false
}
