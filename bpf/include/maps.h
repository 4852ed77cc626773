/* Maps of the balancer. Sizes are defaults: Go sets max_entries before load. */
#pragma once
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "consts.h"
#include "structs.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* clang 14 emits only forward declarations for key/value types first reached
 * through an inner-map template, which loaders cannot size. This one-entry
 * map, defined before the templates, makes clang emit them in full. It is
 * never used by the programs. */
struct btf_anchor_val {
	struct fw_val fw;
	struct addr_key addr;
	struct lpm4_key lpm4;
	struct lpm6_key lpm6;
};
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct btf_anchor_val);
} btf_anchor SEC(".maps");

/* Firewall tables: one outer array per table with FW_SLOTS inner maps; the
 * active slot is config.fw_slot. Inner maps are created by Go at the size of
 * the rule set, so max_entries of the inner templates is only a default. */
struct fw_exact4_inner {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DEFAULT_FW_ENTRIES);
	__type(key, __u32);
	__type(value, struct fw_val);
};
struct fw_exact6_inner {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DEFAULT_FW_ENTRIES);
	__type(key, struct addr_key);
	__type(value, struct fw_val);
};
struct fw_lpm4_inner {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, DEFAULT_FW_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm4_key);
	__type(value, struct fw_val);
};
struct fw_lpm6_inner {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, DEFAULT_FW_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm6_key);
	__type(value, struct fw_val);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, FW_SLOTS);
	__type(key, __u32);
	__array(values, struct fw_exact4_inner);
} fw_exact4 SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, FW_SLOTS);
	__type(key, __u32);
	__array(values, struct fw_exact6_inner);
} fw_exact6 SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, FW_SLOTS);
	__type(key, __u32);
	__array(values, struct fw_lpm4_inner);
} fw_lpm4 SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, FW_SLOTS);
	__type(key, __u32);
	__array(values, struct fw_lpm6_inner);
} fw_lpm6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DEFAULT_MAX_FW_RULES);
	__type(key, __u32);
	__type(value, __u64);
} fw_rule_stats SEC(".maps");

/* Client classes: LPM on the source picks a class id; absent = class 0. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, DEFAULT_CLASS_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm4_key);
	__type(value, __u32);
} class_lpm4 SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, DEFAULT_CLASS_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm6_key);
	__type(value, __u32);
} class_lpm6 SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_CLASSES);
	__type(key, __u32);
	__type(value, struct class_limits);
} classes SEC(".maps");

/* Rate-limit buckets. Eviction policy (see ratelimit.h): new clients live in
 * an LRU table that a spoofed flood may churn; a client whose packet hits an
 * established flow is promoted to rl_established, a table that only Go
 * prunes (by idleness), so floods cannot evict it. rl_established is an
 * array searched by open addressing (ratelimit.h), not a hash map: the
 * verifier inlines an array lookup into a few instructions, while every
 * hash lookup is a call (10-30 ns per packet where returns are mitigated). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, DEFAULT_RL_BUCKETS);
	__type(key, struct addr_key);
	__type(value, struct bucket);
} rl_buckets SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * DEFAULT_RL_ESTABLISHED);
	__type(key, __u32);
	__type(value, struct est_client);
} rl_established SEC(".maps");

/* L4 steering. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DEFAULT_MAX_VIPS);
	__type(key, struct vip_key);
	__type(value, struct vip_meta);
} vips SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DEFAULT_MAX_VIPS);
	__type(key, __u32);
	__type(value, struct vip_meta);
} vip_info SEC(".maps");
/* Prefilter: a packet whose destination port has no VIP skips the connection
 * table and VIP lookups (an inlined array read instead of two hash lookups). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIP_PORT_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} vip_ports SEC(".maps");
/* Addresses that carry any VIP: fragments to them are dropped. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DEFAULT_MAX_VIPS);
	__type(key, struct addr_key);
	__type(value, __u32);
} vip_addrs SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DEFAULT_MAX_VIPS);
	__type(key, __u32);
	__type(value, struct vip_guard);
} vip_guards SEC(".maps");
/* Per-VIP new-flow budget for sources with no established state (see
 * ratelimit.h): a GCRA bucket of the same layout as a guard. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DEFAULT_MAX_VIPS);
	__type(key, __u32);
	__type(value, struct vip_guard);
} vip_budgets SEC(".maps");

/* Per-VIP Maglev tables. Element 0 holds the table size N, elements 1..N the
 * backend ids: size and contents travel in one inner map, so swapping the
 * inner map is atomic. BPF_F_INNER_MAP lets tables differ in size (prime >=
 * 100 x backends). */
struct ring_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DEFAULT_RING_SIZE);
	__uint(map_flags, BPF_F_INNER_MAP);
	__type(key, __u32);
	__type(value, __u32);
};
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, DEFAULT_MAX_VIPS);
	__type(key, __u32);
	__array(values, struct ring_inner);
} maglev_rings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DEFAULT_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct backend);
} backends SEC(".maps");

/* Connection tables, one per address family (conntrack: IPv4 with a 16-byte
 * key; conntrack6: IPv6 with struct flow_key), each an LRU hash shared by all
 * CPUs (the verifier inlines its lookup into one call into the hash; the
 * per-CPU variant adds a second call, and its inserts zero a value per CPU).
 * The common LRU list keeps the whole max_entries for every CPU
 * (BPF_F_NO_COMMON_LRU would split it into max_entries / CPUs per CPU);
 * inserts take free nodes from a per-CPU cache refilled in batches, so the
 * shared list's lock is rarely taken. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, DEFAULT_CT_ENTRIES);
	__type(key, struct flow_key4);
	__type(value, struct ct_val);
} conntrack SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, DEFAULT_CT_ENTRIES);
	__type(key, struct flow_key);
	__type(value, struct ct_val);
} conntrack6 SEC(".maps");

/* Established flows (see balancer.c): plain hashes, never evicted by the
 * kernel, so neither a flood of new flows nor a long idle time moves an
 * established flow off its backend; Go expires idle entries by ct_val.seen. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DEFAULT_CT_EST_ENTRIES);
	__type(key, struct flow_key4);
	__type(value, struct ct_val);
} ct_est4 SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DEFAULT_CT_EST_ENTRIES);
	__type(key, struct flow_key);
	__type(value, struct ct_val);
} ct_est6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DEFAULT_MAX_VIPS);
	__type(key, __u32);
	__type(value, struct traffic_stats);
} vip_stats SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DEFAULT_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct traffic_stats);
} backend_stats SEC(".maps");

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		*v += 1;
}
