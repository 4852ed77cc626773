package tlsterm

import (
	"crypto/tls"
	"crypto/x509"
)

// maxIdentities bounds what is taken from one certificate: a client
// certificate with thousands of SANs must not cost a lookup each.
const maxIdentities = 16

// Identities names what a verified client certificate asserts, in the
// order a tenant mapping should try them: each URI SAN as "uri:<uri>"
// (SPIFFE IDs are URI SANs), then the subject as "cn:<common name>". It
// is empty unless the connection's chain was verified.
func Identities(cs *tls.ConnectionState) []string {
	leaf := VerifiedLeaf(cs)
	if leaf == nil {
		return nil
	}
	out := make([]string, 0, min(len(leaf.URIs), maxIdentities)+1)
	for _, u := range leaf.URIs {
		if len(out) == maxIdentities {
			break
		}
		out = append(out, "uri:"+u.String())
	}
	if cn := leaf.Subject.CommonName; cn != "" {
		out = append(out, "cn:"+cn)
	}
	return out
}

// VerifiedLeaf is the client certificate crypto/tls verified against the
// client CAs, or nil when there is none (no TLS, no certificate, or a mode
// that does not verify).
func VerifiedLeaf(cs *tls.ConnectionState) *x509.Certificate {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil
	}
	return cs.VerifiedChains[0][0]
}
