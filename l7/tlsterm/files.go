package tlsterm

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// maxPEMBytes bounds every file read here: certificate chains and CA
// bundles are a few KiB; a wrong path must not be read whole.
const maxPEMBytes = 1 << 20

// fileStamp is what reloading compares: a file changed when any of these
// moved. The digest catches a rewrite of the same size within the file
// system's timestamp granularity (a key replaced twice in a few
// milliseconds); the files are a few KiB, read every ReloadInterval.
type fileStamp struct {
	size    int64
	modTime time.Time
	sum     [sha256.Size]byte
}

func stamp(path string) (fileStamp, error) {
	if path == "" {
		return fileStamp{}, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	b, err := readBounded(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{size: fi.Size(), modTime: fi.ModTime(), sum: sha256.Sum256(b)}, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEMBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxPEMBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxPEMBytes)
	}
	return b, nil
}

// loadKeyPair reads a PEM certificate chain and its key and checks that
// they belong together and that the leaf is usable now.
func loadKeyPair(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	cb, err := readBounded(certFile)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	kb, err := readBounded(keyFile)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	c, err := tls.X509KeyPair(cb, kb)
	if err != nil {
		return nil, fmt.Errorf("certificate %s with key %s: %w", certFile, keyFile, err)
	}
	// X509KeyPair fills Leaf since Go 1.23.
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certificate %s: %w", certFile, err)
		}
	}
	if now.After(c.Leaf.NotAfter) {
		return nil, fmt.Errorf("certificate %s expired at %s", certFile, c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &c, nil
}

// LoadCAFile reads a PEM bundle of CA certificates (the client CAs, a
// provider's caFile); it must hold at least one.
func LoadCAFile(path string) (*x509.CertPool, error) {
	pool, _, err := LoadCAFileBytes(path)
	return pool, err
}

// LoadCAFileBytes is LoadCAFile that also returns the file's content (to
// tell whether a bundle changed).
func LoadCAFileBytes(path string) (*x509.CertPool, []byte, error) {
	b, err := readBounded(path)
	if err != nil {
		return nil, nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, nil, errors.New("CA file " + path + ": no PEM certificate in it")
	}
	return pool, b, nil
}
