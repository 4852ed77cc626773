//go:build ignore

/* Floor programs: only the irreducible work of the balancer's two hot paths,
 * for benchmarks (loader/floor_test.go), never attached. They answer how
 * fast the established and new-flow paths could be on a given machine:
 *
 *   floor_est_ipip  parse Ethernet + IPv4 + TCP, one LRU-hash lookup of the
 *                   5-tuple (a hit), bpf_xdp_adjust_head(-20), outer IPv4
 *                   header with checksum, XDP_TX.
 *   floor_est_l2    the same lookup, then a MAC rewrite instead of the outer
 *                   header.
 *   floor_new_ipip  parse, lookup (a miss), insert, outer IPv4 header.
 *   floor_miss_ipip parse, lookup (a miss), outer IPv4 header: no insert,
 *                   so that floor_new_ipip minus this is the insert.
 *
 * The table has the balancer's IPv4 key (struct flow_key4, 16 bytes) and
 * value (struct ct_val, 20 bytes); Go picks its type, flags and size before load
 * (LRU hash, LRU hash with BPF_F_NO_COMMON_LRU, preallocated hash). No
 * firewall, rate limiting, VIP, Maglev, backend table or counters. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "include/consts.h"
#include "include/structs.h"
#include "include/hash.h"
#include "include/csum.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 20);
	__type(key, struct flow_key4);
	__type(value, struct ct_val);
} floor_ct SEC(".maps");

/* Backend and outer-source constants: the floor has no backend table. */
#define FLOOR_BACKEND_ADDR bpf_htonl(0xc612c801)  /* 198.18.200.1 */
#define FLOOR_SRC_BASE bpf_htonl(0xac100000)      /* 172.16.0.0/16 */
#define FLOOR_SRC_HOSTMASK bpf_htonl(0x0000ffff)

static const __u8 floor_mac[ETH_ALEN] = {2, 0, 0, 0, 0xbe, 1};

static __always_inline int floor_parse(struct xdp_md *ctx, struct flow_key4 *k, struct iphdr **ip_out)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_HLEN;

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	__u32 ihl = ip->ihl * 4;
	if (ip->version != 4 || ihl < sizeof(*ip) || ip->protocol != IPPROTO_TCP)
		return -1;
	struct tcphdr *th = (void *)ip + ihl;
	if ((void *)(th + 1) > end)
		return -1;
	k->src = ip->saddr;
	k->dst = ip->daddr;
	k->sport = th->source;
	k->dport = th->dest;
	k->proto = IPPROTO_TCP;
	*ip_out = ip;
	return 0;
}

/* floor_encap: the balancer's IPv4 encapsulation behind a plain Ethernet
 * header (room for the outer header, Ethernet header moved, MACs set, outer
 * header and checksum). */
static __always_inline int floor_encap(struct xdp_md *ctx, __u8 tos, __u16 ip_len, __u32 hash)
{
	struct ethhdr eth;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	if (data + ETH_HLEN > end)
		return XDP_ABORTED;
	__builtin_memcpy(&eth, data, ETH_HLEN);
	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct iphdr)))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + ETH_HLEN + sizeof(struct iphdr) > end)
		return XDP_ABORTED;
	struct ethhdr *e = data;
	__builtin_memcpy(e->h_source, eth.h_dest, ETH_ALEN);
	__builtin_memcpy(e->h_dest, floor_mac, ETH_ALEN);
	e->h_proto = bpf_htons(ETH_P_IP);
	struct iphdr *o = data + ETH_HLEN;
	o->version = 4;
	o->ihl = 5;
	o->tos = tos;
	o->tot_len = bpf_htons(ip_len + sizeof(struct iphdr));
	o->id = 0;
	o->frag_off = 0;
	o->ttl = IPIP_TTL;
	o->protocol = 4; /* IPPROTO_IPIP */
	o->check = 0;
	o->saddr = FLOOR_SRC_BASE | (hash & FLOOR_SRC_HOSTMASK);
	o->daddr = FLOOR_BACKEND_ADDR;
	o->check = ipv4_hdr_csum(o);
	return XDP_TX;
}

SEC("xdp")
int floor_est_ipip(struct xdp_md *ctx)
{
	struct flow_key4 k = {};
	struct iphdr *ip;

	if (floor_parse(ctx, &k, &ip))
		return XDP_DROP;
	struct ct_val *ct = bpf_map_lookup_elem(&floor_ct, &k);
	if (!ct)
		return XDP_DROP;
	return floor_encap(ctx, ip->tos, bpf_ntohs(ip->tot_len), ct->hash);
}

SEC("xdp")
int floor_est_l2(struct xdp_md *ctx)
{
	struct flow_key4 k = {};
	struct iphdr *ip;

	if (floor_parse(ctx, &k, &ip))
		return XDP_DROP;
	struct ct_val *ct = bpf_map_lookup_elem(&floor_ct, &k);
	if (!ct)
		return XDP_DROP;
	struct ethhdr *e = (void *)(long)ctx->data;
	if ((void *)(e + 1) > (void *)(long)ctx->data_end)
		return XDP_DROP;
	__builtin_memcpy(e->h_source, e->h_dest, ETH_ALEN);
	__builtin_memcpy(e->h_dest, floor_mac, ETH_ALEN);
	return XDP_TX;
}

/* floor_new is a new flow's floor: parse, flow hash, lookup (a miss; the
 * benchmark only sends new flows), the insert when asked, IPIP. */
static __always_inline int floor_new(struct xdp_md *ctx, const int insert)
{
	struct flow_key4 k = {};
	struct iphdr *ip;

	if (floor_parse(ctx, &k, &ip))
		return XDP_DROP;
	struct flow_key fk = {.src = {k.src}, .dst = {k.dst}, .sport = k.sport, .dport = k.dport,
			      .proto = k.proto, .family = FAMILY_V4};
	__u32 hash = flow_hash(&fk);
	if (bpf_map_lookup_elem(&floor_ct, &k))
		return XDP_DROP;
	if (insert) {
		struct ct_val nv = {.backend = 1, .vip = 1, .flags = 1, .hash = hash};
		if (bpf_map_update_elem(&floor_ct, &k, &nv, BPF_ANY))
			return XDP_DROP;
	}
	return floor_encap(ctx, ip->tos, bpf_ntohs(ip->tot_len), hash);
}

SEC("xdp")
int floor_new_ipip(struct xdp_md *ctx)
{
	return floor_new(ctx, 1);
}

SEC("xdp")
int floor_miss_ipip(struct xdp_md *ctx)
{
	return floor_new(ctx, 0);
}
