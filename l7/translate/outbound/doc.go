// Package outbound is the provider side of translation: it turns the
// OpenAI chat-completions request the gateway already speaks (the pivot)
// into another provider's request, and that provider's answer back into a
// chat-completions response or event stream, as an http.RoundTripper in
// front of the provider's transport. Every gateway stage before and after
// the proxy sees chat completions whatever the provider is, so auth,
// limits, inspection, usage billing, metrics and audit work unchanged.
//
// A provider kind is a Translator (l7/translate/anthropicout, bedrock,
// gemini, azure): it builds the provider request (URL, headers, body,
// credentials or signature), decodes a whole answer into a Response, reads
// a stream one provider event at a time into zero or more Chunks, and maps
// an error body to the OpenAI error shape; the chat types are
// l7/translate/chatwire's, the same the inbound translators write and read,
// and Chunker builds a stream's chunks. Streams are translated as the
// client reads them (Transport's body pulls one provider event per read
// that needs one): nothing is buffered beyond the event in hand.
//
// Status codes are kept where both APIs mean the same (400, 404, 413, 429,
// 5xx), so that the proxy's retry and fallback rules (429 and 5xx try the
// next route: spill-over from a pool to a provider and between providers)
// apply to every kind alike; a provider's "overloaded" status (Anthropic's
// 529) becomes 503. The error body is always OpenAI's
// {"error":{"message","type","code","param"}}.
//
// Usage is the provider's: prompt tokens include cached ones (Anthropic's
// cache reads and writes, Bedrock's cacheRead/WriteInputTokens, Gemini's
// cachedContentTokenCount is already part of its promptTokenCount) and
// prompt_tokens_details.cached_tokens says how many were cache reads;
// completion tokens include reasoning ones, with
// completion_tokens_details.reasoning_tokens beside them, as OpenAI counts.
// Where a provider reports none, the gateway bills its own count of the
// text it relayed (l7/gateway usage.go).
//
// Credentials come from a file (a mounted secret) or the environment and
// are read again when the file changes (Secret), without a restart; they
// are never logged, and errors name the file, not its content.
package outbound
