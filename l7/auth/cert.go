package auth

import (
	"crypto/tls"

	"github.com/infergate/infergate/l7/tlsterm"
	"github.com/infergate/infergate/policy"
)

// certTenants indexes the policy's client certificate mapping by the
// identity names l7/tlsterm gives a certificate ("cn:…", "uri:…").
func certTenants(g *policy.CompiledGateway, tenants map[string]int) map[string]int {
	if g.TLS == nil || len(g.TLS.ClientTenants) == 0 {
		return nil
	}
	m := make(map[string]int, len(g.TLS.ClientTenants))
	for _, ct := range g.TLS.ClientTenants {
		if i, ok := tenants[ct.Tenant]; ok {
			m[ct.Key()] = i
		}
	}
	return m
}

// authenticateCert maps the connection's verified client certificate to
// a tenant: its URI SANs (SPIFFE IDs) first, then its subject CN. A
// certificate the handshake did not verify (none sent, or a listener
// without client CAs) or one the policy does not name maps to nothing, and
// the request's own credentials decide.
func (a *Authenticator) authenticateCert(cs *tls.ConnectionState) (Principal, bool) {
	for _, id := range tlsterm.Identities(cs) {
		if i, ok := a.certs[id]; ok {
			return Principal{Tenant: a.g.Tenants[i].Name, TenantIndex: i, KeyIndex: -1, Subject: id}, true
		}
	}
	return Principal{}, false
}
