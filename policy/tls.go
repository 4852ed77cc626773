package policy

import (
	"net/url"
	"path/filepath"
	"strings"
)

// Client certificate modes of GatewayTLS.ClientAuth.
const (
	ClientAuthNone     = "none"
	ClientAuthOptional = "optional"
	ClientAuthRequire  = "require"
)

var clientAuthModes = []string{ClientAuthNone, ClientAuthOptional, ClientAuthRequire}

// clone copies t deeply (nil stays nil).
func (t *GatewayTLS) clone() *GatewayTLS {
	if t == nil {
		return nil
	}
	c := *t
	c.ClientTenants = append([]ClientTenant(nil), t.ClientTenants...)
	return &c
}

// Key is the identity a ClientTenant matches, as l7/tlsterm names a
// certificate's identities: "cn:<common name>" or "uri:<URI SAN>" (a SPIFFE
// ID is a URI SAN).
func (ct ClientTenant) Key() string {
	switch {
	case ct.CommonName != "":
		return "cn:" + ct.CommonName
	case ct.SPIFFEID != "":
		return "uri:" + ct.SPIFFEID
	default:
		return "uri:" + ct.URI
	}
}

// gatewayTLS checks the listener's TLS settings. Files are only checked to
// be absolute paths here: validation runs offline; the gateway reads them
// at start and on change, and refuses to start on a bad one.
func (v *validator) gatewayTLS(p string, t *GatewayTLS, tenants map[string]int) {
	v.absFile(p+".certFile", t.CertFile, true)
	v.absFile(p+".keyFile", t.KeyFile, true)
	v.absFile(p+".clientCAFile", t.ClientCAFile, false)
	v.enum(p+".clientAuth", t.ClientAuth, clientAuthModes, true)
	mode := t.ClientAuth
	if mode == "" {
		mode = ClientAuthNone
	}
	if mode != ClientAuthNone && t.ClientCAFile == "" {
		v.add(p+".clientCAFile", "is required with clientAuth %s", mode)
	}
	if mode == ClientAuthNone && t.ClientCAFile != "" {
		v.add(p+".clientAuth", "is none, so clientCAFile would be ignored; set optional or require")
	}
	if mode == ClientAuthNone && len(t.ClientTenants) > 0 {
		v.add(p+".clientTenants", "need clientAuth optional or require")
	}
	seen := uniq{}
	for i, ct := range t.ClientTenants {
		cp := idx(p+".clientTenants", i)
		n := 0
		for _, s := range []string{ct.CommonName, ct.URI, ct.SPIFFEID} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			v.add(cp, "needs exactly one of commonName, uri or spiffeID (has %d)", n)
			continue
		}
		switch {
		case ct.SPIFFEID != "":
			u, err := url.Parse(ct.SPIFFEID)
			if err != nil || u.Scheme != "spiffe" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.Port() != "" {
				v.add(cp+".spiffeID", "%q is not a SPIFFE ID (spiffe://trust-domain/path)", truncate(ct.SPIFFEID, 80))
			}
		case ct.URI != "":
			if u, err := url.Parse(ct.URI); err != nil || u.Scheme == "" {
				v.add(cp+".uri", "%q is not an absolute URI", truncate(ct.URI, 80))
			}
		case len(ct.CommonName) > 256 || strings.ContainsAny(ct.CommonName, "\r\n\x00"):
			v.add(cp+".commonName", "%q is not a common name", truncate(ct.CommonName, 80))
		}
		v.unique(seen, cp, ct.Key(), "client identity")
		v.ref(cp+".tenant", ct.Tenant, tenants, "tenant")
	}
}

// providerCA checks a provider's caFile: an absolute path, and only for an
// https baseURL.
func (v *validator) providerCA(pp string, pr Provider) {
	if pr.CAFile == "" {
		return
	}
	v.absFile(pp+".caFile", pr.CAFile, false)
	if u, err := url.Parse(pr.BaseURL); err == nil && u.Scheme != "https" {
		v.add(pp+".caFile", "only applies to an https baseURL")
	}
}

func (v *validator) absFile(path, s string, required bool) {
	switch {
	case s == "" && required:
		v.add(path, "is required")
	case s != "" && !filepath.IsAbs(s):
		v.add(path, "%q must be an absolute path", s)
	}
}
