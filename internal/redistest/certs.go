package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// Certs are PEM files made for one test: a CA, the server's certificate
// (for 127.0.0.1 and localhost), a client certificate from the same CA, and
// a second CA with its own client certificate that the server does not
// trust.
type Certs struct {
	CAFile                string
	ClientCert, ClientKey string
	OtherCAFile           string
	OtherCert, OtherKey   string

	serverCert, serverKey string
	ca                    *x509.CertPool
}

// ClientConfig trusts the test CA and presents the client certificate.
func (c *Certs) ClientConfig() *tls.Config {
	cert, err := tls.LoadX509KeyPair(c.ClientCert, c.ClientKey)
	if err != nil {
		panic(err) // written by makeCerts a moment ago
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: c.ca, Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1"}
}

type issuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var serial atomic.Int64

func makeCerts(t testing.TB, dir string) *Certs {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	c := &Certs{}
	ca := newCA(t, dir, "ca", &c.CAFile)
	other := newCA(t, dir, "other-ca", &c.OtherCAFile)
	c.serverCert, c.serverKey = leaf(t, dir, "server", ca, x509.ExtKeyUsageServerAuth)
	c.ClientCert, c.ClientKey = leaf(t, dir, "client", ca, x509.ExtKeyUsageClientAuth)
	c.OtherCert, c.OtherKey = leaf(t, dir, "other-client", other, x509.ExtKeyUsageClientAuth)
	c.ca = x509.NewCertPool()
	c.ca.AddCert(ca.cert)
	return c
}

func newCA(t testing.TB, dir, name string, file *string) issuer {
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: "redistest " + name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	*file = writePEM(t, dir, name+".crt", "CERTIFICATE", der)
	return issuer{cert, key}
}

func leaf(t testing.TB, dir, name string, by issuer, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, by.cert, &key.PublicKey, by.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, name+".crt", "CERTIFICATE", der), writePEM(t, dir, name+".key", "PRIVATE KEY", kder)
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func nextSerial() *big.Int {
	return big.NewInt(time.Now().UnixNano() + serial.Add(1))
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
