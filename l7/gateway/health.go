package gateway

import "net/http"

// healthz answers liveness probes on the API port: the process serves
// HTTP. It needs no credentials and says nothing about the policy.
func (g *Gateway) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}`))
}

// readyz answers readiness probes: 200 while the gateway takes requests,
// 503 once it is shutting down, so a load balancer stops sending new
// requests while those in flight finish.
func (g *Gateway) readyz(w http.ResponseWriter, _ *http.Request) {
	closing := g.admission.closing()
	w.Header().Set("Content-Type", "application/json")
	if closing || g.cfg.Load() == nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"shutting_down"}`))
		return
	}
	_, _ = w.Write([]byte(`{"status":"ready"}`))
}
