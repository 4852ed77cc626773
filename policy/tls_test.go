package policy

import (
	"errors"
	"strings"
	"testing"
)

const tlsTenants = `
  gateway:
    tenants:
      - name: acme
    providers:
      - name: up
        baseURL: https://llm.example/v1
        caFile: /etc/ca.pem`

// A gateway TLS section survives decode, compile and the way back to a
// document, and a client identity maps to its tenant's Key.
func TestGatewayTLSRoundTrip(t *testing.T) {
	doc := minimal + tlsTenants + `
    tls:
      certFile: /etc/tls/crt.pem
      keyFile: /etc/tls/key.pem
      clientCAFile: /etc/tls/clients.pem
      clientAuth: require
      clientTenants:
        - {commonName: ci-runner, tenant: acme}
        - {spiffeID: "spiffe://example.org/ns/acme/sa/bot", tenant: acme}
        - {uri: "urn:acme:batch", tenant: acme}`
	_, c, err := Load(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	tl := c.Gateway.TLS
	if tl == nil || tl.CertFile != "/etc/tls/crt.pem" || tl.ClientAuth != ClientAuthRequire || len(tl.ClientTenants) != 3 {
		t.Fatalf("compiled TLS %+v", tl)
	}
	keys := []string{}
	for _, ct := range tl.ClientTenants {
		keys = append(keys, ct.Key())
	}
	if got := strings.Join(keys, " "); got != "cn:ci-runner uri:spiffe://example.org/ns/acme/sa/bot uri:urn:acme:batch" {
		t.Fatalf("keys %s", got)
	}
	if c.Gateway.Providers[0].CAFile != "/etc/ca.pem" {
		t.Fatal("provider caFile lost")
	}
	y, err := Marshal(c.Document())
	if err != nil {
		t.Fatal(err)
	}
	_, c2, err := Load(strings.NewReader(string(y)))
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	if c2.Gateway.TLS == nil || len(c2.Gateway.TLS.ClientTenants) != 3 || c2.Gateway.TLS.ClientCAFile != tl.ClientCAFile {
		t.Fatalf("round trip lost TLS:\n%s", y)
	}
	// The compiled copy is its own: editing the document does not reach it.
	c.Document().Spec.Gateway.TLS.ClientTenants[0].Tenant = "x"
	if tl.ClientTenants[0].Tenant != "acme" {
		t.Fatal("compiled TLS shares its slice with the document")
	}
}

func TestGatewayTLSProblems(t *testing.T) {
	base := minimal + tlsTenants + "\n    tls:\n"
	cases := []struct{ name, tls, path, msg string }{
		{"no cert", "      keyFile: /k", "spec.gateway.tls.certFile", "is required"},
		{"relative key", "      certFile: /c\n      keyFile: k.pem", "spec.gateway.tls.keyFile", "must be an absolute path"},
		{"bad mode", "      certFile: /c\n      keyFile: /k\n      clientAuth: maybe", "spec.gateway.tls.clientAuth", "is not one of none, optional, require"},
		{"mode without CA", "      certFile: /c\n      keyFile: /k\n      clientAuth: require", "spec.gateway.tls.clientCAFile", "is required with clientAuth require"},
		{"CA without mode", "      certFile: /c\n      keyFile: /k\n      clientCAFile: /ca", "spec.gateway.tls.clientAuth", "would be ignored"},
		{"tenants without mode", "      certFile: /c\n      keyFile: /k\n      clientTenants:\n        - {commonName: a, tenant: acme}", "spec.gateway.tls.clientTenants", "need clientAuth"},
		{"two identities", "      certFile: /c\n      keyFile: /k\n      clientCAFile: /ca\n      clientAuth: optional\n      clientTenants:\n        - {commonName: a, uri: 'urn:a', tenant: acme}", "spec.gateway.tls.clientTenants[0]", "exactly one of"},
		{"bad spiffe", "      certFile: /c\n      keyFile: /k\n      clientCAFile: /ca\n      clientAuth: optional\n      clientTenants:\n        - {spiffeID: 'https://x/y', tenant: acme}", "spec.gateway.tls.clientTenants[0].spiffeID", "is not a SPIFFE ID"},
		{"unknown tenant", "      certFile: /c\n      keyFile: /k\n      clientCAFile: /ca\n      clientAuth: optional\n      clientTenants:\n        - {commonName: a, tenant: nope}", "spec.gateway.tls.clientTenants[0].tenant", "not declared"},
		{"duplicate identity", "      certFile: /c\n      keyFile: /k\n      clientCAFile: /ca\n      clientAuth: optional\n      clientTenants:\n        - {commonName: a, tenant: acme}\n        - {commonName: a, tenant: acme}", "spec.gateway.tls.clientTenants[1]", "duplicate client identity"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Load(strings.NewReader(base + tc.tls))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a *ValidationError, got %v", err)
			}
			for _, p := range ve.Problems {
				if p.Path == tc.path && strings.Contains(p.Message, tc.msg) {
					return
				}
			}
			t.Fatalf("no problem %s: %s among:\n%v", tc.path, tc.msg, err)
		})
	}
	// caFile on a plain http provider.
	doc := minimal + "\n  gateway:\n    providers:\n      - {name: up, baseURL: 'http://llm.example/v1', caFile: /ca}"
	if _, _, err := Load(strings.NewReader(doc)); err == nil || !strings.Contains(err.Error(), "only applies to an https baseURL") {
		t.Fatalf("caFile on http: %v", err)
	}
}
