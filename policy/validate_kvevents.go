package policy

import (
	"net"
	"net/url"
	"strconv"
)

// poolKVEvents checks a pool's kvEvents: one publisher per backend, by
// port or by name, tcp only.
func (v *validator) poolKVEvents(p string, pool *Pool) {
	k := pool.KVEvents
	if k == nil {
		return
	}
	switch {
	case k.Port != 0 && len(k.Endpoints) > 0:
		v.add(p+".endpoints", "give either port or endpoints, not both")
	case k.Port == 0 && len(k.Endpoints) == 0:
		v.add(p, "needs port (each backend's address) or endpoints")
	case k.Port != 0:
		v.port(p+".port", k.Port, false)
	default:
		backends := map[string]bool{}
		for _, b := range pool.Backends {
			backends[b.Name] = true
		}
		seen := uniq{}
		for i, e := range k.Endpoints {
			ep := idx(p+".endpoints", i)
			v.unique(seen, ep+".backend", e.Backend, "backend")
			if !backends[e.Backend] {
				v.add(ep+".backend", "%q is not a backend of this pool", truncate(e.Backend, 80))
			}
			if !tcpEndpoint(e.Endpoint) {
				v.add(ep+".endpoint", "%q is not tcp://host:port", truncate(e.Endpoint, 120))
			}
			delete(backends, e.Backend)
		}
		for _, b := range pool.Backends {
			if backends[b.Name] {
				v.add(p+".endpoints", "backend %q has no endpoint", b.Name)
			}
		}
	}
	if k.BlockSize < 0 || k.BlockSize > maxKVBlockSize {
		v.add(p+".blockSize", "%d outside [1, %d]", k.BlockSize, maxKVBlockSize)
	}
	if len(k.HashSeed) > maxKVHashSeed {
		v.add(p+".hashSeed", "longer than %d bytes", maxKVHashSeed)
	}
	v.enum(p+".encoding", k.Encoding, []string{"cl100k_base", "o200k_base"}, true)
}

// tcpEndpoint reports whether s is tcp://host:port naming one host.
func tcpEndpoint(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "tcp" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return false
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" || host == "*" {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n > 0 && n < 65536
}
