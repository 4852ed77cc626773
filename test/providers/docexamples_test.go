package providers

// The providers' own published examples (testdata/<provider>, sources in
// testdata/README.md) run through the real translators and the stand-ins:
// a documented answer must decode into the right chat completion, a
// documented request must pass the stand-in's strict checks, and what the
// translator sends must have the documented request's shape.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/infergate/infergate/l7/translate/anthropicout"
	"github.com/infergate/infergate/l7/translate/azure"
	"github.com/infergate/infergate/l7/translate/bedrock"
	"github.com/infergate/infergate/l7/translate/gemini"
	"github.com/infergate/infergate/l7/translate/outbound"
)

const (
	docAKID   = "AKIDEXAMPLE"
	docSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serveFixture answers every request with body as the provider would.
func serveFixture(t *testing.T, contentType string, body []byte) string {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(body)
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

// checkAnswer asserts the chat completion decoded from a documented answer.
func checkAnswer(t *testing.T, st int, cr ChatResponse, text, finish string, prompt, completion int64) {
	t.Helper()
	if st != 200 || len(cr.Choices) != 1 || cr.Choices[0].Message.Content == nil {
		t.Fatalf("status %d: %+v", st, cr)
	}
	c := cr.Choices[0]
	if *c.Message.Content != text || c.Message.Role != "assistant" || c.FinishReason != finish {
		t.Fatalf("got %q (%s) finish %q; want %q finish %q", *c.Message.Content, c.Message.Role, c.FinishReason, text, finish)
	}
	if cr.Usage == nil || cr.Usage.PromptTokens != prompt || cr.Usage.CompletionTokens != completion || cr.Usage.TotalTokens != prompt+completion {
		t.Fatalf("usage %+v, want %d+%d", cr.Usage, prompt, completion)
	}
}

// TestDocAnthropicResponse: the Messages API reference's example answer
// and its streaming example decode into the text, finish reason and usage
// they state.
func TestDocAnthropicResponse(t *testing.T) {
	var doc struct {
		Content []struct{ Text string }
		Usage   struct{ InputTokens, OutputTokens int64 } `json:"usage"`
	}
	raw := fixture(t, "anthropic/messages_response.json")
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	rt := &outbound.Transport{T: &anthropicout.Translator{BaseURL: serveFixture(t, "application/json", raw), Key: outbound.StaticSecret("k")}, Base: http.DefaultTransport}
	st, cr := Whole(t, rt, `{"model":"claude-3-7-sonnet-20250219","messages":[{"role":"user","content":"Hello, Claude"}]}`)
	checkAnswer(t, st, cr, doc.Content[0].Text, "stop", 10, 41)

	rt = &outbound.Transport{T: &anthropicout.Translator{BaseURL: serveFixture(t, "text/event-stream", fixture(t, "anthropic/messages_stream.sse")), Key: outbound.StaticSecret("k")}, Base: http.DefaultTransport}
	st, res := Stream(t, rt, `{"model":"claude-3-5-sonnet-20241022","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hello"}]}`)
	if st != 200 || res.Err != nil || res.Text != "Hello!" || res.Finish != "stop" || !res.Done {
		t.Fatalf("%d %+v", st, res)
	}
	// message_start's input_tokens 25; message_delta's output_tokens 15 is
	// the total, not an increment on message_start's 1.
	if res.Usage["prompt_tokens"] != float64(25) || res.Usage["completion_tokens"] != float64(15) {
		t.Fatalf("usage %v", res.Usage)
	}
}

// TestDocAnthropicRequest: the stand-in accepts the reference's request
// with every documented field it shows (thinking, tool_choice's
// disable_parallel_tool_use, a tool's cache_control, metadata), and
// the translator's request for the same chat has the documented shape.
func TestDocAnthropicRequest(t *testing.T) {
	s := NewAnthropic("sk-ant-doc")
	ts := httptest.NewServer(s)
	defer ts.Close()
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/messages", bytes.NewReader(fixture(t, "anthropic/messages_request.json")))
	req.Header.Set("x-api-key", "sk-ant-doc")
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("content-type", "application/json")
	mustAccept(t, req)

	rt := &outbound.Transport{T: &anthropicout.Translator{BaseURL: ts.URL, Key: outbound.StaticSecret("sk-ant-doc")}, Base: http.DefaultTransport}
	s.Always(Reply{Text: "ok"})
	if st, _ := Whole(t, rt, `{"model":"claude-3-7-sonnet-20250219","max_tokens":1024,"temperature":1,"top_p":0.7,"stop":["END"],
		"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Hello, Claude"}],
		"tools":[{"type":"function","function":{"name":"get_weather","description":"Get the current weather in a given location","parameters":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}}}]}`); st != 200 {
		t.Fatal(st)
	}
	body, h, path := s.Last()
	if path != "/v1/messages" || h.Get("x-api-key") != "sk-ant-doc" || h.Get("anthropic-version") != "2023-06-01" || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("%s %v", path, h)
	}
	sameShape(t, fixture(t, "anthropic/messages_request.json"), body, []string{"model", "max_tokens", "messages", "system", "tools", "temperature", "top_p", "stop_sequences"})
}

// TestDocBedrockResponse: the Converse example answer, and ConverseStream
// events in the reference's shapes, framed in the event-stream encoding.
func TestDocBedrockResponse(t *testing.T) {
	var doc struct {
		Output struct {
			Message struct{ Content []struct{ Text string } }
		}
	}
	raw := fixture(t, "bedrock/converse_response.json")
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	tr := func(url string) *outbound.Transport {
		return &outbound.Transport{T: &bedrock.Translator{BaseURL: url, Region: "us-east-1", Credentials: bedrock.StaticCredentials{AccessKeyID: docAKID, SecretAccessKey: docSecret}}, Base: http.DefaultTransport}
	}
	st, cr := Whole(t, tr(serveFixture(t, "application/json", raw)), `{"model":"amazon.nova-pro-v1:0","messages":[{"role":"user","content":"What are the top 3 AWS services for data analytics?"}]}`)
	checkAnswer(t, st, cr, doc.Output.Message.Content[0].Text, "stop", 45, 98)

	var events []struct {
		Event   string          `json:"event"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(fixture(t, "bedrock/converse_stream_events.json"), &events); err != nil {
		t.Fatal(err)
	}
	var framed []byte
	for _, e := range events {
		framed = append(framed, EncodeEvent([][2]string{{":event-type", e.Event}, {":content-type", "application/json"}, {":message-type", "event"}}, e.Payload)...)
	}
	st, res := Stream(t, tr(serveFixture(t, "application/vnd.amazon.eventstream", framed)), `{"model":"amazon.nova-pro-v1:0","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}`)
	if st != 200 || res.Err != nil || res.Text != "Top 3 AWS services for data analytics" || res.Finish != "length" || !res.Done ||
		res.Usage["prompt_tokens"] != float64(45) || res.Usage["completion_tokens"] != float64(98) {
		t.Fatalf("%d %+v", st, res)
	}
}

// TestDocBedrockRequest: the stand-in accepts the Converse example request
// (signed with SigV4 as an SDK would), and the translator's request for
// the same chat has its shape.
func TestDocBedrockRequest(t *testing.T) {
	s := NewBedrock(docAKID, docSecret, "us-east-1")
	ts := httptest.NewServer(s)
	defer ts.Close()
	body := fixture(t, "bedrock/converse_request.json")
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/model/amazon.nova-pro-v1:0/converse", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: docAKID, SecretAccessKey: docSecret}, req, hash, "bedrock", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	mustAccept(t, req)

	rt := &outbound.Transport{T: &bedrock.Translator{BaseURL: ts.URL, Region: "us-east-1", Credentials: bedrock.StaticCredentials{AccessKeyID: docAKID, SecretAccessKey: docSecret}}, Base: http.DefaultTransport}
	s.Always(Reply{Text: "ok"})
	if st, _ := Whole(t, rt, `{"model":"amazon.nova-pro-v1:0","max_tokens":512,"temperature":0.7,"top_p":0.9,
		"messages":[{"role":"system","content":"You are a helpful AWS expert. Keep answers concise and technical."},{"role":"user","content":"What are the top 3 AWS services for data analytics?"}]}`); st != 200 {
		t.Fatal(st)
	}
	got, h, path := s.Last()
	if !strings.HasPrefix(path, "/model/amazon.nova-pro-v1") || !strings.HasSuffix(path, "/converse") || !strings.HasPrefix(h.Get("Authorization"), "AWS4-HMAC-SHA256 ") || h.Get("X-Amz-Date") == "" {
		t.Fatalf("%s %v", path, h)
	}
	sameShape(t, body, got, []string{"messages", "system", "inferenceConfig"})
}

// TestDocGeminiResponse: a streamGenerateContent?alt=sse answer as Google
// serves it (a last part holding only a thoughtSignature, usage only in
// the last chunk, trafficType and createTime beside it) and the same
// answer whole decode to the text, finish reason and usage it states.
func TestDocGeminiResponse(t *testing.T) {
	tr := func(url string) *outbound.Transport {
		return &outbound.Transport{T: &gemini.Translator{BaseURL: url, Key: outbound.StaticSecret("k")}, Base: http.DefaultTransport}
	}
	st, res := Stream(t, tr(serveFixture(t, "text/event-stream", fixture(t, "gemini/stream.sse"))), `{"model":"gemini-3.1-flash-lite-preview","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hello"}]}`)
	if st != 200 || res.Err != nil || res.Text != "Hello! How can I help you today?" || res.Finish != "stop" || !res.Done ||
		res.Usage["prompt_tokens"] != float64(1) || res.Usage["completion_tokens"] != float64(9) {
		t.Fatalf("%d %+v", st, res)
	}
	st, cr := Whole(t, tr(serveFixture(t, "application/json", fixture(t, "gemini/generate_response.json"))), `{"model":"gemini-3.1-flash-lite-preview","messages":[{"role":"user","content":"Hello"}]}`)
	checkAnswer(t, st, cr, "Hello! How can I help you today?", "stop", 1, 9)
}

// TestDocGeminiRequest: the stand-in accepts the documented requests (a
// single turn without a role, generationConfig with topK; a multi-turn
// chat), and the translator's request for the same chat has their shape.
func TestDocGeminiRequest(t *testing.T) {
	s := NewGemini("AIza-doc")
	ts := httptest.NewServer(s)
	defer ts.Close()
	for _, f := range []string{"gemini/generate_request.json", "gemini/multiturn_request.json"} {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1beta/models/gemini-2.0-flash:generateContent", bytes.NewReader(fixture(t, f)))
		req.Header.Set("x-goog-api-key", "AIza-doc")
		req.Header.Set("Content-Type", "application/json")
		mustAccept(t, req)
	}
	rt := &outbound.Transport{T: &gemini.Translator{BaseURL: ts.URL, Key: outbound.StaticSecret("AIza-doc")}, Base: http.DefaultTransport}
	s.Always(Reply{Text: "ok"})
	if st, _ := Whole(t, rt, `{"model":"gemini-2.0-flash","max_tokens":800,"temperature":1,"top_p":0.8,"stop":["Title"],"messages":[{"role":"user","content":"Explain how AI works"}]}`); st != 200 {
		t.Fatal(st)
	}
	got, h, path := s.Last()
	if path != "/v1beta/models/gemini-2.0-flash:generateContent" || h.Get("x-goog-api-key") != "AIza-doc" {
		t.Fatalf("%s %v", path, h)
	}
	sameShape(t, fixture(t, "gemini/generate_request.json"), got, []string{"contents", "generationConfig"})
}

// TestDocAzure: the stand-in accepts the documented request at the
// documented path, what the transport sends has its shape, and the
// documented answer passes through to the client intact.
func TestDocAzure(t *testing.T) {
	s := NewAzure("az-doc", false, "gpt-4o")
	ts := httptest.NewServer(s)
	defer ts.Close()
	body := fixture(t, "azure/chat_request.json")
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", bytes.NewReader(body))
	req.Header.Set("api-key", "az-doc")
	req.Header.Set("Content-Type", "application/json")
	mustAccept(t, req)

	rt := &azure.Transport{BaseURL: ts.URL, APIVersion: "2024-10-21", Key: outbound.StaticSecret("az-doc"), Base: http.DefaultTransport}
	s.Always(Reply{Text: "Paris"})
	if st, _ := Whole(t, rt, `{"model":"gpt-4o","temperature":0.7,"max_tokens":100,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"What is the capital of France?"}]}`); st != 200 {
		t.Fatal(st)
	}
	got, h, path := s.Last()
	if path != "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21" || h.Get("api-key") != "az-doc" {
		t.Fatalf("%s %v", path, h)
	}
	// The reference's request body also has an optional model (the
	// deployment decides), which the OpenAI SDK sends too.
	sameShape(t, body, got, []string{"messages", "temperature", "max_tokens", "model"})

	rt = &azure.Transport{BaseURL: serveFixture(t, "application/json", fixture(t, "azure/chat_response.json")), APIVersion: "2024-10-21", Key: outbound.StaticSecret("az-doc"), Base: http.DefaultTransport}
	st, cr := Whole(t, rt, `{"model":"gpt-4o","messages":[{"role":"user","content":"Hello"}]}`)
	checkAnswer(t, st, cr, "\n\nHello there, how may I assist you today?", "stop", 9, 12)
}

// mustAccept sends a documented request straight to a stand-in, which must
// answer 200.
func mustAccept(t *testing.T, req *http.Request) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		var e bytes.Buffer
		_, _ = e.ReadFrom(resp.Body)
		t.Fatalf("stand-in refused the provider's documented request: %d %s", resp.StatusCode, e.String())
	}
}

// sameShape compares the translator's request with the documented one:
// every key listed is present in both, with the same JSON kind all the way
// down (for objects, the documented object's keys; for arrays, the first
// element), and the translator sends no top-level key the documented
// request's API does not have among those listed or in the document.
func sameShape(t *testing.T, doc []byte, got map[string]any, keys []string) {
	t.Helper()
	var want map[string]any
	if err := json.Unmarshal(doc, &want); err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{}
	for k := range want {
		allowed[k] = true
	}
	for _, k := range keys {
		allowed[k] = true
		if _, ok := want[k]; !ok {
			continue
		}
		if _, ok := got[k]; !ok {
			t.Errorf("documented field %q missing from the translator's request", k)
			continue
		}
		if d := shapeDiff(k, want[k], got[k]); d != "" {
			t.Errorf("shape differs from the documented request: %s", d)
		}
	}
	var extra []string
	for k := range got {
		if !allowed[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("translator sends fields the documented request does not show: %v", extra)
	}
}

// eitherStringOrBlocks are the paths whose reference allows a plain
// string or an array of content blocks (Anthropic's content and system):
// the example shows one, a translator may send the other.
var eitherStringOrBlocks = map[string]bool{"messages[0].content": true, "system": true}

func shapeDiff(path string, want, got any) string {
	if eitherStringOrBlocks[path] && (kind(got) == "string" || kind(got) == "array") {
		return ""
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return path + ": object documented, got " + kind(got)
		}
		for k, v := range w {
			gv, ok := g[k]
			if !ok {
				// Optional members the chat did not ask for (e.g. a
				// tool's cache_control) need not appear.
				continue
			}
			if d := shapeDiff(path+"."+k, v, gv); d != "" {
				return d
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			return path + ": array documented, got " + kind(got)
		}
		if len(w) > 0 && len(g) > 0 {
			return shapeDiff(path+"[0]", w[0], g[0])
		}
	default:
		if kind(want) != kind(got) {
			return path + ": " + kind(want) + " documented, got " + kind(got)
		}
	}
	return ""
}

func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case nil:
		return "null"
	}
	return "?"
}
