/* Header parsing. Every read is bounds-checked; anything truncated or
 * inconsistent is reported as PARSE_MALFORMED so the caller drops it. */
#pragma once
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include "consts.h"
#include "structs.h"

#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6 58
#endif
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_DEST 60
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

enum parse_result {
	PARSE_OK = 0,
	PARSE_NOT_IP,
	PARSE_MALFORMED,
	PARSE_VLAN_DEPTH,
	PARSE_EXT_DEPTH,
};

/* Fragment states. */
#define FRAG_NONE 0
#define FRAG_FIRST 1
#define FRAG_LATER 2

struct vlan_tag {
	__be16 tci;
	__be16 proto;
};

struct frag_hdr6 {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 id;
};

struct pkt {
	struct flow_key k;
	__u32 l3_off;  /* Ethernet + VLAN tags */
	__u32 ip_len;  /* IP packet length from its header, <= frame - l3_off */
	__u8 tcp_flags;
	__u8 frag;     /* FRAG_* */
	__u8 tos;      /* IPv4 TOS / IPv6 traffic class, copied to the outer header */
	__u8 pad;
};

#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_ACK 0x10

/* parse_l2 finds the L3 protocol and offset behind up to MAX_VLAN_TAGS
 * 802.1Q/802.1ad tags. */
static __always_inline int parse_l2(void *data, void *end, __u16 *proto_out, __u32 *off_out)
{
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);
	__u16 proto;

	if ((void *)(eth + 1) > end)
		return PARSE_MALFORMED;
	proto = eth->h_proto;
#pragma unroll
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		struct vlan_tag *t = data + off;
		if ((void *)(t + 1) > end)
			return PARSE_MALFORMED;
		proto = t->proto;
		off += sizeof(*t);
	}
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD))
		return PARSE_VLAN_DEPTH;
	*proto_out = proto;
	*off_out = off;
	return PARSE_OK;
}

static __always_inline int parse_l4(void *data, void *end, struct pkt *p, __u32 l4, __u32 ip_end)
{
	if (p->frag == FRAG_LATER)
		return PARSE_OK; /* no L4 header in a later fragment: ports stay 0 */
	if (l4 > MAX_L4_OFFSET)
		return PARSE_MALFORMED;

	switch (p->k.proto) {
	case IPPROTO_TCP: {
		struct tcphdr *th = data + l4;
		if ((void *)(th + 1) > end || l4 + sizeof(*th) > ip_end)
			return PARSE_MALFORMED;
		__u32 doff = th->doff * 4;
		if (doff < sizeof(*th) || l4 + doff > ip_end)
			return PARSE_MALFORMED;
		p->k.sport = th->source;
		p->k.dport = th->dest;
		p->tcp_flags = ((__u8 *)th)[13];
		break;
	}
	case IPPROTO_UDP: {
		struct udphdr *uh = data + l4;
		if ((void *)(uh + 1) > end || l4 + sizeof(*uh) > ip_end)
			return PARSE_MALFORMED;
		__u32 ulen = bpf_ntohs(uh->len);
		/* A first fragment's UDP length covers the whole datagram. */
		if (ulen < sizeof(*uh) || (p->frag == FRAG_NONE && l4 + ulen > ip_end))
			return PARSE_MALFORMED;
		p->k.sport = uh->source;
		p->k.dport = uh->dest;
		break;
	}
	case IPPROTO_ICMP: {
		/* type, code, checksum and the 4-byte rest of header */
		if (data + l4 + 8 > end || l4 + 8 > ip_end)
			return PARSE_MALFORMED;
		break;
	}
	case IPPROTO_ICMPV6: {
		if (data + l4 + 4 > end || l4 + 4 > ip_end)
			return PARSE_MALFORMED;
		break;
	}
	default:
		break;
	}
	return PARSE_OK;
}

/* Option walks. The verifier would explore every sequence of option kinds
 * (3^n paths), so the options are copied to the stack and walked without
 * data-dependent branches: each step's length and validity are computed with
 * arithmetic, and only the loop exit branches. */

#define OPT_BUF 64 /* >= 40 (IPv4 options) and >= MAX_IPV6_OPT_HDR_BYTES */

/* lt: 1 if a < b, else 0, without a branch (a, b < 2^32). */
#define lt(a, b) ((((__u64)(a)) - ((__u64)(b))) >> 63)
/* eqz: 1 if a == 0, else 0 (a < 2^32). */
#define eqz(a) lt((a), 1)

/* opts_valid walks n bytes of options in buf. In IPv4 form (v4 = 1) kind 0
 * ends the list and kind 1 is a one-byte no-op; others are type, length
 * (>= 2, counting both), value. In IPv6 form, kind 0 is a one-byte pad and
 * others are type, length (of the value only), value. */
struct opt_buf {
	__u8 b[OPT_BUF];
};

/* A global function: the verifier checks it once, not at each of the
 * (unrolled) call sites. */
__attribute__((noinline)) int opts_valid(struct opt_buf *ob, __u32 n, int v4)
{
	__u64 o = 0, bad = 0;

	if (!ob)
		return 0;
	const __u8 *buf = ob->b;

	for (int i = 0; i < OPT_BUF; i++) {
		if (o >= n)
			break;
		__u64 k = buf[o & (OPT_BUF - 1)];
		__u64 l = buf[(o + 1) & (OPT_BUF - 1)];
		__u64 step, one;
		if (v4) { /* a branch on an argument: two paths, not 2^n */
			__u64 eol = eqz(k);
			one = eqz(k ^ 1);
			__u64 tlv = (1 - eol) * (1 - one);
			/* a TLV needs its length byte inside and length >= 2 */
			bad |= tlv * (lt(n, o + 2) | lt(l, 2));
			step = one + tlv * l + eol * OPT_BUF;
			/* past end-of-list only padding follows: stop there */
			o += step;
			o = o * (1 - eol) + (__u64)n * eol;
		} else {
			one = eqz(k);
			__u64 tlv = 1 - one;
			bad |= tlv * lt(n, o + 2);
			step = one + tlv * (l + 2);
			o += step;
		}
		bad |= lt(n, o); /* an option ran past the end */
	}
	return !bad && o >= n;
}

/* ipv4_options_valid checks the options of the IPv4 header at off. */
static __always_inline int ipv4_options_valid(struct xdp_md *ctx, __u32 off, __u32 ihl)
{
	struct opt_buf buf = {};
	__u32 n = ihl - 20;

	asm volatile("" : "+r"(n)); /* see ipv6_tlvs_valid */
	if (n == 0 || n > 40)
		return n == 0;
	if (bpf_xdp_load_bytes(ctx, off + 20, buf.b, n))
		return 0;
	return opts_valid(&buf, n, 1);
}

/* ipv6_tlvs_valid checks a hop-by-hop or destination options header of
 * hlen bytes at off (RFC 8200 4.2). */
static __always_inline int ipv6_tlvs_valid(struct xdp_md *ctx, __u32 off, __u32 hlen)
{
	struct opt_buf buf = {};
	__u32 n = hlen - 2;

	/* keep clang from dropping the check as redundant: the verifier needs
	 * it on this register */
	asm volatile("" : "+r"(n));
	if (n < 6 || n > MAX_IPV6_OPT_HDR_BYTES - 2)
		return 0;
	if (bpf_xdp_load_bytes(ctx, off + 2, buf.b, n))
		return 0;
	return opts_valid(&buf, n, 0);
}

static __always_inline int parse_ipv4(struct xdp_md *ctx, void *data, void *end, struct pkt *p, __u32 off)
{
	struct iphdr *iph = data + off;

	if ((void *)(iph + 1) > end)
		return PARSE_MALFORMED;
	if (iph->version != 4)
		return PARSE_MALFORMED;
	__u32 ihl = iph->ihl * 4;
	__u32 tot = bpf_ntohs(iph->tot_len);
	if (ihl < sizeof(*iph) || tot < ihl || data + off + tot > end)
		return PARSE_MALFORMED;
	if (ihl > sizeof(*iph) && !ipv4_options_valid(ctx, off, ihl))
		return PARSE_MALFORMED;
	__u16 fo = bpf_ntohs(iph->frag_off);
	if (fo & IP_OFFSET)
		p->frag = FRAG_LATER;
	else if (fo & IP_MF)
		p->frag = FRAG_FIRST;
	p->k.family = FAMILY_V4;
	p->k.proto = iph->protocol;
	p->k.src[0] = iph->saddr;
	p->k.dst[0] = iph->daddr;
	p->tos = iph->tos;
	p->ip_len = tot;
	return parse_l4(data, end, p, off + ihl, off + tot);
}

static __always_inline int parse_ipv6(struct xdp_md *ctx, void *data, void *end, struct pkt *p, __u32 off)
{
	struct ipv6hdr *ip6 = data + off;

	if ((void *)(ip6 + 1) > end)
		return PARSE_MALFORMED;
	if (ip6->version != 6)
		return PARSE_MALFORMED;
	__u32 plen = bpf_ntohs(ip6->payload_len);
	/* payload_len 0 means a jumbogram, which cannot arrive here */
	if (plen == 0 || data + off + sizeof(*ip6) + plen > end)
		return PARSE_MALFORMED;
	__u32 ip_end = off + sizeof(*ip6) + plen;
	__u32 l4 = off + sizeof(*ip6);
	__u8 nh = ip6->nexthdr;

	p->k.family = FAMILY_V6;
	__builtin_memcpy(p->k.src, &ip6->saddr, 16);
	__builtin_memcpy(p->k.dst, &ip6->daddr, 16);
	p->tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
	p->ip_len = sizeof(*ip6) + plen;

#pragma unroll
	for (int i = 0; i < MAX_IPV6_EXT_HDRS; i++) {
		if (nh != NEXTHDR_HOP && nh != NEXTHDR_ROUTING && nh != NEXTHDR_DEST &&
		    nh != NEXTHDR_FRAGMENT)
			break;
		if (l4 > MAX_L4_OFFSET)
			return PARSE_MALFORMED;
		__u8 *h = data + l4;
		if ((void *)(h + 8) > end || l4 + 8 > ip_end)
			return PARSE_MALFORMED;
		if (nh == NEXTHDR_FRAGMENT) {
			struct frag_hdr6 *fh = (void *)h;
			__u16 fo = bpf_ntohs(fh->frag_off);
			p->frag = (fo & 0xfff8) ? FRAG_LATER : ((fo & 1) ? FRAG_FIRST : p->frag);
			nh = fh->nexthdr;
			l4 += 8;
			if (p->frag == FRAG_LATER)
				break; /* what follows is payload, not headers */
		} else {
			__u32 hlen = ((__u32)h[1] + 1) * 8;
			if (l4 + hlen > ip_end)
				return PARSE_MALFORMED;
			if (nh != NEXTHDR_ROUTING) {
				if (hlen > MAX_IPV6_OPT_HDR_BYTES)
					return PARSE_EXT_DEPTH;
				if (!ipv6_tlvs_valid(ctx, l4, hlen))
					return PARSE_MALFORMED;
			}
			nh = h[0];
			l4 += hlen;
		}
	}
	if (p->frag != FRAG_LATER && (nh == NEXTHDR_HOP || nh == NEXTHDR_ROUTING ||
				      nh == NEXTHDR_DEST || nh == NEXTHDR_FRAGMENT))
		return PARSE_EXT_DEPTH;
	p->k.proto = nh;
	return parse_l4(data, end, p, l4, ip_end);
}

/* parse_packet fills p from the frame. */
static __always_inline int parse_packet(struct xdp_md *ctx, struct pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u16 proto;
	__u32 off;
	int r = parse_l2(data, end, &proto, &off);

	if (r != PARSE_OK)
		return r;
	p->l3_off = off;
	if (proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(ctx, data, end, p, off);
	if (proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(ctx, data, end, p, off);
	return PARSE_NOT_IP;
}
