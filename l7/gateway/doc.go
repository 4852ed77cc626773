// Package gateway is infergate's L7 gateway: an OpenAI-compatible reverse
// proxy whose request path is a chain of small stages, each one concern, in
// the manner of Caddy handlers or CoreDNS plugins:
//
//	requestid → hops → auth → parse → translate → model → rategate → inspect → count
//	  → tokencount → limit → cache → proxy
//	  → (finish: settle, stage finishers, metrics, audit)
//
// Authentication runs before the body is read so that an unauthenticated
// client cannot make the gateway buffer and parse megabytes. The rate gate
// refuses a principal the request-rate limit has just refused, until the
// Retry-After it was told, before its prompt is inspected or counted: the
// CPU those take is what a flood of large prompts from a limited tenant
// would otherwise cost everyone else. (The limit itself is still decided
// by the limit stage, after counting, as the token reservation needs the
// count.) A stage either
// passes the exchange on or ends it with an OpenAI-shaped error; finish
// always runs, so every admitted request is settled against its limits with
// the tokens it really used and logged exactly once.
//
// # Stages
//
// A stage is a type in its own file (stage_<name>.go; the proxy stage is
// proxy.go) that implements serve(*exchange) *openai.Error. It owns its
// configuration: its constructor, func(*Gateway, *config) (stage, error),
// reads what it needs from the compiled policy when a policy is applied
// and keeps it in the stage value, so a reload builds a new chain and a
// request keeps the chain it started with. A constructor that returns a
// nil stage leaves the stage out of that policy's chain (inspection with
// no rules costs nothing).
//
// The contract for what a stage reads and writes is the exchange's field
// list (exchangeState in exchange.go): the fields set before the chain runs (writer,
// request, endpoint, id, start) are read-only; each later field is written
// by the stage named beside it and only read after it. A stage answers the
// client only by returning an error (the chain stops and fail writes it)
// or, for the last stage, by writing the response and setting the outcome
// fields. A stage before the last may answer too (the response cache on a
// hit): once the response head is written (x.wroteHeader) the chain stops
// there, and finish runs as for any answer. Response header fields go through x.setHeader. A stage that must
// act after the exchange ended implements finish(*exchange) (stageFinisher).
//
// The hot path does not allocate per request: stages are built once per
// policy and called through an interface on a pooled exchange. A stage that
// needs per-request scratch kept across pooled requests declares its
// scratch type with a reset method in its own file and adds one field to
// stageScratch (stage.go). Everything else of a request is in
// exchangeState, which reset zeroes whole.
//
// To add a stage: write stage_<name>.go with the type, its constructor and
// serve (and its scratch type if any), document its reads and writes in
// the type's comment, add any field it hands to later stages to
// exchangeState with its name beside it, and insert one line into stageRegistry
// (stage.go) where it belongs in the order.
//
// Streams are passed through event by event with a flush after each, never
// buffered. Upstream is always asked for a usage chunk
// (stream_options.include_usage) and the chunk is removed again when the
// client did not ask for it. When upstream reports no usage, or the stream
// breaks, or the client leaves, the completion is billed from the gateway's
// own count of the text actually streamed. A client that gets no usage from
// the upstream gets that count instead, marked as the gateway's (usage.go).
// A stream the upstream breaks off (or ends without [DONE]) after it
// started ends with an error event, data: {"error":{...}}, which the OpenAI
// SDKs raise, and is recorded as a 502.
//
// What a request costs: what the upstream answered for (its usage, or the
// gateway's count), or what was streamed before the client left. A request
// the upstream refused or failed, on every route, costs nothing: the client
// got no answer.
//
// The response cache (stage_cache.go over l7/cache) sits after limit, so a
// hit is authenticated, limited, inspected, audited and measured like any
// answer, and costs nothing unless the policy bills hits. The proxy hands
// it what it relayed through two hooks (the whole body, each stream event)
// that do nothing when the request is not being cached; finish stores an
// answer only when it was complete.
//
// Every request sent upstream carries the client's trace context
// (traceparent, tracestate), its request id (the client's X-Request-Id when
// well-formed) and Infergate-Hops, one more than it arrived with; at
// maxHops the gateway answers 508, so a provider URL that leads back to the
// gateway ends in a few hops instead of recursing. The upstream's own
// request id comes back as X-Upstream-Request-Id.
//
// # Inbound APIs
//
// Besides OpenAI's chat completions, completions and embeddings, the
// gateway serves Anthropic's Messages API (POST /v1/messages, with
// x-api-key or Bearer credentials and the required anthropic-version
// header, and /v1/messages/count_tokens) and OpenAI's Responses API (POST
// /v1/responses, stateless). Chat completions is the pivot: the translate
// stage, right after the body is read, turns the client's request into a
// chat request (l7/translate/messages, l7/translate/responses), so every
// later stage runs unchanged on it; inspection sees every text part
// (system prompts, tool definitions, arguments and results) as chat
// texts. The proxy hands the upstream's chat answer to the request's
// translator on the way back: a whole response is translated once; a
// stream event by event, each chat chunk becoming the client API's events
// as it arrives, flushed, never buffered. Errors from any stage are written
// in the client API's shape (Anthropic's {"type":"error","error":{...}}
// with its type per status; the Responses API shares OpenAI's), upstream
// error bodies are re-shaped, and a broken stream ends with the API's own
// error event. count_tokens is answered by the tokencount stage with the
// count stage's figure, without going upstream or touching limits. The
// audit log records the client's endpoint and infergate_api_requests_total
// counts requests per inbound API. GET /v1/models and /v1/models/{id}
// answer Anthropic's model page and objects (and its error shape) to a
// request carrying anthropic-version, as Anthropic's SDKs always send;
// every other client gets OpenAI's list (models_anthropic.go).
//
// Request bodies may be gzip-compressed (decoded within the body limit);
// other content codings are refused 415. /healthz and /readyz answer on the
// API port without credentials; readiness turns 503 when shutdown begins.
//
// Handler is an ordinary http.Handler. The agent and "infergate gateway"
// both run it through l7/serve, which serves plain HTTP with l7/h1
// (NewListenerServer), whose response writer also lets an upstream attempt
// learn of a client leaving without a context.AfterFunc. Self-hosted backends are reached through the
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
// Providers of a kind other than openai (azure-openai, anthropic, bedrock,
// gemini) are reached through a translating round tripper in front of
// their transport (providerkind.go, l7/translate/...): the proxy sends
// and receives chat completions as for any OpenAI-compatible provider, so
// every stage, retries and fallback included, works the same whatever the
// provider. The audit line and traces name the provider that answered by
// its gen_ai.provider.name, and infergate_backend_provider_info maps each
// backend label to it. A provider's price table (policy ProviderModel)
// bills what it serves, cache reads at the cached-input price that its
// translated usage reports (outbound.Meter).
//
// Every attempt on a pool backend reports its outcome to the route
// table's passive failure marking (outlier.go, l7/route's outlier.go): a
// backend whose connections are refused or reset, or that answers 5xx,
// several times in a row gets no new requests for a back-off, so a GPU
// host that dies stops taking requests at its first failures instead of at
// the next health check. It is on by default (Options.Outliers tunes it);
// timeouts and 429s, a busy engine's signs, never mark a backend out. An
// active health check that passes again ends the marking at once
// (Gateway.Reinstate, called by the agent through l7/serve).
//
// Apply swaps the compiled configuration atomically; a request keeps the
// snapshot it started with until it ends.
package gateway
