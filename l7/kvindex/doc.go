// Package kvindex is the gateway's precise prefix-cache index: which
// backend holds which KV-cache blocks, as the engines themselves report
// them (l7/kvevents), rather than l7/affinity's guess from where the
// gateway sent earlier prompts.
//
// Memory is bounded: at most MaxEntries (block, backend) pairs, the least
// recently stored evicted first. Staleness: a backend's blocks count only
// while its event stream is live, that is subscribed (or lost for less
// than DownGrace) and heard from within StaleAfter; a sequence gap (lost
// batches, or an engine restarted at sequence 0), a re-established
// subscription (what was published meanwhile is lost, and a restarted
// engine's numbers may go on where the old ones stopped) or
// AllBlocksCleared clears the backend, which then fills again from its
// next events. Sweep frees what is no longer live.
//
// The request side (Hasher) must give the hashes the engine gives: it
// tokenizes the prompt text the gateway assembles (l7/gateway's
// appendPrompt: for /v1/completions the prompt itself; for chat, each
// message's role and text) with a tiktoken encoding (l7/tokens), and
// chains vLLM's sha256_cbor_64bit block hashes with the engine's hash
// seed. So the match is exact for an engine that tokenizes the same text
// with the same encoding and runs with --prefix-caching-hash-algo
// sha256_cbor_64bit and the same PYTHONHASHSEED (test/mockllm does; a
// vLLM serving a cl100k or o200k model's completions API does). This is
// the scheme llm-d's kv-cache-manager reproduces (its token_processor:
// 64-bit parents); vLLM releases that renamed it sha256_cbor and chain
// full 32-byte digests were not checked against it here. Where the
// engine's tokenizer or chat template differs, no block matches, and the
// picker falls back to the approximate index (l7/pick): a wrong match is
// impossible, a missed one costs only the precision.
//
// Watcher runs one kvevents.Subscriber per backend of each pool that
// names its engines' event endpoints, and follows policy changes.
package kvindex
