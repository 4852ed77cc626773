package policy

import (
	"path/filepath"
	"time"
)

// gateway checks the L7 side, concern by concern, in document order.
func (v *validator) gateway(g *Gateway, poolList []Pool, pools map[string]int) {
	const p = "spec.gateway"
	v.listener(p, g)
	tenants := v.tenants(p+".tenants", g.Tenants)
	if g.TLS != nil {
		v.gatewayTLS(p+".tls", g.TLS, tenants)
	}
	v.keys(p+".keys", g.Keys, tenants)
	v.jwt(p+".jwt", g.JWT)
	providers := v.providers(p+".providers", g.Providers)
	v.selfReferences(p+".providers", g.Providers, g.Listen)
	routedPools := v.models(p+".models", g.Models, pools, providers)
	v.allows(p, g)
	v.routedPoolPorts(poolList, routedPools)
	v.inspection(p+".inspection", &g.Inspection)
	v.stores(p, g)
	v.tracing(p+".tracing", g.Tracing)
	v.cache(p+".cache", g)
	v.ledger(p+".ledger", g.Ledger)
}

// listener checks where the gateway listens and what it reads per request.
func (v *validator) listener(p string, g *Gateway) {
	if g.Listen != "" {
		v.hostPort(p+".listen", g.Listen)
	}
	if g.MaxBodyBytes != 0 && (g.MaxBodyBytes < MinMaxBodyBytes || g.MaxBodyBytes > MaxMaxBodyBytes) {
		v.add(p+".maxBodyBytes", "%d is outside %d..%d", g.MaxBodyBytes, MinMaxBodyBytes, MaxMaxBodyBytes)
	}
	v.timeouts(p+".timeouts", g.Timeouts)
}

func (v *validator) timeouts(path string, t Timeouts) {
	v.duration(path+".connect", t.Connect, time.Millisecond, time.Hour)
	v.duration(path+".timeToFirstToken", t.TimeToFirstToken, time.Millisecond, 24*time.Hour)
	v.duration(path+".total", t.Total, time.Millisecond, 24*time.Hour)
	if t.TimeToFirstToken != 0 && t.Total != 0 && t.TimeToFirstToken > t.Total {
		v.add(path+".timeToFirstToken", "%s is longer than total %s", t.TimeToFirstToken.D(), t.Total.D())
	}
}

// stores checks where limit state and the audit log live.
func (v *validator) stores(p string, g *Gateway) {
	if g.Limits.Redis != "" {
		v.hostPort(p+".limitStore.redis", g.Limits.Redis)
	}
	v.limitStore(p+".limitStore", g.Limits)
	if g.Audit.Path != "" && !filepath.IsAbs(g.Audit.Path) {
		v.add(p+".audit.path", "%q must be an absolute path", g.Audit.Path)
	}
}
