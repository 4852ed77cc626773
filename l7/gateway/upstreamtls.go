package gateway

import (
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"net/http"
	"sync"

	"github.com/infergate/infergate/l7/route"
	"github.com/infergate/infergate/l7/tlsterm"
	"github.com/infergate/infergate/policy"
)

// Upstream TLS. Providers are reached through net/http's Transport, which
// speaks https (and h2) with the system roots. A provider with a caFile is
// verified against that bundle only, through a transport of its own. Those
// transports are kept by file path and content across policy applies, so
// an apply that leaves a CA alone keeps its pooled connections. Pool
// backends are plain HTTP/1.1 through the gateway's own pool (upstream.go):
// they are addresses on the node or its private network, unless the pool
// names tls: then its backends are reached over HTTPS through a transport
// of the pool's own (poolTransports), verified against its CA.

// caTransports holds a transport per provider CA bundle.
type caTransports struct {
	mu sync.Mutex
	m  map[caKey]*http.Transport
}

type caKey struct {
	path string
	sum  [sha256.Size]byte
}

// providerTransports loads the CA bundles c's providers name and returns
// the transport of each such provider, by name.
func (g *Gateway) providerTransports(c *policy.Compiled) (map[string]http.RoundTripper, error) {
	g.labelProviders(c)
	var out map[string]http.RoundTripper
	for _, p := range c.Gateway.Providers {
		if p.CAFile == "" && p.ProviderKind() == policy.ProviderOpenAI {
			continue
		}
		var t http.RoundTripper = gatewayRT{g}
		if p.CAFile != "" {
			ct, err := g.caTransports.get(p.CAFile)
			if err != nil {
				return nil, fmt.Errorf("provider %s: %w", p.Name, err)
			}
			t = ct
		}
		// Kinds other than openai translate in front of the transport
		// (providerkind.go).
		t, err := kindTransport(p, t, g.opts.Getenv)
		if err != nil {
			return nil, fmt.Errorf("provider %s: %w", p.Name, err)
		}
		if out == nil {
			out = map[string]http.RoundTripper{}
		}
		out[p.Name] = t
	}
	return out, nil
}

func (ct *caTransports) get(path string) (*http.Transport, error) {
	pool, pemBytes, err := tlsterm.LoadCAFileBytes(path)
	if err != nil {
		return nil, err
	}
	k := caKey{path: path, sum: sha256.Sum256(pemBytes)}
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if t, ok := ct.m[k]; ok {
		return t, nil
	}
	t := newTransport()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if ct.m == nil {
		ct.m = map[caKey]*http.Transport{}
	}
	ct.m[k] = t
	return t, nil
}

func (ct *caTransports) closeIdle() {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	for _, t := range ct.m {
		t.CloseIdleConnections()
	}
}

// upstreamTransport is the round tripper of a provider route: its own CA's
// transport when it has one, else the gateway's.
func (x *exchange) upstreamTransport(rt *route.Route) http.RoundTripper {
	if rt.Provider != nil {
		if t, ok := x.cfg.providerRT[rt.Provider.Name]; ok {
			return t
		}
	} else if t, ok := x.cfg.poolRT[rt.Pool.Name]; ok {
		return t
	}
	return x.g.rt
}

// poolTransports builds the transport of each pool with TLS, by name: its
// CA (or the system roots) and the server name its backends' certificates
// carry.
func (g *Gateway) poolTransports(c *policy.Compiled) (map[string]http.RoundTripper, error) {
	var out map[string]http.RoundTripper
	for _, p := range c.Pools {
		if p.TLS == nil {
			continue
		}
		var t *http.Transport
		if p.TLS.CAFile != "" {
			ct, err := g.caTransports.get(p.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("pool %s: %w", p.Name, err)
			}
			t = ct.Clone()
		} else {
			t = newTransport()
			t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		t.TLSClientConfig.ServerName = p.TLS.ServerName
		if out == nil {
			out = map[string]http.RoundTripper{}
		}
		out[p.Name] = t
	}
	return out, nil
}
