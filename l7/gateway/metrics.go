package gateway

import (
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
	}
	for _, c := range []prometheus.Collector{m.tokens, m.ttft, m.tpot, m.duration, m.cost, m.verdicts, m.limited} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
