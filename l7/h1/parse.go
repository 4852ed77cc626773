package h1

import (
	"bufio"
	"net/http"
	"net/url"
	"strings"
)

// Parser bounds.
const (
	// maxHeaderCount bounds the header fields of one request (the byte
	// limit bounds them too; this keeps the value slices small).
	maxHeaderCount = 256
	// maxContentLengthDigits keeps a Content-Length inside int64.
	maxContentLengthDigits = 18
	// maxChunkSizeDigits keeps a chunk size inside int64.
	maxChunkSizeDigits = 15
	// maxLeadingEmptyLines bounds the empty lines tolerated before a
	// request line.
	maxLeadingEmptyLines = 4
)

// parseError is a request the server answers with status and then closes
// the connection on.
type parseError struct {
	status int
	msg    string
}

func (e *parseError) Error() string { return e.msg }

func badRequest(msg string) *parseError { return &parseError{status: http.StatusBadRequest, msg: msg} }

var (
	errHeaderTooLarge  = &parseError{status: http.StatusRequestHeaderFieldsTooLarge, msg: "request header too large"}
	errBadVersion      = &parseError{status: http.StatusHTTPVersionNotSupported, msg: "unsupported HTTP version"}
	errUnsupportedTE   = &parseError{status: http.StatusNotImplemented, msg: "unsupported transfer encoding"}
	errExpectation     = &parseError{status: http.StatusExpectationFailed, msg: "unsupported expectation"}
	errBadLineEnd      = badRequest("malformed line ending")
	errObsFold         = badRequest("obsolete header line folding")
	errBadHeaderName   = badRequest("invalid header field name")
	errBadHeaderValue  = badRequest("invalid header field value")
	errBadRequestLine  = badRequest("malformed request line")
	errBadMethod       = badRequest("invalid method")
	errBadTarget       = badRequest("invalid request target")
	errBadLength       = badRequest("invalid Content-Length")
	errLengthAndChunks = badRequest("both Content-Length and Transfer-Encoding")
	errHost            = badRequest("missing or repeated Host header")
	errTooManyHeaders  = &parseError{status: http.StatusRequestHeaderFieldsTooLarge, msg: "too many header fields"}
)

// head is one parsed request head. Strings point into one allocation per
// request (text), so a request costs a single string for all its header
// bytes.
type head struct {
	method    string
	target    string
	proto     string
	major     int
	minor     int
	header    http.Header
	host      string
	length    int64 // -1: none given
	chunked   bool
	close     bool // the client asked for the connection to end
	keepAlive bool // HTTP/1.0 "Connection: keep-alive"
	expect    bool // Expect: 100-continue
	nHost     int
	nLength   int
	nTE       int
	// vals backs the header's value slices (one element each, capacity
	// capped so an append by a handler copies instead of overwriting).
	vals []string
}

// readHead reads one request head from br: the request line and header
// fields up to the empty line, at most limit bytes in all. raw is scratch
// for lines longer than br's buffer; the head's strings do not alias it.
func readHead(br *bufio.Reader, limit int, raw *[]byte, h *head) error {
	buf := (*raw)[:0]
	empty := 0
	// Gather the whole head first so its strings share one allocation.
	for {
		line, err := br.ReadSlice('\n')
		if len(buf)+len(line) > limit {
			return errHeaderTooLarge
		}
		buf = append(buf, line...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			// End of stream or a timeout mid-head: nothing to answer.
			*raw = buf
			return err
		}
		// A complete line; the head ends at an empty one. A client may
		// send empty lines before the request line (RFC 9112 2.2).
		n := len(buf)
		if n == 2 && buf[0] == '\r' {
			if empty++; empty > maxLeadingEmptyLines {
				*raw = buf
				return errBadRequestLine
			}
			buf = buf[:0]
			continue
		}
		if n >= 4 && buf[n-2] == '\r' && (buf[n-3] == '\n' && buf[n-4] == '\r') {
			break
		}
		if n == 1 || (n >= 2 && buf[n-2] != '\r') {
			*raw = buf
			return errBadLineEnd
		}
	}
	*raw = buf
	return parseHead(string(buf), h)
}

// parseHead parses a complete head (every line ends in CRLF, the last
// line is empty).
func parseHead(text string, h *head) error {
	h.length = -1
	line, rest, _ := strings.Cut(text, "\r\n")
	if err := parseRequestLine(line, h); err != nil {
		return err
	}
	nvals := strings.Count(rest, "\r\n")
	if nvals > maxHeaderCount+1 {
		return errTooManyHeaders
	}
	if cap(h.vals) < nvals {
		h.vals = make([]string, nvals)
	}
	vals := h.vals[:nvals]
	for {
		line, rest, _ = strings.Cut(rest, "\r\n")
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errObsFold
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return errBadHeaderName
		}
		name := line[:colon]
		if !validName(name) {
			return errBadHeaderName
		}
		value := TrimOWS(line[colon+1:])
		if !validValue(value) {
			return errBadHeaderValue
		}
		key := canonicalKey(name)
		if err := h.special(key, value); err != nil {
			return err
		}
		if key == "Host" {
			continue // in Request.Host, as net/http does
		}
		if old, ok := h.header[key]; ok {
			h.header[key] = append(old, value)
		} else {
			vals[0] = value
			h.header[key] = vals[:1:1]
			vals = vals[1:]
		}
	}
	if h.nTE > 0 {
		if h.nLength > 0 {
			return errLengthAndChunks
		}
		if h.major == 1 && h.minor == 0 {
			return badRequest("Transfer-Encoding in an HTTP/1.0 request")
		}
	}
	if h.major == 1 && h.minor == 1 && h.nHost != 1 {
		return errHost
	}
	if h.nHost > 1 {
		return errHost
	}
	return nil
}

// special notes the fields that frame the request or steer the connection.
func (h *head) special(key, value string) error {
	switch key {
	case "Host":
		h.nHost++
		if !validHost(value) {
			return badRequest("invalid Host header")
		}
		h.host = value
	case "Content-Length":
		n, ok := ParseLength(value)
		if !ok {
			return errBadLength
		}
		if h.nLength > 0 && n != h.length {
			return errBadLength
		}
		h.nLength++
		h.length = n
	case "Transfer-Encoding":
		h.nTE++
		if h.nTE > 1 || !strings.EqualFold(value, "chunked") {
			return errUnsupportedTE
		}
		h.chunked = true
	case "Connection":
		for tok := range strings.SplitSeq(value, ",") {
			tok = TrimOWS(tok)
			switch {
			case strings.EqualFold(tok, "close"):
				h.close = true
			case strings.EqualFold(tok, "keep-alive"):
				h.keepAlive = true
			}
		}
	case "Expect":
		if !strings.EqualFold(value, "100-continue") {
			return errExpectation
		}
		h.expect = true
	}
	return nil
}

func parseRequestLine(line string, h *head) error {
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 {
		return errBadRequestLine
	}
	if method == "" || !validName(method) {
		return errBadMethod
	}
	switch proto {
	case "HTTP/1.1":
		h.major, h.minor = 1, 1
	case "HTTP/1.0":
		h.major, h.minor = 1, 0
	default:
		if strings.HasPrefix(proto, "HTTP/") && len(proto) == len("HTTP/1.1") {
			return errBadVersion
		}
		return errBadRequestLine
	}
	if target == "" {
		return errBadTarget
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c == 0x7f {
			return errBadTarget
		}
	}
	h.method, h.target, h.proto = internMethod(method), target, proto
	return nil
}

// parseURL turns a request target into u. The common origin form with no
// escapes needs no allocation.
func parseURL(target, method string, u *url.URL) error {
	*u = url.URL{}
	if target[0] == '/' && strings.IndexByte(target, '%') < 0 && !strings.HasPrefix(target, "//") {
		path, query, _ := strings.Cut(target, "?")
		u.Path, u.RawQuery = path, query
		return nil
	}
	if target == "*" {
		if method != http.MethodOptions {
			return errBadTarget
		}
		u.Path = "*"
		return nil
	}
	p, err := url.ParseRequestURI(target)
	if err != nil {
		return errBadTarget
	}
	if target[0] != '/' && (p.Scheme != "http" && p.Scheme != "https" || p.Host == "") {
		return errBadTarget
	}
	*u = *p
	return nil
}

// TrimOWS trims the optional whitespace (spaces and tabs, RFC 9110 5.6.3)
// around a field value or list element, without strings.Trim's cutset
// set-up.
func TrimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// tchar per RFC 9110 5.6.2.
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tchar[s[i]] {
			return false
		}
	}
	return true
}

// validValue: field-content is visible characters, spaces, tabs and
// obs-text; never CR, LF, NUL or other controls.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// validHost rejects hosts with characters no host, port or IPv6 literal
// has (net/http's check, in short).
func validHost(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"#%/<>?@\^`+"`{|}", c) >= 0 {
			return false
		}
	}
	return true
}

// commonKeys are header names returned without allocating.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control",
		"Connection", "Content-Encoding", "Content-Length", "Content-Type", "Cookie", "Expect", "Host",
		"Openai-Organization", "Openai-Project", "Origin", "Referer", "Te", "Trailer", "Transfer-Encoding",
		"Upgrade", "User-Agent", "X-Api-Key", "X-Forwarded-For", "X-Forwarded-Proto", "X-Request-Id",
		"X-Stainless-Lang", "X-Stainless-Os", "X-Stainless-Arch", "X-Stainless-Runtime",
		"X-Stainless-Runtime-Version", "X-Stainless-Package-Version", "X-Stainless-Retry-Count"} {
		m[k] = k
	}
	return m
}()

// canonicalKey is http.CanonicalHeaderKey for a valid name, without an
// allocation for common names.
func canonicalKey(name string) string {
	if k, ok := commonKeys[name]; ok {
		return k
	}
	const maxStack = 64
	if len(name) <= maxStack {
		var b [maxStack]byte
		buf := b[:len(name)]
		upper := true
		for i := 0; i < len(name); i++ {
			c := name[i]
			if upper && 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			} else if !upper && 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			buf[i] = c
			upper = c == '-'
		}
		if k, ok := commonKeys[string(buf)]; ok {
			return k
		}
		if string(buf) == name {
			return name
		}
		return string(buf)
	}
	return http.CanonicalHeaderKey(name)
}

func internMethod(m string) string {
	switch m {
	case http.MethodPost:
		return http.MethodPost
	case http.MethodGet:
		return http.MethodGet
	case http.MethodHead:
		return http.MethodHead
	}
	return m
}
