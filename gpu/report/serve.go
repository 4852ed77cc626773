package report

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infergate/infergate/gpu/score"
)

// Document is the JSON a GPU host's agent serves. Its report fields sit at
// the top level, so a consumer that only wants the report decodes it into a
// score.Report.
type Document struct {
	score.Report
	// AgeMillis is how old the measurements were when served, by the host's
	// own clock, so a poller can judge freshness without trusting that the
	// two clocks agree.
	AgeMillis int64 `json:"ageMillis"`
	// Detail is present with ?detail=1.
	Detail *Detail `json:"detail,omitempty"`
}

// reportTimeout bounds one report built for an HTTP or Prometheus request.
const reportTimeout = 5 * time.Second

// Handler serves src's report as JSON on GET (and HEAD).
func Handler(src Source) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), reportTimeout)
		defer cancel()
		rep, err := src.Report(ctx)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		doc := Document{Report: rep}
		if !rep.Time.IsZero() {
			doc.AgeMillis = max(0, time.Since(rep.Time).Milliseconds())
		}
		if v, _ := strconv.ParseBool(r.URL.Query().Get("detail")); v {
			if d, ok := src.(Detailer); ok {
				if det, ok := d.LastDetail(); ok {
					doc.Detail = &det
				}
			}
		}
		_ = json.NewEncoder(w).Encode(doc)
	})
}

// Exporter publishes a Source's report as Prometheus gauges; register it
// with a prometheus.Registerer. Only values the report actually holds are
// exported: an absent signal is an absent series, never a zero.
type Exporter struct {
	src Source
	cfg score.Config

	up, healthy, capacity, weight *prometheus.Desc
	kv, running, waiting          *prometheus.Desc
	smUtil, memUsed, memTotal     *prometheus.Desc

	devHealthy, devSMUtil, devMemUtil *prometheus.Desc
	devMemUsed, devMemTotal           *prometheus.Desc
	devPower, devPowerLimit, devTemp  *prometheus.Desc
	devSMClock, devMemClock, devECC   *prometheus.Desc
	devXIDs                           *prometheus.Desc
	nvmlAvailable                     *prometheus.Desc
}

// NewExporter returns an Exporter for src; cfg (defaults filled) gives the
// scoring configuration behind the exported weight gauge.
func NewExporter(src Source, cfg score.Config) (*Exporter, error) {
	c, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	const ns = "infergate_gpu_"
	host := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(ns+name, help, nil, nil)
	}
	dev := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(ns+"device_"+name, help, []string{"gpu", "uuid", "model"}, nil)
	}
	return &Exporter{
		src:      src,
		cfg:      c,
		up:       host("report_up", "1 when the last load report could be built."),
		healthy:  host("healthy", "1 when no GPU on this host reports a health problem."),
		capacity: host("capacity", "Relative throughput of this host (1 = one H100 SXM); absent when unknown."),
		weight:   host("score_weight", "Unsmoothed weight the scoring function gives this host's current report."),
		kv:       host("kv_cache_usage_ratio", "Inference server KV-cache usage, 0..1."),
		running:  host("requests_running", "Requests in the inference server's running batch."),
		waiting:  host("requests_waiting", "Requests queued in the inference server."),
		smUtil:   host("sm_utilization_ratio", "Mean GPU SM utilisation over the host's GPUs, 0..1."),
		memUsed:  host("memory_used_bytes", "GPU memory used, summed over the host's GPUs."),
		memTotal: host("memory_total_bytes", "GPU memory, summed over the host's GPUs."),

		devHealthy:    dev("healthy", "1 when the GPU reports no health problem."),
		devSMUtil:     dev("sm_utilization_ratio", "SM utilisation, 0..1."),
		devMemUtil:    dev("memory_utilization_ratio", "Memory controller utilisation, 0..1."),
		devMemUsed:    dev("memory_used_bytes", "Memory used."),
		devMemTotal:   dev("memory_total_bytes", "Memory total."),
		devPower:      dev("power_watts", "Power draw."),
		devPowerLimit: dev("power_limit_watts", "Enforced power limit."),
		devTemp:       dev("temperature_celsius", "GPU core temperature."),
		devSMClock:    dev("sm_clock_hertz", "SM clock."),
		devMemClock:   dev("memory_clock_hertz", "Memory clock."),
		devECC:        dev("ecc_uncorrected_errors", "Uncorrectable ECC errors since the last driver load or reset."),
		devXIDs:       dev("recent_xid_events", "Xid events remembered by the collector."),
		nvmlAvailable: host("nvml_available", "1 when NVML could be used on the last read."),
	}, nil
}

// Describe implements prometheus.Collector.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{e.up, e.healthy, e.capacity, e.weight, e.kv, e.running, e.waiting,
		e.smUtil, e.memUsed, e.memTotal, e.devHealthy, e.devSMUtil, e.devMemUtil, e.devMemUsed, e.devMemTotal,
		e.devPower, e.devPowerLimit, e.devTemp, e.devSMClock, e.devMemClock, e.devECC, e.devXIDs, e.nvmlAvailable} {
		ch <- d
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Collect implements prometheus.Collector.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), reportTimeout)
	defer cancel()
	r, err := e.src.Report(ctx)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(e.up, boolGauge(err == nil))
	if err != nil {
		return
	}
	gauge(e.healthy, boolGauge(r.Healthy))
	if r.Capacity > 0 {
		gauge(e.capacity, r.Capacity)
	}
	gauge(e.weight, score.Score(r, e.cfg))
	if r.Signals.Has(score.HasKVCache) {
		gauge(e.kv, r.KVCacheUsage)
	}
	if r.Signals.Has(score.HasRunning) {
		gauge(e.running, r.RequestsRunning)
	}
	if r.Signals.Has(score.HasWaiting) {
		gauge(e.waiting, r.RequestsWaiting)
	}
	if r.Signals.Has(score.HasUtil) {
		gauge(e.smUtil, r.SMUtil)
	}
	if r.Signals.Has(score.HasMemory) {
		gauge(e.memUsed, float64(r.MemoryUsedBytes))
		gauge(e.memTotal, float64(r.MemoryTotalBytes))
	}
	det, ok := e.src.(Detailer)
	if !ok {
		return
	}
	d, ok := det.LastDetail()
	if !ok {
		return
	}
	gauge(e.nvmlAvailable, boolGauge(d.GPU != nil && d.GPU.Available))
	if d.GPU == nil {
		return
	}
	for _, dv := range d.GPU.Devices {
		l := []string{strconv.Itoa(dv.Index), dv.UUID, dv.Name}
		gauge(e.devHealthy, boolGauge(dv.Healthy), l...)
		gauge(e.devXIDs, float64(len(dv.XIDs)), l...)
		if dv.SMUtilPercent != nil {
			gauge(e.devSMUtil, float64(*dv.SMUtilPercent)/100, l...)
		}
		if dv.MemoryUtilPercent != nil {
			gauge(e.devMemUtil, float64(*dv.MemoryUtilPercent)/100, l...)
		}
		if dv.MemoryUsedBytes != nil {
			gauge(e.devMemUsed, float64(*dv.MemoryUsedBytes), l...)
		}
		if dv.MemoryTotalBytes != nil {
			gauge(e.devMemTotal, float64(*dv.MemoryTotalBytes), l...)
		}
		if dv.PowerMilliwatts != nil {
			gauge(e.devPower, float64(*dv.PowerMilliwatts)/1000, l...)
		}
		if dv.PowerLimitMW != nil {
			gauge(e.devPowerLimit, float64(*dv.PowerLimitMW)/1000, l...)
		}
		if dv.TemperatureC != nil {
			gauge(e.devTemp, float64(*dv.TemperatureC), l...)
		}
		if dv.SMClockMHz != nil {
			gauge(e.devSMClock, float64(*dv.SMClockMHz)*1e6, l...)
		}
		if dv.MemoryClockMHz != nil {
			gauge(e.devMemClock, float64(*dv.MemoryClockMHz)*1e6, l...)
		}
		if dv.ECCUncorrected != nil {
			gauge(e.devECC, float64(*dv.ECCUncorrected), l...)
		}
	}
}
