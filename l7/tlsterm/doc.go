// Package tlsterm terminates TLS for the L7 gateway: it reads the
// listener's certificate, key and client CA bundle from files, reads them
// again when they change, builds the tls.Config (TLS 1.2 at least, ALPN h2
// and http/1.1, optional client certificates) and names the identities a
// verified client certificate carries so that l7/auth can map them to a
// tenant.
//
// Reloading polls the files' size and modification time (no inotify: it
// works the same for files a Kubernetes Secret swaps by symlink, and costs
// one stat per file per interval). A new certificate is used by the next
// handshake; connections already established keep the session they
// negotiated, so nothing is dropped. A change that does not load (a key
// that does not match, a half-written file) keeps the previous certificate
// and is logged and retried at the next change or interval, never served.
//
// Client certificates are verified by crypto/tls against the client CA
// bundle (chain, validity period, extended key usage for client auth), so a
// certificate that is expired, not yet valid or from another CA fails the
// handshake before any request is read. Which tenant a verified certificate
// acts for is the policy's business: Identities lists "uri:<SAN URI>"
// (SPIFFE IDs included) before "cn:<subject common name>", the order l7/auth
// tries them in.
package tlsterm
