package sim

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/gpu/report"
	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/gpu/scrape"
)

var _ report.Source = (*GPU)(nil)

func newGPU(t *testing.T, c Config) *GPU {
	t.Helper()
	g, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// admitAsync starts an Admit in the background.
func admitAsync(ctx context.Context, g *GPU, prompt, out int) <-chan admitResult {
	ch := make(chan admitResult, 1)
	go func() {
		s, err := g.Admit(ctx, prompt, out)
		ch <- admitResult{s, err}
	}()
	return ch
}

type admitResult struct {
	seq *Seq
	err error
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAdmitBatchLimit(t *testing.T) {
	g := newGPU(t, Config{MaxBatch: 2})
	ctx := context.Background()
	a, err := g.Admit(ctx, 10, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Admit(ctx, 10, 10); err != nil {
		t.Fatal(err)
	}
	third := admitAsync(ctx, g, 10, 10)
	waitFor(t, "third request to queue", func() bool { return g.Stats().Waiting == 1 })
	select {
	case <-third:
		t.Fatal("third request admitted past the batch limit")
	case <-time.After(20 * time.Millisecond):
	}
	a.Done()
	r := <-third
	if r.err != nil {
		t.Fatal(r.err)
	}
	if s := g.Stats(); s.Running != 2 || s.Waiting != 0 {
		t.Fatalf("after handover: %+v", s)
	}
	a.Done() // second Done is harmless
	if s := g.Stats(); s.Running != 2 {
		t.Fatalf("double Done freed another slot: %+v", s)
	}
}

func TestAdmitKVLimitFIFO(t *testing.T) {
	g := newGPU(t, Config{KVTokens: 100, MaxBatch: 10})
	ctx := context.Background()
	big, err := g.Admit(ctx, 40, 20)
	if err != nil {
		t.Fatal(err)
	}
	second := admitAsync(ctx, g, 40, 20) // does not fit: 120 > 100
	waitFor(t, "second to queue", func() bool { return g.Stats().Waiting == 1 })
	// A small request would fit, but waits behind the head (first come,
	// first served, as vLLM schedules).
	small := admitAsync(ctx, g, 5, 5)
	waitFor(t, "small to queue", func() bool { return g.Stats().Waiting == 2 })
	big.Done()
	r2, r3 := <-second, <-small
	if r2.err != nil || r3.err != nil {
		t.Fatal(r2.err, r3.err)
	}
	if s := g.Stats(); s.KVReserved != 70 || s.KVUsed != 45 || s.Running != 2 {
		t.Fatalf("after admission: %+v", s)
	}
	if _, err := g.Admit(ctx, 90, 11); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized request: %v", err)
	}
	if _, err := g.Admit(ctx, -1, 1); err == nil {
		t.Fatal("negative prompt accepted")
	}
}

func TestAdmitQueueFullAndCancel(t *testing.T) {
	g := newGPU(t, Config{MaxBatch: 1, MaxQueue: 1, KVTokens: 1000})
	ctx := context.Background()
	hold, err := g.Admit(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	waiting := admitAsync(cctx, g, 1, 1)
	waitFor(t, "queue", func() bool { return g.Stats().Waiting == 1 })
	if _, err := g.Admit(ctx, 1, 1); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("over the queue: %v", err)
	}
	cancel()
	if r := <-waiting; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", r.err)
	}
	if s := g.Stats(); s.Waiting != 0 || s.Running != 1 {
		t.Fatalf("after cancel: %+v", s)
	}
	hold.Done()
	if s := g.Stats(); s.Running != 0 || s.KVUsed != 0 || s.KVReserved != 0 {
		t.Fatalf("idle GPU holds resources: %+v", s)
	}
}

func TestTokensAndSpeed(t *testing.T) {
	g := newGPU(t, Config{KVTokens: 1000, DecodeStep: 10 * time.Millisecond, DecodePerSeq: time.Millisecond, PrefillPerSec: 1000})
	fast := newGPU(t, Config{Speed: 2, KVTokens: 1000, DecodeStep: 10 * time.Millisecond, DecodePerSeq: time.Millisecond, PrefillPerSec: 1000})
	ctx := context.Background()
	s, _ := g.Admit(ctx, 100, 3)
	f, _ := fast.Admit(ctx, 100, 3)
	if s.PrefillTime() != 100*time.Millisecond || f.PrefillTime() != 50*time.Millisecond {
		t.Fatalf("prefill %v / %v", s.PrefillTime(), f.PrefillTime())
	}
	if s.TokenInterval() != 11*time.Millisecond || f.TokenInterval() != 5500*time.Microsecond {
		t.Fatalf("decode step %v / %v", s.TokenInterval(), f.TokenInterval())
	}
	s2, _ := g.Admit(ctx, 10, 1)
	if s.TokenInterval() != 12*time.Millisecond {
		t.Fatalf("step does not grow with batch: %v", s.TokenInterval())
	}
	s2.Done()
	for range 5 {
		s.Token()
	}
	if s.Generated() != 3 || g.Stats().KVUsed != 103 {
		t.Fatalf("tokens past the reservation counted: %d, used %d", s.Generated(), g.Stats().KVUsed)
	}
	if got := g.Stats().KVUsage; math.Abs(got-0.103) > 1e-12 {
		t.Fatalf("KV usage %v", got)
	}
	s.Done()
	f.Done()
}

func TestGenerate(t *testing.T) {
	g := newGPU(t, Config{DecodeStep: 100 * time.Microsecond, DecodePerSeq: 1, PrefillPerSec: 1e6})
	var got []int
	ttft, err := g.Generate(context.Background(), 100, 5, func(i int) error { got = append(got, i); return nil })
	if err != nil || len(got) != 5 || got[4] != 4 || ttft <= 0 {
		t.Fatalf("generate: ttft %v tokens %v err %v", ttft, got, err)
	}
	stop := errors.New("client went away")
	_, err = g.Generate(context.Background(), 10, 50, func(i int) error {
		if i == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("onToken error: %v", err)
	}
	if s := g.Stats(); s.Running != 0 || s.KVUsed != 0 {
		t.Fatalf("resources leaked: %+v", s)
	}
}

func TestReportAndMetricsAgree(t *testing.T) {
	g := newGPU(t, Config{Name: "NVIDIA H200", KVTokens: 1000, MaxBatch: 1})
	ctx := context.Background()
	s, _ := g.Admit(ctx, 250, 250)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	admitAsync(cctx, g, 10, 10)
	waitFor(t, "queue", func() bool { return g.Stats().Waiting == 1 })
	r, err := g.Report(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.KVCacheUsage != 0.25 || r.RequestsRunning != 1 || r.RequestsWaiting != 1 || !r.Healthy {
		t.Fatalf("report %+v", r)
	}
	if math.Abs(r.Capacity-4.8/3.35) > 1e-9 || r.GPUModel != "NVIDIA H200" {
		t.Fatalf("capacity %v from model %q", r.Capacity, r.GPUModel)
	}
	var buf bytes.Buffer
	if err := g.WriteMetrics(&buf, "org/model \"x\"\nv2"); err != nil {
		t.Fatal(err)
	}
	m, err := scrape.Parse(&buf, scrape.Auto)
	if err != nil {
		t.Fatalf("the real scraper cannot read the sim's metrics: %v", err)
	}
	if m.Kind != scrape.VLLM || m.KVCacheUsage != r.KVCacheUsage || m.Running != 1 || m.Waiting != 1 {
		t.Fatalf("scraped %+v, report %+v", m, r)
	}
	if len(m.Models) != 1 || m.Models[0] != "org/model \"x\"\nv2" {
		t.Fatalf("label round trip: %q", m.Models)
	}
	s.Done()
	g.SetHealthy(false, "simulated Xid 79")
	if r, _ := g.Report(ctx); r.Healthy || r.Reason != "simulated Xid 79" {
		t.Fatalf("unhealthy report %+v", r)
	}
}

func TestConfigValidation(t *testing.T) {
	for i, c := range []Config{{Speed: -1}, {MaxBatch: -1}, {KVTokens: maxKVTokens + 1}, {MaxQueue: -1},
		{DecodeStep: -1}, {PrefillPerSec: math.Inf(1)}, {Speed: math.NaN()}} {
		if _, err := New(c); err == nil {
			t.Errorf("case %d accepted: %+v", i, c)
		}
	}
	g := newGPU(t, Config{Name: "Unknown GPU"})
	if g.Config().Speed != 1 {
		t.Fatalf("unknown model speed %v, want 1", g.Config().Speed)
	}
}

// TestSimulatedFleetThroughRealPath: simulated GPUs behind mock metrics
// endpoints are scraped, served as load reports and polled into weights,
// all over loopback HTTP, exactly as real hosts would be.
func TestSimulatedFleetThroughRealPath(t *testing.T) {
	type node struct {
		gpu  *GPU
		seqs []*Seq
	}
	mk := func(name string, speed float64) *node {
		return &node{gpu: newGPU(t, Config{Name: name, Speed: speed, KVTokens: 10000, MaxBatch: 8})}
	}
	fast, slow, broken := mk("fast", 2), mk("slow", 1), mk("broken", 1)
	ctx := context.Background()
	// The slow GPU is nearly full and has a queue; the fast one is idle.
	for range 8 {
		s, err := slow.gpu.Admit(ctx, 900, 200)
		if err != nil {
			t.Fatal(err)
		}
		slow.seqs = append(slow.seqs, s)
	}
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range 4 {
		admitAsync(qctx, slow.gpu, 10, 10)
	}
	waitFor(t, "slow queue", func() bool { return slow.gpu.Stats().Waiting == 4 })
	broken.gpu.SetHealthy(false, "simulated Xid 79")

	var targets []report.Target
	for name, n := range map[string]*node{"fast": fast, "slow": slow, "broken": broken} {
		// The mock inference server's /metrics.
		metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.gpu.WriteMetrics(w, "mock-model")
		}))
		t.Cleanup(metrics.Close)
		sc, err := scrape.New(scrape.Config{URL: metrics.URL})
		if err != nil {
			t.Fatal(err)
		}
		// The host agent: scraped metrics plus the GPU's own health and
		// capacity (a simulated host has no NVML).
		src := &combined{scraped: &report.HostSource{Host: name, Scraper: sc}, gpu: n.gpu}
		agent := httptest.NewServer(report.Handler(src))
		t.Cleanup(agent.Close)
		targets = append(targets, report.Target{Name: "pool/" + name, URL: agent.URL, Neutral: 100})
	}
	w, err := score.NewWeighter(score.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var last report.Update
	p, err := report.NewPoller(w, report.PollerConfig{OnUpdate: func(u report.Update) { mu.Lock(); last = u; mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetTargets(targets); err != nil {
		t.Fatal(err)
	}
	p.Round(ctx)
	mu.Lock()
	ws := last.Weights
	mu.Unlock()
	for name, st := range p.Status() {
		if st.Error != "" {
			t.Fatalf("%s: %s", name, st.Error)
		}
	}
	if ws["pool/fast"].Weight != 200 {
		t.Fatalf("idle speed-2 GPU: %+v, want 200", ws["pool/fast"])
	}
	if ws["pool/slow"].Weight >= 20 || ws["pool/slow"].Draining {
		t.Fatalf("loaded GPU: %+v, want a small weight", ws["pool/slow"])
	}
	if !ws["pool/broken"].Draining || ws["pool/broken"].Weight != 0 {
		t.Fatalf("unhealthy GPU: %+v, want drained", ws["pool/broken"])
	}
	for _, s := range slow.seqs {
		s.Done()
	}
}

// combined takes server signals from the scraped metrics, and health and
// capacity from the simulated GPU, as a host agent would from scrape and
// NVML.
type combined struct {
	scraped *report.HostSource
	gpu     *GPU
}

func (c *combined) Report(ctx context.Context) (score.Report, error) {
	r, err := c.scraped.Report(ctx)
	if err != nil {
		return r, err
	}
	g, _ := c.gpu.Report(ctx)
	r.Healthy, r.Reason, r.Capacity, r.GPUs, r.GPUModel = g.Healthy, g.Reason, g.Capacity, g.GPUs, g.GPUModel
	return r, nil
}
