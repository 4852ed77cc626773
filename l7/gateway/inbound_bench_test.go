package gateway

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/test/mockllm"
)

// inboundBench is one inbound API's request to the same model.
type inboundBench struct {
	api, path string
	hdr       map[string]string
	body      func(prompt, extra string) string
}

var inboundBenches = []inboundBench{
	{"chat", "/v1/chat/completions", map[string]string{"Authorization": "Bearer " + testKey},
		func(p, extra string) string { return chatBody(p, extra) }},
	{"messages", "/v1/messages", anthropicHeaders(testKey), func(p, extra string) string {
		return `{"model":"` + testModel + `","system":"You are terse.","messages":[{"role":"user","content":` + js(p) + `}]` + extra + `}`
	}},
	{"responses", "/v1/responses", map[string]string{"Authorization": "Bearer " + testKey}, func(p, extra string) string {
		return `{"model":"` + testModel + `","instructions":"You are terse.","input":` + js(p) + strings.ReplaceAll(extra, "max_tokens", "max_output_tokens") + `}`
	}},
}

func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// BenchmarkInbound compares the translated APIs with the chat path in the
// same run, through the whole gateway over loopback HTTP against the mock
// (auth, inspection, counting, limits on): requests/s with 4 KB prompts
// answered whole (16 tokens), and, one stream at a time, the time to the
// first byte and per streamed chunk of a 64-token stream.
func BenchmarkInbound(b *testing.B) {
	prompt := strings.Repeat("The quarterly report shows steady growth in every region. ", 4096/58+1)[:4000]
	for _, ib := range inboundBenches {
		b.Run("api="+ib.api+"/whole-4KB", func(b *testing.B) {
			h := benchHarness(b)
			body := ib.body(prompt, `,"max_tokens":16`)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchConnsPerHost}}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := benchPost(client, h, ib, body, nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		})
		b.Run("api="+ib.api+"/stream-64", func(b *testing.B) {
			h := benchHarness(b)
			body := ib.body("Tell me a story.", `,"max_tokens":64,"stream":true`)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			var ttft, rest time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				var t0, first time.Time
				t0 = time.Now()
				if err := benchPost(client, h, ib, body, &first); err != nil {
					b.Fatal(err)
				}
				ttft += first.Sub(t0)
				rest += time.Since(first)
			}
			b.ReportMetric(float64(ttft.Microseconds())/float64(b.N), "ttft-µs")
			b.ReportMetric(float64(rest.Microseconds())/float64(b.N)/64, "µs/chunk")
		})
	}
}

func benchHarness(b *testing.B) *harness {
	m := newMock(b, mockllm.Config{})
	c := inspectionPolicy(m)
	c.Gateway.Audit.LogPrompts = false
	return newHarness(b, c, Options{})
}

// benchPost posts one request and reads the answer to its end; first, if
// given, is set when the first byte of the body arrives.
func benchPost(client *http.Client, h *harness, ib inboundBench, body string, first *time.Time) error {
	req, _ := http.NewRequest("POST", h.ts.URL+ib.path, strings.NewReader(body))
	for k, v := range ib.hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &statusError{resp.StatusCode}
	}
	if first != nil {
		br := bufio.NewReader(resp.Body)
		if _, err := br.Peek(1); err != nil {
			return err
		}
		*first = time.Now()
		_, err = io.Copy(io.Discard, br)
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

type statusError struct{ status int }

func (e *statusError) Error() string { return "status " + http.StatusText(e.status) }
