package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infergate/infergate/l7/cache"
)

// cacheMetrics are the response cache's series. No OpenTelemetry
// convention names a cache yet, so they are infergate_cache_*, labelled
// like the GenAI series (tenant, model, gen_ai_token_type).
type cacheMetrics struct {
	lookups *prometheus.CounterVec
	tokens  *prometheus.CounterVec
	usd     *prometheus.CounterVec
	ttft    *prometheus.HistogramVec
	entries *prometheus.GaugeVec
	bytes   prometheus.Gauge
}

func newCacheMetrics(reg prometheus.Registerer) (*cacheMetrics, error) {
	m := &cacheMetrics{
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "infergate_cache_lookups_total",
			Help: "Response cache lookups, by kind (exact, semantic) and result (hit, miss)."}, []string{"tenant", "model", "kind", "result"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "infergate_cache_saved_tokens_total",
			Help: "Tokens answered from the response cache instead of the upstream, by type."}, []string{"tenant", "model", "gen_ai_token_type"}),
		usd: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "infergate_cache_saved_usd_total",
			Help: "Upstream cost the response cache saved, in USD from the model price table."}, []string{"tenant", "model"}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "infergate_cache_hit_time_to_first_token_seconds",
			Help: "Time from request arrival to the first byte of an answer from the response cache.", Buckets: ttftBuckets}, []string{"model", "kind"}),
		entries: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "infergate_cache_entries",
			Help: "Answers (exact) and vectors (semantic) held in this gateway's memory."}, []string{"kind"}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "infergate_cache_memory_bytes",
			Help: "Bytes of answers held in this gateway's memory."}),
	}
	for _, c := range []prometheus.Collector{m.lookups, m.tokens, m.usd, m.ttft, m.entries, m.bytes} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *cacheMetrics) hit(x *exchange, kind string) {
	tenant, model := x.principal.Tenant, x.model.Name
	m.lookups.WithLabelValues(tenant, model, hitExact, resultOf(kind == hitExact)).Inc()
	if kind == hitSemantic {
		m.lookups.WithLabelValues(tenant, model, hitSemantic, "hit").Inc()
	}
	if u := x.usage; u != nil {
		m.tokens.WithLabelValues(tenant, model, tokenTypeInput).Add(float64(u.PromptTokens))
		m.tokens.WithLabelValues(tenant, model, tokenTypeOutput).Add(float64(u.CompletionTokens))
		if usd := x.price(u.PromptTokens, u.CompletionTokens); usd > 0 {
			m.usd.WithLabelValues(tenant, model).Add(usd)
		}
	}
	m.ttft.WithLabelValues(model, kind).Observe(x.ttft.Seconds())
}

func (m *cacheMetrics) miss(x *exchange, semanticTried bool) {
	tenant, model := x.principal.Tenant, x.model.Name
	m.lookups.WithLabelValues(tenant, model, hitExact, "miss").Inc()
	if semanticTried {
		m.lookups.WithLabelValues(tenant, model, hitSemantic, "miss").Inc()
	}
}

func (m *cacheMetrics) stored(s *cache.Store, ix *cache.Index) {
	n, b := s.Stats()
	m.entries.WithLabelValues(hitExact).Set(float64(n))
	m.bytes.Set(float64(b))
	if ix != nil {
		m.entries.WithLabelValues(hitSemantic).Set(float64(ix.Len()))
	}
}

func resultOf(hit bool) string {
	if hit {
		return "hit"
	}
	return "miss"
}
