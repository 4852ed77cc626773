// Package report builds, serves and polls GPU load reports.
//
// On a GPU host, a Source (NVML plus the inference server's metrics, or a
// simulated GPU) produces a score.Report; Handler serves it as JSON and
// Exporter as Prometheus gauges. On a balancer, a Poller fetches every
// backend's report, feeds a score.Weighter and hands out weight updates.
package report

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/infergate/infergate/gpu/collector"
	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/gpu/scrape"
)

// Source produces the load report of one GPU host.
type Source interface {
	Report(ctx context.Context) (score.Report, error)
}

// GPUCollector is what HostSource needs of collector.Collector.
type GPUCollector interface {
	Collect(ctx context.Context) (collector.Snapshot, error)
}

// MetricsScraper is what HostSource needs of scrape.Scraper.
type MetricsScraper interface {
	Scrape(ctx context.Context) (scrape.Metrics, error)
}

// Detail is what a HostSource read last, for people and gauges.
type Detail struct {
	GPU         *collector.Snapshot `json:"gpu,omitempty"`
	GPUError    string              `json:"gpuError,omitempty"`
	Server      *scrape.Metrics     `json:"server,omitempty"`
	ServerError string              `json:"serverError,omitempty"`
}

// Detailer is implemented by sources that can say what they read.
type Detailer interface {
	LastDetail() (Detail, bool)
}

// HostSource combines NVML and the inference server's metrics into one
// report. Either part may be nil or failing: the report then carries only
// the signals that were read. A GPU health problem makes the report
// unhealthy; a missing NVML library or an unreachable metrics endpoint does
// not (health checks speak for reachability, and a host without NVML is
// not a broken host).
type HostSource struct {
	Host      string
	Collector GPUCollector   // nil: no GPU metrics
	Scraper   MetricsScraper // nil: no inference-server metrics
	// Capacity overrides the capacity estimated from the GPU models
	// (score.CapacityForModel summed over devices); 0 keeps the estimate.
	Capacity float64
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu   sync.Mutex
	last Detail
	have bool
}

// Report reads both parts and combines them. It fails only when ctx ends.
func (h *HostSource) Report(ctx context.Context) (score.Report, error) {
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	r := score.Report{Host: h.Host, Time: now(), Healthy: true}
	var d Detail
	if h.Collector != nil {
		snap, err := h.Collector.Collect(ctx)
		if err != nil {
			d.GPUError = err.Error()
		}
		if err == nil || !errors.Is(err, collector.ErrUnavailable) {
			d.GPU = &snap
			applySnapshot(&r, snap)
		}
	}
	if h.Scraper != nil {
		m, err := h.Scraper.Scrape(ctx)
		if err != nil {
			d.ServerError = err.Error()
		} else {
			d.Server = &m
			applyMetrics(&r, m)
		}
	}
	if h.Capacity > 0 {
		r.Capacity = h.Capacity
	}
	if err := ctx.Err(); err != nil {
		return score.Report{}, fmt.Errorf("load report: %w", err)
	}
	h.mu.Lock()
	h.last, h.have = d, true
	h.mu.Unlock()
	return r, nil
}

// LastDetail returns what the last Report read.
func (h *HostSource) LastDetail() (Detail, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last, h.have
}

// applySnapshot adds NVML's readings: mean SM utilisation and summed memory
// over the devices that answered, health, model and capacity.
func applySnapshot(r *score.Report, s collector.Snapshot) {
	if !s.Healthy() {
		r.Healthy = false
		r.Reason = s.ProblemSummary()
	}
	var util float64
	var nUtil int
	var used, total uint64
	var nMem int
	capacity, known := 0.0, true
	for _, d := range s.Devices {
		if d.SMUtilPercent != nil {
			util += float64(*d.SMUtilPercent) / 100
			nUtil++
		}
		if d.MemoryUsedBytes != nil && d.MemoryTotalBytes != nil {
			used += *d.MemoryUsedBytes
			total += *d.MemoryTotalBytes
			nMem++
		}
		if r.GPUModel == "" {
			r.GPUModel = d.Name
		}
		c := score.CapacityForModel(d.Name)
		if c == 0 {
			known = false
		}
		capacity += c
	}
	r.GPUs = len(s.Devices)
	if nUtil > 0 {
		r.SMUtil = util / float64(nUtil)
		r.Signals |= score.HasUtil
	}
	if nMem > 0 && total > 0 {
		r.MemoryUsedBytes, r.MemoryTotalBytes = used, total
		r.Signals |= score.HasMemory
	}
	// An unknown model anywhere makes the estimate unknown rather than
	// silently low; Score then treats the host as capacity 1.
	if known && capacity > 0 {
		r.Capacity = capacity
	}
}

// applyMetrics adds the inference server's queue and KV-cache signals, the
// KV cache's size, which lets the scorer derate a host whose small cache
// limits it more than its memory bandwidth does, and the LoRA adapters in
// use, which the L7 picker steers adapter requests by.
func applyMetrics(r *score.Report, m scrape.Metrics) {
	r.Signals |= m.Signals & (score.HasKVCache | score.HasRunning | score.HasWaiting | score.HasKVTokens)
	r.KVCacheUsage = m.KVCacheUsage
	r.KVCacheTokens = m.KVCacheTokens
	r.LoRA = m.LoRA
	r.RequestsRunning = m.Running
	r.RequestsWaiting = m.Waiting
}

// Cached is a Source that reuses a report for MaxAge, so many pollers and
// the Prometheus scraper do not each trigger NVML and HTTP reads. It is
// safe for concurrent use; concurrent callers share one refresh.
type Cached struct {
	src    Source
	maxAge time.Duration
	now    func() time.Time

	mu    sync.Mutex
	last  score.Report
	at    time.Time
	valid bool
}

// DefaultCacheAge is short next to any polling interval worth having.
const DefaultCacheAge = 200 * time.Millisecond

// NewCached wraps src; maxAge 0 means DefaultCacheAge.
func NewCached(src Source, maxAge time.Duration) *Cached {
	if maxAge <= 0 {
		maxAge = DefaultCacheAge
	}
	return &Cached{src: src, maxAge: maxAge, now: time.Now}
}

// Report returns the cached report if fresh, else reads a new one. Its
// Time stays the time of measurement, so a consumer sees the true age.
func (c *Cached) Report(ctx context.Context) (score.Report, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.valid && c.now().Sub(c.at) < c.maxAge {
		return c.last, nil
	}
	r, err := c.src.Report(ctx)
	if err != nil {
		// Errors are not cached: they are usually the caller's own
		// cancelled context.
		return r, err
	}
	c.last, c.at, c.valid = r, c.now(), true
	return r, nil
}

// LastDetail passes through to the wrapped source.
func (c *Cached) LastDetail() (Detail, bool) {
	if d, ok := c.src.(Detailer); ok {
		return d.LastDetail()
	}
	return Detail{}, false
}
