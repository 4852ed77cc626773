package gateway

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infergate/infergate/internal/syncbuf"
	"github.com/infergate/infergate/internal/testpki"
	"github.com/infergate/infergate/l7/limit"
	"github.com/infergate/infergate/l7/tlsterm"
	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/mockllm"
)

const testSPIFFE = "spiffe://example.org/ns/acme/sa/bot"

// tlsHarness is a gateway behind its TLS listener (TLSServer with
// l7/tlsterm), client certificates optional, the SPIFFE ID testSPIFFE
// mapped to tenant acme.
type tlsHarness struct {
	*harness
	addr     string
	dir      string
	ca       *testpki.CA // server and client CA alike
	caFile   string
	certFile string
	keyFile  string
}

func newTLSHarness(t *testing.T, c *policy.Compiled) *tlsHarness {
	t.Helper()
	th := &tlsHarness{dir: t.TempDir(), ca: testpki.NewCA(t, "test CA")}
	th.certFile, th.keyFile = th.ca.Localhost(t).Write(t, th.dir, "server")
	th.caFile = filepath.Join(th.dir, "ca.pem")
	testpki.WriteFile(t, th.caFile, th.ca.PEM)
	c.Gateway.TLS = &policy.GatewayTLS{CertFile: th.certFile, KeyFile: th.keyFile, ClientCAFile: th.caFile,
		ClientAuth: policy.ClientAuthOptional, ClientTenants: []policy.ClientTenant{{SPIFFEID: testSPIFFE, Tenant: "acme"}}}
	th.harness = &harness{t: t, reg: prometheus.NewRegistry(), limiter: &recordingLimiter{Limiter: limit.NewMemory()}, audit: &syncbuf.Buffer{}}
	g, err := New(c, Options{Registry: th.reg, Limiter: th.limiter, Audit: th.audit})
	if err != nil {
		t.Fatal(err)
	}
	th.g = g
	tm, err := tlsterm.New(*c.Gateway.TLS, tlsterm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewTLSServer(g.Handler(), tm.ServerConfig(), nil)
	go func() { _ = srv.Serve(ln) }()
	th.addr = ln.Addr().String()
	t.Cleanup(func() {
		_ = srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
		defer cancel()
		_ = g.Shutdown(ctx)
	})
	return th
}

// client is an HTTP client trusting the test CA, offering h2 (or only
// HTTP/1.1), presenting cert when given.
func (th *tlsHarness) client(cert *testpki.Issued, h2 bool) *http.Client {
	cfg := &tls.Config{RootCAs: th.ca.Pool()}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert.TLS, nil }
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	th.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: waitDeadline}
}

func (th *tlsHarness) post(c *http.Client, key, body string) (*http.Response, []byte, error) {
	req, _ := http.NewRequest(http.MethodPost, "https://"+th.addr+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// Over TLS the gateway serves HTTP/2 and HTTP/1.1 through the same stages;
// a client certificate with a mapped SPIFFE ID is the principal (no key
// sent), a client without a certificate authenticates with its key, and
// expired or unknown certificates never reach a stage.
func TestTLSListenerHTTP2AndClientCertificates(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	th := newTLSHarness(t, basePolicy(pool("p", m)))
	bot := th.ca.Issue(t, testpki.Leaf{CommonName: "bot", URIs: []string{testSPIFFE}, Client: true})

	resp, body, err := th.post(th.client(bot, true), "", chatBody("hello over h2", ""))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("%s %d: %s", resp.Proto, resp.StatusCode, body)
	}
	rec := th.last()
	if rec.Tenant != "acme" || rec.Subject != "uri:"+testSPIFFE || rec.Status != http.StatusOK {
		t.Fatalf("audit record %+v: want tenant acme by the certificate", rec)
	}

	// A stream over HTTP/2: events arrive and end with [DONE].
	resp, body, err = th.post(th.client(bot, true), "", chatBody("stream me", `,"stream":true`))
	if err != nil {
		t.Fatal(err)
	}
	ev := sse(body)
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 || len(ev) < 2 || ev[len(ev)-1] != "[DONE]" {
		t.Fatalf("%s %d stream: %q", resp.Proto, resp.StatusCode, body)
	}

	// HTTP/1.1 over TLS, no certificate, the key.
	resp, body, err = th.post(th.client(nil, false), testKey, chatBody("hello over 1.1", ""))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 1 {
		t.Fatalf("%s %d: %s", resp.Proto, resp.StatusCode, body)
	}
	if rec := th.records(3)[2]; rec.Tenant != "acme" || rec.Key != "acme-key" {
		t.Fatalf("audit record %+v", rec)
	}
	// No certificate and no key: the auth stage's 401.
	if resp, _, err = th.post(th.client(nil, true), "", chatBody("who am I", "")); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous: %v %v", resp, err)
	}

	expired := th.ca.Issue(t, testpki.Leaf{URIs: []string{testSPIFFE}, Client: true,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Minute)})
	stranger := testpki.NewCA(t, "other CA").Issue(t, testpki.Leaf{URIs: []string{testSPIFFE}, Client: true})
	for name, c := range map[string]*testpki.Issued{"expired": expired, "unknown CA": stranger} {
		if resp, _, err := th.post(th.client(c, true), "", chatBody("let me in", "")); err == nil {
			t.Errorf("%s client certificate: got %s", name, resp.Status)
		}
	}
	if n := len(th.records(4)); n != 4 {
		t.Fatalf("%d audit records: a refused handshake reached the stages", n)
	}
}

// curl --http2 against the TLS listener: HTTP/2 negotiated by ALPN, the
// client certificate as the principal.
func TestTLSListenerCurlHTTP2(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed (apt-get install -y curl)")
	}
	m := newMock(t, mockllm.Config{})
	th := newTLSHarness(t, basePolicy(pool("p", m)))
	bot := th.ca.Issue(t, testpki.Leaf{URIs: []string{testSPIFFE}, Client: true})
	certFile, keyFile := bot.Write(t, th.dir, "bot")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, curl, "-sS", "--http2", "--cacert", th.caFile, "--cert", certFile, "--key", keyFile,
		"-o", "/dev/null", "-w", "%{http_version} %{http_code}",
		"-H", "Content-Type: application/json", "--data", chatBody("hi from curl", ""),
		"https://"+th.addr+"/v1/chat/completions").CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "2 200" {
		t.Fatalf("curl: %q, want HTTP/2 200", got)
	}
	if rec := th.last(); rec.Tenant != "acme" {
		t.Fatalf("audit record %+v", rec)
	}
}

// A provider at an https URL whose certificate comes from a private CA is
// reached when the provider's caFile names that CA, and refused (no
// fallback to trusting it) when it does not.
func TestHTTPSProviderWithCAFile(t *testing.T) {
	ca := testpki.NewCA(t, "provider CA")
	up := httptest.NewUnstartedServer(mockllm.New(mockllm.Config{}).Handler())
	up.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Localhost(t).TLS}, MinVersion: tls.VersionTLS12}
	up.StartTLS()
	t.Cleanup(up.Close)
	caFile := filepath.Join(t.TempDir(), "provider-ca.pem")
	testpki.WriteFile(t, caFile, ca.PEM)

	policyWith := func(caFile string) *policy.Compiled {
		c := basePolicy()
		c.Gateway.Providers = []policy.Provider{{Name: "private", BaseURL: up.URL + "/v1", CAFile: caFile}}
		c.Gateway.Models[0].Routes = []policy.CompiledRoute{{Pool: -1, Provider: 0, Weight: 100}}
		return c
	}
	h := newHarness(t, policyWith(caFile), Options{})
	if code, _, body := h.call(testKey, "/v1/chat/completions", chatBody("hello", "")); code != http.StatusOK {
		t.Fatalf("with caFile: %d %s", code, body)
	}
	if rec := h.last(); rec.Backend != "provider/private" {
		t.Fatalf("backend %q", rec.Backend)
	}
	// Without caFile the system roots decide, and they do not know this CA.
	h2 := newHarness(t, policyWith(""), Options{})
	if code, _, body := h2.call(testKey, "/v1/chat/completions", chatBody("hello", "")); code != http.StatusBadGateway {
		t.Fatalf("without caFile: %d %s", code, body)
	}
	// A bad bundle is refused when the policy is applied.
	bad := filepath.Join(t.TempDir(), "bad.pem")
	testpki.WriteFile(t, bad, []byte("nothing"))
	if err := h.g.Apply(policyWith(bad)); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("Apply with a bad caFile: %v", err)
	}
}

// TestHTTPSPool: a pool with tls reaches its backends over HTTPS verified
// against the pool's CA and server name; the same pool without its CA, or
// with a name the certificate does not carry, gets no answer.
func TestHTTPSPool(t *testing.T) {
	ca := testpki.NewCA(t, "pool CA")
	up := httptest.NewUnstartedServer(mockllm.New(mockllm.Config{}).Handler())
	up.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, testpki.Leaf{CommonName: "gpu", DNSNames: []string{"gpu-1.pool.test"}}).TLS},
		MinVersion: tls.VersionTLS12}
	up.StartTLS()
	t.Cleanup(up.Close)
	caFile := filepath.Join(t.TempDir(), "pool-ca.pem")
	testpki.WriteFile(t, caFile, ca.PEM)
	ap := netip.MustParseAddrPort(strings.TrimPrefix(up.URL, "https://"))
	policyWith := func(pt *policy.PoolTLS) *policy.Compiled {
		p := policy.CompiledPool{Name: "secure", TLS: pt, Backends: []policy.CompiledBackend{
			{Name: "gpu-1", Address: ap.Addr(), Port: ap.Port(), Weight: 100}}}
		return basePolicy(p)
	}
	h := newHarness(t, policyWith(&policy.PoolTLS{CAFile: caFile, ServerName: "gpu-1.pool.test"}), Options{})
	if code, _, body := h.call(testKey, "/v1/chat/completions", chatBody("hello", "")); code != http.StatusOK {
		t.Fatalf("with the pool's CA: %d %s", code, body)
	}
	if rec := h.last(); rec.Backend != "secure/gpu-1" {
		t.Fatalf("backend %q", rec.Backend)
	}
	for name, pt := range map[string]*policy.PoolTLS{
		"system roots":      {ServerName: "gpu-1.pool.test"},
		"another name":      {CAFile: caFile, ServerName: "gpu-2.pool.test"},
		"plain HTTP to TLS": nil,
	} {
		h := newHarness(t, policyWith(pt), Options{})
		if code, _, body := h.call(testKey, "/v1/chat/completions", chatBody("hello", "")); code == http.StatusOK {
			t.Errorf("%s: %d %s, want no answer", name, code, body)
		}
	}
}
