package auth

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"testing"

	"github.com/infergate/infergate/internal/testpki"
	"github.com/infergate/infergate/policy"
)

// A verified client certificate the policy names becomes the principal:
// by SPIFFE ID (URI SAN) before CN, ahead of any header credential. A
// certificate the policy does not name, or one not verified in the
// handshake, leaves the decision to the headers.
func TestClientCertificatePrincipal(t *testing.T) {
	const key = "ig-cert-test-key-0123456789"
	g := &policy.CompiledGateway{
		Tenants: []policy.Tenant{{Name: "acme"}, {Name: "globex"}},
		Keys:    []policy.CompiledKey{{Name: "globex-key", Tenant: 1, Hash: HashKey(key)}},
		TLS: &policy.GatewayTLS{CertFile: "/c", KeyFile: "/k", ClientCAFile: "/ca", ClientAuth: policy.ClientAuthOptional,
			ClientTenants: []policy.ClientTenant{
				{SPIFFEID: "spiffe://example.org/ns/acme/sa/bot", Tenant: "acme"},
				{CommonName: "globex-runner", Tenant: "globex"},
			}},
	}
	a, err := New(g, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ca := testpki.NewCA(t, "clients")
	verified := func(l testpki.Leaf) *tls.ConnectionState {
		l.Client = true
		c := ca.Issue(t, l)
		return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c.Cert}, VerifiedChains: [][]*x509.Certificate{{c.Cert, ca.Cert}}}
	}
	req := func(cs *tls.ConnectionState, bearer string) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, "https://gw/v1/chat/completions", nil)
		r.TLS = cs
		if bearer != "" {
			r.Header.Set("Authorization", "Bearer "+bearer)
		}
		return r
	}
	for _, tc := range []struct {
		name               string
		r                  *http.Request
		tenant, subject    string
		keyName, wantError string
	}{
		// SPIFFE ID wins over a CN that names another tenant.
		{name: "spiffe", r: req(verified(testpki.Leaf{CommonName: "globex-runner", URIs: []string{"spiffe://example.org/ns/acme/sa/bot"}}), ""),
			tenant: "acme", subject: "uri:spiffe://example.org/ns/acme/sa/bot"},
		{name: "cn", r: req(verified(testpki.Leaf{CommonName: "globex-runner"}), ""), tenant: "globex", subject: "cn:globex-runner"},
		// The certificate, proven in the handshake, is not overridden by a header.
		{name: "cert over key", r: req(verified(testpki.Leaf{URIs: []string{"spiffe://example.org/ns/acme/sa/bot"}}), key),
			tenant: "acme", subject: "uri:spiffe://example.org/ns/acme/sa/bot"},
		{name: "unmapped cert, key", r: req(verified(testpki.Leaf{CommonName: "stranger"}), key), tenant: "globex", keyName: "globex-key"},
		{name: "unmapped cert, nothing else", r: req(verified(testpki.Leaf{CommonName: "stranger"}), ""), wantError: CodeMissingCredentials},
		// Presented but not verified (the chain check did not run): ignored.
		{name: "unverified", r: req(&tls.ConnectionState{PeerCertificates: []*x509.Certificate{ca.Issue(t, testpki.Leaf{CommonName: "globex-runner", Client: true}).Cert}}, ""),
			wantError: CodeMissingCredentials},
		{name: "plain http", r: req(nil, ""), wantError: CodeMissingCredentials},
	} {
		p, err := a.Authenticate(tc.r)
		if tc.wantError != "" {
			if ae, ok := err.(*Error); !ok || ae.Code != tc.wantError {
				t.Errorf("%s: %+v, %v; want error %s", tc.name, p, err, tc.wantError)
			}
			continue
		}
		if err != nil || p.Tenant != tc.tenant || p.Subject != tc.subject || p.KeyName != tc.keyName {
			t.Errorf("%s: %+v, %v; want tenant %s subject %q key %q", tc.name, p, err, tc.tenant, tc.subject, tc.keyName)
		}
		if tc.subject != "" && (p.KeyIndex != -1 || g.Tenants[p.TenantIndex].Name != tc.tenant) {
			t.Errorf("%s: indexes %+v", tc.name, p)
		}
	}
}
