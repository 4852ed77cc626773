package policy

import (
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
)

// providers checks the external APIs and returns their indices by name.
func (v *validator) providers(p string, list []Provider) map[string]int {
	providers := map[string]int{}
	seen := uniq{}
	for i, pr := range list {
		pp := idx(p, i)
		v.name(pp+".name", pr.Name)
		v.unique(seen, pp+".name", pr.Name, "provider")
		providers[pr.Name] = i
		if pr.BaseURL == "" {
			if providerNeedsBaseURL(pr) {
				v.add(pp+".baseURL", "is required")
			}
		} else {
			v.httpURL(pp+".baseURL", pr.BaseURL)
		}
		if pr.APIKeyFile != "" && pr.APIKeyEnv != "" {
			v.add(pp, "has both apiKeyFile and apiKeyEnv; use one")
		}
		if pr.APIKeyFile != "" && !filepath.IsAbs(pr.APIKeyFile) {
			v.add(pp+".apiKeyFile", "%q must be an absolute path", pr.APIKeyFile)
		}
		v.providerCA(pp, pr)
		v.providerKind(pp, pr)
	}
	return providers
}

// models checks the models and their routes; it returns the pools that
// routes send to (index to the first route's path).
func (v *validator) models(p string, models []Model, pools, providers map[string]int) map[int]string {
	modelNames := uniq{}
	routedPools := map[int]string{}
	for i, m := range models {
		mp := idx(p, i)
		if m.Name == "" {
			v.add(mp+".name", "is required")
		} else if len(m.Name) > 256 || strings.ContainsAny(m.Name, " \t\n") {
			v.add(mp+".name", "%q is not a model name", truncate(m.Name, 80))
		}
		v.unique(modelNames, mp+".name", m.Name, "model name")
		for j, a := range m.Aliases {
			v.unique(modelNames, idx(mp+".aliases", j), a, "model name")
		}
		v.enum(mp+".encoding", m.Encoding, encodings, true)
		for _, f := range []struct {
			name string
			val  float64
		}{{"inputPerMTok", m.Price.InputPerMTok}, {"outputPerMTok", m.Price.OutputPerMTok}} {
			if f.val < 0 || f.val > MaxPriceUSDPerMTok {
				v.add(mp+".price."+f.name, "%v is outside 0..%d USD per million tokens", f.val, MaxPriceUSDPerMTok)
			}
		}
		if len(m.Routes) == 0 {
			v.add(mp+".routes", "a model needs at least one route")
		}
		var total uint64
		for j, r := range m.Routes {
			v.route(idx(mp+".routes", j), r, pools, providers, routedPools)
			total += uint64(r.Weight)
		}
		if len(m.Routes) > 0 && total == 0 {
			v.add(mp+".routes", "every route has weight 0, so the model can take no traffic")
		}
		for j, r := range m.Fallback {
			v.route(idx(mp+".fallback", j), r, pools, providers, routedPools)
		}
		v.timeouts(mp+".timeouts", m.Timeouts)
		if m.Retries < 0 || m.Retries > MaxRetries {
			v.add(mp+".retries", "%d is outside 0..%d", m.Retries, MaxRetries)
		}
		v.spillOver(mp, m)
	}
	return routedPools
}

func (v *validator) route(path string, r Route, pools, providers map[string]int, routedPools map[int]string) {
	switch {
	case r.Pool != "" && r.Provider != "":
		v.add(path, "has both pool and provider; a route targets exactly one")
	case r.Pool == "" && r.Provider == "":
		v.add(path, "needs a pool or a provider")
	case r.Pool != "":
		v.ref(path+".pool", r.Pool, pools, "pool")
		if i, ok := pools[r.Pool]; ok {
			if _, seen := routedPools[i]; !seen {
				routedPools[i] = path
			}
		}
	default:
		v.ref(path+".provider", r.Provider, providers, "provider")
	}
	if r.Weight > MaxWeight {
		v.add(path+".weight", "%d is more than %d", r.Weight, MaxWeight)
	}
}

// routedPoolPorts: L7 routes connect to backends directly, so their ports
// must be known.
func (v *validator) routedPoolPorts(poolList []Pool, routedPools map[int]string) {
	for pi := range poolList {
		at, routed := routedPools[pi]
		if !routed {
			continue
		}
		for j, b := range poolList[pi].Backends {
			if b.Port == 0 {
				v.add(idx(idx("spec.pools", pi)+".backends", j)+".port", "is required: model route %s sends requests to this pool", at)
			}
		}
	}
}

// selfReferences refuses a provider whose base URL is the gateway's own
// listener: every request routed there would come back and be routed
// there again. Only what the document shows is caught (the listen port on
// a loopback name, an address the gateway binds, or a wildcard bind); a
// loop through a name or another gateway is stopped at run time by the
// hop limit.
func (v *validator) selfReferences(p string, list []Provider, listen string) {
	if listen == "" {
		listen = DefaultListen
	}
	lhost, lport, err := net.SplitHostPort(listen)
	if err != nil {
		return
	}
	for i, pr := range list {
		u, err := url.Parse(pr.BaseURL)
		if err != nil || u.Host == "" {
			continue
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		if port != lport {
			continue
		}
		host := u.Hostname()
		self := strings.EqualFold(host, "localhost") || host == lhost
		if a, err := netip.ParseAddr(host); err == nil {
			a = a.Unmap()
			self = self || a.IsLoopback() || (lhost == "" || lhost == "0.0.0.0" || lhost == "::") && a.IsUnspecified()
			if l, err := netip.ParseAddr(lhost); err == nil && l.Unmap() == a {
				self = true
			}
		}
		if self {
			v.add(idx(p, i)+".baseURL", "%q is the gateway's own listener (%s): requests would loop", truncate(pr.BaseURL, 80), listen)
		}
	}
}
