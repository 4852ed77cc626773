package h1

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// response is the connection's http.ResponseWriter, reused per request. A
// body up to bodyBufferSize is held back until the handler returns, so the
// head carries its Content-Length and head and body leave in one write; a
// larger body or a Flush sends the head with chunked encoding (or, to an
// HTTP/1.0 client, ends the body by closing the connection).
type response struct {
	c      *conn
	req    *http.Request
	header http.Header
	status int
	// wroteHeader: WriteHeader was called (explicitly or by Write).
	wroteHeader bool
	// headSent: the head is in the write buffer.
	headSent bool
	chunked  bool
	// closeAfter ends the connection after this response.
	closeAfter bool
	// broken: a write failed, or the handler panicked mid-body; the
	// connection cannot carry another response.
	broken   bool
	noBody   bool  // HEAD, 204, 304: no body bytes go out
	declared int64 // the handler's Content-Length, or -1
	written  int64 // body bytes accepted from the handler
	buf      []byte
	// raw holds header lines added through RawHeader.
	raw []byte
	num [24]byte
}

var (
	_ http.ResponseWriter = (*response)(nil)
	_ http.Flusher        = (*response)(nil)
)

func (w *response) reset(r *http.Request) {
	clear(w.header)
	*w = response{c: w.c, req: r, header: w.header, declared: -1, buf: w.buf[:0], raw: w.raw[:0],
		closeAfter: r.Close}
}

func (w *response) Header() http.Header { return w.header }

// RawHeader returns the response's buffer of extra header lines, each
// "Name: value\r\n", sent after the fields of Header(). It spares a hot
// path the header map (a map entry, a value slice and often a string per
// field). The server does not check these lines: the handler must append
// valid names, values without CR or LF, and no framing field
// (Content-Length, Transfer-Encoding, Connection). Lines appended after the
// head went out are not sent.
func (w *response) RawHeader() *[]byte { return &w.raw }

func (w *response) WriteHeader(code int) {
	if w.wroteHeader || w.broken {
		return
	}
	if code < 100 || code > 999 {
		panic("h1: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		if w.req.ProtoMinor >= 1 { // HTTP/1.0 has no interim responses
			w.writeInterim(code)
		}
		return
	}
	w.wroteHeader = true
	w.status = code
	if v := w.header["Content-Length"]; len(v) > 0 {
		if n, ok := ParseLength(strings.TrimSpace(v[0])); ok {
			w.declared = n
		}
	}
	if v := w.header["Connection"]; len(v) > 0 && hasToken(v[0], "close") {
		w.closeAfter = true
	}
	w.noBody = w.req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified
}

// writeInterim sends a 1xx response at once (103 Early Hints and the like).
func (w *response) writeInterim(code int) {
	bw := w.c.bw
	_, _ = bw.WriteString("HTTP/1.1 ")
	_, _ = bw.WriteString(statusLine(code))
	w.writeFields(false)
	_, _ = bw.WriteString("\r\n")
	if bw.Flush() != nil {
		w.broken = true
	}
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.broken {
		return 0, http.ErrHandlerTimeout
	}
	if w.status == http.StatusNoContent || w.status == http.StatusNotModified {
		return 0, http.ErrBodyNotAllowed
	}
	if w.declared >= 0 && w.written+int64(len(p)) > w.declared {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.noBody {
		return len(p), nil
	}
	if !w.headSent {
		if len(w.buf)+len(p) <= bodyBufferSize {
			w.buf = append(w.buf, p...)
			return len(p), nil
		}
		if err := w.startBody(); err != nil {
			return 0, err
		}
	}
	if err := w.writeBody(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// startBody sends the head for a body of unknown length, then what was held
// back.
func (w *response) startBody() error {
	switch {
	case w.declared >= 0:
	case w.req.ProtoMinor >= 1:
		w.chunked = true
	default:
		w.closeAfter = true // an HTTP/1.0 body of unknown length ends at close
	}
	w.writeHead(w.declared)
	held := w.buf
	w.buf = w.buf[:0]
	return w.writeBody(held)
}

func (w *response) writeBody(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	bw := w.c.bw
	if w.chunked {
		_, _ = bw.Write(strconv.AppendInt(w.num[:0], int64(len(p)), 16))
		_, _ = bw.WriteString("\r\n")
	}
	_, err := bw.Write(p)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	if err != nil {
		w.broken = true
		return err
	}
	return nil
}

// Flush sends the head and everything written so far.
func (w *response) Flush() { _ = w.FlushError() }

// FlushError is Flush with its error (http.ResponseController uses it).
func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.broken {
		return http.ErrHandlerTimeout
	}
	if !w.headSent {
		if err := w.startBody(); err != nil {
			return err
		}
	}
	if err := w.c.bw.Flush(); err != nil {
		w.broken = true
		return err
	}
	return nil
}

// SetReadDeadline is for http.ResponseController: it bounds the reads of
// the request body. Once no body byte is left to come from the socket (the
// body was read, or sits whole in the read buffer) there is nothing for it
// to bound, and it returns without touching the socket; this saves the
// gateway's set-and-clear pair on every small request.
func (w *response) SetReadDeadline(t time.Time) error {
	c := w.c
	b := &c.body
	if b.done || !b.chunked && b.remaining <= int64(c.br.Buffered()) {
		return nil
	}
	return c.setReadDeadline(t)
}

// SetWriteDeadline is for http.ResponseController. A connection with a
// write deadline writes through the poller, which keeps to it, instead of
// raw (sink).
func (w *response) SetWriteDeadline(t time.Time) error {
	w.c.writeDeadline = !t.IsZero()
	return w.c.rwc.SetWriteDeadline(t)
}

// OnDisconnect arranges for f to run once if the client goes away while
// the handler runs (at once if it already has), after the request's
// context is cancelled; a later call replaces f. It is context.AfterFunc
// on the request's context without the allocations: the gateway arms one
// per upstream attempt.
func (w *response) OnDisconnect(f func()) {
	c := w.c
	if c.peerGone.Load() {
		c.wmu.Lock()
		c.hook, c.hookFired = nil, true
		c.wmu.Unlock()
		f()
		return
	}
	c.wmu.Lock()
	c.hook, c.hookFired = f, false
	c.wmu.Unlock()
}

// StopDisconnect undoes OnDisconnect. It reports false if f has already
// been called (or is running).
func (w *response) StopDisconnect() bool {
	c := w.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	fired := c.hookFired
	c.hook, c.hookFired = nil, false
	return !fired
}

// discardBuffered drops a held-back body (a panic before the head went out).
func (w *response) discardBuffered() {
	w.buf = w.buf[:0]
	w.raw = w.raw[:0]
	w.written = 0
	w.wroteHeader = false
	clear(w.header)
	w.declared = -1
}

// finish completes the response after the handler returned and reports
// whether the connection can carry another request.
func (w *response) finish() bool {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.broken {
		return false
	}
	switch {
	case !w.headSent:
		n := int64(len(w.buf))
		if w.noBody {
			n = w.written
		}
		if w.declared >= 0 && w.declared != n {
			w.closeAfter = true // short body: the client must not wait for more
			n = w.declared
		}
		w.writeHead(n)
		if err := w.writeBody(w.buf); err != nil {
			return false
		}
		w.buf = w.buf[:0]
	case w.chunked:
		_, _ = w.c.bw.WriteString("0\r\n\r\n")
	case w.declared >= 0 && w.written < w.declared:
		w.closeAfter = true
	}
	if len(w.buf) > bodyBufferSize {
		w.buf = nil
	}
	if cap(w.raw) > maxKeptRawHeader {
		w.raw = nil
	}
	if err := w.c.bw.Flush(); err != nil {
		return false
	}
	return !w.closeAfter
}

// writeHead puts the status line and fields in the write buffer. length is
// the Content-Length to send (-1: none; chunked or close-delimited).
func (w *response) writeHead(length int64) {
	w.headSent = true
	c := w.c
	if !c.body.done && !c.body.canDiscard() {
		w.closeAfter = true // the rest of the body is not worth reading
	}
	if c.srv.inShutdown.Load() {
		w.closeAfter = true
	}
	bw := c.bw
	_, _ = bw.WriteString("HTTP/1.1 ")
	_, _ = bw.WriteString(statusLine(w.status))
	w.writeFields(true)
	_, _ = bw.Write(w.raw)
	if _, ok := w.header["Date"]; !ok {
		_, _ = bw.Write(c.srv.dateHeader(time.Now()))
	}
	bodyless := w.status == http.StatusNoContent || w.status == http.StatusNotModified || w.status < 200
	switch {
	case bodyless:
	case w.chunked:
		_, _ = bw.WriteString("Transfer-Encoding: chunked\r\n")
	case length >= 0:
		_, _ = bw.WriteString("Content-Length: ")
		_, _ = bw.Write(strconv.AppendInt(w.num[:0], length, 10))
		_, _ = bw.WriteString("\r\n")
	}
	switch {
	case w.closeAfter:
		_, _ = bw.WriteString("Connection: close\r\n")
	case w.req.ProtoMinor == 0:
		_, _ = bw.WriteString("Connection: keep-alive\r\n")
	}
	_, _ = bw.WriteString("\r\n")
}

// writeFields writes the handler's header fields. With framing true the
// fields the server sets itself are left out. Invalid names are dropped and
// CR or LF in a value become spaces, so a handler cannot split the
// response.
func (w *response) writeFields(framing bool) {
	bw := w.c.bw
	for k, vv := range w.header {
		if framing && (k == "Content-Length" || k == "Transfer-Encoding" || k == "Connection") {
			continue
		}
		if !validName(k) {
			continue
		}
		for _, v := range vv {
			_, _ = bw.WriteString(k)
			_, _ = bw.WriteString(": ")
			if hasCRLF(v) {
				v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
			}
			_, _ = bw.WriteString(TrimOWS(v))
			_, _ = bw.WriteString("\r\n")
		}
	}
}

func hasCRLF(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '\r' || c == '\n' {
			return true
		}
	}
	return false
}

// statusLines holds "<code> <reason>\r\n" for the codes net/http knows.
var statusLines = func() (t [600]string) {
	for code := range t {
		if text := http.StatusText(code); text != "" {
			t[code] = strconv.Itoa(code) + " " + text + "\r\n"
		}
	}
	return t
}()

func statusLine(code int) string {
	if code >= 0 && code < len(statusLines) && statusLines[code] != "" {
		return statusLines[code]
	}
	return strconv.Itoa(code) + " status code " + strconv.Itoa(code) + "\r\n"
}

func appendInt(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }

// hasToken reports whether a comma-separated header value lists tok.
func hasToken(v, tok string) bool {
	for t := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(TrimOWS(t), tok) {
			return true
		}
	}
	return false
}
