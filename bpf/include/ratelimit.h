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
 * promoted into rl_established, which only promotions fill: a flood only
 * ever inserts into the LRU table, so it cannot evict promoted clients. Go
 * prunes rl_established by idleness (bucket.last_seen_ns). When the client's
 * probe window in rl_established is full, promotion fails (counted) and the
 * client stays in the LRU table.
 *
 * rl_established is an array searched by open addressing: a client's slots
 * are EST_PROBES consecutive ones from a hash of its key seeded per table
 * (config.rl_est_seed), so the established path costs inlined array reads
 * instead of a hash-map call. A lookup stops at a never-used slot; pruned
 * slots are tombstones (EST_DELETED) that promotions reuse. A promotion
 * claims its slot with compare-and-swap and publishes it (EST_USED) after
 * writing key and bucket. Two CPUs promoting one client at the same moment
 * may each take a slot; lookups then use the first in probe order and the
 * other goes idle and is pruned (until then, flows that promoted into it
 * were charged there: the error errs on the side of the client). */
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

/* est_hash: multiply-shift over the key's two 64-bit halves, each offset by
 * the seed; the high half of the sum of products. The two multiplications
 * run in parallel, where lookup3's mix is a chain of ~80 dependent
 * operations (a fifth of the established path's time, measured with perf). */
static __always_inline __u32 est_hash(const struct lb_config *cfg, const struct addr_key *k)
{
	__u64 s = cfg->rl_est_seed;
	__u64 x = ((__u64)k->addr[0] << 32 | k->addr[1]) + (s << 32 | s);
	__u64 y = ((__u64)(k->addr[2] ^ k->family) << 32 | k->addr[3]) + s;
	__u64 h = x * 0x9e3779b97f4a7c15ULL + y * 0xc2b2ae3d27d4eb4fULL;

	return (__u32)(h >> 32) ^ (__u32)(h >> 13);
}

static __always_inline int addr_key_eq(const struct addr_key *x, const struct addr_key *y)
{
	return !((x->addr[0] ^ y->addr[0]) | (x->addr[1] ^ y->addr[1]) | (x->addr[2] ^ y->addr[2]) |
		 (x->addr[3] ^ y->addr[3]) | (x->family ^ y->family));
}

#define EST_NONE 0xffffffffu

/* est_find returns k's slot in rl_established, or 0; *free gets the first
 * slot of the window that a promotion may claim (never used or pruned), or
 * EST_NONE. */
static __always_inline struct est_client *est_find(const struct lb_config *cfg, const struct addr_key *k,
						   __u32 *free)
{
	__u32 h = est_hash(cfg, k);

	*free = EST_NONE;
#pragma unroll
	for (int i = 0; i < EST_PROBES; i++) {
		__u32 idx = (h + i) & cfg->rl_est_mask;
		struct est_client *e = bpf_map_lookup_elem(&rl_established, &idx);
		if (!e)
			return 0;
		__u32 st = *(volatile __u32 *)&e->state;
		if (st == EST_USED) {
			if (addr_key_eq(&e->key, k))
				return e;
			continue;
		}
		if (*free == EST_NONE && (st == EST_FREE || st == EST_DELETED))
			*free = idx;
		if (st == EST_FREE)
			return 0;
	}
	return 0;
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
	__u32 free;
	struct est_client *e = est_find(cfg, &k, &free);
	if (e) {
		b = &e->b;
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
	const struct bucket *src = st->b;
	st->b = 0;
	__u32 idx;
	if (est_find(cfg, &k, &idx) || idx == EST_NONE)
		goto fail;
	struct est_client *e = bpf_map_lookup_elem(&rl_established, &idx);
	if (!e)
		goto fail;
	__u32 old = *(volatile __u32 *)&e->state;
	if ((old != EST_FREE && old != EST_DELETED) ||
	    __sync_val_compare_and_swap(&e->state, old, EST_CLAIMED) != old)
		goto fail;
	e->key = k;
	e->b = *src;
	/* Publish: compare-and-swap orders the key and bucket writes before it. */
	__sync_val_compare_and_swap(&e->state, EST_CLAIMED, EST_USED);
	bpf_map_delete_elem(&rl_buckets, &k);
	stat_inc(STAT_RL_PROMOTE);
	return;
fail:
	stat_inc(STAT_RL_PROMOTE_FAIL);
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

/* The new-flow budget of a VIP, spent only by sources with no established
 * state: a client is known once one of its flows has carried a packet past
 * the handshake (it was promoted into rl_established, see above), which a
 * spoofed source never does. A spoofed-source SYN flood therefore draws on
 * the budget alone, and once the budget's burst is spent the GPU hosts see
 * at most its rate of the flood, while known clients open connections
 * regardless (still under their own class limits and the VIP guard).
 * Below its rate the budget drops nothing: it engages under pressure only.
 * New clients compete with the flood for the budget while it lasts; a
 * client's retransmitted SYN is another try. */
static __always_inline __u32 vip_budget_allow(__u32 vip_id)
{
	struct vip_guard *g = bpf_map_lookup_elem(&vip_budgets, &vip_id);

	if (!g)
		return 0;
	if (!gcra_allow(&g->tat, bpf_ktime_get_ns(), g->interval_ns, g->tolerance_ns))
		return STAT_V_DROP_VIP_BUDGET;
	return 0;
}
