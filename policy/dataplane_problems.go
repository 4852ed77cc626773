package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// FirewallEntriesPerPrefix is FW_ENTRIES_PER_PREFIX in
// bpf/include/consts.h: how many (rule, protocol, port) entries the kernel
// keeps for one source prefix, the entries of covering prefixes included.
const FirewallEntriesPerPrefix = 8

// DataplaneProblems reports what the XDP data plane cannot do as declared,
// judged from the compiled form alone, with no node facts: a VIP whose pool
// would steer nothing or holds backends of the other address family or twice
// the same address, a VIP that is also a backend, a source carrying more
// firewall entries than the kernel keeps, and a firewall rule that an earlier
// rule with the opposite action already decides for the same source.
//
// Validate runs it, so `policy validate` refuses what the agent would; the
// agent runs it again on the compiled policies it is handed, which may have
// been built in Go. Paths are those of the document; lines are left to the
// caller.
func DataplaneProblems(c *Compiled) []Problem {
	var ps problems
	firewallProblems(&ps, c.Dataplane.Rules)
	vipProblems(&ps, c)
	return ps.list
}

// fwEntry is one (protocol, port) match of a rule on one source prefix; 0
// is any, as in the kernel's fw_entry.
type fwEntry struct {
	rule  int
	proto uint8
	port  uint16
}

// covers reports whether every packet e matches, a matches too.
func (a fwEntry) covers(e fwEntry) bool {
	return (a.proto == ProtoAny || a.proto == e.proto) && (a.port == 0 || a.port == e.port)
}

// fwSource is where a prefix is first named: rules[rule].sources[source].
type fwSource struct{ rule, source int }

func firewallProblems(ps *problems, rules []CompiledRule) {
	const p = "spec.dataplane.firewall.rules"
	own := map[netip.Prefix][]fwEntry{}
	first := map[netip.Prefix]fwSource{}
	var order []netip.Prefix
	for i, r := range rules {
		ports := r.Ports
		if len(ports) == 0 {
			ports = []uint16{0}
		}
		for j, pfx := range r.Prefixes {
			pfx = pfx.Masked()
			if _, ok := own[pfx]; !ok {
				order = append(order, pfx)
				first[pfx] = fwSource{i, j}
			}
			before := own[pfx]
			var mine []fwEntry
			for _, port := range ports {
				mine = append(mine, fwEntry{rule: i, proto: r.Protocol, port: port})
			}
			if len(before) <= FirewallEntriesPerPrefix {
				// Past the bound the source is refused anyway; this keeps
				// the comparison to a few entries however many rules there are.
				contradiction(ps, rules, i, j, pfx, before, mine)
			}
			own[pfx] = append(before, mine...)
		}
	}
	// The kernel stores, per prefix, its own entries and then those of every
	// covering prefix (longest first), exactly as loader.compileRules does.
	lens := map[bool][]int{}
	for _, pfx := range order {
		v4 := pfx.Addr().Is4()
		if !slices.Contains(lens[v4], pfx.Bits()) {
			lens[v4] = append(lens[v4], pfx.Bits())
		}
	}
	for _, pfx := range order {
		n := len(own[pfx])
		from := ruleNames(rules, own[pfx])
		for _, l := range lens[pfx.Addr().Is4()] {
			if l >= pfx.Bits() {
				continue
			}
			q, _ := pfx.Addr().Prefix(l)
			n += len(own[q])
			from = append(from, ruleNames(rules, own[q])...)
		}
		if n > FirewallEntriesPerPrefix {
			at := first[pfx]
			ps.add(idx(idx(p, at.rule)+".sources", at.source),
				"source %s carries %d firewall entries (one per port of each rule that matches it, covering prefixes' rules included: %s); the data plane keeps at most %d",
				sourceString(pfx), n, strings.Join(slices.Compact(from), ", "), FirewallEntriesPerPrefix)
		}
	}
}

// contradiction reports rule i when every packet it would match from pfx is
// already decided by earlier rules, one of them with the opposite action: the
// first matching entry wins, so rule i is dead there and the document says
// two things about the same traffic. A later rule wholly decided by earlier
// rules of the same action is only redundant, and accepted.
func contradiction(ps *problems, rules []CompiledRule, i, j int, pfx netip.Prefix, before, mine []fwEntry) {
	var against []string
	for _, e := range mine {
		k := slices.IndexFunc(before, func(b fwEntry) bool { return b.rule < i && b.covers(e) })
		if k < 0 {
			return
		}
		if d := rules[before[k].rule]; d.Deny != rules[i].Deny {
			against = append(against, fmt.Sprintf("%q (rules[%d])", d.Name, before[k].rule))
		}
	}
	if len(against) == 0 {
		return
	}
	verb, other := "allows", "denies"
	if rules[i].Deny {
		verb, other = "denies", "allows"
	}
	slices.Sort(against)
	ps.add(idx(idx("spec.dataplane.firewall.rules", i)+".sources", j),
		"rule %q %s %s, which %s already %s for every protocol and port it names; the first matching rule decides, so this one never applies",
		rules[i].Name, verb, sourceString(pfx), strings.Join(slices.Compact(against), " and "), other)
}

func ruleNames(rules []CompiledRule, es []fwEntry) []string {
	var out []string
	for _, e := range es {
		n := rules[e.rule].Name
		if len(out) == 0 || out[len(out)-1] != n {
			out = append(out, n)
		}
	}
	return out
}

// vipProblems checks each VIP against its pool the way the balancer keys its
// maps: by address, one family per VIP table.
func vipProblems(ps *problems, c *Compiled) {
	backendAt := map[netip.Addr]string{}
	for pi, p := range c.Pools {
		for bi, b := range p.Backends {
			if _, ok := backendAt[b.Address]; !ok && b.Address.IsValid() {
				backendAt[b.Address] = idx(idx("spec.pools", pi)+".backends", bi)
			}
		}
	}
	for vi, v := range c.Dataplane.VIPs {
		path := idx("spec.dataplane.vips", vi)
		if at, ok := backendAt[v.Address]; ok {
			// The balancer would tunnel the VIP's packets to itself.
			ps.add(path+".address", "%s is also the address of backend %s; a VIP must not be a backend", v.Address, at)
		}
		if v.Pool < 0 || v.Pool >= len(c.Pools) {
			continue // the agent reports a dangling index; Validate checks names
		}
		p := c.Pools[v.Pool]
		if !steers(p) {
			ps.add(path, "VIP %s: pool %s has no backend with a positive weight that is not draining; it would steer nothing", v.Name, p.Name)
		}
		seen := map[netip.Addr]bool{}
		for bi, b := range p.Backends {
			bpath := idx(idx("spec.pools", v.Pool)+".backends", bi)
			if b.Address.Is4() != v.Address.Is4() {
				ps.add(bpath, "backend %s (%s) and VIP %s (%s) are of different address families; IPIP and L2 forwarding keep the family", b.Name, b.Address, v.Name, v.Address)
				continue
			}
			if seen[b.Address] {
				ps.add(bpath, "backend %s repeats address %s in pool %s, which VIP %s steers to; the balancer keys backends by address", b.Name, b.Address, p.Name, v.Name)
				continue
			}
			seen[b.Address] = true
		}
	}
}

// steers reports whether a pool has a backend that may take new flows by
// its configuration alone.
func steers(p CompiledPool) bool {
	for _, b := range p.Backends {
		if b.Weight > 0 && !b.Draining {
			return true
		}
	}
	return false
}
