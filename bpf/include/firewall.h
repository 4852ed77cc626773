/* Source firewall. Lookup order: exact address (hash), then longest prefix
 * (LPM trie). The balancer checks packets that may open a connection against
 * host addresses first (one hash lookup, so a denied host costs what it costs
 * in xdp-filter); tracked flows meet host and prefix rules once per flow and
 * rule-set generation (see balancer.c). The value of the most specific match holds up to
 * FW_ENTRIES_PER_PREFIX entries in rule order; Go appends the entries of
 * covering prefixes, so the first entry whose protocol and port match decides.
 * A later fragment has no port: entries with a port never match it, address
 * and protocol entries do. No matching entry: config.default_deny decides. */
#pragma once
#include "maps.h"
#include "parse.h"

struct fw_result {
	__u32 rule_id;
	__u32 action; /* 0 = no rule matched */
};

static __always_inline int fw_match(const struct fw_val *v, const struct pkt *p, struct fw_result *r)
{
	__u16 dport = bpf_ntohs(p->k.dport);
	__u32 n = v->count;

#pragma unroll
	for (int i = 0; i < FW_ENTRIES_PER_PREFIX; i++) {
		if (i >= n)
			break;
		const struct fw_entry *e = &v->e[i];
		if (e->proto && e->proto != p->k.proto)
			continue;
		if (e->port && (p->frag == FRAG_LATER || e->port != dport))
			continue;
		r->rule_id = e->rule_id;
		r->action = e->action;
		return 1;
	}
	return 0;
}

/* fw_exact looks the source up among host addresses (hash). */
static __always_inline void fw_exact(const struct lb_config *cfg, const struct pkt *p, struct fw_result *r)
{
	__u32 slot = cfg->fw_slot & (FW_SLOTS - 1);
	struct fw_val *v;
	void *inner;

	if (p->k.family == FAMILY_V4) {
		inner = bpf_map_lookup_elem(&fw_exact4, &slot);
		if (!inner)
			return;
		v = bpf_map_lookup_elem(inner, &p->k.src[0]);
	} else {
		inner = bpf_map_lookup_elem(&fw_exact6, &slot);
		if (!inner)
			return;
		struct addr_key k = {.family = FAMILY_V6};
		__builtin_memcpy(k.addr, p->k.src, 16);
		v = bpf_map_lookup_elem(inner, &k);
	}
	if (v)
		fw_match(v, p, r);
}

/* fw_prefix looks the source up among prefixes (LPM trie). */
static __always_inline void fw_prefix(const struct lb_config *cfg, const struct pkt *p, struct fw_result *r)
{
	__u32 slot = cfg->fw_slot & (FW_SLOTS - 1);
	struct fw_val *v;
	void *inner;

	if (p->k.family == FAMILY_V4) {
		inner = bpf_map_lookup_elem(&fw_lpm4, &slot);
		if (!inner)
			return;
		struct lpm4_key k = {.prefixlen = 32, .addr = p->k.src[0]};
		v = bpf_map_lookup_elem(inner, &k);
	} else {
		inner = bpf_map_lookup_elem(&fw_lpm6, &slot);
		if (!inner)
			return;
		struct lpm6_key k = {.prefixlen = 128};
		__builtin_memcpy(k.addr, p->k.src, 16);
		v = bpf_map_lookup_elem(inner, &k);
	}
	if (v)
		fw_match(v, p, r);
}

/* fw_verdict counts the deciding rule and returns the drop reason, or 0. */
static __always_inline __u32 fw_verdict(const struct lb_config *cfg, struct fw_result *r)
{
	if (r->action) {
		__u64 *c = bpf_map_lookup_elem(&fw_rule_stats, &r->rule_id);
		if (c)
			*c += 1;
		return r->action == FW_DENY ? STAT_V_DROP_FW_RULE : 0;
	}
	return cfg->default_deny ? STAT_V_DROP_FW_DEFAULT : 0;
}

/* fw_check: the whole firewall, for packets outside the connection table. */
static __always_inline __u32 fw_check(const struct lb_config *cfg, const struct pkt *p)
{
	struct fw_result r = {};

	fw_exact(cfg, p, &r);
	if (!r.action)
		fw_prefix(cfg, p, &r);
	return fw_verdict(cfg, &r);
}
