package gateway

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/test/mockllm"
)

// TestDeclaredBodyCostsNothingUntilSent: authenticated clients declare
// large bodies and send one byte each; the gateway must not allocate the
// declared size before the bytes arrive (it did: 4 MiB per connection).
// The count stays within the listener's body budget, so only the gateway's
// own buffers are measured.
func TestDeclaredBodyCostsNothingUntilSent(t *testing.T) {
	const (
		clients  = 12
		declared = 4 << 20
		// Generous against 48 MiB: buffers, goroutines, runtime slack.
		maxGrowth = 16 << 20
	)
	m := newMock(t, mockllm.Config{})
	h := newHarness(t, basePolicy(pool("p", m)), Options{BodyReadTimeout: time.Minute})
	addr := strings.TrimPrefix(h.ts.URL, "http://")
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range clients {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", testKey, declared)
	}
	// The handlers reach the body within moments; a buffer sized by the
	// declared length would show by then.
	var growth int64
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline) && growth <= maxGrowth; {
		time.Sleep(50 * time.Millisecond)
		runtime.GC()
		runtime.ReadMemStats(&after)
		growth = int64(after.HeapInuse) - int64(before.HeapInuse)
	}
	if growth > maxGrowth {
		t.Fatalf("heap in use grew %d MiB for %d bodies of %d MiB declared and 1 byte sent; want at most %d MiB",
			growth>>20, clients, declared>>20, maxGrowth>>20)
	}
}
