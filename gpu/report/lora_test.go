package report

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/internal/fakeclock"
)

// The whole agent path for LoRA adapters: vLLM's lora_requests_info,
// scraped by a HostSource, served as the host's load report, polled by the
// balancer and handed to the L7 picker with the weights.
func TestLoRAAdaptersReachTheWeights(t *testing.T) {
	src := &HostSource{Host: "gpu-a", Scraper: newScraper(t, vllmServer(t, "vllm_lora.txt"))}
	srv := httptest.NewServer(Handler(src))
	t.Cleanup(srv.Close)
	clk := fakeclock.New(t0)
	var ups updates
	p := newPoller(t, score.Config{}, clk, &ups, Target{Name: "p/a", URL: srv.URL, Neutral: 100})
	p.Round(context.Background())
	if st := p.Status()["p/a"]; st.Error != "" {
		t.Fatal(st.Error)
	}
	w := p.Current()["p/a"]
	run, wait := []string{"chat-de", "sql-lora", "summarize-v2"}, []string{"sql-lora", "tool-call"}
	a := w.Adapters
	if a == nil || !slices.Equal(a.Running, run) || !slices.Equal(a.Waiting, wait) || a.Max != 4 || a.At.After(clk.Now()) || clk.Now().Sub(a.At) > time.Second {
		t.Fatalf("adapters %+v, want running %q waiting %q max 4 measured just before %v (its age rebased on the poller's clock)", a, run, wait, clk.Now())
	}
	if !a.Has("tool-call") || a.IsRunning("tool-call") || a.Has("tool") || a.InUse() != 4 {
		t.Fatalf("Has/IsRunning/InUse wrong on %+v", a)
	}
	if w.Weight == 0 {
		t.Fatal("no weight")
	}
}

// The wire stays compatible both ways: a host without LoRA serves no new
// field (an older balancer reads the same document as before), and a
// report of an older host, or one whose adapter list is malformed, gives
// weights without adapters, not an error.
func TestLoRAWireCompatibility(t *testing.T) {
	get := func(src Source) map[string]json.RawMessage {
		t.Helper()
		srv := httptest.NewServer(Handler(src))
		defer srv.Close()
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		return doc
	}
	plain := get(&HostSource{Host: "gpu-a", Scraper: newScraper(t, vllmServer(t, "vllm_v1.txt"))})
	if _, ok := plain["lora"]; ok {
		t.Fatal("a host without LoRA serves a lora field")
	}
	if string(plain["signals"]) != `["kvCache","waiting","running"]` {
		t.Fatalf("signals %s", plain["signals"])
	}
	lora := get(&HostSource{Host: "gpu-a", Scraper: newScraper(t, vllmServer(t, "vllm_lora.txt"))})
	if string(lora["lora"]) != `{"running":["chat-de","sql-lora","summarize-v2"],"waiting":["sql-lora","tool-call"],"max":4}` {
		t.Fatalf("served %s", lora["lora"])
	}

	for _, c := range []struct{ name, body string }{
		{"older host", `{"healthy":true,"signals":["kvCache","waiting"],"kvCacheUsage":0.5,"requestsWaiting":0,"ageMillis":10}`},
		{"no limit", `{"healthy":true,"signals":["kvCache"],"kvCacheUsage":0.5,"lora":{"running":["x"]},"ageMillis":10}`},
		{"empty adapter name", `{"healthy":true,"signals":["kvCache"],"kvCacheUsage":0.5,"lora":{"running":[""],"waiting":[],"max":2},"ageMillis":10}`},
		{"newer signal names", `{"healthy":true,"signals":["kvCache","fromTheFuture"],"kvCacheUsage":0.5,"fromTheFuture":[1],"ageMillis":10}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, c.body) }))
			defer srv.Close()
			var ups updates
			p := newPoller(t, score.Config{}, fakeclock.New(t0), &ups, Target{Name: "p/a", URL: srv.URL, Neutral: 100})
			p.Round(context.Background())
			if st := p.Status()["p/a"]; st.Error != "" {
				t.Fatal(st.Error)
			}
			if w := p.Current()["p/a"]; w.Adapters != nil || w.Weight != 50 {
				t.Fatalf("weight %+v, want 50 without adapters", w)
			}
		})
	}
}
