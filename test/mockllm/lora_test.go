package mockllm

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/gpu/scrape"
)

// With adapters, /metrics has vLLM's lora_requests_info, which the agent's
// scraper reads: with --max-loras 1 a request for a second adapter waits
// while the first adapter's request runs, and a base-model request is no
// adapter.
func TestLoRARequestsInfo(t *testing.T) {
	s := New(Config{TokensPerSecond: 20, LoRAs: []string{"sql-lora", "chat-de"}, MaxLoRAs: 1})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, model := range []string{"sql-lora", "chat-de", DefaultName} {
		body := `{"model":"` + model + `","max_tokens":200,"messages":[{"role":"user","content":"hi"}]}`
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/chat/completions", strings.NewReader(body))
		go func() {
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		time.Sleep(50 * time.Millisecond) // in this order
	}
	var m scrape.Metrics
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(ts.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		m, err = scrape.Parse(resp.Body, scrape.Auto)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if m.LoRA != nil && slices.Equal(m.LoRA.Running, []string{"sql-lora"}) && slices.Equal(m.LoRA.Waiting, []string{"chat-de"}) && m.LoRA.Max == 1 {
			return
		}
	}
	t.Fatalf("lora info %+v, want sql-lora running, chat-de waiting, max 1", m.LoRA)
}

// Without adapters there is no lora_requests_info.
func TestNoLoRAInfoWithoutAdapters(t *testing.T) {
	s := New(Config{})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m, err := scrape.Parse(resp.Body, scrape.Auto)
	if err != nil || m.LoRA != nil {
		t.Fatalf("%v %+v", err, m.LoRA)
	}
}
