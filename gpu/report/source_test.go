package report

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/infergate/infergate/gpu/collector"
	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/gpu/scrape"
)

var t0 = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

// fakeGPU returns a fixed snapshot.
type fakeGPU struct {
	snap collector.Snapshot
	err  error
}

func (f *fakeGPU) Collect(context.Context) (collector.Snapshot, error) { return f.snap, f.err }

func ptr[T any](v T) *T { return &v }

func h100(i int, util uint32, usedGiB uint64) collector.Device {
	return collector.Device{
		Index: i, UUID: fmt.Sprintf("GPU-%d", i), Name: "NVIDIA H100 80GB HBM3",
		SMUtilPercent: ptr(util), MemoryUtilPercent: ptr(util / 2),
		MemoryUsedBytes: ptr(usedGiB << 30), MemoryTotalBytes: ptr(uint64(80) << 30),
		PowerMilliwatts: ptr(uint32(350000)), TemperatureC: ptr(uint32(55)),
		Processes: []collector.Process{}, Healthy: true,
	}
}

// vllmServer serves a fixture over loopback HTTP.
func vllmServer(t *testing.T, file string) string {
	t.Helper()
	payload, err := os.ReadFile("../scrape/testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write(payload)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/metrics"
}

func newScraper(t *testing.T, url string) *scrape.Scraper {
	t.Helper()
	s, err := scrape.New(scrape.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestHostSourceCombines(t *testing.T) {
	gpu := &fakeGPU{snap: collector.Snapshot{Time: t0, Available: true, Status: "ok",
		Devices: []collector.Device{h100(0, 90, 72), h100(1, 70, 70)}}}
	src := &HostSource{Host: "gpu-a", Collector: gpu, Scraper: newScraper(t, vllmServer(t, "vllm_v0.txt")),
		Now: func() time.Time { return t0 }}
	r, err := src.Report(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := score.HasKVCache | score.HasRunning | score.HasWaiting | score.HasKVTokens | score.HasUtil | score.HasMemory
	if r.Signals != want || r.KVCacheTokens != 440496 || !r.Healthy || r.Host != "gpu-a" || !r.Time.Equal(t0) {
		t.Fatalf("report %+v", r)
	}
	if r.KVCacheUsage != 0.8731 || r.RequestsRunning != 24 || r.RequestsWaiting != 7 {
		t.Fatalf("server signals %+v", r)
	}
	if r.SMUtil != 0.8 || r.MemoryUsedBytes != 142<<30 || r.MemoryTotalBytes != 160<<30 {
		t.Fatalf("GPU signals: util %v mem %d/%d", r.SMUtil, r.MemoryUsedBytes, r.MemoryTotalBytes)
	}
	if r.GPUs != 2 || r.Capacity != 2 || r.GPUModel != "NVIDIA H100 80GB HBM3" {
		t.Fatalf("capacity %v gpus %d model %q", r.Capacity, r.GPUs, r.GPUModel)
	}
	d, ok := src.LastDetail()
	if !ok || d.GPU == nil || d.Server == nil || d.Server.Kind != scrape.VLLM {
		t.Fatalf("detail %+v", d)
	}
	// An operator's capacity overrides the estimate.
	src.Capacity = 5
	if r, _ := src.Report(context.Background()); r.Capacity != 5 {
		t.Fatalf("override: capacity %v", r.Capacity)
	}
}

func TestHostSourcePartialReadings(t *testing.T) {
	// Device 1 could not report utilisation or memory: the mean and sums
	// cover only what was read, and an unknown model leaves capacity unset.
	d1 := collector.Device{Index: 1, Name: "Mystery Accelerator", Healthy: true,
		Missing: map[string]string{"utilization": "ERROR_UNKNOWN", "memory": "ERROR_UNKNOWN"}}
	gpu := &fakeGPU{snap: collector.Snapshot{Available: true, Devices: []collector.Device{h100(0, 40, 20), d1}}}
	src := &HostSource{Collector: gpu}
	r, err := src.Report(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.SMUtil != 0.4 || r.MemoryUsedBytes != 20<<30 || r.MemoryTotalBytes != 80<<30 {
		t.Fatalf("partial: util %v mem %d/%d", r.SMUtil, r.MemoryUsedBytes, r.MemoryTotalBytes)
	}
	if r.Capacity != 0 {
		t.Fatalf("unknown model gave capacity %v", r.Capacity)
	}
	if r.Signals.Has(score.HasKVCache) || r.Signals.Has(score.HasWaiting) {
		t.Fatalf("no scraper but server signals %v", r.Signals)
	}
}

func TestHostSourceWithoutNVML(t *testing.T) {
	gpu := &fakeGPU{snap: collector.Snapshot{Status: "nvml unavailable: x", Devices: []collector.Device{}},
		err: &collector.UnavailableError{Reason: "x"}}
	src := &HostSource{Collector: gpu, Scraper: newScraper(t, vllmServer(t, "sglang.txt"))}
	r, err := src.Report(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !r.Healthy || r.Signals != score.HasKVCache|score.HasRunning|score.HasWaiting || r.GPUs != 0 {
		t.Fatalf("without NVML: %+v", r)
	}
	d, _ := src.LastDetail()
	if d.GPU != nil || !strings.Contains(d.GPUError, "nvml unavailable") {
		t.Fatalf("detail %+v", d)
	}
}

func TestHostSourceUnhealthyGPU(t *testing.T) {
	bad := h100(3, 0, 0)
	bad.Healthy = false
	bad.Problems = []string{"Xid 79 (GPU has fallen off the bus)"}
	gpu := &fakeGPU{snap: collector.Snapshot{Available: true, Devices: []collector.Device{h100(0, 50, 40), bad}}}
	src := &HostSource{Collector: gpu}
	r, _ := src.Report(context.Background())
	if r.Healthy || !strings.Contains(r.Reason, "gpu 3: Xid 79") {
		t.Fatalf("unhealthy GPU: healthy=%v reason=%q", r.Healthy, r.Reason)
	}
}

func TestHostSourceScrapeFailure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	gpu := &fakeGPU{snap: collector.Snapshot{Available: true, Devices: []collector.Device{h100(0, 50, 40)}}}
	src := &HostSource{Collector: gpu, Scraper: newScraper(t, srv.URL)}
	r, err := src.Report(context.Background())
	if err != nil || !r.Healthy || r.Signals != score.HasUtil|score.HasMemory {
		t.Fatalf("scrape failure: %+v %v", r, err)
	}
	if d, _ := src.LastDetail(); !strings.Contains(d.ServerError, "503") {
		t.Fatalf("detail %+v", d)
	}
}

// countingSource counts reads and returns a settable report.
type countingSource struct {
	mu    sync.Mutex
	rep   score.Report
	err   error
	reads atomic.Int32
}

func (c *countingSource) Report(ctx context.Context) (score.Report, error) {
	c.reads.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rep, c.err
}

func (c *countingSource) set(r score.Report, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rep, c.err = r, err
}

func TestCachedSource(t *testing.T) {
	src := &countingSource{rep: score.Report{Healthy: true, Host: "a"}}
	c := NewCached(src, time.Hour)
	for range 10 {
		if r, err := c.Report(context.Background()); err != nil || r.Host != "a" {
			t.Fatal(r, err)
		}
	}
	if n := src.reads.Load(); n != 1 {
		t.Fatalf("%d reads within max age", n)
	}
	// Errors are not cached.
	src2 := &countingSource{err: errors.New("boom")}
	c2 := NewCached(src2, time.Hour)
	c2.Report(context.Background())
	c2.Report(context.Background())
	if n := src2.reads.Load(); n != 2 {
		t.Fatalf("error cached: %d reads", n)
	}
}

func TestHandlerServesJSON(t *testing.T) {
	rep := score.Report{Host: "gpu-a", Time: time.Now().Add(-1500 * time.Millisecond), Healthy: true,
		Signals: score.HasKVCache | score.HasWaiting, KVCacheUsage: 0.25, RequestsWaiting: 3, Capacity: 2}
	src := &countingSource{rep: rep}
	srv := httptest.NewServer(Handler(src))
	t.Cleanup(srv.Close)

	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var doc Document
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if !doc.Time.Equal(rep.Time) || doc.Signals != rep.Signals || doc.KVCacheUsage != 0.25 || doc.Capacity != 2 {
		t.Fatalf("decoded %+v, want %+v", doc.Report, rep)
	}
	if doc.AgeMillis < 1500 || doc.AgeMillis > 60000 {
		t.Fatalf("age %d ms, want about 1500", doc.AgeMillis)
	}
	if doc.Detail != nil {
		t.Fatal("detail without asking")
	}

	resp2, err := http.Post(srv.URL, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", resp2.StatusCode)
	}

	src.set(score.Report{}, errors.New("collector wedged"))
	resp3, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp3.Body.Close()
	if resp3.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("failing source: %d", resp3.StatusCode)
	}
}

func TestHandlerDetail(t *testing.T) {
	gpu := &fakeGPU{snap: collector.Snapshot{Available: true, Status: "ok", Devices: []collector.Device{h100(0, 50, 40)}}}
	srv := httptest.NewServer(Handler(NewCached(&HostSource{Collector: gpu}, 0)))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "?detail=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc Document
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.Detail == nil || doc.Detail.GPU == nil || len(doc.Detail.GPU.Devices) != 1 || *doc.Detail.GPU.Devices[0].PowerMilliwatts != 350000 {
		t.Fatalf("detail %+v", doc.Detail)
	}
}

func gather(t *testing.T, c prometheus.Collector) map[string][]*dto.Metric {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]*dto.Metric{}
	for _, f := range fams {
		out[f.GetName()] = f.GetMetric()
	}
	return out
}

func TestExporter(t *testing.T) {
	gpu := &fakeGPU{snap: collector.Snapshot{Available: true, Devices: []collector.Device{h100(0, 50, 40), h100(1, 30, 20)}}}
	ex, err := NewExporter(&HostSource{Collector: gpu}, score.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m := gather(t, ex)
	val := func(name string, i int) float64 {
		t.Helper()
		ms := m[name]
		if len(ms) <= i {
			t.Fatalf("%s: %d series", name, len(ms))
		}
		return ms[i].GetGauge().GetValue()
	}
	if val("infergate_gpu_report_up", 0) != 1 || val("infergate_gpu_healthy", 0) != 1 || val("infergate_gpu_capacity", 0) != 2 {
		t.Fatal("host gauges wrong")
	}
	if val("infergate_gpu_sm_utilization_ratio", 0) != 0.4 || val("infergate_gpu_memory_used_bytes", 0) != 60<<30 {
		t.Fatal("util/memory gauges wrong")
	}
	if len(m["infergate_gpu_device_power_watts"]) != 2 || val("infergate_gpu_device_power_watts", 0) != 350 {
		t.Fatal("device power gauge wrong")
	}
	// Signals the report lacks are absent, not zero.
	for _, absent := range []string{"infergate_gpu_kv_cache_usage_ratio", "infergate_gpu_requests_waiting", "infergate_gpu_device_ecc_uncorrected_errors"} {
		if _, ok := m[absent]; ok {
			t.Errorf("%s exported without data", absent)
		}
	}
	w := val("infergate_gpu_score_weight", 0)
	c, _ := score.Config{}.WithDefaults()
	r, _ := (&HostSource{Collector: gpu}).Report(context.Background())
	if w != score.Score(r, c) {
		t.Fatalf("score gauge %v, want %v", w, score.Score(r, c))
	}

	bad, _ := NewExporter(&countingSource{err: errors.New("x")}, score.Config{})
	m = gather(t, bad)
	if val("infergate_gpu_report_up", 0) != 0 || len(m) != 1 {
		t.Fatalf("failing source exported %d families", len(m))
	}
}

func TestHostWiring(t *testing.T) {
	url := vllmServer(t, "vllm_v0.txt")
	if _, err := NewHost(HostConfig{MetricsURL: url, ServerKind: "ollama"}); err == nil {
		t.Fatal("unknown server kind accepted")
	}
	if _, err := NewHost(HostConfig{MetricsURL: "gopher://x"}); err == nil {
		t.Fatal("bad metrics URL accepted")
	}
	// With the real NVML collector: on a host without the driver the report
	// still carries the server's signals and stays healthy.
	h, err := NewHost(HostConfig{Host: "gpu-a", MetricsURL: url})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	srv := httptest.NewServer(h.Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "?detail=true")
	if err != nil {
		t.Fatal(err)
	}
	var doc Document
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if doc.Host != "gpu-a" || !doc.Signals.Has(score.HasKVCache|score.HasWaiting) || doc.RequestsWaiting != 7 {
		t.Fatalf("host report %+v", doc.Report)
	}
	if doc.Detail == nil || doc.Detail.Server == nil {
		t.Fatalf("detail %+v", doc.Detail)
	}
	if doc.Detail.GPU == nil && !strings.Contains(doc.Detail.GPUError, "nvml unavailable") {
		t.Fatalf("no GPU detail and no reason: %+v", doc.Detail)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := h.Register(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}
