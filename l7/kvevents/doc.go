// Package kvevents reads the KV-cache events an inference engine publishes
// (vLLM's --kv-events-config, and test/mockllm), so the gateway knows which
// backend holds which prefix blocks (l7/kvindex) instead of guessing from
// what it sent where.
//
// Wire format, from vLLM's vllm/distributed/kv_events.py (ZmqEventPublisher
// and the msgspec structs; v0.9 to v0.11 and later): a ZeroMQ PUB socket
// sends one three-frame message per batch,
//
//	topic (bytes, "" by default) | sequence (8-byte big-endian uint) | payload
//
// and the payload is msgpack of KVEventBatch{ts float, events list,
// data_parallel_rank int|None}. Each event is a tagged msgspec struct:
// BlockStored{block_hashes, parent_block_hash, token_ids, block_size,
// lora_id, medium, lora_name, extra_keys, group_idx, ...}, BlockRemoved
// {block_hashes, medium, group_idx}, AllBlocksCleared{}. Releases that
// declare the structs array_like (the form llm-d's kv-cache-manager
// decodes) send the batch as an array [ts, events, rank?] and each event
// as [tag, field, ...]; later releases dropped array_like, so the batch is
// a map and each event a map with the tag under "type". Decode takes both.
// A block hash is an int (vLLM's default: the low 64 bits of the block's
// SHA-256, VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES) or bytes (the full
// digest), which Decode folds to the same low 64 bits (big-endian tail).
//
// Only GPU-resident blocks of the first KV-cache group count: events for
// another medium (CPU offload) or a group_idx above 0 (hybrid models'
// other attention groups) are dropped, since routing cares about what a
// request's prefill can skip on that GPU.
//
// Transport is github.com/go-zeromq/zmq4, a pure-Go ZeroMQ (ZMTP 3, NULL
// mechanism): the gateway stays free of cgo and libzmq. Subscriber dials
// one engine and redials after a loss; sequence gaps are the index's to
// judge (l7/kvindex clears a backend whose stream skipped a number, since
// the lost batches may have removed blocks).
package kvevents
