package agent

import (
	"context"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const metricsNamespace = "infergate"

var (
	descVerdicts = prometheus.NewDesc(metricsNamespace+"_xdp_packets_total",
		"Packets the XDP program handled, by verdict (pass, tx, drop).", []string{"verdict"}, nil)
	descDrops = prometheus.NewDesc(metricsNamespace+"_xdp_drops_total",
		"Packets dropped in XDP, by reason.", []string{"reason"}, nil)
	descVIPPackets = prometheus.NewDesc(metricsNamespace+"_vip_packets_total",
		"Packets steered to a VIP's backends.", []string{"vip"}, nil)
	descVIPBytes = prometheus.NewDesc(metricsNamespace+"_vip_bytes_total",
		"Bytes steered to a VIP's backends.", []string{"vip"}, nil)
	descVIPFlows = prometheus.NewDesc(metricsNamespace+"_vip_new_flows_total",
		"New flows to a VIP.", []string{"vip"}, nil)
	descBackendPackets = prometheus.NewDesc(metricsNamespace+"_backend_packets_total",
		"Packets sent to a backend.", []string{"pool", "backend", "address"}, nil)
	descBackendBytes = prometheus.NewDesc(metricsNamespace+"_backend_bytes_total",
		"Bytes sent to a backend.", []string{"pool", "backend", "address"}, nil)
	descBackendFlows = prometheus.NewDesc(metricsNamespace+"_backend_new_flows_total",
		"New flows a backend was chosen for.", []string{"pool", "backend", "address"}, nil)
	descBackendWeight = prometheus.NewDesc(metricsNamespace+"_backend_weight",
		"Effective weight of a backend (after health checks and load reports; 0 = draining).", []string{"pool", "backend"}, nil)
	descBackendConfigured = prometheus.NewDesc(metricsNamespace+"_backend_configured_weight",
		"Weight of a backend as the policy gives it.", []string{"pool", "backend"}, nil)
	descBackendHealthy = prometheus.NewDesc(metricsNamespace+"_backend_healthy",
		"1 when a backend passes its health checks.", []string{"pool", "backend"}, nil)
	descMapEntries = prometheus.NewDesc(metricsNamespace+"_map_entries",
		"Entries in a kernel map.", []string{"map"}, nil)
	descMapMax = prometheus.NewDesc(metricsNamespace+"_map_max_entries",
		"Capacity of a kernel map.", []string{"map"}, nil)
	descReconciles = prometheus.NewDesc(metricsNamespace+"_reconcile_total",
		"Reconcile passes run.", nil, nil)
	descReconcileErrors = prometheus.NewDesc(metricsNamespace+"_reconcile_errors_total",
		"Reconcile passes and applies that failed (the data plane kept its previous state).", nil, nil)
	descAttach = prometheus.NewDesc(metricsNamespace+"_xdp_attached",
		"1 when the program is attached to the interface in the labelled mode.", []string{"interface", "program", "mode"}, nil)
	descPolicy = prometheus.NewDesc(metricsNamespace+"_policy_info",
		"The policy in force.", []string{"name", "version"}, nil)
	descRules = prometheus.NewDesc(metricsNamespace+"_firewall_rule_packets_total",
		"Packets a firewall rule matched.", []string{"rule", "action"}, nil)
	descPanic = prometheus.NewDesc(metricsNamespace+"_pool_panic",
		"1 while every backend of a pool is out and the pool keeps its configured weights rather than steer nothing.", []string{"pool"}, nil)
	descUnresolved = prometheus.NewDesc(metricsNamespace+"_backends_unresolved",
		"Backends whose next hop does not answer ARP/ND (no new flows).", nil, nil)
	descScrapeErrors = prometheus.NewDesc(metricsNamespace+"_counter_read_errors_total",
		"Scrapes that could not read the data plane's counters.", nil, nil)
)

// Collector reads the data plane's counters and the agent's state at
// scrape time.
type Collector struct {
	a *Agent
}

// NewCollector returns a prometheus.Collector for a.
func NewCollector(a *Agent) *Collector { return &Collector{a: a} }

// Describe is left empty: the collector is unchecked because its label
// sets follow the policy.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect emits every metric.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	ch <- prometheus.MustNewConstMetric(descReconciles, prometheus.CounterValue, float64(a.reconciles.Load()))
	ch <- prometheus.MustNewConstMetric(descReconcileErrors, prometheus.CounterValue, float64(a.reconcileErrors.Load()))
	ch <- prometheus.MustNewConstMetric(descScrapeErrors, prometheus.CounterValue, float64(a.scrapeErrors.Load()))
	st := a.Status()
	collectBGP(ch, st.BGP)
	for _, i := range st.Interfaces {
		v := 0.0
		if i.Attached {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descAttach, prometheus.GaugeValue, v, i.Name, i.Program, i.Mode)
	}
	a.mu.Lock()
	d := a.desired
	a.mu.Unlock()
	if d != nil {
		// Every pool with backends gets the gauge, 0 when not in panic, so
		// an alert on it has a series to watch before the first panic.
		inPanic := make(map[string]bool, len(d.Panic))
		for _, p := range d.Panic {
			inPanic[p] = true
		}
		seen := map[string]bool{}
		for _, b := range a.Backends() {
			if seen[b.Pool] {
				continue
			}
			seen[b.Pool] = true
			v := 0.0
			if inPanic[b.Pool] {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descPanic, prometheus.GaugeValue, v, b.Pool)
		}
		for _, p := range d.Panic {
			if !seen[p] {
				ch <- prometheus.MustNewConstMetric(descPanic, prometheus.GaugeValue, 1, p)
			}
		}
		ch <- prometheus.MustNewConstMetric(descUnresolved, prometheus.GaugeValue, float64(len(d.Unresolved)))
	}
	if st.Policy.Version != "" {
		ch <- prometheus.MustNewConstMetric(descPolicy, prometheus.GaugeValue, 1, st.Policy.Name, st.Policy.Version)
	}
	ctrs, err := a.counters()
	if err != nil {
		a.scrapeErrors.Add(1)
		a.log.Warn("metrics: reading data plane counters failed", "err", err)
	} else {
		stats := a.statsFrom(ctrs)
		for v, n := range stats.Verdicts {
			ch <- prometheus.MustNewConstMetric(descVerdicts, prometheus.CounterValue, float64(n), v)
		}
		for r, n := range stats.Drops {
			ch <- prometheus.MustNewConstMetric(descDrops, prometheus.CounterValue, float64(n), r)
		}
		for _, v := range stats.VIPs {
			ch <- prometheus.MustNewConstMetric(descVIPPackets, prometheus.CounterValue, float64(v.Packets), v.Name)
			ch <- prometheus.MustNewConstMetric(descVIPBytes, prometheus.CounterValue, float64(v.Bytes), v.Name)
			ch <- prometheus.MustNewConstMetric(descVIPFlows, prometheus.CounterValue, float64(v.NewFlows), v.Name)
		}
		for _, m := range stats.Maps {
			ch <- prometheus.MustNewConstMetric(descMapEntries, prometheus.GaugeValue, float64(m.Entries), m.Name)
			ch <- prometheus.MustNewConstMetric(descMapMax, prometheus.GaugeValue, float64(m.MaxEntries), m.Name)
		}
		for _, r := range a.ruleCountsFrom(ctrs) {
			ch <- prometheus.MustNewConstMetric(descRules, prometheus.CounterValue, float64(r.n), r.name, r.action)
		}
	}
	for _, b := range a.Backends() {
		ch <- prometheus.MustNewConstMetric(descBackendPackets, prometheus.CounterValue, float64(b.Packets), b.Pool, b.Name, b.Address)
		ch <- prometheus.MustNewConstMetric(descBackendBytes, prometheus.CounterValue, float64(b.Bytes), b.Pool, b.Name, b.Address)
		ch <- prometheus.MustNewConstMetric(descBackendFlows, prometheus.CounterValue, float64(b.NewFlows), b.Pool, b.Name, b.Address)
		ch <- prometheus.MustNewConstMetric(descBackendWeight, prometheus.GaugeValue, float64(b.Weight), b.Pool, b.Name)
		ch <- prometheus.MustNewConstMetric(descBackendConfigured, prometheus.GaugeValue, float64(b.ConfiguredWeight), b.Pool, b.Name)
		h := 0.0
		if b.Healthy {
			h = 1
		}
		ch <- prometheus.MustNewConstMetric(descBackendHealthy, prometheus.GaugeValue, h, b.Pool, b.Name)
	}
}

type ruleCount struct {
	name, action string
	n            uint64
}

// ruleCountsFrom pairs the data plane's per-rule counters with the names
// of the rules in force.
func (a *Agent) ruleCountsFrom(ctrs Counters) []ruleCount {
	_, c, ok := a.Current()
	if !ok {
		return nil
	}
	var out []ruleCount
	for i, r := range c.Dataplane.Rules {
		if i >= len(ctrs.Rules) {
			break
		}
		action := "allow"
		if r.Deny {
			action = "deny"
		}
		out = append(out, ruleCount{name: r.Name, action: action, n: ctrs.Rules[i]})
	}
	return out
}

// ServeMetrics serves reg's metrics at /metrics on ln until ctx ends.
func ServeMetrics(ctx context.Context, ln net.Listener, reg *prometheus.Registry, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	return Serve(ctx, ln, mux, log)
}
