/* Key and value layouts shared with Go (bpf2go generates the Go side). */
#pragma once
#include <linux/types.h>

/* Addresses are stored in network byte order in four words; IPv4 uses
 * addr[0] and leaves the rest zero. */
struct addr_key {
	__u32 addr[4];
	__u32 family;
};

struct flow_key {
	__u32 src[4];
	__u32 dst[4];
	__u16 sport; /* network order; zero for portless protocols/fragments */
	__u16 dport;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

/* Key of the IPv4 connection table: the 5-tuple in 16 bytes (the kernel
 * hashes and compares the whole key on every lookup; 40 bytes of flow_key
 * cost a jhash of four 12-byte rounds instead of two). */
struct flow_key4 {
	__u32 src;
	__u32 dst;
	__u16 sport; /* network order */
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct vip_key {
	__u32 addr[4];
	__u16 port; /* network order */
	__u8 proto;
	__u8 family;
};

/* Value of the vips hash, and of the vip_info array at index id (which lets
 * an established flow reach its VIP's flags without the hash lookup). */
struct vip_meta {
	__u32 id;    /* index into maglev_rings, vip_stats, vip_guards, vip_info */
	__u32 flags; /* VIP_F_* */
	__u32 guard; /* 1: vip_guards[id] limits new connections */
	__u32 budget; /* 1: vip_budgets[id] limits new flows from unknown sources */
};

struct backend {
	__u32 addr[4];
	__u8 mac[6]; /* next hop (IPIP) or the backend itself (L2 DSR) */
	__u8 family;
	__u8 flags; /* BACKEND_F_* */
};

struct ct_val {
	__u32 backend;
	__u32 vip;
	__u32 fw_gen; /* firewall generation this flow was last checked against */
	__u32 flags;  /* CT_F_*; a zero value is another CPU's entry, see balancer.c */
	__u32 hash;   /* flow hash, kept for the outer header's entropy */
	__u32 seen;   /* established tables: last packet, in CT_SEEN_SHIFT units of the rate-limit clock */
};

struct fw_entry {
	__u32 rule_id;
	__u16 port; /* host order; 0 = any */
	__u8 proto; /* 0 = any */
	__u8 action; /* FW_ALLOW / FW_DENY */
};

struct fw_val {
	__u32 count;
	__u32 pad;
	struct fw_entry e[FW_ENTRIES_PER_PREFIX];
};

struct lpm4_key {
	__u32 prefixlen;
	__u32 addr;
};

struct lpm6_key {
	__u32 prefixlen;
	__u32 addr[4];
};

/* Limits of a client class as GCRA parameters: emission interval (ns per
 * token, 0 = unlimited) and tolerance (interval * burst). */
struct class_limits {
	__u64 pps_interval_ns;
	__u64 pps_tolerance_ns;
	__u64 conn_interval_ns;
	__u64 conn_tolerance_ns;
};

/* Per-client state: the theoretical arrival time of the next packet and of
 * the next new connection (GCRA). One 64-bit word per limit, updated with
 * compare-and-swap, so no lock is needed across CPUs. */
struct bucket {
	__u64 pkt_tat;
	__u64 conn_tat;
	__u64 last_seen_ns;
	__u32 class_id;  /* cached result of the class LPM lookup ... */
	__u32 class_gen; /* ... valid while equal to config.class_gen */
};

/* A slot of rl_established: a client's bucket with its key. 64 bytes, one
 * cache line per probe. */
struct est_client {
	struct bucket b;
	struct addr_key key;
	__u32 state; /* EST_* */
	__u32 pad[2]; /* to 64 bytes: a probe touches one cache line */
};

struct vip_guard {
	__u64 interval_ns;
	__u64 tolerance_ns;
	__u64 tat;
};

struct traffic_stats {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows;
};

struct lb_config {
	__u32 fw_slot;      /* active firewall slot, 0 or 1 */
	__u32 fw_gen;       /* bumped on every rule-set switch */
	__u32 default_deny; /* 1: sources matching no rule are dropped */
	__u32 class_gen;    /* bumped when classes change: invalidates bucket.class_id */
	__u32 rl_enabled;   /* 0: no class has a limit, rate limiting is skipped */
	__u32 agg4_mask;    /* rate-limit aggregation masks, network order */
	__u32 agg6_mask[4];
	__u32 src4_base;    /* IPIP outer source prefix and host mask */
	__u32 src4_hostmask;
	__u32 src6_base[4];
	__u32 src6_hostmask[4];
	__u8 src_mac[6];    /* interface MAC; zero = reuse the frame's dst MAC */
	__u8 gw_mac[6];     /* default next hop for IPIP */
	__u8 has_gw_mac;
	__u8 pad1[3];
	/* Rate-limit clock: now = jiffies * clock_tick_ns + clock_offset_ns
	 * (mod 2^64), which Go calibrates against CLOCK_MONOTONIC_COARSE at
	 * load. Zero tick: bpf_ktime_get_coarse_ns instead. */
	__u64 clock_tick_ns;
	__u64 clock_offset_ns;
	/* rl_established: slots - 1 (a power of two minus one) and the seed of
	 * its slot hash (random per table, kept with pinned maps). */
	__u32 rl_est_mask;
	__u32 rl_est_seed;
};
