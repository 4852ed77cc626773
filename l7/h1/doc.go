// Package h1 serves HTTP/1.1 keep-alive connections to an http.Handler with
// less work per request than net/http's server: the connection's goroutine
// reads, runs the handler and writes; the request, its header map and the
// response writer are reused from one request to the next on a connection;
// a small response goes out in a single write with its Content-Length; a
// request that arrives whole is read with one system call and no failed
// read before it (serveRaw); and the client going away is learnt from the
// process's close watcher (rawsock.Watcher), not from a goroutine reading
// the connection (net/http starts one for every request; here that is the
// fallback for a socket the watcher cannot take, and only for a request
// still running after disconnectCheckDelay).
//
// It speaks HTTP/1.0 and HTTP/1.1 only (no TLS, HTTP/2 or Upgrade), is
// strict where leniency would allow request smuggling (both Content-Length
// and Transfer-Encoding, differing lengths, obs-fold, invalid names or
// values, bare LF line ends all get 400 and a closed connection), and
// bounds the head (MaxHeaderBytes, ReadHeaderTimeout) and idle keep-alive
// time (IdleTimeout).
//
// What one client or a shortage may cost is bounded too. Running out of
// file descriptors does not end Serve: it waits (5 ms, doubling to 1 s)
// and accepts again, as net/http does, and Serving and Err tell a health
// check whether a listener is still accepting. Connections are capped per
// server (MaxConns) and per client address (MaxConnsPerAddr, an IPv6
// client by its /64); one over a cap is reset at once and counted, since
// an answer would cost the descriptor and the time the cap exists to
// save. A connection that has never sent a request waits for it only
// FirstRequestTimeout (by default ReadHeaderTimeout's 10 s, as net/http),
// not the keep-alive IdleTimeout. The request bodies being received are
// bounded together (MaxBodyBytesInFlight, by declared length, until read
// or the handler returns): clients that declare large bodies and send
// nothing cannot make handlers that size buffers by Content-Length hold
// memory for bytes that never come. Over the budget the server answers
// 503 with Retry-After at once rather than queueing: a wait would hold
// the connection and the client's upload anyway, and the budget is
// spent by bodies that take a long time to arrive, so a queue would move
// slowly; a body larger than the whole budget gets 413.
//
// A response sent before the request was read whole (a 401 or 413 before
// the body, a parse error) must reach a client that reads only after
// sending: closing with unread bytes would reset the connection and
// destroy the response. Such a connection is half-closed and what the
// client still sends is read and dropped, up to 4 MiB or 1 s, before it
// closes (net/http reads up to 256 KiB, then waits 500 ms without
// reading, which resets a client still uploading more than the socket
// buffers hold).
package h1
