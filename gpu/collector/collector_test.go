//go:build cgo

package collector

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/infergate/infergate/internal/fakeclock"
	"github.com/infergate/infergate/internal/syncbuf"
)

func newClock() *fakeclock.Clock { return fakeclock.New(time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)) }

// fillDevice gives a dgxh100 device the readings the shared mock leaves
// unset (they would panic), each derived from the index so a mix-up
// between devices shows.
func fillDevice(d *server.Device) {
	i := uint32(d.Index)
	d.MemoryInfo.Used = uint64(i+1) * 8 << 30
	d.MemoryInfo.Free = d.MemoryInfo.Total - d.MemoryInfo.Used
	d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		return nvml.Utilization{Gpu: 10 * i, Memory: 5 * i}, nvml.SUCCESS
	}
	d.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 100000 + 1000*i, nvml.SUCCESS }
	d.GetEnforcedPowerLimitFunc = func() (uint32, nvml.Return) { return 700000, nvml.SUCCESS }
	d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 40 + i, nvml.SUCCESS }
	d.GetClockInfoFunc = func(t nvml.ClockType) (uint32, nvml.Return) {
		switch t {
		case nvml.CLOCK_SM:
			return 1980, nvml.SUCCESS
		case nvml.CLOCK_MEM:
			return 2619, nvml.SUCCESS
		}
		return 0, nvml.ERROR_INVALID_ARGUMENT
	}
	d.GetTotalEccErrorsFunc = func(nvml.MemoryErrorType, nvml.EccCounterType) (uint64, nvml.Return) { return 0, nvml.SUCCESS }
	d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) {
		if i == 1 {
			return nvml.ClocksEventReasonSwPowerCap | nvml.ClocksThrottleReasonHwThermalSlowdown, nvml.SUCCESS
		}
		return nvml.ClocksEventReasonGpuIdle, nvml.SUCCESS
	}
	d.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		if i%2 == 1 {
			return []nvml.ProcessInfo{}, nvml.SUCCESS
		}
		return []nvml.ProcessInfo{{Pid: 4000 + i, UsedGpuMemory: 70 << 30}}, nvml.SUCCESS
	}
	d.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) {
		return nvml.EventTypeXidCriticalError | nvml.EventTypeDoubleBitEccError | nvml.EventTypeSingleBitEccError, nvml.SUCCESS
	}
	d.GetIndexFunc = func() (int, nvml.Return) { return d.Index, nvml.SUCCESS }
}

func newH100(t *testing.T) (*server.Server, []*server.Device) {
	t.Helper()
	srv := dgxh100.New()
	var devs []*server.Device
	for _, h := range srv.Devices {
		d := h.(*server.Device)
		fillDevice(d)
		devs = append(devs, d)
	}
	srv.ShutdownFunc = func() nvml.Return { return nvml.SUCCESS }
	return srv, devs
}

func TestCollectDGXH100(t *testing.T) {
	srv, devs := newH100(t)
	clk := newClock()
	c := NewWithInterface(srv, nil, Config{Now: clk.Now})
	defer c.Close()
	snap, err := c.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !snap.Available || snap.Status != "ok" || snap.DriverVersion != "550.54.15" {
		t.Fatalf("snapshot header: %+v", snap)
	}
	if !snap.Time.Equal(clk.Now()) {
		t.Fatalf("time %v, want %v", snap.Time, clk.Now())
	}
	if len(snap.Devices) != 8 {
		t.Fatalf("%d devices, want 8", len(snap.Devices))
	}
	for i, d := range snap.Devices {
		u := uint32(i)
		if d.Index != i || d.UUID != devs[i].UUID || d.Name != "NVIDIA H100 80GB HBM3" {
			t.Fatalf("device %d identity: %+v", i, d)
		}
		if *d.SMUtilPercent != 10*u || *d.MemoryUtilPercent != 5*u {
			t.Errorf("device %d util %d/%d", i, *d.SMUtilPercent, *d.MemoryUtilPercent)
		}
		if *d.MemoryUsedBytes != uint64(i+1)*8<<30 || *d.MemoryTotalBytes != 81920<<20 {
			t.Errorf("device %d memory %d/%d", i, *d.MemoryUsedBytes, *d.MemoryTotalBytes)
		}
		if *d.PowerMilliwatts != 100000+1000*u || *d.PowerLimitMW != 700000 {
			t.Errorf("device %d power %d/%d", i, *d.PowerMilliwatts, *d.PowerLimitMW)
		}
		if *d.TemperatureC != 40+u || *d.SMClockMHz != 1980 || *d.MemoryClockMHz != 2619 {
			t.Errorf("device %d temp/clocks %d %d %d", i, *d.TemperatureC, *d.SMClockMHz, *d.MemoryClockMHz)
		}
		if *d.ECCUncorrected != 0 || !d.Healthy || len(d.Problems) != 0 || len(d.Missing) != 0 {
			t.Errorf("device %d health: %+v", i, d)
		}
		if d.Processes == nil {
			t.Errorf("device %d: process list nil though readable", i)
		}
		if i%2 == 0 && (len(d.Processes) != 1 || d.Processes[0].PID != 4000+u) {
			t.Errorf("device %d processes %+v", i, d.Processes)
		}
	}
	if got := snap.Devices[1].Throttle; !slices.Equal(got, []string{"sw_power_cap", "hw_thermal"}) {
		t.Errorf("throttle reasons %v", got)
	}
	if len(snap.Devices[0].Throttle) != 0 {
		t.Errorf("idle clocks reported as throttling: %v", snap.Devices[0].Throttle)
	}
	if !snap.Healthy() || snap.ProblemSummary() != "" {
		t.Fatalf("healthy fleet reported %q", snap.ProblemSummary())
	}
}

func TestThrottleBitsMatchNVML(t *testing.T) {
	want := map[string]uint64{
		"sw_power_cap":   nvml.ClocksEventReasonSwPowerCap,
		"hw_slowdown":    nvml.ClocksThrottleReasonHwSlowdown,
		"sync_boost":     nvml.ClocksEventReasonSyncBoost,
		"sw_thermal":     nvml.ClocksEventReasonSwThermalSlowdown,
		"hw_thermal":     nvml.ClocksThrottleReasonHwThermalSlowdown,
		"hw_power_brake": nvml.ClocksThrottleReasonHwPowerBrakeSlowdown,
	}
	for _, n := range throttleNames {
		if want[n.name] != n.bit {
			t.Errorf("%s: bit %#x, NVML says %#x", n.name, n.bit, want[n.name])
		}
	}
}

func TestCollectMissingLibrary(t *testing.T) {
	var inits atomic.Int32
	fail := true
	lib := &mock.Interface{
		InitFunc: func() nvml.Return {
			inits.Add(1)
			if fail {
				return nvml.ERROR_LIBRARY_NOT_FOUND
			}
			return nvml.SUCCESS
		},
		SystemGetDriverVersionFunc: func() (string, nvml.Return) { return "550.54.15", nvml.SUCCESS },
		DeviceGetCountFunc:         func() (int, nvml.Return) { return 0, nvml.SUCCESS },
		ShutdownFunc:               func() nvml.Return { return nvml.SUCCESS },
	}
	var logs syncbuf.Buffer
	clk := newClock()
	c := NewWithInterface(lib, slog.New(slog.NewTextHandler(&logs, nil)), Config{Now: clk.Now, RetryInterval: time.Minute})
	for range 5 {
		snap, err := c.Collect(context.Background())
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err %v, want ErrUnavailable", err)
		}
		var ue *UnavailableError
		if !errors.As(err, &ue) || !strings.Contains(ue.Reason, "libnvidia-ml") {
			t.Fatalf("reason does not name the library: %v", err)
		}
		if snap.Available || snap.Devices == nil || len(snap.Devices) != 0 || !strings.HasPrefix(snap.Status, "nvml unavailable") {
			t.Fatalf("snapshot without library: %+v", snap)
		}
		if !snap.Healthy() {
			t.Fatal("missing library reported as unhealthy GPUs")
		}
		clk.Add(time.Second)
	}
	if n := inits.Load(); n != 1 {
		t.Fatalf("Init called %d times within the retry interval, want 1", n)
	}
	if n := strings.Count(logs.String(), "nvml unavailable"); n != 1 {
		t.Fatalf("unavailability logged %d times, want once:\n%s", n, logs.String())
	}
	// The driver arrives later: the next retry finds it.
	fail = false
	clk.Add(time.Minute)
	snap, err := c.Collect(context.Background())
	if err != nil || !snap.Available || snap.DriverVersion != "550.54.15" {
		t.Fatalf("after driver load: %+v %v", snap, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCollectRealLibrary runs against the system's real NVML: on a host
// without the driver (CI) it must report the library missing, cleanly; on
// a GPU host it must read at least one device.
func TestCollectRealLibrary(t *testing.T) {
	c := New(nil, Config{})
	defer c.Close()
	snap, err := c.Collect(context.Background())
	if errors.Is(err, ErrUnavailable) {
		if snap.Available || len(snap.Devices) != 0 {
			t.Fatalf("unavailable but reported devices: %+v", snap)
		}
		t.Logf("no NVML on this host: %s", snap.Status)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Devices) == 0 {
		t.Fatal("NVML loaded but no devices read")
	}
	for _, d := range snap.Devices {
		t.Logf("gpu %d %s util=%v mem=%v/%v missing=%v", d.Index, d.Name, deref(d.SMUtilPercent), deref(d.MemoryUsedBytes), deref(d.MemoryTotalBytes), d.Missing)
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return "n/a"
	}
	return *p
}

func TestCollectDeviceErrors(t *testing.T) {
	srv, devs := newH100(t)
	devs[2].GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.ERROR_UNKNOWN }
	devs[3].GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return nvml.Memory{}, nvml.ERROR_GPU_IS_LOST }
	devs[4].GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
	devs[6].GetTotalEccErrorsFunc = func(nvml.MemoryErrorType, nvml.EccCounterType) (uint64, nvml.Return) { return 2, nvml.SUCCESS }
	devs[7].GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.ERROR_NO_PERMISSION }
	openHandle := srv.DeviceGetHandleByIndexFunc
	srv.DeviceGetHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		if i == 5 {
			return nil, nvml.ERROR_UNKNOWN
		}
		return openHandle(i)
	}
	c := NewWithInterface(srv, nil, Config{})
	snap, err := c.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Devices) != 8 {
		t.Fatalf("%d devices, want all 8 despite errors", len(snap.Devices))
	}
	d := snap.Devices
	if d[2].SMUtilPercent != nil || d[2].Missing["utilization"] != "ERROR_UNKNOWN" || !d[2].Healthy {
		t.Errorf("unreadable utilisation: %+v", d[2])
	}
	if d[2].MemoryUsedBytes == nil {
		t.Error("one failed read dropped the device's other readings")
	}
	if d[3].MemoryUsedBytes != nil || d[3].Healthy || !strings.Contains(strings.Join(d[3].Problems, ";"), "lost") {
		t.Errorf("lost GPU: %+v", d[3])
	}
	if d[4].PowerMilliwatts != nil || d[4].Missing["power"] != "ERROR_NOT_SUPPORTED" || !d[4].Healthy {
		t.Errorf("unsupported power: %+v", d[4])
	}
	if d[5].Healthy || d[5].Missing["handle"] == "" || d[5].Index != 5 {
		t.Errorf("device that cannot be opened: %+v", d[5])
	}
	if d[6].Healthy || !strings.Contains(strings.Join(d[6].Problems, ";"), "2 uncorrectable ECC") {
		t.Errorf("ECC errors: %+v", d[6])
	}
	if d[7].Processes != nil || d[7].Missing["processes"] == "" {
		t.Errorf("unreadable processes must be nil, not empty: %+v", d[7])
	}
	for _, i := range []int{0, 1} {
		if !d[i].Healthy {
			t.Errorf("device %d unhealthy from a neighbour's fault: %+v", i, d[i])
		}
	}
	if snap.Healthy() {
		t.Fatal("snapshot with a lost GPU reported healthy")
	}
	sum := snap.ProblemSummary()
	for _, want := range []string{"gpu 3:", "gpu 5:", "gpu 6:"} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary %q lacks %q", sum, want)
		}
	}
}

func TestCollectDeviceCountFails(t *testing.T) {
	srv, _ := newH100(t)
	srv.DeviceGetCountFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
	c := NewWithInterface(srv, nil, Config{})
	snap, err := c.Collect(context.Background())
	if err == nil || errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v, want a device-count error", err)
	}
	if snap.Healthy() {
		t.Fatal("uncountable GPUs reported healthy")
	}
}

// eventSet is a mock event set fed from a channel.
func eventSet(events <-chan nvml.EventData, freed *atomic.Bool) *mock.EventSet {
	return &mock.EventSet{
		WaitFunc: func(ms uint32) (nvml.EventData, nvml.Return) {
			select {
			case e := <-events:
				return e, nvml.SUCCESS
			case <-time.After(time.Duration(ms) * time.Millisecond):
				return nvml.EventData{}, nvml.ERROR_TIMEOUT
			}
		},
		FreeFunc: func() nvml.Return { freed.Store(true); return nvml.SUCCESS },
	}
}

func TestWatchXIDEvent(t *testing.T) {
	srv, devs := newH100(t)
	events := make(chan nvml.EventData)
	var freed atomic.Bool
	set := eventSet(events, &freed)
	srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return set, nvml.SUCCESS }
	var registered atomic.Int32
	for _, d := range devs {
		d.RegisterEventsFunc = func(mask uint64, s nvml.EventSet) nvml.Return {
			if s != set || mask&nvml.EventTypeXidCriticalError == 0 || mask&nvml.EventTypeSingleBitEccError != 0 {
				return nvml.ERROR_INVALID_ARGUMENT
			}
			registered.Add(1)
			return nvml.SUCCESS
		}
	}
	clk := newClock()
	c := NewWithInterface(srv, nil, Config{Now: clk.Now, XIDHold: 5 * time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Watch(ctx) }()

	// Sends block until Watch is waiting on the set, so these are ordered.
	events <- nvml.EventData{Device: devs[2], EventType: nvml.EventTypeXidCriticalError, EventData: 79}
	events <- nvml.EventData{Device: devs[4], EventType: nvml.EventTypeXidCriticalError, EventData: 13}
	events <- nvml.EventData{Device: devs[6], EventType: nvml.EventTypeDoubleBitEccError}
	events <- nvml.EventData{EventType: nvml.EventTypeXidCriticalError, EventData: 31} // no device, not fatal
	if n := registered.Load(); n != 8 {
		t.Fatalf("registered on %d devices, want 8", n)
	}
	// One more send ensures the last event has been recorded.
	events <- nvml.EventData{Device: devs[0], EventType: nvml.EventTypeSingleBitEccError}

	snap, err := c.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := snap.Devices
	if d[2].Healthy || len(d[2].XIDs) != 1 || d[2].XIDs[0].Code != 79 || !d[2].XIDs[0].Fatal {
		t.Fatalf("Xid 79 not reported on gpu 2: %+v", d[2])
	}
	if !strings.Contains(snap.ProblemSummary(), "gpu 2: Xid 79 (GPU has fallen off the bus)") {
		t.Fatalf("summary %q", snap.ProblemSummary())
	}
	if !d[4].Healthy || len(d[4].XIDs) != 1 || d[4].XIDs[0].Code != 13 || d[4].XIDs[0].Fatal {
		t.Fatalf("application Xid 13 on gpu 4 should be recorded, not fatal: %+v", d[4])
	}
	if d[6].Healthy || len(d[6].XIDs) != 1 || d[6].XIDs[0].Code != dbeXID {
		t.Fatalf("double-bit ECC event on gpu 6: %+v", d[6])
	}
	if len(d[0].XIDs) != 0 || !d[0].Healthy {
		t.Fatalf("single-bit ECC event should be ignored: %+v", d[0])
	}
	if len(snap.Problems) != 0 {
		t.Fatalf("non-fatal Xid without device became a problem: %v", snap.Problems)
	}

	// After the hold time the Xid is history, not a problem.
	clk.Add(6 * time.Minute)
	snap, _ = c.Collect(ctx)
	if !snap.Devices[2].Healthy || len(snap.Devices[2].XIDs) != 1 {
		t.Fatalf("after hold: %+v", snap.Devices[2])
	}

	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Watch returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not stop on cancel")
	}
	if !freed.Load() {
		t.Fatal("event set not freed")
	}
}

func TestWatchWithoutLibraryStops(t *testing.T) {
	lib := &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }}
	c := NewWithInterface(lib, nil, Config{RetryInterval: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Watch(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Watch: %v", err)
	}
}

func TestXIDHistoryBounded(t *testing.T) {
	srv, devs := newH100(t)
	c := NewWithInterface(srv, nil, Config{})
	for i := range 100 {
		c.record(nvml.EventData{Device: devs[1], EventType: nvml.EventTypeXidCriticalError, EventData: uint64(i)})
	}
	snap, err := c.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	x := snap.Devices[1].XIDs
	if len(x) != maxXIDsPerDevice || x[len(x)-1].Code != 99 {
		t.Fatalf("history %d entries, last %v", len(x), x[len(x)-1])
	}
}
