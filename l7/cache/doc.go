// Package cache stores the gateway's answers for reuse: an exact cache
// keyed by the normalised request, bounded in memory (least recently used
// first, by bytes) and optionally shared through Redis, and a semantic
// index (HNSW, github.com/coder/hnsw) that finds an answered request whose
// last user message is close in meaning.
//
// # The key
//
// An exact key is SHA-256 over the scope (the tenant, or nothing when the
// policy shares entries across tenants), the endpoint, the resolved model
// name (so aliases share entries) and the request body as canonical JSON:
// objects with sorted keys, numbers in one spelling (0, 0.0 and 0e0 are
// one number), no insignificant whitespace. Every member takes part except
// those that cannot change the answer's content:
//
//   - model: replaced by the resolved model name;
//   - stream: a stored answer is replayed whole or as an event stream;
//   - stream_options: only asks for the usage chunk, which a replay adds;
//   - user, metadata, store: identify the end user or ask the provider to
//     keep the exchange; they do not change the completion. Tenants that
//     must not share answers between their own end users leave caching off
//     for that model.
//
// Unknown members take part: a parameter the gateway does not know may
// change the answer.
//
// A request is deterministic when it sets temperature to 0; only those are
// cached unless the model or the request opts in.
//
// # What is stored
//
// An Entry is the whole answer as a non-streaming client receives it and
// its usage. A streamed answer is stored in that form too (its deltas
// joined), so either kind of request can be answered from either kind of
// answer; Replay turns an entry into a well-formed event stream.
//
// # Sharing
//
// The memory store is per gateway; with Redis the entries live under
// infergate:cache:<hex key> with the TTL as their expiry, so replicas
// share them. A Redis error is a miss, never a failed request. The
// semantic index is per gateway: each vector points at an exact key, so a
// replica whose index matches answers from the shared store, but a
// replica learns a paraphrase only from requests it served itself.
package cache
