//go:build cgo

package report

import (
	"context"
	"math"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/infergate/infergate/gpu/collector"
	"github.com/infergate/infergate/gpu/score"
)

// TestHostSourceOverNVMLMock runs the real collector over go-nvml's DGX H100
// mock and the real scraper over a vLLM payload: the whole host-side path.
func TestHostSourceOverNVMLMock(t *testing.T) {
	srv := dgxh100.New()
	for _, h := range srv.Devices {
		d := h.(*server.Device)
		d.MemoryInfo.Used = 64 << 30
		d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{Gpu: 75, Memory: 40}, nvml.SUCCESS }
		notSupported := func() (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
		d.GetPowerUsageFunc, d.GetEnforcedPowerLimitFunc = notSupported, notSupported
		d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
		d.GetClockInfoFunc = func(nvml.ClockType) (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
		d.GetTotalEccErrorsFunc = func(nvml.MemoryErrorType, nvml.EccCounterType) (uint64, nvml.Return) { return 0, nvml.SUCCESS }
		d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) { return 0, nvml.SUCCESS }
		d.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS }
	}
	col := collector.NewWithInterface(srv, nil, collector.Config{})
	src := &HostSource{Host: "dgx", Collector: col, Scraper: newScraper(t, vllmServer(t, "vllm_v1.txt"))}
	r, err := src.Report(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !r.Healthy || r.GPUs != 8 || r.Capacity != 8 || r.SMUtil != 0.75 {
		t.Fatalf("report %+v", r)
	}
	if r.MemoryUsedBytes != 8*64<<30 || r.MemoryTotalBytes != 8*81920<<20 {
		t.Fatalf("memory %d/%d", r.MemoryUsedBytes, r.MemoryTotalBytes)
	}
	if math.Abs(r.KVCacheUsage-0.58) > 1e-9 || r.RequestsRunning != 60 || r.RequestsWaiting != 6 {
		t.Fatalf("server signals %+v", r)
	}
	c, _ := score.Config{}.WithDefaults()
	if s := score.Score(r, c); !(s > 0 && s < 8*float64(c.BaseWeight)) {
		t.Fatalf("score %v of a loaded 8-GPU host out of range", s)
	}
}
