/* Per-client rate limiting with GCRA (the "virtual scheduling" form of a token
 * bucket): one theoretical-arrival-time word per limit, read and written
 * without a lock or atomic instruction (a locked compare-and-swap costs more
 * than the rest of the check). Two CPUs racing on one client may both charge
 * from the same old value, so one of their packets goes uncharged: the error
 * errs on the side of the client and is bounded by the number of CPUs.
 *
 * Clock: jiffies (bpf_jiffies64, which the verifier inlines into one load)
 * scaled to nanoseconds with the tick length and offset Go writes into the
 * config, so it reads what CLOCK_MONOTONIC_COARSE reads, within a tick. It
 * advances once per scheduler tick (1-4 ms). A helper call costs 10-30 ns
 * per packet on the VMs measured (bpf_ktime_get_ns ~31 ns,
 * bpf_ktime_get_coarse_ns ~14 ns; BENCHMARKS.md). With a coarse clock the bucket refills in tick-sized steps,
 * so Go raises every tolerance to at least one tick plus one interval
 * (loader.gcra): a class's effective burst is at least rate x tick.
 *
 * Clients are keyed by source address masked to config.agg4_mask/agg6_mask.
 * Their class comes from an LPM lookup on the unmasked source, cached in the
 * bucket until the classes change (config.class_gen).
 *
 * Eviction under a spoofed-source flood: every unseen source creates a bucket
 * in rl_buckets, an LRU hash that the flood may churn. A client with an
 * established flow (its packet hit the connection table and is not a SYN) is
 * promoted into rl_established, a plain hash: a flood only ever inserts into
 * the LRU table, so it cannot evict promoted clients. Go prunes rl_established
 * by idleness (bucket.last_seen_ns). When rl_established is full, promotion
 * fails (counted) and the client stays in the LRU table. */
#pragma once
#include "maps.h"
#include "parse.h"

struct rl_state {
	struct bucket *b;
	const struct class_limits *lim;
	__u64 now;
	__u8 established; /* b lives in rl_established */
};

static __always_inline int gcra_allow(__u64 *tat, __u64 now, __u64 interval, __u64 tolerance)
{
	if (interval == 0)
		return 1;
	__u64 old = *(volatile __u64 *)tat;
	__u64 base = old > now ? old : now;
	__u64 next = base + interval;
	if (next - now > tolerance)
		return 0;
	*(volatile __u64 *)tat = next;
	return 1;
}

static __always_inline void rl_key(const struct lb_config *cfg, const struct pkt *p, struct addr_key *k)
{
	k->family = p->k.family;
	if (p->k.family == FAMILY_V4) {
		k->addr[0] = p->k.src[0] & cfg->agg4_mask;
		return;
	}
#pragma unroll
	for (int i = 0; i < 4; i++)
		k->addr[i] = p->k.src[i] & cfg->agg6_mask[i];
}

static __always_inline __u32 rl_class_id(const struct pkt *p)
{
	__u32 *cid;

	if (p->k.family == FAMILY_V4) {
		struct lpm4_key k = {.prefixlen = 32, .addr = p->k.src[0]};
		cid = bpf_map_lookup_elem(&class_lpm4, &k);
	} else {
		struct lpm6_key k = {.prefixlen = 128};
		__builtin_memcpy(k.addr, p->k.src, 16);
		cid = bpf_map_lookup_elem(&class_lpm6, &k);
	}
	return cid ? *cid : 0;
}

static __always_inline __u64 rl_now(const struct lb_config *cfg)
{
	if (!cfg->clock_tick_ns)
		return bpf_ktime_get_coarse_ns();
	return bpf_jiffies64() * cfg->clock_tick_ns + cfg->clock_offset_ns;
}

/* rl_packet charges one packet. It returns the drop reason or 0, and leaves
 * the bucket in st for the new-connection charge and promotion. */
static __always_inline __u32 rl_packet(const struct lb_config *cfg, const struct pkt *p, struct rl_state *st)
{
	struct addr_key k = {};
	struct bucket *b;
	__u64 now;

	if (!cfg->rl_enabled)
		return 0;
	now = rl_now(cfg);
	st->now = now;
	rl_key(cfg, p, &k);
	b = bpf_map_lookup_elem(&rl_established, &k);
	if (b) {
		st->established = 1;
	} else {
		b = bpf_map_lookup_elem(&rl_buckets, &k);
		if (!b) {
			struct bucket fresh = {.last_seen_ns = now, .class_id = rl_class_id(p),
					       .class_gen = cfg->class_gen};
			bpf_map_update_elem(&rl_buckets, &k, &fresh, BPF_NOEXIST);
			stat_inc(STAT_RL_INSERT);
			b = bpf_map_lookup_elem(&rl_buckets, &k);
			if (!b)
				return 0;
		}
	}
	if (b->class_gen != cfg->class_gen) {
		b->class_id = rl_class_id(p);
		b->class_gen = cfg->class_gen;
	}
	__u32 cid = b->class_id;
	const struct class_limits *lim = bpf_map_lookup_elem(&classes, &cid);
	if (!lim)
		return 0;
	st->b = b;
	st->lim = lim;
	if (now - b->last_seen_ns > LAST_SEEN_GRANULARITY_NS)
		b->last_seen_ns = now;
	if (!gcra_allow(&b->pkt_tat, now, lim->pps_interval_ns, lim->pps_tolerance_ns))
		return STAT_V_DROP_RL_PPS;
	return 0;
}

static __always_inline __u32 rl_new_conn(struct rl_state *st)
{
	if (!st->b || !st->lim)
		return 0;
	if (!gcra_allow(&st->b->conn_tat, st->now, st->lim->conn_interval_ns, st->lim->conn_tolerance_ns))
		return STAT_V_DROP_RL_CONN;
	return 0;
}

static __always_inline void rl_promote(const struct lb_config *cfg, const struct pkt *p, struct rl_state *st)
{
	struct addr_key k = {};

	if (!st->b || st->established)
		return;
	rl_key(cfg, p, &k);
	if (bpf_map_update_elem(&rl_established, &k, st->b, BPF_NOEXIST) == 0) {
		bpf_map_delete_elem(&rl_buckets, &k);
		stat_inc(STAT_RL_PROMOTE);
	} else {
		stat_inc(STAT_RL_PROMOTE_FAIL);
	}
	st->b = 0;
}

/* The per-VIP guard uses the precise clock: it runs on new flows only, and
 * its limits are meant for floods, where tick-sized steps would be coarse. */
static __always_inline __u32 vip_guard_allow(__u32 vip_id)
{
	struct vip_guard *g = bpf_map_lookup_elem(&vip_guards, &vip_id);

	if (!g)
		return 0;
	if (!gcra_allow(&g->tat, bpf_ktime_get_ns(), g->interval_ns, g->tolerance_ns))
		return STAT_V_DROP_VIP_GUARD;
	return 0;
}
