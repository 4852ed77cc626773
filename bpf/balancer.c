//go:build ignore

/* The balancer: XDP program on the node that faces clients.
 *
 * Per packet: parse -> host rules (SYN or non-VIP port) -> connection table
 * -> firewall (skipped for a flow already checked against the current rule
 * generation) -> VIP lookup -> per
 * client packet rate -> for a VIP: new-connection limits, Maglev pick,
 * connection insert, then IPIP or L2 forwarding via XDP_TX; for anything
 * else: XDP_PASS to the node's stack.
 *
 * Fragments: a later fragment has no ports. Any fragment (first or later) is
 * checked by the firewall on address and protocol and charged to the packet
 * rate; fragments addressed to a VIP address are dropped (counted), since
 * later fragments cannot be steered to the first fragment's backend; other
 * fragments pass to the stack, which reassembles them.
 *
 * Connection tables (one per address family): LRU hashes shared by all CPUs,
 * so a flow keeps its backend whichever CPU its packets reach.
 *
 * Established flows keep their backend. A flow enters the LRU table with its
 * first packet; the first later packet that is not a SYN, FIN or RST (the
 * handshake's ACK) moves it to the established table of its family (ct_est4,
 * ct_est6), a plain hash the kernel never evicts: a flood of new flows churns
 * only the LRU table, and an idle keep-alive flow stays where it was put
 * however often the Maglev tables change (a table change steers only new
 * flows). Go expires established flows idle for long (ct_val.seen, stamped
 * at most once per CT_SEEN_SHIFT unit); a client's FIN or RST moves its flow
 * back to the LRU table for its last packets. When the established table is
 * full the flow stays in the LRU table (counted), as before. A flow whose
 * backend is removed is steered afresh wherever it lives. */
#include "include/consts.h"
#include "include/structs.h"
#include "include/maps.h"
#include "include/parse.h"
#include "include/hash.h"
#include "include/firewall.h"
#include "include/ratelimit.h"
#include "include/encap.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline int verdict(__u32 reason)
{
	stat_inc(reason);
	switch (reason) {
	case STAT_V_PASS_NOT_IP:
	case STAT_V_PASS_STACK:
		return XDP_PASS;
	case STAT_V_TX_IPIP:
	case STAT_V_TX_L2:
		return XDP_TX;
	}
	return XDP_DROP;
}

static __always_inline void count_traffic(void *map, __u32 idx, __u64 bytes, int new_flow)
{
	struct traffic_stats *s = bpf_map_lookup_elem(map, &idx);

	if (!s)
		return;
	s->packets++;
	s->bytes += bytes;
	s->new_flows += new_flow;
}

static __always_inline int backend_usable(const struct backend *be)
{
	return be && (be->flags & BACKEND_F_VALID) && !(be->flags & BACKEND_F_DRAINING);
}

/* The kernel's map header, of which only max_entries is read (CO-RE: the
 * offset is relocated against the running kernel's BTF at load). */
struct bpf_map {
	__u32 max_entries;
} __attribute__((preserve_access_index));

/* pick_backend walks the VIP's Maglev table from the flow's slot. The table
 * size N is the inner map's max_entries - 1 (Go creates each table with
 * N + 1 elements, element 0 also holding N for readers): reading it from
 * the map header saves a call into the inner array, whose lookups the
 * verifier cannot inline, and keeps size and contents in one atomically
 * swapped map. */
static __always_inline struct backend *pick_backend(const struct vip_meta *vm, __u32 hash, __u32 *id_out)
{
	void *ring = bpf_map_lookup_elem(&maglev_rings, &vm->id);

	if (!ring)
		return 0;
	__u32 size = ((struct bpf_map *)ring)->max_entries - 1;
	if (size == 0 || size >= 0x80000000u)
		return 0;
	__u32 slot = hash % size + 1;
#pragma unroll
	for (int i = 0; i < BACKEND_PROBES; i++) {
		__u32 *id = bpf_map_lookup_elem(ring, &slot);
		if (!id)
			return 0;
		struct backend *be = bpf_map_lookup_elem(&backends, id);
		if (backend_usable(be)) {
			*id_out = *id;
			return be;
		}
		slot = slot == size ? 1 : slot + 1;
	}
	return 0;
}

static __always_inline void ct_key4(const struct pkt *p, struct flow_key4 *k4)
{
	k4->src = p->k.src[0];
	k4->dst = p->k.dst[0];
	k4->sport = p->k.sport;
	k4->dport = p->k.dport;
	k4->proto = p->k.proto;
}

/* barrier_var (bpf_helpers.h) keeps clang from merging the two families'
 * map calls into one call on a map pointer chosen at run time: the verifier
 * inlines a lookup (and calls the update directly) only where the map is a
 * constant, and the merged call measured 50 ns slower. */
/* The connection tables: IPv4 flows in conntrack (16-byte key), IPv6 flows
 * in conntrack6. */
static __always_inline struct ct_val *ct_lookup(const struct pkt *p, int *est)
{
	struct ct_val *ct;

	if (p->k.family == FAMILY_V4) {
		struct flow_key4 k4 = {};
		ct_key4(p, &k4);
		ct = bpf_map_lookup_elem(&ct_est4, &k4);
		barrier_var(ct);
		if (ct) {
			*est = 1;
			return ct;
		}
		ct = bpf_map_lookup_elem(&conntrack, &k4);
		barrier_var(ct);
		return ct;
	}
	ct = bpf_map_lookup_elem(&ct_est6, &p->k);
	barrier_var(ct);
	if (ct) {
		*est = 1;
		return ct;
	}
	return bpf_map_lookup_elem(&conntrack6, &p->k);
}

/* ct_move moves a flow between the LRU and the established table: to_est
 * inserts v into the established table (failing when it is full) and
 * deletes the LRU entry; otherwise the reverse. */
static __always_inline long ct_move(const struct pkt *p, const struct ct_val *v, int to_est)
{
	long err;

	if (p->k.family == FAMILY_V4) {
		struct flow_key4 k4 = {};
		ct_key4(p, &k4);
		if (to_est) {
			err = bpf_map_update_elem(&ct_est4, &k4, v, BPF_ANY);
			barrier_var(err);
			if (!err)
				bpf_map_delete_elem(&conntrack, &k4);
			return err;
		}
		err = bpf_map_update_elem(&conntrack, &k4, v, BPF_ANY);
		barrier_var(err);
		bpf_map_delete_elem(&ct_est4, &k4);
		return err;
	}
	if (to_est) {
		err = bpf_map_update_elem(&ct_est6, &p->k, v, BPF_ANY);
		barrier_var(err);
		if (!err)
			bpf_map_delete_elem(&conntrack6, &p->k);
		return err;
	}
	err = bpf_map_update_elem(&conntrack6, &p->k, v, BPF_ANY);
	barrier_var(err);
	bpf_map_delete_elem(&ct_est6, &p->k);
	return err;
}

/* ct_drop_est forgets a stale established entry (its flow is steered
 * afresh into the LRU table). */
static __always_inline void ct_drop_est(const struct pkt *p)
{
	if (p->k.family == FAMILY_V4) {
		struct flow_key4 k4 = {};
		ct_key4(p, &k4);
		bpf_map_delete_elem(&ct_est4, &k4);
		return;
	}
	bpf_map_delete_elem(&ct_est6, &p->k);
}

static __always_inline void ct_insert(const struct pkt *p, const struct ct_val *v)
{
	long err;

	if (p->k.family == FAMILY_V4) {
		struct flow_key4 k4 = {};
		ct_key4(p, &k4);
		err = bpf_map_update_elem(&conntrack, &k4, v, BPF_ANY);
		barrier_var(err);
		return;
	}
	bpf_map_update_elem(&conntrack6, &p->k, v, BPF_ANY);
}

static __always_inline int vip_port_possible(__u16 port_be)
{
	__u16 port = bpf_ntohs(port_be);
	__u32 word = port >> 6;
	__u64 *w = bpf_map_lookup_elem(&vip_ports, &word);

	return w && (*w & (1ULL << (port & 63)));
}

SEC("xdp")
int balancer(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct lb_config *cfg = bpf_map_lookup_elem(&config, &zero);
	struct pkt p = {};
	struct rl_state rl = {};
	__u32 reason;

	int r = parse_packet(ctx, &p);
	if (r == PARSE_NOT_IP)
		return verdict(STAT_V_PASS_NOT_IP);
	if (r == PARSE_VLAN_DEPTH)
		return verdict(STAT_V_DROP_VLAN_DEPTH);
	if (r == PARSE_EXT_DEPTH)
		return verdict(STAT_V_DROP_EXT_DEPTH);
	if (r != PARSE_OK)
		return verdict(STAT_V_DROP_MALFORMED);
	if (!cfg)
		return verdict(STAT_V_DROP_NO_CONFIG);

	__u64 bytes = (__u64)((void *)(long)ctx->data_end - (void *)(long)ctx->data);

	if (p.frag != FRAG_NONE) {
		stat_inc(STAT_FRAG);
		reason = fw_check(cfg, &p);
		if (!reason)
			reason = rl_packet(cfg, &p, &rl);
		if (reason)
			return verdict(reason);
		struct addr_key ak = {.family = p.k.family};
		__builtin_memcpy(ak.addr, p.k.dst, 16);
		if (bpf_map_lookup_elem(&vip_addrs, &ak))
			return verdict(STAT_V_DROP_FRAG_VIP);
		return verdict(STAT_V_PASS_STACK);
	}

	/* Order. A packet that may open a connection (a TCP SYN, or anything
	 * for a port without VIPs) meets the host-address rules first, so a
	 * denied host is dropped after one hash lookup, as in xdp-filter. Other
	 * packets to a VIP port look the connection table up first: a hit names
	 * the VIP (by id, an array read) and skips the whole firewall (host and
	 * prefix rules) when the rule set has not changed since the flow was
	 * last checked (ct->fw_gen); a rule change bumps config.fw_gen, so every
	 * established flow is checked again on its next packet. Rule counters
	 * therefore count every denied packet, every allowed packet to the
	 * stack, and the first packet per flow and rule-set generation of
	 * allowed VIP traffic. */
	__u32 fw_gen = cfg->fw_gen;
	struct fw_result fr = {};
	struct ct_val *ct = 0;
	struct vip_meta *vm = 0;
	int vip_port = vip_port_possible(p.k.dport);
	int syn = p.k.proto == IPPROTO_TCP && (p.tcp_flags & TCPF_SYN);
	int exact_done = 0;
	int in_est = 0;

	if (!vip_port || syn) {
		fw_exact(cfg, &p, &fr);
		if (fr.action == FW_DENY)
			return verdict(fw_verdict(cfg, &fr));
		exact_done = 1;
	}
	if (vip_port) {
		ct = ct_lookup(&p, &in_est);
		if (ct && (ct->flags & CT_F_VALID)) {
			vm = bpf_map_lookup_elem(&vip_info, &ct->vip);
			if (!vm || !(vm->flags & VIP_F_VALID))
				vm = 0;
		}
		if (!vm)
			ct = 0;
	}
	if (!ct || ct->fw_gen != fw_gen) {
		if (!exact_done)
			fw_exact(cfg, &p, &fr);
		if (!fr.action)
			fw_prefix(cfg, &p, &fr);
		reason = fw_verdict(cfg, &fr);
		if (reason)
			return verdict(reason);
	}
	if (vip_port && !vm) {
		struct vip_key vk = {.port = p.k.dport, .proto = p.k.proto, .family = p.k.family};
		__builtin_memcpy(vk.addr, p.k.dst, 16);
		struct vip_meta *hm = bpf_map_lookup_elem(&vips, &vk);
		if (hm) {
			vm = bpf_map_lookup_elem(&vip_info, &hm->id);
			if (vm && !(vm->flags & VIP_F_VALID))
				vm = 0;
		}
	}
	reason = rl_packet(cfg, &p, &rl);
	if (reason)
		return verdict(reason);

	if (!vm) {
		/* The node's own services: a bare SYN is a new connection. */
		if (p.k.proto == IPPROTO_TCP && (p.tcp_flags & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN) {
			reason = rl_new_conn(&rl);
			if (reason)
				return verdict(reason);
		}
		return verdict(STAT_V_PASS_STACK);
	}

	__u32 hash = 0;
	__u32 be_id = 0;
	struct backend *be = 0;
	int new_flow = 0;

	if (ct) {
		be = bpf_map_lookup_elem(&backends, &ct->backend);
		/* A draining backend keeps its flows; a removed one loses them.
		 * A bare SYN is a new connection even when its 5-tuple is still
		 * in the table (a client reusing a port of a closed flow): it
		 * must not be sent to a draining backend, which takes no new
		 * connections, so it is steered afresh. */
		int bare_syn = p.k.proto == IPPROTO_TCP &&
			       (p.tcp_flags & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN;
		if (be && (be->flags & BACKEND_F_VALID) &&
		    !(bare_syn && (be->flags & BACKEND_F_DRAINING))) {
			be_id = ct->backend;
			hash = ct->hash;
			stat_inc(STAT_CT_HIT);
			if (ct->fw_gen != fw_gen)
				ct->fw_gen = fw_gen;
			if (!(p.k.proto == IPPROTO_TCP && (p.tcp_flags & TCPF_SYN)))
				rl_promote(cfg, &p, &rl);
			int closing = p.k.proto == IPPROTO_TCP && (p.tcp_flags & (TCPF_FIN | TCPF_RST));
			if (in_est) {
				__u32 seen = (__u32)(rl_now(cfg) >> CT_SEEN_SHIFT);
				if (closing) {
					struct ct_val cv = *ct;
					ct_move(&p, &cv, 0);
					stat_inc(STAT_CT_DEMOTE);
				} else if (ct->seen != seen) {
					ct->seen = seen;
				}
			} else if (!syn && !closing) {
				struct ct_val cv = *ct;
				cv.seen = (__u32)(rl_now(cfg) >> CT_SEEN_SHIFT);
				if (ct_move(&p, &cv, 1))
					stat_inc(STAT_CT_PROMOTE_FAIL);
				else
					stat_inc(STAT_CT_PROMOTE);
			}
		} else {
			be = 0;
			if (in_est)
				ct_drop_est(&p);
		}
	}
	if (!be) {
		/* New flow (or a flow whose table entry was evicted: Maglev gives
		 * the same backend while the table is unchanged). */
		reason = rl_new_conn(&rl);
		if (!reason && vm->budget && !rl.established)
			reason = vip_budget_allow(vm->id);
		if (!reason && vm->guard)
			reason = vip_guard_allow(vm->id);
		if (reason)
			return verdict(reason);
		hash = flow_hash(&p.k);
		be = pick_backend(vm, hash, &be_id);
		if (!be)
			return verdict(STAT_V_DROP_NO_BACKEND);
		struct ct_val nv = {.backend = be_id, .vip = vm->id, .fw_gen = fw_gen, .flags = CT_F_VALID,
				     .hash = hash};
		ct_insert(&p, &nv);
		stat_inc(STAT_CT_INSERT);
		new_flow = 1;
	}

	count_traffic(&vip_stats, vm->id, bytes, new_flow);
	count_traffic(&backend_stats, be_id, bytes, new_flow);
	if (vm->flags & VIP_F_L2)
		return verdict(l2_forward(ctx, cfg, be));
	return verdict(encap(ctx, &p, cfg, be, hash));
}
