// Package collector reads per-GPU load and health from NVIDIA's NVML.
//
// It is built around go-nvml's nvml.Interface so tests can inject
// go-nvml's mock servers. Without the NVML library (no driver, a container
// without the driver mounted, a build without cgo) a Collector says so once
// in its log, returns ErrUnavailable with an empty snapshot, and keeps
// working; it never makes numbers up. A value NVML could not read is left
// out of the snapshot (nil), with the reason in Device.Missing.
package collector

import (
	"errors"
	"fmt"
	"time"
)

// ErrUnavailable is returned (wrapped) when NVML cannot be used at all.
var ErrUnavailable = errors.New("nvml unavailable")

// UnavailableError says why NVML cannot be used.
type UnavailableError struct {
	Reason string
}

func (e *UnavailableError) Error() string { return "nvml unavailable: " + e.Reason }

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Defaults and bounds.
const (
	// DefaultRetryInterval: how often a Collector without NVML tries to
	// initialise it again (the driver may be loaded after the agent starts).
	DefaultRetryInterval = 30 * time.Second
	// DefaultXIDHold: how long a GPU-fatal XID keeps a device unhealthy.
	// Such errors need a GPU reset; holding them for a while keeps a host
	// from flapping back into rotation between two faults.
	DefaultXIDHold = 10 * time.Minute
	// eventWaitMillis bounds one blocking NVML event wait, so Watch notices
	// cancellation within this time.
	eventWaitMillis = 500
	// eventErrorBackoff: pause after an unexpected event-wait error so a
	// broken event set cannot spin a core.
	eventErrorBackoff = 2 * time.Second
	// maxXIDsPerDevice bounds the recent-XID history kept per device.
	maxXIDsPerDevice = 16
	// maxDevices bounds the device count trusted from NVML.
	maxDevices = 64
	// maxProcesses bounds the processes listed per device.
	maxProcesses = 256
)

// Config tunes a Collector. Zero fields take defaults.
type Config struct {
	RetryInterval time.Duration
	XIDHold       time.Duration
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.RetryInterval <= 0 {
		c.RetryInterval = DefaultRetryInterval
	}
	if c.XIDHold <= 0 {
		c.XIDHold = DefaultXIDHold
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Process is a compute process on a GPU.
type Process struct {
	PID             uint32 `json:"pid"`
	UsedMemoryBytes uint64 `json:"usedMemoryBytes"`
}

// XID is one Xid error reported by the driver.
type XID struct {
	Code uint64    `json:"code"`
	Time time.Time `json:"time"`
	// Fatal: the code means the GPU needs attention (see fatalXIDs).
	Fatal bool `json:"fatal"`
}

// Device is what NVML said about one GPU. Pointer fields are nil when the
// value could not be read; Missing says why.
type Device struct {
	Index int    `json:"index"`
	UUID  string `json:"uuid,omitempty"`
	Name  string `json:"name,omitempty"`

	SMUtilPercent     *uint32 `json:"smUtilPercent,omitempty"`
	MemoryUtilPercent *uint32 `json:"memoryUtilPercent,omitempty"`
	MemoryUsedBytes   *uint64 `json:"memoryUsedBytes,omitempty"`
	MemoryTotalBytes  *uint64 `json:"memoryTotalBytes,omitempty"`
	PowerMilliwatts   *uint32 `json:"powerMilliwatts,omitempty"`
	PowerLimitMW      *uint32 `json:"powerLimitMilliwatts,omitempty"`
	TemperatureC      *uint32 `json:"temperatureC,omitempty"`
	SMClockMHz        *uint32 `json:"smClockMHz,omitempty"`
	MemoryClockMHz    *uint32 `json:"memoryClockMHz,omitempty"`
	// ECCUncorrected is the volatile (since last driver load or GPU reset)
	// count of uncorrectable memory errors.
	ECCUncorrected *uint64 `json:"eccUncorrected,omitempty"`
	// Throttle lists active clock event (throttle) reasons by name.
	Throttle     []string `json:"throttle,omitempty"`
	ThrottleMask *uint64  `json:"throttleMask,omitempty"`
	// Processes is nil when the list could not be read, empty when none.
	Processes []Process `json:"processes"`
	// XIDs are recent Xid errors from the event watcher, oldest first.
	XIDs []XID `json:"xids,omitempty"`

	Healthy  bool     `json:"healthy"`
	Problems []string `json:"problems,omitempty"`
	// Missing maps a field that could not be read to NVML's reason.
	Missing map[string]string `json:"missing,omitempty"`
}

func (d *Device) miss(field string, err fmt.Stringer) {
	if d.Missing == nil {
		d.Missing = map[string]string{}
	}
	d.Missing[field] = err.String()
}

// Snapshot is one collection over all devices.
type Snapshot struct {
	Time time.Time `json:"time"`
	// Available: NVML was initialised. When false, Status says why and
	// Devices is empty.
	Available     bool     `json:"available"`
	Status        string   `json:"status"`
	DriverVersion string   `json:"driverVersion,omitempty"`
	Devices       []Device `json:"devices"`
	// Problems outside any one device (a device that could not be opened).
	Problems []string `json:"problems,omitempty"`
}

// Healthy reports whether every device is healthy and nothing else is
// wrong. A snapshot without NVML is healthy: absence of the library says
// nothing about the GPUs, and the inference server's own metrics and the
// health checks still speak for the host.
func (s Snapshot) Healthy() bool {
	if len(s.Problems) > 0 {
		return false
	}
	for _, d := range s.Devices {
		if !d.Healthy {
			return false
		}
	}
	return true
}

// ProblemSummary joins every problem, device by device, for a load report's
// Reason.
func (s Snapshot) ProblemSummary() string {
	var out string
	add := func(p string) {
		if out != "" {
			out += "; "
		}
		out += p
	}
	for _, p := range s.Problems {
		add(p)
	}
	for _, d := range s.Devices {
		for _, p := range d.Problems {
			add(fmt.Sprintf("gpu %d: %s", d.Index, p))
		}
	}
	return out
}

// fatalXIDs are Xid codes that NVIDIA's Xid catalogue lists as needing a GPU
// reset, node reboot or hardware attention, as opposed to application faults
// (13, 31, 43, 45: a bad kernel or a killed process) which leave the GPU
// fine for other work.
var fatalXIDs = map[uint64]string{
	48:  "double-bit ECC error",
	61:  "internal micro-controller breakpoint",
	62:  "internal micro-controller halt",
	63:  "ECC page retirement or row remapping recording event",
	64:  "ECC page retirement or row remapper recording failure",
	74:  "NVLink error",
	79:  "GPU has fallen off the bus",
	92:  "high single-bit ECC error rate",
	94:  "contained ECC error",
	95:  "uncontained ECC error",
	119: "GSP RPC timeout",
	120: "GSP error",
	140: "unrecovered ECC error",
}

// throttleNames names the clock event reason bits worth reporting; idle,
// application-clock and display settings are not load problems.
var throttleNames = []struct {
	bit  uint64
	name string
}{
	{0x4, "sw_power_cap"},
	{0x8, "hw_slowdown"},
	{0x10, "sync_boost"},
	{0x20, "sw_thermal"},
	{0x40, "hw_thermal"},
	{0x80, "hw_power_brake"},
}

func throttleList(mask uint64) []string {
	var out []string
	for _, t := range throttleNames {
		if mask&t.bit != 0 {
			out = append(out, t.name)
		}
	}
	return out
}
