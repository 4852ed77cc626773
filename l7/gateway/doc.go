// Package gateway is infergate's L7 gateway: an OpenAI-compatible reverse
// proxy whose request path is a chain of small stages, each one concern, in
// the manner of Caddy handlers or CoreDNS plugins:
//
//	auth → parse → model → inspect → count → limit → proxy → (finish: settle, metrics, audit)
//
// Authentication runs before the body is read so that an unauthenticated
// client cannot make the gateway buffer and parse megabytes. A stage either
// passes the exchange on or ends it with an OpenAI-shaped error; finish
// always runs, so every admitted request is settled against its limits with
// the tokens it really used and logged exactly once.
//
// Streams are passed through event by event with a flush after each, never
// buffered. Upstream is always asked for a usage chunk
// (stream_options.include_usage) and the chunk is removed again when the
// client did not ask for it. When upstream reports no usage, or the stream
// breaks, or the client leaves, the completion is billed from the gateway's
// own count of the text actually streamed.
//
// Handler is an ordinary http.Handler (the agent serves it with net/http);
// "infergate gateway" serves it with l7/h1 (NewListenerServer), whose
// response writer also lets an upstream attempt learn of a client leaving
// without a context.AfterFunc. Self-hosted backends are reached through the
// gateway's own HTTP/1.1 connection pool (upstream.go, upresp.go): the
// request's goroutine writes the request and reads the response, with the
// attempt's timeouts as the connection's deadline.
//
// With gateway.tls the listener is net/http's server over l7/tlsterm's
// configuration (listener.go, tls.go): HTTP/2 by ALPN through the same
// handler, the certificate re-read when its files change, and a verified
// client certificate that the policy maps taken as the principal by
// l7/auth. Providers with a caFile get a transport verified against that
// bundle only (upstreamtls.go).
//
// Apply swaps the compiled configuration atomically; a request keeps the
// snapshot it started with until it ends.
package gateway
