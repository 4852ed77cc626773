package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/test/mockllm"
)

// TestBadKeyBeforeBodyGets401: a client that uploads a 1 MiB prompt with
// a wrong key, and reads only once it has sent it all (as the OpenAI SDK
// does), gets the 401 and its error body, not a reset connection.
func TestBadKeyBeforeBodyGets401(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	c, err := net.Dial("tcp", strings.TrimPrefix(h.ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(waitDeadline))
	body := chatBody(strings.Repeat("many words of a long prompt ", (1<<20)/28), "")
	fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-wrong-key-0123456789\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	for off := 0; off < len(body); off += 64 << 10 {
		if _, err := c.Write([]byte(body[off:min(off+64<<10, len(body))])); err != nil {
			t.Fatalf("sending the body after %d bytes: %v", off, err)
		}
		time.Sleep(time.Millisecond)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d; want 401", resp.StatusCode)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the error body: %v", err)
	}
	if typ, _ := decodeError(t, b); typ == "" {
		t.Fatal("401 without an error body")
	}
}
