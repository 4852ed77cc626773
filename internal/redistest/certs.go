package redistest

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/infergate/infergate/internal/testpki"
)

// Certs are PEM files made for one test (internal/testpki): a CA, the
// server's certificate (for 127.0.0.1 and localhost), a client certificate
// from the same CA, and a second CA with its own client certificate that
// the server does not trust.
type Certs struct {
	CAFile                string
	ClientCert, ClientKey string
	OtherCAFile           string
	OtherCert, OtherKey   string

	serverCert, serverKey string
	ca                    *x509.CertPool
	client                tls.Certificate
}

// ClientConfig trusts the test CA and presents the client certificate.
func (c *Certs) ClientConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: c.ca, Certificates: []tls.Certificate{c.client}, ServerName: "127.0.0.1"}
}

func makeCerts(t testing.TB, dir string) *Certs {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ca, other := testpki.NewCA(t, "redistest ca"), testpki.NewCA(t, "redistest other-ca")
	c := &Certs{CAFile: filepath.Join(dir, "ca.crt"), OtherCAFile: filepath.Join(dir, "other-ca.crt"), ca: ca.Pool()}
	testpki.WriteFile(t, c.CAFile, ca.PEM)
	testpki.WriteFile(t, c.OtherCAFile, other.PEM)
	hosts := testpki.Leaf{DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}
	server, client, otherClient := hosts, hosts, hosts
	server.CommonName = "server"
	client.CommonName, client.Client = "client", true
	otherClient.CommonName, otherClient.Client = "other-client", true
	c.serverCert, c.serverKey = ca.Issue(t, server).Write(t, dir, "server")
	issued := ca.Issue(t, client)
	c.client = issued.TLS
	c.ClientCert, c.ClientKey = issued.Write(t, dir, "client")
	c.OtherCert, c.OtherKey = other.Issue(t, otherClient).Write(t, dir, "other-client")
	return c
}
