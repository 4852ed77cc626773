package h1

import (
	"bufio"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func parseString(t testing.TB, s string) (*head, error) {
	t.Helper()
	h := &head{header: http.Header{}}
	var raw []byte
	err := readHead(bufio.NewReaderSize(strings.NewReader(s), 64), DefaultMaxHeaderBytes, &raw, h)
	return h, err
}

func statusOf(err error) int {
	var pe *parseError
	if errors.As(err, &pe) {
		return pe.status
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestReadHeadRejects: every malformed or ambiguous head is refused with
// the status the server sends (never parsed into a request), the cases
// request smuggling relies on among them.
func TestReadHeadRejects(t *testing.T) {
	long := strings.Repeat("a", DefaultMaxHeaderBytes)
	cases := []struct {
		name, in string
		status   int
	}{
		{"both lengths and chunked", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"chunked then length", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400},
		{"two different lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
		{"length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400},
		{"negative length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400},
		{"plus length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400},
		{"hex length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", 400},
		{"huge length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
		{"empty length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400},
		{"space in length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400},
		{"obs-fold tab", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", 400},
		{"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", 400},
		{"no colon", "GET / HTTP/1.1\r\nHost: a\r\nnocolon\r\n\r\n", 400},
		{"bad name char", "GET / HTTP/1.1\r\nHost: a\r\nX(A): v\r\n\r\n", 400},
		{"nul in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n", 400},
		{"bare cr in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", 400},
		{"bare lf line end", "GET / HTTP/1.1\nHost: a\n\n", 400},
		{"bare lf in headers", "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400},
		{"te not chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"te chunked list", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
		{"te twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
		{"te identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 501},
		{"te in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"no host 1.1", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"bad host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
		{"http/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
		{"http/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505},
		{"lower proto", "GET / http/1.1\r\nHost: a\r\n\r\n", 400},
		{"missing proto", "GET /\r\nHost: a\r\n\r\n", 400},
		{"extra space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"bad method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"expect other", "POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417},
		{"head too large", "GET / HTTP/1.1\r\nHost: a\r\nX: " + long + "\r\n\r\n", 431},
		{"target too large", "GET /" + long + " HTTP/1.1\r\nHost: a\r\n\r\n", 431},
		{"too many fields", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: y\r\n", maxHeaderCount+1) + "\r\n", 431},
		{"many empty lines", strings.Repeat("\r\n", maxLeadingEmptyLines+1) + "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseString(t, c.in)
			if got := statusOf(err); got != c.status {
				t.Fatalf("status %d (err %v), want %d", got, err, c.status)
			}
		})
	}
}

// TestReadHeadAccepts: well-formed heads parse into the fields a handler
// reads, with canonical keys and trimmed values.
func TestReadHeadAccepts(t *testing.T) {
	h, err := parseString(t, "\r\nPOST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: example.com:8080\r\n"+
		"content-length: 12\r\nauthorization:  Bearer sk-1 \t\r\nx-custom-thing: a\r\nX-Custom-Thing: b\r\n"+
		"Connection: keep-alive, Close\r\nexpect: 100-Continue\r\nContent-Length: 12\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if h.method != "POST" || h.target != "/v1/chat/completions?x=1" || h.major != 1 || h.minor != 1 {
		t.Fatalf("request line: %+v", h)
	}
	if h.host != "example.com:8080" || h.length != 12 || !h.close || !h.expect || h.chunked {
		t.Fatalf("framing: host %q length %d close %v expect %v chunked %v", h.host, h.length, h.close, h.expect, h.chunked)
	}
	if got := h.header.Get("Authorization"); got != "Bearer sk-1" {
		t.Fatalf("Authorization %q", got)
	}
	if got := h.header.Values("X-Custom-Thing"); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("X-Custom-Thing %q", got)
	}
	if _, ok := h.header["Host"]; ok {
		t.Fatal("Host left in the header map")
	}

	h, err = parseString(t, "POST /x HTTP/1.0\r\nTransfer-encoding: x\r\n\r\n")
	if statusOf(err) != 501 {
		t.Fatalf("1.0 with unknown TE: %v", err)
	}
	h, err = parseString(t, "GET / HTTP/1.0\r\n\r\n")
	if err != nil || h.minor != 0 || h.length != -1 || h.host != "" {
		t.Fatalf("HTTP/1.0 without Host: %v %+v", err, h)
	}
	h, err = parseString(t, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n")
	if err != nil || !h.chunked || h.length != -1 {
		t.Fatalf("chunked: %v %+v", err, h)
	}
}

// TestCanonicalKey agrees with net/http for valid names.
func TestCanonicalKey(t *testing.T) {
	for _, k := range []string{"content-type", "CONTENT-TYPE", "x-api-key", "X-Request-Id", "x-stainless-os",
		"a", "foo-bar-baz", "FOO_bar", "x-" + strings.Repeat("y", 100), "WWW-authenticate"} {
		if got, want := canonicalKey(k), http.CanonicalHeaderKey(k); got != want {
			t.Errorf("canonicalKey(%q) = %q, want %q", k, got, want)
		}
	}
}

// FuzzReadHead: the parser never panics; whatever it accepts has a valid
// method, a target without spaces or controls, valid header names and
// values, at most one framing, and net/http's own parser accepts it too
// with the same method, target, host and length.
func FuzzReadHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"GET http://a/b?c HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parseString(t, s)
		if err != nil {
			return
		}
		if !validName(h.method) || h.target == "" || strings.ContainsAny(h.target, " \t\r\n\x00") {
			t.Fatalf("accepted bad request line: %+v", h)
		}
		if h.chunked && h.length >= 0 {
			t.Fatal("accepted both framings")
		}
		for k, vv := range h.header {
			if !validName(k) || k != http.CanonicalHeaderKey(k) {
				t.Fatalf("bad key %q", k)
			}
			for _, v := range vv {
				if !validValue(v) || v != TrimOWS(v) {
					t.Fatalf("bad value %q", v)
				}
			}
		}
		var u url.URL
		if parseURL(h.target, h.method, &u) != nil {
			return // the server refuses the target
		}
		host := h.host
		if u.Host != "" {
			host = u.Host // absolute form: the target's host wins (RFC 9112 3.2.2)
		}
		ref, rerr := http.ReadRequest(bufio.NewReader(strings.NewReader(s)))
		if rerr != nil {
			t.Fatalf("accepted what net/http refuses (%v): %q", rerr, s)
		}
		if ref.Method != h.method || ref.RequestURI != h.target || ref.Host != host {
			t.Fatalf("differs from net/http: %q %q %q vs %q %q %q", ref.Method, ref.RequestURI, ref.Host, h.method, h.target, host)
		}
		if !h.chunked && h.length >= 0 && ref.ContentLength != h.length {
			t.Fatalf("length %d, net/http %d", h.length, ref.ContentLength)
		}
		if h.chunked != (len(ref.TransferEncoding) == 1) {
			t.Fatalf("chunked %v, net/http %q", h.chunked, ref.TransferEncoding)
		}
	})
}
