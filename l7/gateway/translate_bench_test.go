package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/providers"
)

// benchChunks is the number of content events in each canned stream.
const benchChunks = 64

// cannedProvider answers every request with the same pre-rendered body in
// one provider's wire format, so the benchmark compares what the gateway's
// translation costs, not the stand-ins' own (validating) servers.
type cannedProvider struct {
	ct          string
	whole, strm []byte
}

func (c *cannedProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	// Bedrock and Gemini name the stream in the path, Anthropic and
	// OpenAI in the body.
	stream := strings.Contains(r.URL.Path, "stream") || strings.Contains(r.URL.RawQuery, "alt=sse") || bytes.Contains(body, []byte(`"stream":true`))
	if !stream {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(c.whole)
		return
	}
	w.Header().Set("Content-Type", c.ct)
	_, _ = w.Write(c.strm)
}

func sseEvents(events ...any) []byte {
	var b bytes.Buffer
	for _, e := range events {
		j, _ := json.Marshal(e)
		fmt.Fprintf(&b, "data: %s\n\n", j)
	}
	return b.Bytes()
}

// canned builds the four kinds' answers: the same text in benchChunks
// pieces, a finish and usage.
func canned() map[string]*cannedProvider {
	piece := "word "
	text := strings.Repeat(piece, benchChunks)
	out := map[string]*cannedProvider{}
	// OpenAI chat completions (the peer: no translation).
	var oe []any
	for range benchChunks {
		oe = append(oe, map[string]any{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": piece}, "finish_reason": nil}}})
	}
	oe = append(oe, map[string]any{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": []any{map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": "stop"}}},
		map[string]any{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": []any{}, "usage": map[string]int{"prompt_tokens": 900, "completion_tokens": benchChunks, "total_tokens": 900 + benchChunks}})
	ow, _ := json.Marshal(map[string]any{"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": text}, "finish_reason": "stop"}},
		"usage": map[string]int{"prompt_tokens": 900, "completion_tokens": benchChunks, "total_tokens": 900 + benchChunks}})
	out["openai"] = &cannedProvider{ct: "text/event-stream", whole: ow, strm: append(sseEvents(oe...), "data: [DONE]\n\n"...)}
	// Anthropic Messages.
	ae := []any{map[string]any{"type": "message_start", "message": map[string]any{"id": "msg", "type": "message", "role": "assistant", "model": "m", "content": []any{}, "usage": map[string]int{"input_tokens": 900, "output_tokens": 1}}},
		map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}}}
	for range benchChunks {
		ae = append(ae, map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": piece}})
	}
	ae = append(ae, map[string]any{"type": "content_block_stop", "index": 0}, map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": "end_turn"}, "usage": map[string]int{"output_tokens": benchChunks}},
		map[string]any{"type": "message_stop"})
	aw, _ := json.Marshal(map[string]any{"id": "msg", "type": "message", "role": "assistant", "model": "m", "content": []any{map[string]any{"type": "text", "text": text}},
		"stop_reason": "end_turn", "usage": map[string]int{"input_tokens": 900, "output_tokens": benchChunks}})
	out["anthropic"] = &cannedProvider{ct: "text/event-stream", whole: aw, strm: sseEvents(ae...)}
	// Bedrock Converse / ConverseStream (event-stream framing).
	var bs []byte
	ev := func(typ string, v any) {
		j, _ := json.Marshal(v)
		bs = append(bs, providers.EncodeEvent([][2]string{{":event-type", typ}, {":content-type", "application/json"}, {":message-type", "event"}}, j)...)
	}
	ev("messageStart", map[string]string{"role": "assistant"})
	for range benchChunks {
		ev("contentBlockDelta", map[string]any{"contentBlockIndex": 0, "delta": map[string]string{"text": piece}})
	}
	ev("contentBlockStop", map[string]any{"contentBlockIndex": 0})
	ev("messageStop", map[string]string{"stopReason": "end_turn"})
	ev("metadata", map[string]any{"usage": map[string]int{"inputTokens": 900, "outputTokens": benchChunks, "totalTokens": 900 + benchChunks}})
	bw, _ := json.Marshal(map[string]any{"output": map[string]any{"message": map[string]any{"role": "assistant", "content": []any{map[string]string{"text": text}}}},
		"stopReason": "end_turn", "usage": map[string]int{"inputTokens": 900, "outputTokens": benchChunks, "totalTokens": 900 + benchChunks}})
	out["bedrock"] = &cannedProvider{ct: "application/vnd.amazon.eventstream", whole: bw, strm: bs}
	// Gemini.
	var ge []any
	for i := range benchChunks {
		c := map[string]any{"content": map[string]any{"role": "model", "parts": []any{map[string]string{"text": piece}}}, "index": 0}
		if i == benchChunks-1 {
			c["finishReason"] = "STOP"
		}
		ge = append(ge, map[string]any{"candidates": []any{c}, "usageMetadata": map[string]int{"promptTokenCount": 900, "candidatesTokenCount": i + 1, "totalTokenCount": 901 + i}})
	}
	gw, _ := json.Marshal(map[string]any{"candidates": []any{map[string]any{"content": map[string]any{"role": "model", "parts": []any{map[string]string{"text": text}}}, "finishReason": "STOP", "index": 0}},
		"usageMetadata": map[string]int{"promptTokenCount": 900, "candidatesTokenCount": benchChunks, "totalTokenCount": 900 + benchChunks}})
	out["gemini"] = &cannedProvider{ct: "text/event-stream", whole: gw, strm: sseEvents(ge...)}
	return out
}

// benchGateway is a gateway with one model per kind, each routed to a
// provider of that kind answering canned bodies.
func benchGateway(b *testing.B) *harness {
	c := basePolicy()
	c.Gateway.Models = nil
	kinds := []struct{ name, kind string }{{"openai", policy.ProviderOpenAI}, {"anthropic", policy.ProviderAnthropic}, {"bedrock", policy.ProviderBedrock}, {"gemini", policy.ProviderGemini}}
	cans := canned()
	for i, k := range kinds {
		ts := httptest.NewServer(cans[k.name])
		b.Cleanup(ts.Close)
		p := policy.Provider{Name: k.name, Kind: k.kind, BaseURL: ts.URL, APIKeyEnv: "BENCH_KEY"}
		switch k.kind {
		case policy.ProviderOpenAI:
			p.BaseURL = ts.URL + "/v1"
		case policy.ProviderBedrock:
			p.APIKeyEnv, p.Region = "", "us-east-1"
		}
		c.Gateway.Providers = append(c.Gateway.Providers, p)
		c.Gateway.Models = append(c.Gateway.Models, policy.CompiledModel{Name: "m-" + k.name, Encoding: "o200k_base", Retries: 0,
			Routes: []policy.CompiledRoute{{Pool: -1, Provider: i, Weight: 100, UpstreamModel: "up-" + k.name}}})
	}
	env := map[string]string{"BENCH_KEY": "k", "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "secret"}
	return newHarness(b, c, Options{Getenv: func(k string) string { return env[k] }})
}

// BenchmarkTranslation: what translation to each provider kind adds beside
// the OpenAI-to-OpenAI path in the same run, with 4 KB prompts:
// requests/s of whole answers (parallel clients), and for 64-chunk streams
// the time to the first content chunk and per streamed chunk after it
// (one client, b.N streams).
func BenchmarkTranslation(b *testing.B) {
	h := benchGateway(b)
	prompt := strings.Repeat("The quarterly report shows steady growth in every region. ", 4096/58+1)[:4000]
	pj, _ := json.Marshal(prompt)
	for _, kind := range []string{"openai", "anthropic", "bedrock", "gemini"} {
		whole := `{"model":"m-` + kind + `","messages":[{"role":"user","content":` + string(pj) + `}]}`
		b.Run(kind+"/whole", func(b *testing.B) {
			b.SetBytes(int64(len(whole)))
			postParallel(b, h, whole)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
		stream := `{"model":"m-` + kind + `","stream":true,"messages":[{"role":"user","content":` + string(pj) + `}]}`
		b.Run(kind+"/stream", func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			var ttft, rest time.Duration
			chunks := 0
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				req, _ := http.NewRequest("POST", h.ts.URL+"/v1/chat/completions", strings.NewReader(stream))
				req.Header.Set("Authorization", "Bearer "+testKey)
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				br := bufio.NewReader(resp.Body)
				var first time.Time
				n := 0
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						break
					}
					if bytes.HasPrefix(line, []byte(`data: {`)) && bytes.Contains(line, []byte(`"content":"word`)) {
						if first.IsZero() {
							first = time.Now()
						}
						n++
					}
				}
				end := time.Now()
				resp.Body.Close()
				if n != benchChunks || resp.StatusCode != 200 {
					b.Fatalf("%s: %d content chunks, status %d", kind, n, resp.StatusCode)
				}
				ttft += first.Sub(start)
				rest += end.Sub(first)
				chunks += n - 1
			}
			b.ReportMetric(float64(ttft.Nanoseconds())/float64(b.N), "ttft-ns")
			b.ReportMetric(float64(rest.Nanoseconds())/float64(chunks), "ns/chunk")
		})
	}
}
