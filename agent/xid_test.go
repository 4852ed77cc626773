//go:build cgo

package agent

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infergate/infergate/gpu/collector"
)

// The GPU host's startup path starts the NVML Xid watcher: a fatal Xid
// (79, fallen off the bus) that NVML reports after start makes the load
// report served on --load-report-addr say the host is unhealthy.
func TestLoadReportRunsXidWatcher(t *testing.T) {
	srv := dgxh100.New()
	var devs []*server.Device
	for _, h := range srv.Devices {
		d := h.(*server.Device)
		notSupported := func() (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
		d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.SUCCESS }
		d.GetPowerUsageFunc, d.GetEnforcedPowerLimitFunc = notSupported, notSupported
		d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
		d.GetClockInfoFunc = func(nvml.ClockType) (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
		d.GetTotalEccErrorsFunc = func(nvml.MemoryErrorType, nvml.EccCounterType) (uint64, nvml.Return) { return 0, nvml.SUCCESS }
		d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) { return 0, nvml.SUCCESS }
		d.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS }
		d.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }
		d.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) { return nvml.EventTypeXidCriticalError, nvml.SUCCESS }
		devs = append(devs, d)
	}
	events := make(chan nvml.EventData)
	srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) {
		return &mock.EventSet{
			WaitFunc: func(ms uint32) (nvml.EventData, nvml.Return) {
				select {
				case e := <-events:
					return e, nvml.SUCCESS
				case <-time.After(time.Duration(ms) * time.Millisecond):
					return nvml.EventData{}, nvml.ERROR_TIMEOUT
				}
			},
			FreeFunc: func() nvml.Return { return nvml.SUCCESS },
		}, nvml.SUCCESS
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	cfg := Config{Role: RoleGPUHost, LoadReportAddr: "127.0.0.1:0", nvmlCollector: collector.NewWithInterface(srv, nil, collector.Config{})}
	addr, err := serveLoadReport(ctx, cfg, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)), &wg)
	if err != nil {
		t.Fatal(err)
	}
	healthy := func() bool {
		t.Helper()
		resp, err := http.Get("http://" + addr.String() + "/load")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r struct {
			Healthy bool `json:"healthy"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		return r.Healthy
	}
	if !healthy() {
		t.Fatal("unhealthy before any Xid")
	}
	// The send blocks until the watcher waits on its event set: only a
	// started watcher takes it.
	select {
	case events <- nvml.EventData{Device: devs[3], EventType: nvml.EventTypeXidCriticalError, EventData: 79}:
	case <-time.After(10 * time.Second):
		t.Fatal("no Xid watcher is waiting for NVML events")
	}
	deadline := time.Now().Add(5 * time.Second)
	for healthy() {
		if time.Now().After(deadline) {
			t.Fatal("a fatal Xid did not reach the load report")
		}
		time.Sleep(100 * time.Millisecond) // the report is cached for 250 ms
	}
}
