package scrape

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infergate/infergate/gpu/score"
)

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestParseFixtures(t *testing.T) {
	cases := []struct {
		file    string
		kind    Kind
		signals score.Signals
		kv      float64
		running float64
		waiting float64
		models  []string
		// kvTokens: the KV cache's size (vLLM's cache_config_info).
		kvTokens float64
	}{
		// 27531 blocks x 16 tokens.
		{"vllm_v0.txt", VLLM, score.HasKVCache | score.HasRunning | score.HasWaiting | score.HasKVTokens, 0.8731, 24, 7,
			[]string{"meta-llama/Llama-3.1-8B-Instruct"}, 440_496},
		// 81767 blocks x 16 tokens, from a payload vLLM printed.
		{"vllm_aibrix_doc.txt", VLLM, score.HasKVCache | score.HasRunning | score.HasWaiting | score.HasKVTokens, 0, 0, 0,
			[]string{"Qwen/Qwen2.5-Coder-1.5B-Instruct"}, 1_308_272},
		// Two data-parallel engines: counts add up, KV usage is the mean of
		// the new-style gauge (0.62, 0.54), not the deprecated one. No
		// cache_config_info, so no cache size.
		{"vllm_v1.txt", VLLM, score.HasKVCache | score.HasRunning | score.HasWaiting, 0.58, 60, 6,
			[]string{"Qwen/Qwen2.5-32B-Instruct"}, 0},
		{"tgi.txt", TGI, score.HasRunning | score.HasWaiting, 0, 32, 11, nil, 0},
		{"triton.txt", Triton, score.HasWaiting, 0, 0, 7, []string{"embedder", "ensemble_llm"}, 0},
		{"sglang.txt", SGLang, score.HasKVCache | score.HasRunning | score.HasWaiting, 0.28, 158, 2826,
			[]string{"meta-llama/Llama-3.1-70B-Instruct"}, 0},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			for _, kind := range []Kind{Auto, c.kind} {
				m, err := Parse(strings.NewReader(fixture(t, c.file)), kind)
				if err != nil {
					t.Fatalf("kind %q: %v", kind, err)
				}
				if m.Kind != c.kind || m.Signals != c.signals {
					t.Fatalf("kind %q: got kind %q signals %v, want %q %v", kind, m.Kind, m.Signals, c.kind, c.signals)
				}
				if !near(m.KVCacheUsage, c.kv) || m.Running != c.running || m.Waiting != c.waiting {
					t.Fatalf("kv %v running %v waiting %v, want %v %v %v", m.KVCacheUsage, m.Running, m.Waiting, c.kv, c.running, c.waiting)
				}
				if !slices.Equal(m.Models, c.models) {
					t.Fatalf("models %v, want %v", m.Models, c.models)
				}
				if m.KVCacheTokens != c.kvTokens {
					t.Fatalf("KV cache tokens %v, want %v", m.KVCacheTokens, c.kvTokens)
				}
				if m.HasQueueTime {
					t.Fatal("a single parse cannot know a queue-time rate")
				}
			}
		})
	}
}

// vLLM's cache_config_info gives the KV cache's size as labels: summed over
// data-parallel engines, and absent (never guessed) when any engine's pair
// is unusable.
func TestParseVLLMCacheConfig(t *testing.T) {
	const load = "vllm:num_requests_running{engine=\"0\"} 3\nvllm:num_requests_waiting{engine=\"0\"} 1\n"
	info := func(labels ...string) string {
		var b strings.Builder
		b.WriteString("# TYPE vllm:cache_config_info gauge\n")
		for _, l := range labels {
			b.WriteString("vllm:cache_config_info{" + l + "} 1.0\n")
		}
		return b.String()
	}
	for _, c := range []struct {
		name    string
		payload string
		tokens  float64 // 0: absent
	}{
		{"one engine", info(`block_size="16",num_gpu_blocks="25000"`) + load, 400_000},
		{"two data-parallel engines", info(`block_size="16",engine="0",num_gpu_blocks="25000"`,
			`block_size="16",engine="1",num_gpu_blocks="24000"`) + load, 784_000},
		{"block size 32", info(`block_size="32",num_gpu_blocks="1000"`) + load, 32_000},
		{"not yet profiled", info(`block_size="16",num_gpu_blocks="None"`) + load, 0},
		{"one engine unprofiled", info(`block_size="16",engine="0",num_gpu_blocks="25000"`,
			`block_size="16",engine="1",num_gpu_blocks="None"`) + load, 0},
		{"zero blocks", info(`block_size="16",num_gpu_blocks="0"`) + load, 0},
		{"negative", info(`block_size="16",num_gpu_blocks="-5"`) + load, 0},
		{"fractional", info(`block_size="16",num_gpu_blocks="12.5"`) + load, 0},
		{"no block size", info(`num_gpu_blocks="25000"`) + load, 0},
		{"absurd", info(`block_size="1048576",num_gpu_blocks="4294967296"`) + load, 0},
		{"huge label", info(`block_size="16",num_gpu_blocks="`+strings.Repeat("9", 100)+`"`) + load, 0},
		{"counter, not an info gauge", "# TYPE vllm:cache_config_info counter\nvllm:cache_config_info{block_size=\"16\",num_gpu_blocks=\"10\"} 1\n" + load, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := Parse(strings.NewReader(c.payload), Auto)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Signals.Has(score.HasKVTokens); got != (c.tokens > 0) || m.KVCacheTokens != c.tokens {
				t.Fatalf("kvTokens signal %v, %v tokens; want %v tokens", got, m.KVCacheTokens, c.tokens)
			}
			if !m.Signals.Has(score.HasRunning | score.HasWaiting) {
				t.Fatalf("load signals lost: %v", m.Signals)
			}
		})
	}
	// The cache's size is configuration, not load: alone it is no signal.
	alone := info(`block_size="16",num_gpu_blocks="25000"`)
	if _, err := Parse(strings.NewReader(alone), VLLM); !errors.Is(err, ErrNoSignals) {
		t.Fatalf("cache_config_info alone: %v, want ErrNoSignals", err)
	}
	// Other servers' payloads never carry it into their signals.
	if m, err := Parse(strings.NewReader(fixture(t, "vllm_v0.txt")), SGLang); err == nil || m.Signals.Has(score.HasKVTokens) {
		t.Fatalf("vLLM payload read as SGLang: %v, signals %v", err, m.Signals)
	}
}

func TestParseVLLMv0FallsBackToGPUCacheGauge(t *testing.T) {
	m, err := Parse(strings.NewReader(fixture(t, "vllm_v0.txt")), Auto)
	if err != nil {
		t.Fatal(err)
	}
	if !near(m.KVCacheUsage, 0.8731) {
		t.Fatalf("kv %v", m.KVCacheUsage)
	}
}

func TestParseWrongKindHasNoSignals(t *testing.T) {
	_, err := Parse(strings.NewReader(fixture(t, "tgi.txt")), VLLM)
	if !errors.Is(err, ErrNoSignals) {
		t.Fatalf("TGI payload read as vLLM: %v", err)
	}
	_, err = Parse(strings.NewReader("# TYPE up gauge\nup 1\n"), Auto)
	if !errors.Is(err, ErrNoSignals) {
		t.Fatalf("unrelated payload: %v", err)
	}
}

func TestParseRejectsBadInput(t *testing.T) {
	bad := []string{
		"vllm:num_requests_running{model_name=\"x\" 3\n", // unterminated labels
		"# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running abc\n",
		"# TYPE a gauge\n# TYPE a counter\na 1\n",
	}
	for i, p := range bad {
		if _, err := Parse(strings.NewReader(p), Auto); err == nil || errors.Is(err, ErrNoSignals) {
			t.Errorf("case %d: err %v, want a parse error", i, err)
		}
	}
	// NaN or negative gauges are treated as absent, not passed on.
	m, err := Parse(strings.NewReader("# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting NaN\n"+
		"# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running -2\n"+
		"# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc 0.5\n"), Auto)
	if err != nil {
		t.Fatal(err)
	}
	if m.Signals != score.HasKVCache {
		t.Fatalf("signals %v, want only kvCache", m.Signals)
	}
	// A gauge above 1 is clamped.
	m, _ = Parse(strings.NewReader("vllm:kv_cache_usage_perc 1.7\n"), Auto)
	if m.KVCacheUsage != 1 || !m.Signals.Has(score.HasKVCache) {
		t.Fatalf("untyped kv 1.7: %+v", m)
	}
}

func TestParseKind(t *testing.T) {
	for _, s := range []string{"", "auto", "vllm", "tgi", "triton", "sglang"} {
		if _, err := ParseKind(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	if _, err := ParseKind("ollama"); err == nil {
		t.Error("unknown kind accepted")
	}
}

// server serves payloads in turn over real HTTP on loopback.
func server(t *testing.T, payloads ...string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Accept"), "text/plain") {
			http.Error(w, "want text format", http.StatusNotAcceptable)
			return
		}
		i := int(n.Add(1)) - 1
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		fmt.Fprint(w, payloads[min(i, len(payloads)-1)])
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func newScraper(t *testing.T, cfg Config) *Scraper {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestScrapeOverHTTP(t *testing.T) {
	srv, _ := server(t, fixture(t, "vllm_v1.txt"))
	s := newScraper(t, Config{URL: srv.URL + "/metrics"})
	m, err := s.Scrape(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != VLLM || m.Running != 60 || m.Waiting != 6 {
		t.Fatalf("%+v", m)
	}
}

func TestScrapeQueueTimeFromCounters(t *testing.T) {
	// Triton: 10 more requests (9 ok, 1 failed) spent 2.5 s queued in all.
	t1 := fixture(t, "triton.txt")
	t2 := strings.NewReplacer(
		`nv_inference_queue_duration_us{model="ensemble_llm",version="1"} 1532100000`,
		`nv_inference_queue_duration_us{model="ensemble_llm",version="1"} 1534600000`,
		`nv_inference_request_success{model="ensemble_llm",version="1"} 10210`,
		`nv_inference_request_success{model="ensemble_llm",version="1"} 10219`,
		`nv_inference_request_failure{model="ensemble_llm",reason="REJECTED",version="1"} 3`,
		`nv_inference_request_failure{model="ensemble_llm",reason="REJECTED",version="1"} 4`,
	).Replace(t1)
	if t1 == t2 {
		t.Fatal("fixture edit did not apply")
	}
	srv, _ := server(t, t1, t2, t1)
	s := newScraper(t, Config{URL: srv.URL, Kind: Triton})
	m, err := s.Scrape(context.Background())
	if err != nil || m.HasQueueTime {
		t.Fatalf("first scrape: %+v %v", m, err)
	}
	m, err = s.Scrape(context.Background())
	if err != nil || !m.HasQueueTime || !near(m.QueueSeconds, 0.25) {
		t.Fatalf("second scrape: queue %v (has %v) %v, want 0.25 s", m.QueueSeconds, m.HasQueueTime, err)
	}
	// Counters going back (a restart) give no figure rather than a wrong one.
	m, err = s.Scrape(context.Background())
	if err != nil || m.HasQueueTime {
		t.Fatalf("after counter reset: %+v %v", m, err)
	}

	// vLLM V1 and TGI from their queue-time histograms: 4 s more queueing
	// over 8 more requests (vLLM engine 0), 2 s over 4 (TGI).
	for _, c := range []struct {
		file  string
		edits []string
		want  float64
	}{
		{"vllm_v1.txt", []string{
			`vllm:request_queue_time_seconds_sum{engine="0",model_name="Qwen/Qwen2.5-32B-Instruct"} 611.2`,
			`vllm:request_queue_time_seconds_sum{engine="0",model_name="Qwen/Qwen2.5-32B-Instruct"} 615.2`,
			`vllm:request_queue_time_seconds_count{engine="0",model_name="Qwen/Qwen2.5-32B-Instruct"} 8411.0`,
			`vllm:request_queue_time_seconds_count{engine="0",model_name="Qwen/Qwen2.5-32B-Instruct"} 8419.0`,
		}, 0.5},
		{"tgi.txt", []string{
			"tgi_request_queue_duration_sum 5230.118", "tgi_request_queue_duration_sum 5232.118",
			"tgi_request_queue_duration_count 48177", "tgi_request_queue_duration_count 48181",
		}, 0.5},
	} {
		p1 := fixture(t, c.file)
		p2 := strings.NewReplacer(c.edits...).Replace(p1)
		if strings.Count(p2, c.edits[1]) != 1 || strings.Count(p2, c.edits[3]) != 1 {
			t.Fatalf("%s: fixture edit did not apply", c.file)
		}
		srv, _ := server(t, p1, p2)
		s := newScraper(t, Config{URL: srv.URL})
		if _, err := s.Scrape(context.Background()); err != nil {
			t.Fatal(err)
		}
		m, err := s.Scrape(context.Background())
		if err != nil || !m.HasQueueTime || !near(m.QueueSeconds, c.want) {
			t.Fatalf("%s: queue %v (has %v) %v, want %v", c.file, m.QueueSeconds, m.HasQueueTime, err, c.want)
		}
	}
}

func TestScrapeBodyLimit(t *testing.T) {
	payload := fixture(t, "vllm_v0.txt")
	srv, _ := server(t, payload)
	s := newScraper(t, Config{URL: srv.URL, MaxBody: int64(len(payload)) - 1})
	if _, err := s.Scrape(context.Background()); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("oversized body: %v", err)
	}
	s = newScraper(t, Config{URL: srv.URL, MaxBody: int64(len(payload))})
	if _, err := s.Scrape(context.Background()); err != nil {
		t.Fatalf("body of exactly the limit: %v", err)
	}
}

func TestScrapeTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	s := newScraper(t, Config{URL: srv.URL, Timeout: 100 * time.Millisecond})
	start := time.Now()
	_, err := s.Scrape(context.Background())
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hung server: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("timeout not applied")
	}
}

func TestScrapeHTTPErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "engine dead", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	s := newScraper(t, Config{URL: srv.URL})
	if _, err := s.Scrape(context.Background()); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("503: %v", err)
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	addr := closed.URL
	closed.Close()
	s = newScraper(t, Config{URL: addr})
	if _, err := s.Scrape(context.Background()); err == nil {
		t.Fatal("closed port scraped without error")
	}
	for _, bad := range []Config{{URL: "ftp://x"}, {URL: "http://x", Kind: "nope"}, {URL: "http://x", MaxBody: maxBodyLimit + 1}} {
		if _, err := New(bad); err == nil {
			t.Errorf("config %+v accepted", bad)
		}
	}
}

func BenchmarkParseVLLM(b *testing.B) {
	p, err := os.ReadFile("testdata/vllm_v0.txt")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if _, err := Parse(strings.NewReader(string(p)), Auto); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParse: no payload makes Parse panic, and whatever it accepts holds
// only finite, non-negative signals with KV usage in [0,1].
func FuzzParse(f *testing.F) {
	for _, name := range []string{"vllm_v0.txt", "vllm_v1.txt", "vllm_lora.txt", "tgi.txt", "triton.txt", "sglang.txt"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("vllm:num_requests_waiting{model_name=\"a\"} +Inf\n")
	f.Fuzz(func(t *testing.T, payload string) {
		m, err := Parse(strings.NewReader(payload), Auto)
		if err != nil {
			return
		}
		for _, v := range []float64{m.KVCacheUsage, m.Running, m.Waiting} {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				t.Fatalf("accepted bad value %v from %q", v, payload)
			}
		}
		if m.KVCacheUsage > 1 {
			t.Fatalf("kv %v > 1", m.KVCacheUsage)
		}
	})
}
