package agent

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infergate/infergate/agent/api"
)

// Metrics of the VIP announcement, present on a balancer whose policy has
// spec.dataplane.bgp: an alert on withdrawn or on a session down needs a
// series from the start.
var (
	descBGPAnnounced = prometheus.NewDesc(metricsNamespace+"_bgp_routes_announced",
		"Routes this balancer announces over BGP now.", nil, nil)
	descBGPWithdrawn = prometheus.NewDesc(metricsNamespace+"_bgp_withdrawn",
		"1 while the balancer withdraws its routes (drained, or its data plane unhealthy).", nil, nil)
	descBGPSession = prometheus.NewDesc(metricsNamespace+"_bgp_session_established",
		"1 when the BGP session with a peer is established.", []string{"peer"}, nil)
)

func collectBGP(ch chan<- prometheus.Metric, st *api.BGPStatus) {
	if st == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descBGPAnnounced, prometheus.GaugeValue, float64(len(st.Announced)))
	withdrawn := 0.0
	if st.Withdrawn != "" {
		withdrawn = 1
	}
	ch <- prometheus.MustNewConstMetric(descBGPWithdrawn, prometheus.GaugeValue, withdrawn)
	for _, p := range st.Peers {
		up := 0.0
		if p.State == "established" {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descBGPSession, prometheus.GaugeValue, up, p.Address)
	}
}
