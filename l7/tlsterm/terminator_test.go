package tlsterm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testpki"
	"github.com/infergate/infergate/policy"
)

// server serves a handler that answers with the client certificate's
// identities behind tm's ServerConfig, the way the gateway's TLS listener
// uses it.
func server(t *testing.T, tm *Terminator) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, r.Proto+" "+strings.Join(Identities(r.TLS), ","))
		}),
		TLSConfig: tm.ServerConfig(),
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

type pki struct {
	dir             string
	ca, clientCA    *testpki.CA
	certFile, keyFi string
	clientCAFile    string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir(), ca: testpki.NewCA(t, "server CA"), clientCA: testpki.NewCA(t, "client CA")}
	p.certFile, p.keyFi = p.ca.Localhost(t).Write(t, p.dir, "server")
	p.clientCAFile = filepath.Join(p.dir, "clients.pem")
	testpki.WriteFile(t, p.clientCAFile, p.clientCA.PEM)
	return p
}

func (p *pki) settings(mode string) policy.GatewayTLS {
	s := policy.GatewayTLS{CertFile: p.certFile, KeyFile: p.keyFi, ClientAuth: mode}
	if mode != policy.ClientAuthNone {
		s.ClientCAFile = p.clientCAFile
	}
	return s
}

func dial(addr string, cfg *tls.Config) (*tls.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return tls.DialWithDialer(d, "tcp", addr, cfg)
}

// The listener negotiates TLS 1.2 or 1.3 with ALPN h2 or http/1.1, and
// refuses TLS 1.1 and 1.0.
func TestHandshakeVersionsAndALPN(t *testing.T) {
	p := newPKI(t)
	tm, err := New(p.settings(policy.ClientAuthNone), Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr := server(t, tm)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, proto := range []string{"h2", "http/1.1"} {
			c, err := dial(addr, &tls.Config{RootCAs: p.ca.Pool(), MinVersion: v, MaxVersion: v, NextProtos: []string{proto}})
			if err != nil {
				t.Fatalf("%s %s: %v", tls.VersionName(v), proto, err)
			}
			st := c.ConnectionState()
			if st.Version != v || st.NegotiatedProtocol != proto {
				t.Errorf("negotiated %s %q, want %s %q", tls.VersionName(st.Version), st.NegotiatedProtocol, tls.VersionName(v), proto)
			}
			c.Close()
		}
	}
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		if c, err := dial(addr, &tls.Config{RootCAs: p.ca.Pool(), MinVersion: v, MaxVersion: v}); err == nil {
			c.Close()
			t.Errorf("%s handshake accepted", tls.VersionName(v))
		}
	}
}

// Bad files are refused at start with an error that names the problem.
func TestNewRefusesBadFiles(t *testing.T) {
	p := newPKI(t)
	other := p.ca.Localhost(t)
	_, otherKey := other.Write(t, p.dir, "other")
	expired := p.ca.Issue(t, testpki.Leaf{CommonName: "old", NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	expCert, expKey := expired.Write(t, p.dir, "expired")
	junk := filepath.Join(p.dir, "junk.pem")
	testpki.WriteFile(t, junk, []byte("not pem"))
	for name, tc := range map[string]struct {
		s    policy.GatewayTLS
		want string
	}{
		"missing cert":  {policy.GatewayTLS{CertFile: p.dir + "/none.crt", KeyFile: p.keyFi}, "no such file"},
		"key mismatch":  {policy.GatewayTLS{CertFile: p.certFile, KeyFile: otherKey}, "private key does not match"},
		"expired":       {policy.GatewayTLS{CertFile: expCert, KeyFile: expKey}, "expired"},
		"junk CA":       {policy.GatewayTLS{CertFile: p.certFile, KeyFile: p.keyFi, ClientAuth: "require", ClientCAFile: junk}, "no PEM certificate"},
		"mode, no CA":   {policy.GatewayTLS{CertFile: p.certFile, KeyFile: p.keyFi, ClientAuth: "optional"}, "needs clientCAFile"},
		"unknown mode":  {policy.GatewayTLS{CertFile: p.certFile, KeyFile: p.keyFi, ClientAuth: "maybe"}, "not none, optional or require"},
		"cert is a key": {policy.GatewayTLS{CertFile: p.keyFi, KeyFile: p.keyFi}, "certificate"},
	} {
		if _, err := New(tc.s, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
}

// With clientAuth require, a certificate from the client CA gets through
// and carries its identities; no certificate, one from another CA, an
// expired one and a server-only one are refused in the handshake.
func TestClientCertificates(t *testing.T) {
	p := newPKI(t)
	tm, err := New(p.settings(policy.ClientAuthRequire), Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr := server(t, tm)
	get := func(cert *testpki.Issued) (string, error) {
		cfg := &tls.Config{RootCAs: p.ca.Pool()}
		if cert != nil {
			cfg.GetClientCertificate = present(cert)
		}
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
		defer c.CloseIdleConnections()
		resp, err := c.Get("https://" + addr + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	good := p.clientCA.Issue(t, testpki.Leaf{CommonName: "ci-runner", URIs: []string{"spiffe://example.org/ns/acme/sa/bot"}, Client: true})
	body, err := get(good)
	if err != nil {
		t.Fatal(err)
	}
	if body != "HTTP/2.0 uri:spiffe://example.org/ns/acme/sa/bot,cn:ci-runner" {
		t.Fatalf("body %q", body)
	}
	stranger := testpki.NewCA(t, "someone else").Issue(t, testpki.Leaf{CommonName: "ci-runner", Client: true})
	expired := p.clientCA.Issue(t, testpki.Leaf{CommonName: "ci-runner", Client: true,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Minute)})
	notYet := p.clientCA.Issue(t, testpki.Leaf{CommonName: "ci-runner", Client: true,
		NotBefore: time.Now().Add(time.Hour), NotAfter: time.Now().Add(48 * time.Hour)})
	serverOnly := p.clientCA.Issue(t, testpki.Leaf{CommonName: "ci-runner"})
	for name, c := range map[string]*testpki.Issued{"none": nil, "unknown CA": stranger, "expired": expired, "not yet valid": notYet, "server-auth only": serverOnly} {
		if body, err := get(c); err == nil {
			t.Errorf("%s: accepted (%q)", name, body)
		}
	}
}

// With clientAuth optional, a client without a certificate gets through
// (with no identity) and one with a bad certificate does not.
func TestClientCertificateOptional(t *testing.T) {
	p := newPKI(t)
	tm, err := New(p.settings(policy.ClientAuthOptional), Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr := server(t, tm)
	c, err := dial(addr, &tls.Config{RootCAs: p.ca.Pool()})
	if err != nil {
		t.Fatalf("no certificate refused: %v", err)
	}
	c.Close()
	stranger := testpki.NewCA(t, "someone else").Issue(t, testpki.Leaf{CommonName: "x", Client: true})
	c, err = dial(addr, &tls.Config{RootCAs: p.ca.Pool(), GetClientCertificate: present(stranger)})
	if err == nil {
		// TLS 1.3: the server's verdict on the client certificate comes
		// with the first read.
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if err == nil {
		t.Fatal("certificate from an unknown CA accepted")
	}
}

// A replaced certificate is served to new handshakes after Reload, while a
// connection opened before keeps working on its session; files that do not
// load keep the previous certificate.
func TestReloadKeepsOpenConnections(t *testing.T) {
	p := newPKI(t)
	tm, err := New(p.settings(policy.ClientAuthNone), Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr := server(t, tm)
	first := tm.Certificate().SerialNumber
	// One keep-alive connection, held by its transport.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.ca.Pool()}, MaxConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	old := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	peer := func(c *http.Client) string {
		t.Helper()
		resp, err := c.Get("https://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.String()
	}
	if got := peer(old); got != first.String() {
		t.Fatalf("served %s, want %s", got, first)
	}
	if ok, err := tm.Reload(); ok || err != nil {
		t.Fatalf("Reload with nothing changed = %v, %v", ok, err)
	}

	next := p.ca.Localhost(t)
	next.Write(t, p.dir, "server")
	if ok, err := tm.Reload(); !ok || err != nil {
		t.Fatalf("Reload = %v, %v", ok, err)
	}
	second := next.Cert.SerialNumber.String()
	if tm.Certificate().SerialNumber.String() != second {
		t.Fatal("Certificate() still the old one")
	}
	fresh := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.ca.Pool()}}, Timeout: 5 * time.Second}
	defer fresh.CloseIdleConnections()
	if got := peer(fresh); got != second {
		t.Fatalf("new handshake got %s, want the new certificate %s", got, second)
	}
	// The old connection was not dropped: the same transport (one
	// connection per host) still talks over the session of the first
	// certificate.
	if got := peer(old); got != first.String() {
		t.Fatalf("old connection now shows %s: it was replaced, not kept", got)
	}

	// A half-written replacement: the key no longer matches. The
	// certificate in force stays, and the failure is reported.
	testpki.WriteFile(t, p.keyFi, p.ca.Localhost(t).KeyPEM)
	if ok, err := tm.Reload(); ok || err == nil {
		t.Fatalf("mismatched key reloaded: %v, %v", ok, err)
	}
	if got := peer(fresh); got != second {
		t.Fatalf("after a failed reload new handshakes get %s", got)
	}
	fresh.CloseIdleConnections()
	if got := peer(fresh); got != second {
		t.Fatalf("after a failed reload new handshakes get %s", got)
	}
}

// present sends c whatever CAs the server asks for (crypto/tls would
// otherwise send nothing when c is not from one of them).
func present(c *testpki.Issued) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c.TLS, nil }
}

// Run notices a changed file by itself.
func TestRunReloads(t *testing.T) {
	p := newPKI(t)
	tm, err := New(p.settings(policy.ClientAuthNone), Options{ReloadInterval: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tm.Run(ctx)
	next := p.ca.Localhost(t)
	next.Write(t, p.dir, "server")
	deadline := time.Now().Add(5 * time.Second)
	for tm.Certificate().SerialNumber.Cmp(next.Cert.SerialNumber) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not reload the changed certificate")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestIdentities(t *testing.T) {
	ca := testpki.NewCA(t, "ca")
	c := ca.Issue(t, testpki.Leaf{CommonName: "bot", URIs: []string{"spiffe://td/a", "urn:x"}, Client: true})
	cs := &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{c.Cert, ca.Cert}}}
	if got := Identities(cs); !slices.Equal(got, []string{"uri:spiffe://td/a", "uri:urn:x", "cn:bot"}) {
		t.Fatalf("Identities = %v", got)
	}
	// Presented but not verified: nothing.
	if got := Identities(&tls.ConnectionState{PeerCertificates: []*x509.Certificate{c.Cert}}); got != nil {
		t.Fatalf("unverified certificate gave %v", got)
	}
	if Identities(nil) != nil {
		t.Fatal("nil state gave identities")
	}
}
