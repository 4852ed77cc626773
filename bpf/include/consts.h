/* Every tunable of the data plane, as a named constant. Map sizes here are
 * defaults only: the Go loader overrides max_entries before loading. */
#pragma once

/* Parsing bounds: the verifier needs bounded loops, and an attacker must not
 * be able to make us walk an unbounded header chain. */
#define MAX_VLAN_TAGS 2
#define MAX_IPV6_EXT_HDRS 6
/* Largest hop-by-hop / destination options header we parse (its TLVs are
 * validated one by one); larger ones are dropped as too deep. */
#define MAX_IPV6_OPT_HDR_BYTES 64
/* Upper bound of the L4 header offset we accept; anything deeper is dropped. */
#define MAX_L4_OFFSET 2048

/* Default map sizes (overridable from Go). */
#define DEFAULT_CT_ENTRIES 65536
#define DEFAULT_CT_EST_ENTRIES 65536
#define DEFAULT_RL_BUCKETS 65536
#define DEFAULT_RL_ESTABLISHED 65536
#define DEFAULT_FW_ENTRIES 1024
#define DEFAULT_CLASS_PREFIXES 1024
#define MAX_CLASSES 256
#define DEFAULT_MAX_VIPS 256
#define DEFAULT_MAX_BACKENDS 4096
#define DEFAULT_MAX_FW_RULES 4096
#define DEFAULT_RING_SIZE 65537
#define DEFAULT_LOCAL_VIPS 256
/* Outer-source prefixes the decapsulator trusts (per family). */
#define DEFAULT_DECAP_SOURCES 256
/* Bitmap of destination ports that carry a VIP: 65536 bits. */
#define VIP_PORT_WORDS 1024

/* Firewall: each prefix carries up to this many (rule, proto, port) entries,
 * evaluated in order. Two slots per table let Go build a rule set aside and
 * switch to it with one write. */
#define FW_ENTRIES_PER_PREFIX 8
#define FW_SLOTS 2

/* New flows whose Maglev slot points at a missing or draining backend probe
 * this many following slots before giving up. */
#define BACKEND_PROBES 8

/* Outer header of IPIP encapsulation. */
#define IPIP_TTL 64
/* Seed of the flow hash (steering and outer-source entropy). */
#define FLOW_HASH_SEED 0x9e3779b9u

/* Established flows stamp their last packet in units of 2^CT_SEEN_SHIFT ns
 * (about a second) of the rate-limit clock: one write per flow per unit,
 * and 32 bits last 146 years. Go expires idle flows from the stamp. */
#define CT_SEEN_SHIFT 30

/* Rate-limit buckets refresh their last-seen stamp at most this often, to
 * keep established clients' bucket writes cheap. */
#define LAST_SEEN_GRANULARITY_NS 1000000ULL

/* Established clients' table (rl_established, see ratelimit.h): an array
 * probed linearly from a seeded hash of the client key, at most this many
 * slots per lookup. Go sizes it at twice the configured clients, rounded up
 * to a power of two, so a window of this many slots is rarely full. */
#define EST_PROBES 8
/* est_client.state */
#define EST_FREE 0    /* never used: ends a lookup's probe */
#define EST_CLAIMED 1 /* being written by a promotion */
#define EST_USED 2
#define EST_DELETED 3 /* pruned by Go: probes go on past it */

/* Address families as stored in keys. */
#define FAMILY_V4 4
#define FAMILY_V6 6

/* Firewall actions. */
#define FW_ALLOW 1
#define FW_DENY 2

/* Flags. */
#define VIP_F_L2 (1u << 0)        /* L2 DSR (MAC rewrite) instead of IPIP */
#define VIP_F_VALID (1u << 1)     /* vip_info slot in use */
#define BACKEND_F_VALID (1u << 0) /* slot holds a backend */
#define BACKEND_F_DRAINING (1u << 1)
#define BACKEND_F_HAS_MAC (1u << 2) /* mac is the next hop for this backend */
#define CT_F_VALID (1u << 0)

/* Per-CPU statistics, by reason. Every packet increments exactly one of the
 * STAT_V_* (verdict) counters; the others are informational. Keep in sync with
 * loader/stats.go. */
enum stat_index {
	STAT_V_PASS_NOT_IP = 0,
	STAT_V_PASS_STACK,        /* allowed, for no VIP */
	STAT_V_TX_IPIP,
	STAT_V_TX_L2,
	STAT_V_DROP_MALFORMED,
	STAT_V_DROP_VLAN_DEPTH,
	STAT_V_DROP_EXT_DEPTH,
	STAT_V_DROP_FW_RULE,      /* matched a deny rule */
	STAT_V_DROP_FW_DEFAULT,   /* default deny */
	STAT_V_DROP_RL_PPS,
	STAT_V_DROP_RL_CONN,
	STAT_V_DROP_VIP_GUARD,
	STAT_V_DROP_NO_BACKEND,
	STAT_V_DROP_FRAG_VIP,
	STAT_V_DROP_NO_ENCAP_SRC,
	STAT_V_DROP_ENCAP_FAIL,
	STAT_V_DROP_NO_CONFIG,
	STAT_V_DROP_VIP_BUDGET,   /* new flow from an unknown source, VIP's budget spent */
	STAT_VERDICT_MAX,
	/* informational */
	STAT_CT_HIT = STAT_VERDICT_MAX,
	STAT_CT_INSERT,
	STAT_RL_INSERT,
	STAT_RL_PROMOTE,
	STAT_RL_PROMOTE_FAIL,
	STAT_FRAG,
	STAT_CT_PROMOTE,      /* flow moved to the established table */
	STAT_CT_PROMOTE_FAIL, /* established table full: the flow stays in the LRU table */
	STAT_CT_DEMOTE,       /* FIN or RST: flow moved back to the LRU table */
	STAT_MAX,
};

enum decap_stat_index {
	DSTAT_V_PASS_NOT_IPIP = 0,
	DSTAT_V_PASS_DECAP,
	DSTAT_V_PASS_NOT_LOCAL,
	DSTAT_V_DROP_MALFORMED,
	DSTAT_V_DROP_FAIL,
	DSTAT_V_DROP_UNTRUSTED_SRC, /* encapsulated for a local VIP, outer source not a trusted balancer */
	DSTAT_MAX,
};
