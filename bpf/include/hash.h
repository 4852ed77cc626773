/* Flow hash of the 5-tuple: Maglev steering and outer-source entropy. */
#pragma once
#include <linux/types.h>
#include "structs.h"

/* flow_hash: each 64-bit word of the 5-tuple times its own odd constant,
 * summed (the multiplications are independent, so they run in parallel),
 * then murmur3's 64-bit finalizer so that every output bit depends on every
 * input bit. lookup3, used here before, over the same 40 bytes is a chain
 * of ~100 dependent operations: ~40 ns more per new flow on the VM in
 * BENCHMARKS.md. */
static __always_inline __u32 flow_hash(const struct flow_key *k)
{
	__u64 h = FLOW_HASH_SEED;

	h += ((__u64)k->src[1] << 32 | k->src[0]) * 0x9e3779b97f4a7c15ULL;
	h += ((__u64)k->src[3] << 32 | k->src[2]) * 0xc2b2ae3d27d4eb4fULL;
	h += ((__u64)k->dst[1] << 32 | k->dst[0]) * 0x165667b19e3779f9ULL;
	h += ((__u64)k->dst[3] << 32 | k->dst[2]) * 0x85ebca77c2b2ae63ULL;
	h += ((__u64)k->proto << 32 | (__u32)k->sport << 16 | k->dport) * 0x27d4eb2f165667c5ULL;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return (__u32)h;
}
