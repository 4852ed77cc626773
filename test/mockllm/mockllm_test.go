package mockllm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func post(t *testing.T, url, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestChatWhole(t *testing.T) {
	s := New(Config{MaxTokens: 5})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	resp := post(t, ts.URL+"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hello there"}]}`)
	defer resp.Body.Close()
	var out struct {
		Choices []struct{ Message struct{ Content string } }
		Usage   *Usage
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.Choices[0].Message.Content != Text(5) {
		t.Fatalf("content %q", out.Choices[0].Message.Content)
	}
	if out.Usage == nil || out.Usage.CompletionTokens != 5 || out.Usage.PromptTokens != 3 {
		t.Fatalf("usage %+v", out.Usage)
	}
	rec, ok := s.LastRequest()
	if !ok || !strings.Contains(rec.Body, "hello there") || rec.Path != "/v1/chat/completions" {
		t.Fatalf("recorded %+v", rec)
	}
}

// readStream returns the data payloads of an SSE response.
func readStream(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

func TestStreamUsage(t *testing.T) {
	for _, tc := range []struct {
		name      string
		omit, ask bool
		wantUsage bool
	}{{"asked", false, true, true}, {"not asked", false, false, false}, {"omitted", true, true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(New(Config{OmitUsage: tc.omit}).Handler())
			defer ts.Close()
			body := `{"model":"m","stream":true,"max_tokens":4,"messages":[{"role":"user","content":"hi"}]`
			if tc.ask {
				body += `,"stream_options":{"include_usage":true}`
			}
			resp := post(t, ts.URL+"/v1/chat/completions", body+"}")
			defer resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Fatalf("content type %q", ct)
			}
			events := readStream(t, resp.Body)
			if events[len(events)-1] != "[DONE]" {
				t.Fatalf("no [DONE]: %v", events)
			}
			var text strings.Builder
			var usage *Usage
			for _, e := range events[:len(events)-1] {
				var c struct {
					Choices []struct{ Delta struct{ Content string } }
					Usage   *Usage
				}
				if err := json.Unmarshal([]byte(e), &c); err != nil {
					t.Fatal(err)
				}
				for _, ch := range c.Choices {
					text.WriteString(ch.Delta.Content)
				}
				if c.Usage != nil {
					usage = c.Usage
				}
			}
			if text.String() != Text(4) {
				t.Fatalf("text %q", text.String())
			}
			if (usage != nil) != tc.wantUsage || (usage != nil && usage.CompletionTokens != 4) {
				t.Fatalf("usage %+v", usage)
			}
		})
	}
}

func TestCompletionsEmbeddingsModels(t *testing.T) {
	ts := httptest.NewServer(New(Config{Name: "mx"}).Handler())
	defer ts.Close()
	resp := post(t, ts.URL+"/v1/completions", `{"model":"mx","prompt":"a b c","max_tokens":3}`)
	var c struct {
		Object  string
		Choices []struct{ Text string }
		Usage   Usage
	}
	_ = json.NewDecoder(resp.Body).Decode(&c)
	resp.Body.Close()
	if c.Object != "text_completion" || c.Choices[0].Text != Text(3) || c.Usage.PromptTokens != 3 {
		t.Fatalf("completion %+v", c)
	}
	resp = post(t, ts.URL+"/v1/embeddings", `{"model":"mx","input":["a","b c"]}`)
	var e struct {
		Data  []struct{ Embedding []float64 }
		Usage Usage
	}
	_ = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if len(e.Data) != 2 || len(e.Data[0].Embedding) != embeddingDims {
		t.Fatalf("embeddings %+v", e)
	}
	mresp, err := http.Get(ts.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if !strings.Contains(string(b), `"id":"mx"`) {
		t.Fatalf("models %s", b)
	}
}

// TestQueueing: with one slot, a second request waits for the first, so its
// time to first token includes the first one's generation, and /metrics shows
// it waiting meanwhile.
func TestQueueing(t *testing.T) {
	s := New(Config{GPUs: 1, Batch: 1, TTFT: 150 * time.Millisecond})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	var wg sync.WaitGroup
	durations := make([]time.Duration, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			resp := post(t, ts.URL+"/v1/chat/completions", `{"model":"m","max_tokens":1,"messages":[]}`)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			durations[i] = time.Since(start)
		}()
	}
	deadline := time.Now().Add(time.Second)
	var metrics string
	for time.Now().Before(deadline) {
		resp, err := http.Get(ts.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		metrics = string(b)
		if strings.Contains(metrics, `vllm:num_requests_waiting{model_name="mock-model"} 1`) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(metrics, `vllm:num_requests_running{model_name="mock-model"} 1`) ||
		!strings.Contains(metrics, `vllm:num_requests_waiting{model_name="mock-model"} 1`) ||
		!strings.Contains(metrics, `vllm:kv_cache_usage_perc{model_name="mock-model"} 1`) {
		t.Fatalf("metrics never showed one running and one waiting:\n%s", metrics)
	}
	wg.Wait()
	slow := max(durations[0], durations[1])
	if slow < 300*time.Millisecond {
		t.Fatalf("queued request took %v, want >= 2*TTFT", slow)
	}
}

func TestFailures(t *testing.T) {
	s := New(Config{})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	s.SetFailure(Failure{Status: 429, Count: 1})
	resp := post(t, ts.URL+"/v1/chat/completions", `{"model":"m","messages":[]}`)
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d", resp.StatusCode)
	}
	resp = post(t, ts.URL+"/v1/chat/completions", `{"model":"m","messages":[]}`)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("failure did not heal after Count: %d", resp.StatusCode)
	}

	s.SetFailure(Failure{BreakAfter: 2})
	resp = post(t, ts.URL+"/v1/chat/completions", `{"model":"m","stream":true,"max_tokens":10,"messages":[]}`)
	events := readStream(t, resp.Body)
	resp.Body.Close()
	if len(events) != 3 { // role chunk + 2 content chunks, then the cut
		t.Fatalf("broken stream events %v", events)
	}

	s.SetFailure(Failure{Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/chat/completions", strings.NewReader(`{"messages":[]}`))
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("hung request answered")
	}
	deadline := time.Now().Add(2 * time.Second)
	for s.Stats().Canceled < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := s.Stats().Canceled; got != 2 { // the cut stream and the hung request
		t.Fatalf("canceled %d, want 2", got)
	}

	s.SetFailure(Failure{})
	resp = post(t, ts.URL+"/v1/chat/completions", `{"model":`)
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("malformed JSON got %d", resp.StatusCode)
	}
}

// TestCancelMidStream: a client that leaves mid-stream is seen as canceled.
func TestCancelMidStream(t *testing.T) {
	s := New(Config{TokensPerSecond: 50})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/chat/completions",
		strings.NewReader(`{"stream":true,"max_tokens":1000,"messages":[]}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	deadline := time.Now().Add(2 * time.Second)
	for s.Stats().Canceled == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := s.Stats(); st.Canceled != 1 || st.Running != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCountFieldsMatchesBytesFields(t *testing.T) {
	for _, s := range []string{"", " ", "a", " a ", "a b\tc\nd", "  two  words  ", "x\u00a0y", "x\u2003y\u3000z",
		"\xff bad \xfe", "héllo wörld", "\u0085lead", "tail\u2028", strings.Repeat("word ", 1000)} {
		if got, want := countFields([]byte(s)), len(bytes.Fields([]byte(s))); got != want {
			t.Errorf("countFields(%q) = %d; bytes.Fields gives %d", s, got, want)
		}
	}
}

func FuzzCountFields(f *testing.F) {
	f.Add([]byte("a b\u00a0c\xffd"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := countFields(b), len(bytes.Fields(b)); got != want {
			t.Fatalf("countFields(%q) = %d; bytes.Fields gives %d", b, got, want)
		}
	})
}
