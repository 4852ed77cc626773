package gateway

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names follow the OpenTelemetry GenAI semantic conventions, with
// dots written as underscores.
type metrics struct {
	tokens   *prometheus.HistogramVec
	ttft     *prometheus.HistogramVec
	tpot     *prometheus.HistogramVec
	duration *prometheus.HistogramVec
	cost     *prometheus.CounterVec
	verdicts *prometheus.CounterVec
	limited  *prometheus.CounterVec
	// cache is the response cache's (cachemetrics.go).
	respCache *cacheMetrics
	// providers maps each provider backend label to its
	// gen_ai.provider.name (providerkind.go).
	providers *prometheus.GaugeVec

	cache  sync.Map // seriesKey -> *series
	cached atomic.Int64
}

var (
	// Bucket boundaries advised by the GenAI conventions.
	tokenBuckets    = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
	ttftBuckets     = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0}
	tpotBuckets     = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5}
	durationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
)

var requestLabels = []string{"tenant", "model", "backend", "status"}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		tokens: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gen_ai_client_token_usage",
			Help: "Tokens used per request, by type (input = prompt, output = completion).", Buckets: tokenBuckets},
			append(append([]string{}, requestLabels...), "gen_ai_token_type")),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gen_ai_server_time_to_first_token_seconds",
			Help: "Time from request arrival to the first streamed token.", Buckets: ttftBuckets}, requestLabels),
		tpot: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gen_ai_server_time_per_output_token_seconds",
			Help: "Time per output token after the first.", Buckets: tpotBuckets}, requestLabels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gen_ai_server_request_duration_seconds",
			Help: "Request duration as seen by the gateway.", Buckets: durationBuckets}, requestLabels),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "infergate_cost_usd_total",
			Help: "Cost of requests in USD from the model price table."}, requestLabels),
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "infergate_inspection_matches_total",
			Help: "Prompt inspection rule matches, by rule and action."}, []string{"tenant", "rule", "action"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "infergate_limit_rejections_total",
			Help: "Requests refused by a limit, by reason."}, []string{"tenant", "reason"}),
		providers: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "infergate_backend_provider_info",
			Help: "1 for each backend label with its OpenTelemetry gen_ai.provider.name (join on backend)."}, []string{"backend", "gen_ai_provider_name"}),
	}
	for _, c := range []prometheus.Collector{m.tokens, m.ttft, m.tpot, m.duration, m.cost, m.verdicts, m.limited, m.providers} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	var err error
	if m.respCache, err = newCacheMetrics(reg); err != nil {
		return nil, err
	}
	return m, nil
}

// maxCachedSeries bounds the per-label-set cache; past it, lookups go to
// the vectors each time (the label values come from the configuration, so
// this is only reached by a configuration with that many combinations).
const maxCachedSeries = 4096

// seriesKey is one request label set.
type seriesKey struct {
	tenant, model, backend string
	status                 int
}

// series caches a label set's children so the request path does not hash
// the labels and format the status on every request. Each child is made
// on its first use, as WithLabelValues would, so no series appears in the
// output before it has been observed.
type series struct {
	labels                              [4]string
	duration, ttft, tpot, input, output lazyObserver
	cost                                lazyCounter
}

type lazyObserver struct {
	once sync.Once
	o    prometheus.Observer
}

func (l *lazyObserver) get(v *prometheus.HistogramVec, lv ...string) prometheus.Observer {
	l.once.Do(func() { l.o = v.WithLabelValues(lv...) })
	return l.o
}

type lazyCounter struct {
	once sync.Once
	c    prometheus.Counter
}

func (l *lazyCounter) get(v *prometheus.CounterVec, lv ...string) prometheus.Counter {
	l.once.Do(func() { l.c = v.WithLabelValues(lv...) })
	return l.c
}

// series returns the cached children for k.
func (m *metrics) series(k seriesKey) *series {
	if s, ok := m.cache.Load(k); ok {
		return s.(*series)
	}
	s := &series{labels: [4]string{k.tenant, k.model, k.backend, strconv.Itoa(k.status)}}
	if m.cached.Load() >= maxCachedSeries {
		return s
	}
	actual, loaded := m.cache.LoadOrStore(k, s)
	if !loaded {
		m.cached.Add(1)
	}
	return actual.(*series)
}

// lastRecorded is what one pooled exchange recorded into last (its metric
// series and backend counters) and what they were found by: the next
// request on the exchange most likely records into the same ones, and
// comparing keys costs less than hashing them.
type lastRecorded struct {
	m      *metrics
	key    seriesKey
	series *series

	stats    *backendStatsSnap
	backend  string
	counters *backendCounters
}

// seriesFor is m.series(k), by way of last.
func (last *lastRecorded) seriesFor(m *metrics, k seriesKey) *series {
	if last.series == nil || last.m != m || last.key != k {
		last.m, last.key, last.series = m, k, m.series(k)
	}
	return last.series
}

func (s *series) observeDuration(m *metrics, v float64) {
	s.duration.get(m.duration, s.labels[:]...).Observe(v)
}

func (s *series) observeTokens(m *metrics, typ string, v float64) {
	l := &s.input
	if typ == tokenTypeOutput {
		l = &s.output
	}
	l.get(m.tokens, s.labels[0], s.labels[1], s.labels[2], s.labels[3], typ).Observe(v)
}

func (s *series) addCost(m *metrics, v float64) {
	s.cost.get(m.cost, s.labels[:]...).Add(v)
}

func (s *series) observeTTFT(m *metrics, v float64) {
	s.ttft.get(m.ttft, s.labels[:]...).Observe(v)
}

func (s *series) observeTPOT(m *metrics, v float64) {
	s.tpot.get(m.tpot, s.labels[:]...).Observe(v)
}

// Token types of gen_ai_client_token_usage.
const (
	tokenTypeInput  = "input"
	tokenTypeOutput = "output"
)
