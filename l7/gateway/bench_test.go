package gateway

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/infergate/infergate/test/mockllm"
)

// BenchmarkChat measures the whole gateway path over loopback HTTP against
// the mock, with auth, inspection, counting and limits on.
func BenchmarkChat(b *testing.B) {
	for _, size := range []int{68, 4096} {
		b.Run("body="+strconv.Itoa(size), func(b *testing.B) {
			m := newMock(b, mockllm.Config{})
			c := inspectionPolicy(m)
			c.Gateway.Audit.LogPrompts = false
			h := newHarness(b, c, Options{})
			prompt := strings.Repeat("The quarterly report shows steady growth in every region. ", size/50+1)[:max(1, size-110)]
			body := chatBody(prompt, "")
			b.SetBytes(int64(len(body)))
			postParallel(b, h, body)
		})
	}
}

// BenchmarkChatStream: a 64-token stream through the gateway (usage
// requested upstream and stripped, every chunk parsed and flushed).
func BenchmarkChatStream(b *testing.B) {
	m := newMock(b, mockllm.Config{})
	c := inspectionPolicy(m)
	c.Gateway.Audit.LogPrompts = false
	h := newHarness(b, c, Options{})
	body := chatBody("Tell me a story.", `,"stream":true,"max_tokens":64`)
	postParallel(b, h, body)
}

// benchConnsPerHost keeps a keep-alive connection per parallel client
// goroutine so the benchmark measures requests, not connection setup.
const benchConnsPerHost = 64

// postParallel posts body as a chat completion from parallel goroutines
// until b.N requests are done, reading every response to its end.
func postParallel(b *testing.B, h *harness, body string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchConnsPerHost}}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", h.ts.URL+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+testKey)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
