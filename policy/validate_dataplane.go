package policy

import (
	"fmt"
	"net/netip"
)

// dataplane checks the XDP side: attach points, firewall, rate limits, VIPs.
func (v *validator) dataplane(dp *Dataplane, pools map[string]int) {
	const p = "spec.dataplane"
	v.interfaces(p, dp)
	v.enum(p+".xdpMode", dp.XDPMode, xdpModes, true)
	v.firewall(p+".firewall", &dp.Firewall)
	v.rateLimits(p+".rateLimits", &dp.RateLimits)
	v.vips(p+".vips", dp.VIPs, pools)
	v.localVIPs(p+".localVIPs", dp.LocalVIPs)
	v.decapSources(p+".decapSources", dp.DecapSources)
	v.bgp(p+".bgp", dp.BGP, dp.VIPs)
}

// decapSources checks the balancers' encapsulation sources a GPU host
// trusts.
func (v *validator) decapSources(p string, sources []string) {
	seen := uniq{}
	for i, s := range sources {
		sp := idx(p, i)
		v.source(sp, s)
		if pfx, err := parseSource(s); err == nil {
			v.unique(seen, sp, pfx.String(), "decapsulation source")
		}
	}
}

func (v *validator) interfaces(p string, dp *Dataplane) {
	seenIf := uniq{}
	for i, n := range dp.Interfaces {
		v.ifname(idx(p+".interfaces", i), n)
		v.unique(seenIf, idx(p+".interfaces", i), n, "interface")
	}
	seenDecap := uniq{}
	for i, n := range dp.DecapInterfaces {
		v.ifname(idx(p+".decapInterfaces", i), n)
		v.unique(seenDecap, idx(p+".decapInterfaces", i), n, "interface")
	}
}

func (v *validator) firewall(p string, fw *Firewall) {
	v.enum(p+".defaultAction", fw.DefaultAction, fwActions, true)
	seen := uniq{}
	for i, r := range fw.Rules {
		rp := idx(p+".rules", i)
		v.name(rp+".name", r.Name)
		v.unique(seen, rp+".name", r.Name, "rule")
		v.enum(rp+".action", r.Action, fwActions, false)
		v.enum(rp+".protocol", r.Protocol, ruleProtocols, true)
		if len(r.Sources) == 0 {
			v.add(rp+".sources", "needs at least one address or prefix")
		}
		for j, s := range r.Sources {
			v.source(idx(rp+".sources", j), s)
		}
		for j, port := range r.Ports {
			v.port(idx(rp+".ports", j), port, false)
		}
		if len(r.Ports) > 0 && r.Protocol == "icmp" {
			v.add(rp+".ports", "icmp has no ports")
		}
	}
}

func (v *validator) rateLimits(p string, rl *RateLimits) {
	if rl.AggregateV4 < 0 || rl.AggregateV4 > 32 {
		v.add(p+".aggregateV4", "%d is not an IPv4 prefix length (1-32)", rl.AggregateV4)
	}
	if rl.AggregateV6 < 0 || rl.AggregateV6 > 128 {
		v.add(p+".aggregateV6", "%d is not an IPv6 prefix length (1-128)", rl.AggregateV6)
	}
	seen := uniq{}
	if len(rl.Classes) > MaxClasses {
		v.add(p+".classes", "has %d classes; at most %d", len(rl.Classes), MaxClasses)
	}
	// A prefix belongs to one class: the kernel's longest-prefix match
	// could only keep one of them.
	classPrefixes := uniq{}
	for i, c := range rl.Classes {
		cp := idx(p+".classes", i)
		v.name(cp+".name", c.Name)
		v.unique(seen, cp+".name", c.Name, "class")
		if len(c.Sources) == 0 {
			v.add(cp+".sources", "needs at least one address or prefix")
		}
		for j, s := range c.Sources {
			sp := idx(cp+".sources", j)
			v.source(sp, s)
			if pfx, err := parseSource(s); err == nil {
				v.unique(classPrefixes, sp, pfx.String(), "class source")
			}
		}
		v.rate(cp+".packetsPerSecond", c.PacketsPerSecond)
		v.rate(cp+".newConnsPerSecond", c.NewConnsPerSecond)
		v.burst(cp+".packetBurst", c.PacketBurst, c.PacketsPerSecond, "packetsPerSecond")
		v.burst(cp+".newConnBurst", c.NewConnBurst, c.NewConnsPerSecond, "newConnsPerSecond")
	}
}

func (v *validator) vips(p string, vips []VIP, pools map[string]int) {
	seen := uniq{}
	services := uniq{}
	for i, vip := range vips {
		vp := idx(p, i)
		v.name(vp+".name", vip.Name)
		v.unique(seen, vp+".name", vip.Name, "VIP")
		v.vipAddr(vp+".address", vip.Address)
		v.port(vp+".port", vip.Port, false)
		v.enum(vp+".protocol", vip.Protocol, vipProtocols, true)
		v.enum(vp+".forwarding", vip.Forwarding, forwardings, true)
		v.ref(vp+".pool", vip.Pool, pools, "pool")
		v.rate(vp+".newConnsPerSecond", vip.NewConnsPerSecond)
		v.burst(vp+".newConnBurst", vip.NewConnBurst, vip.NewConnsPerSecond, "newConnsPerSecond")
		v.rate(vp+".newFlowBudget", vip.NewFlowBudget)
		v.rate(vp+".newFlowBudgetBurst", vip.NewFlowBudgetBurst) // alone it bursts over the default rate
		if a, err := parseAddr(vip.Address); err == nil {
			proto := vip.Protocol
			if proto == "" {
				proto = DefaultVIPProtocol
			}
			v.unique(services, vp, fmt.Sprintf("%s/%s", netip.AddrPortFrom(a, uint16(vip.Port)), proto), "VIP address/port/protocol")
		}
	}
}

func (v *validator) localVIPs(p string, addrs []string) {
	seen := uniq{}
	for i, s := range addrs {
		lp := idx(p, i)
		v.vipAddr(lp, s)
		if a, err := parseAddr(s); err == nil {
			v.unique(seen, lp, a.String(), "local VIP")
		}
	}
}
