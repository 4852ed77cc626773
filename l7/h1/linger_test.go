package h1

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestEarlyResponseNotReset: a handler answers 401 (or 413) at once
// without reading a 1 MiB body that the client sends in pieces, as an SDK
// uploads; the client, which reads only once it has sent everything, must
// get that response, status and body, not a reset, on the raw path and on
// the fallback.
func TestEarlyResponseNotReset(t *testing.T) {
	const bodySize = 1 << 20
	for _, noWatch := range []bool{false, true} {
		for _, status := range []int{http.StatusUnauthorized, http.StatusRequestEntityTooLarge} {
			msg := fmt.Sprintf(`{"error":"status %d"}`, status)
			_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(status)
				w.Write([]byte(msg))
			}), func(s *Server) { s.noWatch = noWatch })
			c := dial(t, addr)
			c.send(fmt.Sprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer bad\r\nContent-Length: %d\r\n\r\n", bodySize))
			piece := strings.Repeat("a", 64<<10)
			var werr error
			for sent := 0; sent < bodySize && werr == nil; sent += len(piece) {
				_, werr = c.c.Write([]byte(piece))
				time.Sleep(2 * time.Millisecond)
			}
			if werr != nil {
				t.Errorf("noWatch=%v status %d: sending the body: %v", noWatch, status, werr)
			}
			resp, body := c.response("POST")
			if resp.StatusCode != status || body != msg {
				t.Fatalf("noWatch=%v: got %d %q; want %d %q", noWatch, resp.StatusCode, body, status, msg)
			}
		}
	}
}
