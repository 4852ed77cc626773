/* Forwarding: IPIP / IP6IP6 encapsulation (Katran-style DSR) and L2 DSR.
 * The outer header's family follows the backend's address; the inner packet
 * (from its IP header on) is left byte for byte as it arrived. The outer
 * source is taken from a configured prefix whose host bits carry the flow
 * hash, so that ECMP/RSS on the way to the backend spreads flows. */
#pragma once
#include "maps.h"
#include "parse.h"
#include "csum.h"

#define IPPROTO_IPIP_ 4
#define IPPROTO_IPV6_ 41

static __always_inline void set_macs(void *data, const struct lb_config *cfg, const __u8 *dst)
{
	struct ethhdr *eth = data;

	if (cfg->src_mac[0] | cfg->src_mac[1] | cfg->src_mac[2] | cfg->src_mac[3] |
	    cfg->src_mac[4] | cfg->src_mac[5])
		__builtin_memcpy(eth->h_source, cfg->src_mac, ETH_ALEN);
	else
		__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, dst, ETH_ALEN);
}

static __always_inline const __u8 *next_hop(const struct lb_config *cfg, const struct backend *be)
{
	if (be->flags & BACKEND_F_HAS_MAC)
		return be->mac;
	if (cfg->has_gw_mac)
		return cfg->gw_mac;
	return 0;
}

/* push_outer opens room for an outer header of outer_len bytes between the
 * L2 header (l3 bytes, moved to the new frame start) and the packet, sets
 * the EtherType and MACs, and returns where the outer header goes, or 0. */
static __always_inline void *push_outer(struct xdp_md *ctx, const struct lb_config *cfg, const __u8 *mac,
					const __u32 l3, const __u32 outer_len, __be16 eth_proto)
{
	__u8 l2[ETH_HLEN + MAX_VLAN_TAGS * 4];
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	if (data + l3 > end)
		return 0;
	__builtin_memcpy(l2, data, l3);
	if (bpf_xdp_adjust_head(ctx, -(int)outer_len))
		return 0;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + l3 + outer_len > end)
		return 0;
	__builtin_memcpy(data, l2, l3);
	*(__be16 *)(data + l3 - 2) = eth_proto;
	set_macs(data, cfg, mac);
	return data + l3;
}

/* encap_at pushes the outer header behind an L2 header of exactly l3 bytes
 * (a compile-time constant at each call site, which keeps the verifier's
 * view of offsets simple). */
static __always_inline __u32 encap_at(struct xdp_md *ctx, const struct pkt *p, const struct lb_config *cfg,
				      const struct backend *be, __u32 hash, const __u32 l3)
{
	const __u8 *nh = next_hop(cfg, be);
	__u8 mac[ETH_ALEN];

	if (!nh)
		return STAT_V_DROP_ENCAP_FAIL;
	__builtin_memcpy(mac, nh, ETH_ALEN);
	__u8 inner_proto = p->k.family == FAMILY_V4 ? IPPROTO_IPIP_ : IPPROTO_IPV6_;

	if (be->family == FAMILY_V4) {
		if (!cfg->src4_base)
			return STAT_V_DROP_NO_ENCAP_SRC;
		struct iphdr *o = push_outer(ctx, cfg, mac, l3, sizeof(struct iphdr), bpf_htons(ETH_P_IP));
		if (!o)
			return STAT_V_DROP_ENCAP_FAIL;
		o->version = 4;
		o->ihl = 5;
		o->tos = p->tos;
		o->tot_len = bpf_htons(p->ip_len + sizeof(struct iphdr));
		o->id = 0;
		o->frag_off = 0;
		o->ttl = IPIP_TTL;
		o->protocol = inner_proto;
		o->check = 0;
		o->saddr = cfg->src4_base | (hash & cfg->src4_hostmask);
		o->daddr = be->addr[0];
		o->check = ipv4_hdr_csum(o);
		return STAT_V_TX_IPIP;
	}

	if (!(cfg->src6_base[0] | cfg->src6_base[1] | cfg->src6_base[2] | cfg->src6_base[3]))
		return STAT_V_DROP_NO_ENCAP_SRC;
	struct ipv6hdr *o6 = push_outer(ctx, cfg, mac, l3, sizeof(struct ipv6hdr), bpf_htons(ETH_P_IPV6));
	if (!o6)
		return STAT_V_DROP_ENCAP_FAIL;
	o6->version = 6;
	o6->priority = p->tos >> 4;
	/* 20-bit flow label from the hash: entropy for ECMP on the outer header */
	o6->flow_lbl[0] = ((p->tos & 0xf) << 4) | ((hash >> 16) & 0xf);
	o6->flow_lbl[1] = (hash >> 8) & 0xff;
	o6->flow_lbl[2] = hash & 0xff;
	o6->payload_len = bpf_htons(p->ip_len);
	o6->nexthdr = inner_proto;
	o6->hop_limit = IPIP_TTL;
	__u32 h6[4] = {hash, hash * 0x9e3779b1u, hash ^ (hash >> 16), hash * 0x85ebca6bu};
#pragma unroll
	for (int i = 0; i < 4; i++)
		o6->saddr.in6_u.u6_addr32[i] = cfg->src6_base[i] | (h6[i] & cfg->src6_hostmask[i]);
	__builtin_memcpy(&o6->daddr, be->addr, 16);
	return STAT_V_TX_IPIP;
}

static __always_inline __u32 encap(struct xdp_md *ctx, const struct pkt *p, const struct lb_config *cfg,
				   const struct backend *be, __u32 hash)
{
	switch (p->l3_off) {
	case ETH_HLEN:
		return encap_at(ctx, p, cfg, be, hash, ETH_HLEN);
	case ETH_HLEN + 4:
		return encap_at(ctx, p, cfg, be, hash, ETH_HLEN + 4);
	case ETH_HLEN + 8:
		return encap_at(ctx, p, cfg, be, hash, ETH_HLEN + 8);
	}
	return STAT_V_DROP_ENCAP_FAIL;
}

/* l2_forward: L2 DSR. The backend owns the VIP on a loopback; only the
 * destination MAC changes. */
static __always_inline __u32 l2_forward(struct xdp_md *ctx, const struct lb_config *cfg, const struct backend *be)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	if (!(be->flags & BACKEND_F_HAS_MAC))
		return STAT_V_DROP_ENCAP_FAIL;
	if (data + ETH_HLEN > end)
		return STAT_V_DROP_ENCAP_FAIL;
	set_macs(data, cfg, be->mac);
	return STAT_V_TX_L2;
}
