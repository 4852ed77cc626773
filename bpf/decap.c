//go:build ignore

/* The decapsulator: XDP program on GPU hosts. It strips the outer IPv4/IPv6
 * header of IPIP (proto 4) and IP6IP6/IPv4-in-IPv6 (proto 41/4) packets
 * whose inner destination is a local VIP, and passes the inner packet up.
 * Hosts here have no ipip module, and a fleet should not need one. The outer
 * header must be plain: IPv4 without fragmentation, IPv6 without extension
 * headers (the balancer never adds either); anything else is not ours and
 * passes untouched.
 *
 * Trust: decapsulating hands the inner packet to the local stack as if it
 * had come through the balancer, past its firewall and rate limits. So a
 * packet for a local VIP is decapsulated only when its outer source lies in
 * a trusted prefix (decap_src4/decap_src6: the balancers' encapsulation
 * sources, from the policy); any other is dropped and counted
 * (DSTAT_V_DROP_UNTRUSTED_SRC). Empty tables trust no one: with no
 * balancer named, every encapsulated packet for a local VIP is dropped. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "include/consts.h"
#include "include/structs.h"
#include "include/parse.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DEFAULT_LOCAL_VIPS);
	__type(key, struct addr_key);
	__type(value, __u32);
} local_vips SEC(".maps");

/* Trusted outer sources; the value is unused. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, DEFAULT_DECAP_SOURCES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm4_key);
	__type(value, __u32);
} decap_src4 SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, DEFAULT_DECAP_SOURCES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm6_key);
	__type(value, __u32);
} decap_src6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DSTAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} decap_stats SEC(".maps");

static __always_inline int dverdict(__u32 reason)
{
	__u64 *v = bpf_map_lookup_elem(&decap_stats, &reason);

	if (v)
		*v += 1;
	switch (reason) {
	case DSTAT_V_DROP_MALFORMED:
	case DSTAT_V_DROP_FAIL:
	case DSTAT_V_DROP_UNTRUSTED_SRC:
		return XDP_DROP;
	}
	return XDP_PASS;
}

/* strip_at removes olen bytes behind an L2 header of l3 bytes (constant). */
static __always_inline int strip_at(struct xdp_md *ctx, __u32 olen, __u16 inner_eth, const __u32 l3)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 l2[ETH_HLEN + MAX_VLAN_TAGS * 4];

	if (data + l3 > end)
		return dverdict(DSTAT_V_DROP_FAIL);
	__builtin_memcpy(l2, data, l3);
	*(__be16 *)(l2 + l3 - 2) = inner_eth;
	if (bpf_xdp_adjust_head(ctx, (int)olen))
		return dverdict(DSTAT_V_DROP_FAIL);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + l3 > end)
		return dverdict(DSTAT_V_DROP_FAIL);
	__builtin_memcpy(data, l2, l3);
	return dverdict(DSTAT_V_PASS_DECAP);
}

SEC("xdp")
int decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u16 proto;
	__u32 off, olen;
	__u8 ip_proto;
	struct lpm4_key src4 = {.prefixlen = 32};
	struct lpm6_key src6 = {.prefixlen = 128};
	int outer_v4;

	int r = parse_l2(data, end, &proto, &off);
	if (r == PARSE_MALFORMED)
		return dverdict(DSTAT_V_DROP_MALFORMED);
	if (r != PARSE_OK)
		return dverdict(DSTAT_V_PASS_NOT_IPIP);
	if (off > ETH_HLEN + MAX_VLAN_TAGS * 4)
		return dverdict(DSTAT_V_PASS_NOT_IPIP);

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *o = data + off;
		if ((void *)(o + 1) > end)
			return dverdict(DSTAT_V_DROP_MALFORMED);
		if (o->protocol != 4 && o->protocol != 41)
			return dverdict(DSTAT_V_PASS_NOT_IPIP);
		if (o->ihl != 5 || (bpf_ntohs(o->frag_off) & (IP_MF | IP_OFFSET)))
			return dverdict(DSTAT_V_PASS_NOT_IPIP);
		olen = sizeof(*o);
		ip_proto = o->protocol;
		src4.addr = o->saddr;
		outer_v4 = 1;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *o6 = data + off;
		if ((void *)(o6 + 1) > end)
			return dverdict(DSTAT_V_DROP_MALFORMED);
		if (o6->nexthdr != 4 && o6->nexthdr != 41)
			return dverdict(DSTAT_V_PASS_NOT_IPIP);
		olen = sizeof(*o6);
		ip_proto = o6->nexthdr;
		__builtin_memcpy(src6.addr, &o6->saddr, 16);
		outer_v4 = 0;
	} else {
		return dverdict(DSTAT_V_PASS_NOT_IPIP);
	}

	struct addr_key k = {};
	__u16 inner_eth;
	__u32 in = off + olen;
	if (ip_proto == 4) {
		struct iphdr *i4 = data + in;
		if ((void *)(i4 + 1) > end || i4->version != 4)
			return dverdict(DSTAT_V_DROP_MALFORMED);
		k.family = FAMILY_V4;
		k.addr[0] = i4->daddr;
		inner_eth = bpf_htons(ETH_P_IP);
	} else {
		struct ipv6hdr *i6 = data + in;
		if ((void *)(i6 + 1) > end || i6->version != 6)
			return dverdict(DSTAT_V_DROP_MALFORMED);
		k.family = FAMILY_V6;
		__builtin_memcpy(k.addr, &i6->daddr, 16);
		inner_eth = bpf_htons(ETH_P_IPV6);
	}
	if (!bpf_map_lookup_elem(&local_vips, &k))
		return dverdict(DSTAT_V_PASS_NOT_LOCAL);
	if (outer_v4 ? !bpf_map_lookup_elem(&decap_src4, &src4) : !bpf_map_lookup_elem(&decap_src6, &src6))
		return dverdict(DSTAT_V_DROP_UNTRUSTED_SRC);

	switch (off) {
	case ETH_HLEN:
		return strip_at(ctx, olen, inner_eth, ETH_HLEN);
	case ETH_HLEN + 4:
		return strip_at(ctx, olen, inner_eth, ETH_HLEN + 4);
	case ETH_HLEN + 8:
		return strip_at(ctx, olen, inner_eth, ETH_HLEN + 8);
	}
	return dverdict(DSTAT_V_PASS_NOT_IPIP);
}
