package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http/httputil"
	"strings"
	"testing"
)

// readChunked decodes s as a chunked body with the server's reader.
func readChunked(s string) ([]byte, error) {
	c := &conn{srv: &Server{}, br: bufio.NewReaderSize(strings.NewReader(s), readBufferSize)}
	c.body.c = c
	c.body.reset(-1, true, false)
	var out bytes.Buffer
	var buf [7]byte // small reads cross chunk boundaries
	for {
		n, err := c.body.read(buf[:])
		out.Write(buf[:n])
		if err == io.EOF {
			return out.Bytes(), nil
		}
		if err != nil {
			return out.Bytes(), err
		}
	}
}

// TestChunkedBody: well-formed bodies decode; malformed sizes, missing
// CRLFs, cut-off bodies and oversized trailers fail.
func TestChunkedBody(t *testing.T) {
	good := []struct{ in, want string }{
		{"0\r\n\r\n", ""},
		{"5\r\nhello\r\n0\r\n\r\n", "hello"},
		{"3;a=b\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n", "abc0123456789"},
		{"000003\r\nabc\r\n0\r\n\r\n", "abc"},
	}
	for _, g := range good {
		got, err := readChunked(g.in)
		if err != nil || string(got) != g.want {
			t.Errorf("%q: %q %v", g.in, got, err)
		}
	}
	bad := []string{
		"",
		"5\r\nhell",
		"5\r\nhelloX\r\n0\r\n\r\n",
		"5\nhello\r\n0\r\n\r\n",
		"x\r\n",
		"\r\n",
		"-1\r\n",
		"5 \r\nhello\r\n0\r\n\r\n",
		"1234567890abcdef0\r\n",
		"3;a\x00\r\nabc\r\n0\r\n\r\n",
		"0\r\nX: " + strings.Repeat("a", DefaultMaxHeaderBytes) + "\r\n\r\n",
		"0\r\n\r",
		"0\r\n folded\r\n\r\n",
	}
	for _, in := range bad {
		if got, err := readChunked(in); err == nil {
			t.Errorf("%q accepted as %q", in, got)
		}
	}
}

// FuzzChunkedBody: whatever the server's chunked reader accepts, net/http's
// reads to the same bytes.
func FuzzChunkedBody(f *testing.F) {
	f.Add("5\r\nhello\r\n0\r\n\r\n")
	f.Add("3;a=b\r\nabc\r\n0\r\nX-T: 1\r\n\r\n")
	f.Add("5\r\nhelloX\r\n0\r\n\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := readChunked(s)
		if err != nil {
			return
		}
		want, rerr := io.ReadAll(httputil.NewChunkedReader(strings.NewReader(s)))
		if rerr != nil || !bytes.Equal(got, want) {
			t.Fatalf("%q: ours %q, net/http %q (%v)", s, got, want, rerr)
		}
	})
}
