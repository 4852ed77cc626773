package policy

import (
	"net/netip"
	"strings"
	"time"
)

// pools validates the pools and returns their indices by name.
func (v *validator) pools(pools []Pool) map[string]int {
	byName := map[string]int{}
	seen := uniq{}
	for i, pool := range pools {
		pp := idx("spec.pools", i)
		v.name(pp+".name", pool.Name)
		v.unique(seen, pp+".name", pool.Name, "pool")
		v.poolTLS(pp+".tls", pool.TLS)
		v.poolKVEvents(pp+".kvEvents", &pool)
		if pool.TLS != nil && pool.HealthCheck != nil && pool.HealthCheck.Type == "http" {
			v.add(pp+".healthCheck.type", "http checks speak plain HTTP; a pool with tls needs tcp")
		}
		if _, dup := byName[pool.Name]; !dup && pool.Name != "" {
			byName[pool.Name] = i
		}
		switch {
		case len(pool.Backends) == 0:
			v.add(pp+".backends", "a pool needs at least one backend")
		case len(pool.Backends) > MaxBackendsPerPool:
			v.add(pp+".backends", "has %d backends; at most %d", len(pool.Backends), MaxBackendsPerPool)
		}
		names, addrs := uniq{}, uniq{}
		var total uint64
		for j, b := range pool.Backends {
			bp := idx(pp+".backends", j)
			v.name(bp+".name", b.Name)
			v.unique(names, bp+".name", b.Name, "backend")
			v.addr(bp+".address", b.Address)
			if a, err := parseAddr(b.Address); err == nil {
				key := a.String()
				if b.Port != 0 {
					key = netip.AddrPortFrom(a, uint16(b.Port)).String()
				}
				v.unique(addrs, bp+".address", key, "backend address")
			}
			v.port(bp+".port", b.Port, true)
			if b.Weight > MaxWeight {
				v.add(bp+".weight", "%d is more than %d", b.Weight, MaxWeight)
			}
			v.enum(bp+".state", b.State, backendStates, true)
			if b.LoadReportURL != "" {
				v.httpURL(bp+".loadReportURL", b.LoadReportURL)
			}
			total += uint64(b.Weight)
		}
		if len(pool.Backends) > 0 && total == 0 {
			v.add(pp+".backends", "every backend has weight 0, so the pool can take no traffic")
		}
		if pool.HealthCheck != nil {
			v.healthCheck(pp+".healthCheck", pool.HealthCheck)
		}
	}
	return byName
}

func (v *validator) healthCheck(hp string, hc *HealthCheck) {
	v.enum(hp+".type", hc.Type, healthTypes, false)
	v.port(hp+".port", hc.Port, true)
	if hc.Path != "" {
		if hc.Type != "http" {
			v.add(hp+".path", "only http health checks have a path")
		} else if !strings.HasPrefix(hc.Path, "/") {
			v.add(hp+".path", "%q must start with /", hc.Path)
		}
	}
	v.duration(hp+".interval", hc.Interval, MinHealthInterval, MaxHealthInterval)
	v.duration(hp+".timeout", hc.Timeout, time.Millisecond, MaxHealthInterval)
	interval, timeout := hc.Interval.D(), hc.Timeout.D()
	if interval == 0 {
		interval = DefaultHealthInterval
	}
	if timeout == 0 {
		timeout = DefaultHealthTimeout
	}
	if timeout >= interval {
		v.add(hp+".timeout", "%s must be shorter than the interval %s", timeout, interval)
	}
	if hc.Rise < 0 || hc.Rise > MaxHealthRiseFall {
		v.add(hp+".rise", "%d is outside 1..%d", hc.Rise, MaxHealthRiseFall)
	}
	if hc.Fall < 0 || hc.Fall > MaxHealthRiseFall {
		v.add(hp+".fall", "%d is outside 1..%d", hc.Fall, MaxHealthRiseFall)
	}
}
