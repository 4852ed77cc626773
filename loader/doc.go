// Package loader loads infergate's XDP programs (bpf/balancer.c and
// bpf/decap.c, compiled by bpf2go into this package) and manages their maps.
// It knows nothing of policy: the node agent translates policy.Compiled into
// the calls below.
//
// Balancer (the node facing clients):
//
//	b, err := loader.LoadBalancer(loader.Config{...}, "/sys/fs/bpf/infergate") // "" = no pinning
//	defer b.Close()
//	l, err := loader.AttachXDP(b.Program(), ifindex, loader.XDPNative) // or XDPGeneric / XDPAuto
//
// Rules (firewall, source-based):
//
//	b.SetRules([]loader.Rule{{Deny: true, Prefixes: ..., Ports: ..., Protocol: 6}}, defaultDeny)
//
// builds the whole rule set into fresh inner maps and switches to it with one
// write, so a packet sees either the old set or the new one. Rule i counts
// into RuleCounters()[i]. Per source, the most specific prefix wins (host
// addresses go to a hash, others to an LPM trie); among rules on equally
// specific prefixes, the earlier rule wins; a rule whose port/protocol does
// not match falls through to rules on covering prefixes, then to the default.
//
// A packet that may open a connection (a TCP SYN, or any packet to a port
// without VIPs) meets the host-address rules first (one hash lookup, so a
// denied host is dropped about as cheaply as by xdp-filter). Other packets to
// a VIP port look the connection table up first: a tracked flow skips the
// whole firewall (host and prefix rules) while the rule set is the one it
// was last checked against; after each SetRules (a new rule-set generation)
// its next packet is checked again. Untracked packets meet all rules. Rule
// counters count every denied packet, every allowed packet to the stack, and
// the first packet per flow and generation of allowed VIP traffic.
//
// Client classes and per-client rate limits:
//
//	b.SetClasses(defaultLimits, []loader.Class{{Prefixes: ..., Limits: ...}})
//
// Packets and new connections per second per client, a client being the
// source address masked to Config.AggregateV4/AggregateV6 bits. Zero rate =
// unlimited. The limiter is GCRA on jiffies (calibrated to CLOCK_MONOTONIC_COARSE; one scheduler
// tick, 1-4 ms), so a class's tolerance is raised to at least one tick plus
// one packet interval. Every client gets a bucket once any class has a limit
// (it caches the client's class). Buckets of new clients live in an LRU
// table that a spoofed flood may churn; a client whose packet hits an
// established flow moves to a table floods cannot evict (an array of
// 2 x Config.MaxEstablishedClients slots, rounded up to a power of two, that
// the data plane searches by open addressing without a hash-map call), which
// ExpireIdleClients prunes (call it periodically).
//
// Steering: backends are addressed by caller-chosen ids < Config.MaxBackends,
// VIPs by caller-chosen ids < Config.MaxVIPs (ids index the statistics).
//
//	b.SetBackend(id, loader.Backend{Addr: ..., MAC: ..., Draining: false})
//	b.UpsertVIP(loader.VIP{ID: 3, Addr: ..., Port: 443, Protocol: 6, L2: false}, table)
//
// table is a Maglev lookup table of backend ids (github.com/infergate/
// infergate/maglev builds it; length a prime >= 100 x backends). UpsertVIP
// swaps the VIP's table atomically; established flows keep their backend
// through the connection tables (LRU hashes shared by all CPUs, so a flow
// keeps its backend whichever CPU RSS gives it; one per address family,
// Config.MaxFlows and MaxFlows6 entries, IPv4 with a 16-byte key). A draining backend takes no new flows
// (rebuild the table without it too) and keeps its established ones; a
// deleted backend loses them.
//
// How a flow keeps its backend across table changes and evictions: a new
// flow lives in the LRU table, which floods of new flows may churn; the
// first packet past its handshake (not a SYN, FIN or RST) moves it to an
// established-flow table per family (Config.MaxEstablishedFlows), a plain
// hash the kernel never evicts, so neither table pressure nor a long idle
// time nor any number of Maglev rebuilds moves it. Keeping old tables
// instead would bound the history a flow may span; a second-chance lookup
// cannot tell which past table an evicted flow was steered by. The cost is
// an explicit expiry: ExpireIdleFlows deletes flows idle for longer than
// the caller's timeout (the agent: one hour), and a client's FIN or RST
// moves its flow back to the LRU table. When the established table is full,
// flows stay in the LRU table (counted as conntrack_promote_fail).
//
// Backends and VIPs read both tables back (after adopting pinned maps, what
// the previous owner wrote), so a restarted agent keeps the backend ids that
// established flows refer to.
//
// Fragments: any fragment is checked by the firewall on address and
// protocol (port rules cannot match a later fragment) and charged to the
// packet rate; fragments to a VIP address are dropped (counted), others go
// to the stack. Truncated or malformed frames (lengths, IPv4 options, IPv6
// option TLVs, more than 2 VLAN tags or 6 IPv6 extension headers) are
// dropped and counted.
//
// Forwarding: IPIP/IP6IP6 to the backend (outer source from
// Config.EncapSourceV4/V6 with the flow hash in the host bits; next-hop MAC
// per backend or Config.GatewayMAC), or L2 DSR (VIP.L2: destination MAC =
// backend MAC). Traffic for no VIP that passes the firewall and limits goes to
// the kernel stack (XDP_PASS).
//
// Observability: Stats (verdict/reason counters summed over possible CPUs),
// VIPStats, BackendStats, RuleCounters, Fill (entries in the connection and
// rate-limit tables, counted by iterating: O(entries), for scrapes, not for
// the packet path).
//
// Decap (GPU hosts): LoadDecap, SetLocalVIPs, SetTrustedSources, DecapStats.
package loader
