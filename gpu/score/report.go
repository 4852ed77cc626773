// Package score turns a GPU host's load report into a load-balancing weight.
//
// A Report is what one GPU host says about itself; Score is the documented,
// stateless function from a report to a target weight; a Weighter keeps the
// per-host state (EWMA smoothing, minimum floor, staleness, draining) and
// decides when weights have moved enough to rebuild a Maglev table.
package score

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Signals says which of a report's measurements are present. A collector
// that cannot read a value leaves its bit clear rather than reporting zero,
// so the scorer never mistakes "unknown" for "idle".
type Signals uint16

// Signal bits.
const (
	// HasKVCache: KVCacheUsage is valid (vLLM, SGLang, simulation).
	HasKVCache Signals = 1 << iota
	// HasWaiting: RequestsWaiting is valid.
	HasWaiting
	// HasRunning: RequestsRunning is valid.
	HasRunning
	// HasUtil: SMUtil is valid (NVML).
	HasUtil
	// HasMemory: MemoryUsedBytes and MemoryTotalBytes are valid (NVML).
	HasMemory
	// HasKVTokens: KVCacheTokens is valid (vLLM's cache_config_info:
	// num_gpu_blocks x block_size; simulation).
	HasKVTokens
)

var signalNames = []struct {
	bit  Signals
	name string
}{
	{HasKVCache, "kvCache"},
	{HasWaiting, "waiting"},
	{HasRunning, "running"},
	{HasUtil, "util"},
	{HasMemory, "memory"},
	{HasKVTokens, "kvTokens"},
}

// Has reports whether all bits of s2 are set in s.
func (s Signals) Has(s2 Signals) bool { return s&s2 == s2 }

// String lists the signal names, comma-separated.
func (s Signals) String() string {
	var names []string
	for _, n := range signalNames {
		if s.Has(n.bit) {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, ",")
}

// MarshalJSON writes the signals as a list of names, so a report read by a
// person says which values are real.
func (s Signals) MarshalJSON() ([]byte, error) {
	names := []string{}
	for _, n := range signalNames {
		if s.Has(n.bit) {
			names = append(names, n.name)
		}
	}
	return json.Marshal(names)
}

// UnmarshalJSON reads a list of names. Names it does not know (signals a
// newer host may add) are skipped: their values are not read either, so
// skipping them is the same as their being absent.
func (s *Signals) UnmarshalJSON(b []byte) error {
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return fmt.Errorf("signals: %w", err)
	}
	var out Signals
	for _, name := range names {
		for _, n := range signalNames {
			if n.name == name {
				out |= n.bit
				break
			}
		}
	}
	*s = out
	return nil
}

// Report is one GPU host's load, as served by its agent and polled by the
// balancer. Values whose bit in Signals is clear are unknown and ignored.
type Report struct {
	// Host names the reporting host (informational; the balancer keys
	// reports by backend name, not by what a host calls itself).
	Host string `json:"host,omitempty"`
	// Time is when the host took the measurements.
	Time time.Time `json:"time"`
	// Healthy is false when a GPU is unusable (XID error, uncorrectable ECC
	// error, fallen off the bus): the balancer drains the host.
	Healthy bool `json:"healthy"`
	// Reason says why Healthy is false.
	Reason string `json:"reason,omitempty"`

	Signals Signals `json:"signals"`

	// KVCacheUsage is the fraction of the inference server's KV-cache
	// blocks in use, 0..1.
	KVCacheUsage float64 `json:"kvCacheUsage"`
	// RequestsRunning are requests in the current batch.
	RequestsRunning float64 `json:"requestsRunning"`
	// RequestsWaiting are requests queued for a batch slot or KV blocks.
	RequestsWaiting float64 `json:"requestsWaiting"`
	// SMUtil is the mean streaming-multiprocessor utilisation over the
	// host's GPUs, 0..1.
	SMUtil float64 `json:"smUtil"`
	// MemoryUsedBytes and MemoryTotalBytes sum over the host's GPUs.
	MemoryUsedBytes  uint64 `json:"memoryUsedBytes"`
	MemoryTotalBytes uint64 `json:"memoryTotalBytes"`

	// KVCacheTokens is the size of the inference server's KV cache in
	// tokens, summed over the host's engines. A small cache caps how many
	// sequences decode at once, so it lowers the host's capacity below
	// what its memory bandwidth alone suggests (see EffectiveCapacity).
	KVCacheTokens float64 `json:"kvCacheTokens,omitempty"`

	// LoRA is what the inference server says about its LoRA adapters
	// (vLLM's lora_requests_info); nil when it says nothing. The L7
	// picker sends a request for an adapter where it is already in use,
	// else where a batch has room for it (see Adapters). A host that
	// predates it sends none, and a balancer that predates it skips it.
	LoRA *LoRA `json:"lora,omitempty"`

	// Capacity is the host's relative throughput (1 = one H100 SXM); zero
	// means unknown and counts as 1. See CapacityForModel.
	Capacity float64 `json:"capacity,omitempty"`
	// GPUModel is the GPU product name, e.g. "NVIDIA H100 80GB HBM3".
	GPUModel string `json:"gpuModel,omitempty"`
	// GPUs is the number of GPUs the report covers.
	GPUs int `json:"gpus,omitempty"`
}

// modelBandwidth maps a GPU product-name fragment to its memory bandwidth in
// TB/s from NVIDIA's data sheets. LLM decoding is memory-bandwidth bound
// (every generated token reads the weights and the KV cache), so bandwidth
// is a fair first estimate of relative token throughput. More specific
// fragments come first because matching stops at the first hit.
var modelBandwidth = []struct {
	fragment string
	tbps     float64
}{
	{"GB200", 8.0},
	{"B200", 8.0},
	{"H200", 4.8},
	{"H100 NVL", 3.9},
	{"H100 PCIE", 2.0},
	{"H100", 3.35},
	{"H800", 3.35},
	{"A100-SXM4-80GB", 2.04},
	{"A100 80GB PCIE", 1.94},
	{"A100", 1.555},
	{"A800", 2.04},
	{"L40S", 0.864},
	{"L40", 0.864},
	{"A10G", 0.6},
	{"A10", 0.6},
	{"L4", 0.3},
	{"V100", 0.9},
	{"T4", 0.32},
}

// referenceBandwidth is the H100 SXM's, so Capacity 1 means one H100 SXM.
const referenceBandwidth = 3.35

// CapacityForModel estimates the relative throughput of one GPU of the named
// model (1 = H100 SXM) from its memory bandwidth. It returns 0 for a model it
// does not know, which Score treats as 1: an unknown GPU is neither favoured
// nor starved, and an operator can set the capacity explicitly.
func CapacityForModel(name string) float64 {
	up := strings.ToUpper(name)
	for _, m := range modelBandwidth {
		if strings.Contains(up, strings.ToUpper(m.fragment)) {
			return m.tbps / referenceBandwidth
		}
	}
	return 0
}
