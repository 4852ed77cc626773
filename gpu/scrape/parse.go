// Package scrape reads the load signals that predict queueing from a local
// inference server's Prometheus endpoint: requests running and waiting, and
// KV-cache usage, for vLLM, TGI, Triton and SGLang, vLLM's KV-cache size,
// and the LoRA adapters vLLM has in use (lora.go). Parsing uses the Prometheus text parser
// (github.com/prometheus/common/expfmt).
package scrape

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/infergate/infergate/gpu/score"
)

// Kind is an inference server type.
type Kind string

// Server kinds. Auto detects the kind from the metric names present.
const (
	Auto   Kind = ""
	VLLM   Kind = "vllm"
	TGI    Kind = "tgi"
	Triton Kind = "triton"
	SGLang Kind = "sglang"
)

// ParseKind checks a configured kind name ("" or "auto" is Auto).
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case Auto, VLLM, TGI, Triton, SGLang:
		return k, nil
	case "auto":
		return Auto, nil
	}
	return Auto, fmt.Errorf("scrape: unknown server kind %q (want vllm, tgi, triton, sglang or auto)", s)
}

// Metric names, as the servers expose them.
const (
	vllmRunning   = "vllm:num_requests_running"
	vllmWaiting   = "vllm:num_requests_waiting"
	vllmKVv1      = "vllm:kv_cache_usage_perc" // V1 engine
	vllmKVv0      = "vllm:gpu_cache_usage_perc"
	vllmQueueTime = "vllm:request_queue_time_seconds"
	// vllmCacheConfig is an info gauge (value 1) whose labels are the
	// engine's CacheConfig, one series per engine (data-parallel ranks
	// carry an engine label): num_gpu_blocks x block_size is the KV
	// cache's size in tokens. num_gpu_blocks reads "None" until the
	// engine has profiled memory.
	vllmCacheConfig   = "vllm:cache_config_info"
	vllmNumGPUBlocks  = "num_gpu_blocks"
	vllmBlockSizeName = "block_size"

	tgiQueue     = "tgi_queue_size"
	tgiBatch     = "tgi_batch_current_size"
	tgiQueueTime = "tgi_request_queue_duration"

	tritonPending   = "nv_inference_pending_request_count"
	tritonQueueUS   = "nv_inference_queue_duration_us"
	tritonSuccess   = "nv_inference_request_success"
	tritonFailure   = "nv_inference_request_failure"
	tritonModelName = "model"

	sglangRunning = "sglang:num_running_reqs"
	sglangQueue   = "sglang:num_queue_reqs"
	sglangTokens  = "sglang:token_usage"

	modelNameLabel = "model_name"
)

// ErrNoSignals: the payload parsed but held none of the metrics of the
// (detected or configured) server kind.
var ErrNoSignals = errors.New("scrape: no known inference-server metrics")

// Metrics are the load signals read from one scrape.
type Metrics struct {
	Kind Kind `json:"kind"`
	// Signals says which of KVCacheUsage, Running, Waiting and
	// KVCacheTokens were present (score.HasKVCache, score.HasRunning,
	// score.HasWaiting, score.HasKVTokens).
	Signals score.Signals `json:"signals"`
	// KVCacheUsage is the mean KV-cache usage fraction over the server's
	// engines (vLLM data-parallel ranks), 0..1.
	KVCacheUsage float64 `json:"kvCacheUsage"`
	// Running and Waiting sum over engines and models.
	Running float64 `json:"running"`
	Waiting float64 `json:"waiting"`
	// KVCacheTokens is the KV cache's size in tokens, summed over the
	// server's engines (vLLM's cache_config_info); valid when Signals has
	// score.HasKVTokens. It goes to score.Report.KVCacheTokens.
	KVCacheTokens float64 `json:"kvCacheTokens,omitempty"`
	// LoRA: the adapters of the running and of the waiting requests,
	// sorted, and the engine's max_lora (vLLM's lora_requests_info, lora.go);
	// nil when the payload has none.
	LoRA *score.LoRA `json:"lora,omitempty"`
	// Models are the model names seen in labels, sorted.
	Models []string `json:"models,omitempty"`

	// QueueSeconds is the mean time a request spent queued between this
	// scrape and the previous one (from the server's cumulative queue-time
	// counters); valid when HasQueueTime.
	QueueSeconds float64 `json:"queueSeconds,omitempty"`
	HasQueueTime bool    `json:"hasQueueTime,omitempty"`

	// queueSum (seconds) and queueCount are the cumulative counters behind
	// QueueSeconds; hasQueueCounters says they were present.
	queueSum, queueCount float64
	hasQueueCounters     bool
}

// Parse reads a Prometheus text-format payload and extracts the signals of
// kind (Auto detects it). It returns ErrNoSignals when none are present.
func Parse(r io.Reader, kind Kind) (Metrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return Metrics{}, fmt.Errorf("scrape: parse: %w", err)
	}
	return FromFamilies(fams, kind)
}

// FromFamilies extracts signals from parsed metric families.
func FromFamilies(fams map[string]*dto.MetricFamily, kind Kind) (Metrics, error) {
	if kind == Auto {
		kind = detect(fams)
		if kind == Auto {
			return Metrics{}, ErrNoSignals
		}
	}
	m := Metrics{Kind: kind}
	models := map[string]bool{}
	switch kind {
	case VLLM:
		m.setSum(fams, vllmRunning, score.HasRunning, &m.Running, models)
		m.setSum(fams, vllmWaiting, score.HasWaiting, &m.Waiting, models)
		// The V1 engine renamed the KV gauge and kept the old name as
		// deprecated for a while; prefer the new one.
		if !m.setMean(fams, vllmKVv1, score.HasKVCache, &m.KVCacheUsage, models) {
			m.setMean(fams, vllmKVv0, score.HasKVCache, &m.KVCacheUsage, models)
		}
		m.queueFromHistogram(fams, vllmQueueTime)
		if tokens, ok := cacheTokens(fams[vllmCacheConfig]); ok {
			m.KVCacheTokens = tokens
			m.Signals |= score.HasKVTokens
		}
		if running, waiting, n, ok := loraInfo(fams[vllmLoRAInfo]); ok {
			m.LoRA = &score.LoRA{Running: running, Waiting: waiting, Max: n}
		}
	case TGI:
		m.setSum(fams, tgiBatch, score.HasRunning, &m.Running, models)
		m.setSum(fams, tgiQueue, score.HasWaiting, &m.Waiting, models)
		m.queueFromHistogram(fams, tgiQueueTime)
	case Triton:
		m.setSum(fams, tritonPending, score.HasWaiting, &m.Waiting, models)
		us, okQ := sum(fams[tritonQueueUS], dto.MetricType_COUNTER)
		ok, okS := sum(fams[tritonSuccess], dto.MetricType_COUNTER)
		failed, _ := sum(fams[tritonFailure], dto.MetricType_COUNTER)
		if okQ && okS {
			m.queueSum, m.queueCount, m.hasQueueCounters = us/1e6, ok+failed, true
		}
	case SGLang:
		m.setSum(fams, sglangRunning, score.HasRunning, &m.Running, models)
		m.setSum(fams, sglangQueue, score.HasWaiting, &m.Waiting, models)
		m.setMean(fams, sglangTokens, score.HasKVCache, &m.KVCacheUsage, models)
	default:
		return Metrics{}, fmt.Errorf("scrape: unknown server kind %q", kind)
	}
	// The cache's size is configuration, not load: a payload with
	// nothing else says nothing about queueing (nor do the adapters in
	// use).
	if m.Signals&^score.HasKVTokens == 0 {
		return m, ErrNoSignals
	}
	for name := range models {
		m.Models = append(m.Models, name)
	}
	slices.Sort(m.Models)
	m.KVCacheUsage = clamp01(m.KVCacheUsage)
	return m, nil
}

// detect picks the server kind whose signature metric is present.
func detect(fams map[string]*dto.MetricFamily) Kind {
	has := func(names ...string) bool {
		for _, n := range names {
			if _, ok := fams[n]; ok {
				return true
			}
		}
		return false
	}
	switch {
	case has(vllmRunning, vllmWaiting, vllmKVv1, vllmKVv0):
		return VLLM
	case has(sglangRunning, sglangQueue, sglangTokens):
		return SGLang
	case has(tgiQueue, tgiBatch):
		return TGI
	case has(tritonPending):
		return Triton
	}
	return Auto
}

// setSum sums a gauge family into *dst and sets bit when present.
func (m *Metrics) setSum(fams map[string]*dto.MetricFamily, name string, bit score.Signals, dst *float64, models map[string]bool) bool {
	f := fams[name]
	v, ok := sum(f, dto.MetricType_GAUGE)
	if !ok {
		return false
	}
	*dst = v
	m.Signals |= bit
	collectModels(f, models)
	return true
}

// setMean averages a gauge family into *dst and sets bit when present.
func (m *Metrics) setMean(fams map[string]*dto.MetricFamily, name string, bit score.Signals, dst *float64, models map[string]bool) bool {
	if !m.setSum(fams, name, bit, dst, models) {
		return false
	}
	*dst /= float64(len(fams[name].GetMetric()))
	return true
}

// queueFromHistogram takes cumulative queue-time sum and count from a
// histogram family (summed over its series).
func (m *Metrics) queueFromHistogram(fams map[string]*dto.MetricFamily, name string) {
	f := fams[name]
	if f == nil || f.GetType() != dto.MetricType_HISTOGRAM || len(f.GetMetric()) == 0 {
		return
	}
	var s, c float64
	for _, mt := range f.GetMetric() {
		h := mt.GetHistogram()
		s += h.GetSampleSum()
		c += float64(h.GetSampleCount())
	}
	if finite(s) && finite(c) {
		m.queueSum, m.queueCount, m.hasQueueCounters = s, c, true
	}
}

// sum adds the values of a family of the wanted type (untyped accepted, as
// some exporters omit TYPE lines). Non-finite or negative samples make the
// family count as absent: a gauge of requests cannot be NaN or negative,
// and passing such a value on would be inventing a number.
func sum(f *dto.MetricFamily, want dto.MetricType) (float64, bool) {
	if f == nil || len(f.GetMetric()) == 0 {
		return 0, false
	}
	t := f.GetType()
	if t != want && t != dto.MetricType_UNTYPED {
		return 0, false
	}
	var total float64
	for _, mt := range f.GetMetric() {
		var v float64
		switch {
		case mt.Gauge != nil:
			v = mt.GetGauge().GetValue()
		case mt.Counter != nil:
			v = mt.GetCounter().GetValue()
		case mt.Untyped != nil:
			v = mt.GetUntyped().GetValue()
		default:
			return 0, false
		}
		if !finite(v) || v < 0 {
			return 0, false
		}
		total += v
	}
	return total, true
}

// Bounds on cache_config_info's labels: anything outside is a malformed
// payload, not a cache (the largest GPU caches hold a few million tokens).
const (
	maxGPUBlocks    = 1 << 32
	maxBlockTokens  = 1 << 20
	maxCacheTokens  = 1 << 40
	cacheLabelLimit = 32 // characters of a numeric label value
)

// cacheTokens sums num_gpu_blocks x block_size over a cache_config_info
// family's series. A series without a usable pair (a label missing, "None",
// not a positive integer, out of bounds) makes the whole family count as
// absent: a partial sum would understate the cache.
func cacheTokens(f *dto.MetricFamily) (float64, bool) {
	if f == nil || len(f.GetMetric()) == 0 {
		return 0, false
	}
	if t := f.GetType(); t != dto.MetricType_GAUGE && t != dto.MetricType_UNTYPED {
		return 0, false
	}
	var total float64
	for _, mt := range f.GetMetric() {
		blocks, okB := labelCount(mt, vllmNumGPUBlocks, maxGPUBlocks)
		size, okS := labelCount(mt, vllmBlockSizeName, maxBlockTokens)
		if !okB || !okS {
			return 0, false
		}
		total += float64(blocks) * float64(size)
	}
	if total > maxCacheTokens {
		return 0, false
	}
	return total, true
}

// labelCount reads label name of mt as an integer in [1, limit].
func labelCount(mt *dto.Metric, name string, limit uint64) (uint64, bool) {
	for _, l := range mt.GetLabel() {
		if l.GetName() != name {
			continue
		}
		v := l.GetValue()
		if len(v) > cacheLabelLimit {
			return 0, false
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 || n > limit {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

func collectModels(f *dto.MetricFamily, models map[string]bool) {
	for _, mt := range f.GetMetric() {
		for _, l := range mt.GetLabel() {
			if (l.GetName() == modelNameLabel || l.GetName() == tritonModelName) && l.GetValue() != "" && len(models) < maxModels {
				models[l.GetValue()] = true
			}
		}
	}
}

// maxModels bounds the model names kept from one payload.
const maxModels = 64

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func clamp01(v float64) float64 { return math.Max(0, math.Min(1, v)) }
