package outbound_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/infergate/infergate/l7/translate/anthropicout"
	"github.com/infergate/infergate/l7/translate/gemini"
	"github.com/infergate/infergate/l7/translate/outbound"
)

// canned answers every provider request with one body, so that the
// benchmarks measure the translation, not a network.
type canned []byte

func (c canned) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(c)), Request: r}, nil
}

func chatRequest(stream bool) string {
	prompt, _ := json.Marshal(strings.Repeat("The quarterly report shows steady growth in every region. ", 70)[:4000])
	s := ""
	if stream {
		s = `,"stream":true`
	}
	return `{"model":"m","max_tokens":16` + s + `,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":` + string(prompt) + `}]}`
}

// sse is a provider stream of n events made by event(i), then last.
func sse(n int, event func(i int) string, last string) canned {
	var b strings.Builder
	for i := range n {
		b.WriteString("data: " + event(i) + "\n\n")
	}
	b.WriteString(last)
	return canned(b.String())
}

func benchTransport(b *testing.B, t outbound.Translator, answer canned, body string) {
	rt := &outbound.Transport{T: t, Base: answer}
	buf := make([]byte, 32<<10)
	b.ReportAllocs()
	for range b.N {
		req, _ := http.NewRequest(http.MethodPost, "http://gw/v1/chat/completions", strings.NewReader(body))
		resp, err := rt.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatal(resp.StatusCode, err)
		}
		for {
			if _, err := resp.Body.Read(buf); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
		resp.Body.Close()
	}
}

// BenchmarkTransport: a 4 KB chat request through a provider kind's
// translation and its answer back, whole and as a 64-event stream (the
// stream's per-event work is what the chunk reuse keeps allocation-free).
func BenchmarkTransport(b *testing.B) {
	key := outbound.StaticSecret("k")
	anth := &anthropicout.Translator{BaseURL: "http://p", Key: key}
	gem := &gemini.Translator{BaseURL: "http://p", Key: key}
	b.Run("anthropic/whole", func(b *testing.B) {
		benchTransport(b, anth, canned(`{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"Growth."}],"stop_reason":"end_turn","usage":{"input_tokens":900,"output_tokens":2}}`), chatRequest(false))
	})
	b.Run("anthropic/stream64", func(b *testing.B) {
		benchTransport(b, anth, sse(64, func(i int) string {
			if i == 0 {
				return `{"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":900}}}`
			}
			return `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" the"}}`
		}, "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":63}}\n\ndata: {\"type\":\"message_stop\"}\n\n"), chatRequest(true))
	})
	b.Run("gemini/whole", func(b *testing.B) {
		benchTransport(b, gem, canned(`{"candidates":[{"content":{"role":"model","parts":[{"text":"Growth."}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":900,"candidatesTokenCount":2},"responseId":"r1"}`), chatRequest(false))
	})
	b.Run("gemini/stream64", func(b *testing.B) {
		benchTransport(b, gem, sse(64, func(i int) string {
			return `{"candidates":[{"content":{"role":"model","parts":[{"text":" the"}]}}],"responseId":"r1"}`
		}, "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\".\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":900,\"candidatesTokenCount\":64},\"responseId\":\"r1\"}\n\n"), chatRequest(true))
	})
}
