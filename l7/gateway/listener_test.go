package gateway

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/testpki"
	"github.com/infergate/infergate/l7/h1"
	"github.com/infergate/infergate/policy"
)

// NewListener picks l7/h1 for a plain policy and TLS for gateway.tls;
// ApplyTLS follows new certificate paths at once, keeps the old
// certificate when the new one does not load, and refuses to turn TLS on
// or off under a running listener.
func TestListenerFollowsPolicyTLS(t *testing.T) {
	plain := basePolicy()
	l, err := NewListener(plain, http.NotFoundHandler(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Server.(*h1.Server); !ok || l.TLS != nil {
		t.Fatalf("plain policy served by %T", l.Server)
	}
	dir := t.TempDir()
	ca := testpki.NewCA(t, "ca")
	cert1, key1 := ca.Localhost(t).Write(t, dir, "one")
	withTLS := func(cert, key string) *policy.Compiled {
		c := basePolicy()
		c.Gateway.TLS = &policy.GatewayTLS{CertFile: cert, KeyFile: key}
		return c
	}
	if err := l.ApplyTLS(withTLS(cert1, key1)); !errors.Is(err, ErrTLSToggle) {
		t.Fatalf("turning TLS on: %v", err)
	}

	tl, err := NewListener(withTLS(cert1, key1), http.NotFoundHandler(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = tl.Server.Serve(ln) }()
	defer tl.Server.(*TLSServer).Close()
	served := func() string {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	first := served()
	two := ca.Localhost(t)
	cert2, key2 := two.Write(t, dir, "two")
	if err := tl.ApplyTLS(withTLS(cert2, key2)); err != nil {
		t.Fatal(err)
	}
	if got := served(); got != two.Cert.SerialNumber.String() || got == first {
		t.Fatalf("after ApplyTLS served %s, want %s", got, two.Cert.SerialNumber)
	}
	if err := tl.ApplyTLS(withTLS(dir+"/missing.crt", key2)); err == nil {
		t.Fatal("missing certificate applied")
	}
	if got := served(); got != two.Cert.SerialNumber.String() {
		t.Fatalf("a failed ApplyTLS changed the certificate to %s", got)
	}
	if err := tl.ApplyTLS(plain); !errors.Is(err, ErrTLSToggle) {
		t.Fatalf("turning TLS off: %v", err)
	}
}
