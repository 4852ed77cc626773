package gateway

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
	"unsafe"

	"github.com/infergate/infergate/l7/h1"
)

// Reading a backend's response on a pooled connection, in place of
// http.ReadResponse: the gateway needs the status, three header fields
// (Content-Type, Retry-After, X-Request-Id) and the body's framing, and the response,
// its header map and its body readers live in the connection, so a
// response costs no allocation beyond the strings of those two fields. The
// framing rules are net/http's, strict where a lax reading would let a
// backend desynchronise the connection: both Content-Length and
// Transfer-Encoding, differing lengths, or an unknown transfer coding fail
// the response and the connection is not reused.

// Bounds of a backend response head.
const (
	maxUpstreamHeadBytes = 64 << 10
	// maxUpstreamInterim bounds the 1xx responses skipped before the final one.
	maxUpstreamInterim = 8
)

var (
	errUpstreamHead    = errors.New("malformed upstream response head")
	errUpstreamFraming = errors.New("ambiguous upstream response framing")
	errUpstreamChunk   = errors.New("malformed upstream chunked body")
	errUpstreamCut     = errors.New("upstream body ended early")
)

// upResponse is the reusable response state of one pooled connection.
type upResponse struct {
	resp   http.Response
	header http.Header
	vals   [3]string
	length lengthBody
	chunks chunkedBody
	eof    eofBody
}

// readResponse reads one response head from br and points resp.Body at a
// reader of its body (not yet wrapped for pooling). reusable reports
// whether the connection can carry another request once the body is read
// to its end.
func (u *upResponse) readResponse(br *bufio.Reader) (resp *http.Response, body io.Reader, reusable bool, err error) {
	if u.header == nil {
		u.header = http.Header{}
	}
	for range maxUpstreamInterim + 1 {
		clear(u.header)
		u.resp = http.Response{Header: u.header, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
		var h upHead
		if err := h.read(br, u); err != nil {
			return nil, nil, false, err
		}
		r := &u.resp
		r.StatusCode = h.status
		r.Status = http.StatusText(h.status)
		if h.status >= 100 && h.status < 200 && h.status != http.StatusSwitchingProtocols {
			continue // interim response (103 Early Hints and the like)
		}
		reusable = !h.close && h.minor >= 1 || h.keepAlive
		switch {
		case h.status == http.StatusNoContent || h.status == http.StatusNotModified || h.status < 200:
			r.ContentLength = 0
			body = http.NoBody
		case h.chunked:
			r.ContentLength = -1
			u.chunks = chunkedBody{br: br}
			body = &u.chunks
		case h.length >= 0:
			r.ContentLength = h.length
			u.length = lengthBody{br: br, n: h.length}
			body = &u.length
		default:
			// Delimited by the close of the connection.
			r.ContentLength = -1
			reusable = false
			u.eof = eofBody{br: br}
			body = &u.eof
		}
		r.Close = !reusable
		return r, body, reusable, nil
	}
	return nil, nil, false, errUpstreamHead
}

// upHead is what a response head says about framing.
type upHead struct {
	status    int
	minor     int
	length    int64
	chunked   bool
	close     bool
	keepAlive bool
	nLength   int
}

func (h *upHead) read(br *bufio.Reader, u *upResponse) error {
	h.length = -1
	total := 0
	line, err := readUpLine(br, &total)
	if err != nil {
		return err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < len("HTTP/1.x 200") || line[:7] != "HTTP/1." || line[8] != ' ' ||
		(line[7] != '0' && line[7] != '1') || len(line) > 12 && line[12] != ' ' {
		return errUpstreamHead
	}
	h.minor = int(line[7] - '0')
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return errUpstreamHead
		}
		h.status = h.status*10 + int(c-'0')
	}
	if h.status < 100 {
		return errUpstreamHead
	}
	nvals := 0
	for {
		line, err := readUpLine(br, &total)
		if err != nil {
			return err
		}
		if line == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || name[0] == ' ' || name[0] == '\t' || strings.IndexByte(name, ' ') >= 0 || strings.IndexByte(name, '\t') >= 0 {
			return errUpstreamHead
		}
		value = h1.TrimOWS(value)
		// The length first: most fields are none of these, and
		// EqualFold does not compare lengths before the bytes.
		switch {
		case len(name) == len("Content-Length") && strings.EqualFold(name, "Content-Length"):
			n, ok := h1.ParseLength(value)
			if !ok || h.nLength > 0 && n != h.length {
				return errUpstreamFraming
			}
			h.nLength++
			h.length = n
		case len(name) == len("Transfer-Encoding") && strings.EqualFold(name, "Transfer-Encoding"):
			if h.chunked || !strings.EqualFold(value, "chunked") {
				return errUpstreamFraming
			}
			h.chunked = true
		case len(name) == len("Connection") && strings.EqualFold(name, "Connection"):
			for tok := range strings.SplitSeq(value, ",") {
				tok = h1.TrimOWS(tok)
				h.close = h.close || strings.EqualFold(tok, "close")
				h.keepAlive = h.keepAlive || strings.EqualFold(tok, "keep-alive")
			}
		case len(name) == len("Content-Type") && strings.EqualFold(name, "Content-Type"):
			if nvals < len(u.vals) {
				u.vals[nvals] = internContentType(value)
				u.header["Content-Type"] = u.vals[nvals : nvals+1 : nvals+1]
				nvals++
			}
		case len(name) == len("X-Request-Id") && strings.EqualFold(name, "X-Request-Id"):
			if nvals < len(u.vals) && validRequestID(value) {
				u.vals[nvals] = strings.Clone(value)
				u.header["X-Request-Id"] = u.vals[nvals : nvals+1 : nvals+1]
				nvals++
			}
		case len(name) == len("Retry-After") && strings.EqualFold(name, "Retry-After"):
			if nvals < len(u.vals) {
				u.vals[nvals] = strings.Clone(value)
				u.header["Retry-After"] = u.vals[nvals : nvals+1 : nvals+1]
				nvals++
			}
		}
	}
	if h.chunked && h.nLength > 0 {
		return errUpstreamFraming
	}
	return nil
}

// readUpLine returns one CRLF- (or LF-) terminated line without its end,
// counting it against the head's bound. The string aliases br's buffer:
// valid until the next read.
func readUpLine(br *bufio.Reader, total *int) (string, error) {
	b, err := br.ReadSlice('\n')
	*total += len(b)
	if *total > maxUpstreamHeadBytes || errors.Is(err, bufio.ErrBufferFull) {
		return "", errUpstreamHead
	}
	if err != nil {
		if err == io.EOF {
			return "", io.ErrUnexpectedEOF
		}
		return "", err
	}
	b = b[:len(b)-1]
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	return unsafeString(b), nil
}

// internContentType returns the common content types without allocating.
func internContentType(v string) string {
	switch v {
	case "application/json":
		return "application/json"
	case "text/event-stream":
		return "text/event-stream"
	case "text/event-stream; charset=utf-8":
		return "text/event-stream; charset=utf-8"
	case "application/json; charset=utf-8":
		return "application/json; charset=utf-8"
	}
	return strings.Clone(v)
}

func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// lengthBody reads a Content-Length body.
type lengthBody struct {
	br *bufio.Reader
	n  int64
}

func (b *lengthBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.br.Read(p)
	b.n -= int64(n)
	if b.n == 0 {
		return n, io.EOF
	}
	if err == io.EOF {
		err = errUpstreamCut
	}
	return n, err
}

// eofBody reads a body that ends when the connection closes.
type eofBody struct{ br *bufio.Reader }

func (b *eofBody) Read(p []byte) (int, error) { return b.br.Read(p) }

// chunkedBody reads a chunked body (chunk extensions and trailers are
// read and dropped).
type chunkedBody struct {
	br   *bufio.Reader
	left int64 // bytes left in the current chunk
	in   bool  // inside a chunk (its data and CRLF not yet all read)
	done bool
	err  error
}

func (b *chunkedBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

func (b *chunkedBody) read(p []byte) (int, error) {
	if !b.in {
		total := 0
		line, err := readUpLine(b.br, &total)
		if err != nil {
			return 0, upstreamBodyErr(err)
		}
		// Upstream servers are more lenient than clients may be: a size
		// may be followed by whitespace as well as by an extension.
		size, end, ok := h1.ParseChunkSize(line)
		if !ok || end < len(line) && line[end] != ';' && line[end] != ' ' && line[end] != '\t' {
			return 0, errUpstreamChunk
		}
		if size == 0 {
			for {
				line, err := readUpLine(b.br, &total)
				if err != nil {
					return 0, upstreamBodyErr(err)
				}
				if line == "" {
					b.done = true
					return 0, io.EOF
				}
			}
		}
		b.left, b.in = size, true
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
	b.left -= int64(n)
	if err != nil {
		return n, upstreamBodyErr(err)
	}
	if b.left == 0 {
		end, err := b.br.Peek(2)
		if err != nil {
			return n, upstreamBodyErr(err)
		}
		if end[0] != '\r' || end[1] != '\n' {
			return n, errUpstreamChunk
		}
		_, _ = b.br.Discard(2)
		b.in = false
	}
	return n, nil
}

func upstreamBodyErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errUpstreamCut
	}
	return err
}
