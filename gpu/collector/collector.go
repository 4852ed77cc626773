//go:build cgo

package collector

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// unknownDevice keys XIDs whose event carried no usable device handle.
const unknownDevice = "unknown"

// Collector reads GPUs through an nvml.Interface. It is safe for concurrent
// use; Collect and Watch may run at the same time.
type Collector struct {
	cfg Config
	lib nvml.Interface
	log *slog.Logger

	mu          sync.Mutex
	initialised bool
	lastTry     time.Time
	unavailable error
	announced   bool
	driver      string
	xids        map[string][]XID // by device key (UUID, or index:N)
}

// New returns a Collector over the system's NVML library, loaded (dlopen)
// on first use.
func New(log *slog.Logger, cfg Config) *Collector {
	return NewWithInterface(nvml.New(), log, cfg)
}

// NewWithInterface returns a Collector over lib (tests pass go-nvml mocks).
func NewWithInterface(lib nvml.Interface, log *slog.Logger, cfg Config) *Collector {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Collector{cfg: cfg.withDefaults(), lib: lib, log: log, xids: map[string][]XID{}}
}

// ensure initialises NVML if it is not yet, retrying at most once per
// RetryInterval. The first failure is logged once; later ones are not.
func (c *Collector) ensure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.initialised {
		return nil
	}
	now := c.cfg.Now()
	if c.unavailable != nil && now.Sub(c.lastTry) < c.cfg.RetryInterval {
		return c.unavailable
	}
	c.lastTry = now
	ret := c.lib.Init()
	if ret != nvml.SUCCESS {
		reason := ret.Error()
		switch ret {
		case nvml.ERROR_LIBRARY_NOT_FOUND:
			reason = "libnvidia-ml.so.1 not found (no NVIDIA driver on this host); reporting without GPU metrics"
		case nvml.ERROR_DRIVER_NOT_LOADED:
			reason = "NVIDIA driver not loaded; reporting without GPU metrics"
		case nvml.ERROR_NO_PERMISSION:
			reason = "no permission to open the NVIDIA driver; reporting without GPU metrics"
		}
		c.unavailable = &UnavailableError{Reason: reason}
		if !c.announced {
			c.announced = true
			c.log.Warn("nvml unavailable", "reason", reason, "retry", c.cfg.RetryInterval)
		}
		return c.unavailable
	}
	c.initialised = true
	if c.announced {
		c.log.Info("nvml available")
	}
	c.unavailable = nil
	if v, r := c.lib.SystemGetDriverVersion(); r == nvml.SUCCESS {
		c.driver = v
	}
	return nil
}

// Collect reads every device once. Without NVML it returns a snapshot with
// Available false and an error wrapping ErrUnavailable. A device that fails
// to answer is reported unhealthy with its problem; other devices are still
// read.
func (c *Collector) Collect(ctx context.Context) (Snapshot, error) {
	snap := Snapshot{Time: c.cfg.Now(), Devices: []Device{}}
	if err := c.ensure(); err != nil {
		snap.Status = err.Error()
		return snap, err
	}
	snap.Available = true
	snap.Status = "ok"
	c.mu.Lock()
	snap.DriverVersion = c.driver
	c.mu.Unlock()

	count, ret := c.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		snap.Status = "device count: " + ret.Error()
		snap.Problems = append(snap.Problems, "cannot count GPUs: "+ret.Error())
		return snap, fmt.Errorf("nvml device count: %w", ret)
	}
	if count > maxDevices {
		snap.Problems = append(snap.Problems, fmt.Sprintf("NVML reports %d GPUs; reading the first %d", count, maxDevices))
		count = maxDevices
	}
	for i := 0; i < count; i++ {
		if err := ctx.Err(); err != nil {
			return snap, fmt.Errorf("nvml collect: %w", err)
		}
		h, ret := c.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			d := Device{Index: i}
			d.miss("handle", ret)
			d.Problems = append(d.Problems, "cannot open device: "+ret.Error())
			snap.Devices = append(snap.Devices, d)
			continue
		}
		snap.Devices = append(snap.Devices, c.readDevice(i, h, snap.Time))
	}
	c.mu.Lock()
	for _, x := range c.xids[unknownDevice] {
		if x.Fatal && snap.Time.Sub(x.Time) < c.cfg.XIDHold {
			snap.Problems = append(snap.Problems, fmt.Sprintf("Xid %d (%s) on an unidentified GPU", x.Code, fatalXIDs[x.Code]))
		}
	}
	c.mu.Unlock()
	return snap, nil
}

// readDevice reads what it can of one device.
func (c *Collector) readDevice(i int, h nvml.Device, now time.Time) Device {
	d := Device{Index: i}
	lost := false
	// check notes a failed read; NOT_SUPPORTED is a fact about the GPU,
	// GPU_IS_LOST a health problem, anything else a read error.
	check := func(field string, ret nvml.Return) bool {
		if ret == nvml.SUCCESS {
			return true
		}
		d.miss(field, ret)
		if ret == nvml.ERROR_GPU_IS_LOST {
			lost = true
		}
		return false
	}
	if v, ret := h.GetUUID(); check("uuid", ret) {
		d.UUID = v
	}
	if v, ret := h.GetName(); check("name", ret) {
		d.Name = v
	}
	if u, ret := h.GetUtilizationRates(); check("utilization", ret) {
		d.SMUtilPercent, d.MemoryUtilPercent = &u.Gpu, &u.Memory
	}
	if m, ret := h.GetMemoryInfo(); check("memory", ret) {
		d.MemoryUsedBytes, d.MemoryTotalBytes = &m.Used, &m.Total
	}
	if v, ret := h.GetPowerUsage(); check("power", ret) {
		d.PowerMilliwatts = &v
	}
	if v, ret := h.GetEnforcedPowerLimit(); check("powerLimit", ret) {
		d.PowerLimitMW = &v
	}
	if v, ret := h.GetTemperature(nvml.TEMPERATURE_GPU); check("temperature", ret) {
		d.TemperatureC = &v
	}
	if v, ret := h.GetClockInfo(nvml.CLOCK_SM); check("smClock", ret) {
		d.SMClockMHz = &v
	}
	if v, ret := h.GetClockInfo(nvml.CLOCK_MEM); check("memoryClock", ret) {
		d.MemoryClockMHz = &v
	}
	if v, ret := h.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC); check("eccUncorrected", ret) {
		d.ECCUncorrected = &v
	}
	if v, ret := h.GetCurrentClocksEventReasons(); check("throttle", ret) {
		d.ThrottleMask = &v
		d.Throttle = throttleList(v)
	}
	if ps, ret := h.GetComputeRunningProcesses(); check("processes", ret) {
		if len(ps) > maxProcesses {
			ps = ps[:maxProcesses]
		}
		d.Processes = make([]Process, 0, len(ps))
		for _, p := range ps {
			d.Processes = append(d.Processes, Process{PID: p.Pid, UsedMemoryBytes: p.UsedGpuMemory})
		}
	}

	if lost {
		d.Problems = append(d.Problems, "GPU is lost (fallen off the bus or driver fault)")
	}
	if d.ECCUncorrected != nil && *d.ECCUncorrected > 0 {
		d.Problems = append(d.Problems, fmt.Sprintf("%d uncorrectable ECC errors since last reset", *d.ECCUncorrected))
	}
	c.mu.Lock()
	recent := c.xids[deviceKey(d.UUID, i)]
	c.mu.Unlock()
	for _, x := range recent {
		d.XIDs = append(d.XIDs, x)
		if x.Fatal && now.Sub(x.Time) < c.cfg.XIDHold {
			d.Problems = append(d.Problems, fmt.Sprintf("Xid %d (%s) at %s", x.Code, fatalXIDs[x.Code], x.Time.UTC().Format(time.RFC3339)))
		}
	}
	d.Healthy = len(d.Problems) == 0
	return d
}

// deviceKey names a device for the XID map: its UUID, or its index when the
// UUID cannot be read.
func deviceKey(uuid string, index int) string {
	if uuid != "" {
		return uuid
	}
	return fmt.Sprintf("index:%d", index)
}

// watchedEvents are the events Watch registers for.
const watchedEvents = nvml.EventTypeXidCriticalError | nvml.EventTypeDoubleBitEccError

// dbeXID is the Xid the driver logs for a double-bit ECC error; a
// double-bit ECC event is recorded under it.
const dbeXID = 48

// Watch listens for Xid and double-bit ECC events until ctx ends, so
// Collect can report a GPU that faulted between collections. Without NVML
// it retries every RetryInterval. It returns ctx's error.
func (c *Collector) Watch(ctx context.Context) error {
	for {
		if err := c.ensure(); err != nil {
			if !sleepCtx(ctx, c.cfg.RetryInterval) {
				return ctx.Err()
			}
			continue
		}
		if err := c.watchOnce(ctx); err != nil {
			c.log.Warn("nvml event watch", "err", err)
			if !sleepCtx(ctx, c.cfg.RetryInterval) {
				return ctx.Err()
			}
			continue
		}
		return ctx.Err()
	}
}

// watchOnce runs one event set until ctx ends or the set cannot be made.
func (c *Collector) watchOnce(ctx context.Context) error {
	set, ret := c.lib.EventSetCreate()
	if ret != nvml.SUCCESS {
		return fmt.Errorf("event set: %w", ret)
	}
	defer set.Free()
	count, ret := c.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return fmt.Errorf("device count: %w", ret)
	}
	registered := 0
	for i := 0; i < min(count, maxDevices); i++ {
		h, ret := c.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			continue
		}
		mask := uint64(watchedEvents)
		if sup, ret := h.GetSupportedEventTypes(); ret == nvml.SUCCESS {
			mask &= sup
		}
		if mask == 0 {
			continue
		}
		if ret := h.RegisterEvents(mask, set); ret != nvml.SUCCESS {
			c.log.Info("nvml events not available for device", "index", i, "err", ret.Error())
			continue
		}
		registered++
	}
	if registered == 0 {
		c.log.Info("no GPU supports Xid events; health from polling only")
		<-ctx.Done()
		return nil
	}
	failures := 0
	for ctx.Err() == nil {
		e, ret := set.Wait(eventWaitMillis)
		switch ret {
		case nvml.SUCCESS:
			failures = 0
			c.record(e)
		case nvml.ERROR_TIMEOUT:
			failures = 0
		default:
			// A persistently failing wait is logged at 1, 2, 4, 8… failures
			// rather than every backoff.
			failures++
			if failures&(failures-1) == 0 {
				c.log.Warn("nvml event wait", "err", ret.Error(), "failures", failures)
			}
			if !sleepCtx(ctx, eventErrorBackoff) {
				return nil
			}
		}
	}
	return nil
}

// record stores one event against its device.
func (c *Collector) record(e nvml.EventData) {
	var code uint64
	switch e.EventType {
	case nvml.EventTypeXidCriticalError:
		code = e.EventData
	case nvml.EventTypeDoubleBitEccError:
		code = dbeXID
	default:
		return
	}
	key := unknownDevice
	if e.Device != nil {
		uuid, ret := e.Device.GetUUID()
		if ret != nvml.SUCCESS {
			uuid = ""
		}
		idx, iret := e.Device.GetIndex()
		if uuid != "" || iret == nvml.SUCCESS {
			key = deviceKey(uuid, idx)
		}
	}
	_, fatal := fatalXIDs[code]
	x := XID{Code: code, Time: c.cfg.Now(), Fatal: fatal}
	c.log.Warn("gpu xid", "device", key, "xid", code, "fatal", fatal)
	c.mu.Lock()
	defer c.mu.Unlock()
	l := append(c.xids[key], x)
	if len(l) > maxXIDsPerDevice {
		l = l[len(l)-maxXIDsPerDevice:]
	}
	c.xids[key] = l
}

// Close shuts NVML down if it was initialised.
func (c *Collector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.initialised {
		return nil
	}
	c.initialised = false
	if ret := c.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("nvml shutdown: %w", ret)
	}
	return nil
}

// sleepCtx sleeps d or until ctx ends; it reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
