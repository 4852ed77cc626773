package loader

import (
	"net/netip"
	"testing"
)

func pfx(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, netip.MustParsePrefix(x))
	}
	return out
}

func TestFirewall(t *testing.T) {
	b := newBalancer(t, testConfig())
	standardSetup(t, b)
	rules := []Rule{
		0: {Deny: true, Prefixes: pfx("198.18.9.9/32")},
		1: {Deny: true, Prefixes: pfx("198.18.10.0/24")},
		2: {Deny: false, Prefixes: pfx("198.18.10.5/32")}, // hole in rule 1
		3: {Deny: true, Prefixes: pfx("198.18.11.0/24"), Ports: []uint16{22, 443}, Protocol: 6},
		4: {Deny: true, Prefixes: pfx("2001:db8:9::9/128")},
		5: {Deny: true, Prefixes: pfx("2001:db8:a::/48")},
		6: {Deny: false, Prefixes: pfx("2001:db8:a:1::/64")},
		7: {Deny: true, Prefixes: pfx("198.18.12.0/24"), Protocol: 17},
		8: {Deny: true, Prefixes: pfx("198.18.13.0/25")},
		9: {Deny: true, Prefixes: pfx("198.18.13.128/25"), Ports: []uint16{443}},
	}
	if err := b.SetRules(rules, false); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		pkt    pktSpec
		want   uint32
		reason Stat
		rule   int // -1: none
	}{
		{"exact v4 deny", tcp("198.18.9.9", "198.18.0.10", 1000, 443), xdpDrop, StatDropFirewallRule, 0},
		{"exact v4 neighbour", tcp("198.18.9.8", "198.18.0.10", 1000, 443), xdpTx, StatTxIPIP, -1},
		{"prefix v4 deny", tcp("198.18.10.77", "198.18.0.99", 1000, 80), xdpDrop, StatDropFirewallRule, 1},
		{"exact allow inside denied prefix", tcp("198.18.10.5", "198.18.0.10", 1000, 443), xdpTx, StatTxIPIP, 2},
		{"port rule matches", tcp("198.18.11.3", "198.18.0.10", 1000, 443), xdpDrop, StatDropFirewallRule, 3},
		{"port rule second port", tcp("198.18.11.3", "198.18.0.99", 1000, 22), xdpDrop, StatDropFirewallRule, 3},
		{"port rule other port", tcp("198.18.11.3", "198.18.0.99", 1000, 80), xdpPass, StatPassStack, -1},
		{"port rule other protocol", udp("198.18.11.3", "198.18.0.99", 1000, 443), xdpPass, StatPassStack, -1},
		{"exact v6 deny", tcp("2001:db8:9::9", "2001:db8::10", 1000, 443), xdpDrop, StatDropFirewallRule, 4},
		{"prefix v6 deny", tcp("2001:db8:a:2::1", "2001:db8::10", 1000, 443), xdpDrop, StatDropFirewallRule, 5},
		{"longer v6 allow", tcp("2001:db8:a:1::1", "2001:db8::10", 1000, 443), xdpTx, StatTxIPIP, 6},
		{"v6 outside", tcp("2001:db8:b::1", "2001:db8::10", 1000, 443), xdpTx, StatTxIPIP, -1},
		{"protocol rule udp", udp("198.18.12.1", "198.18.0.11", 1000, 53), xdpDrop, StatDropFirewallRule, 7},
		{"protocol rule tcp passes", tcp("198.18.12.1", "198.18.0.10", 1000, 443), xdpTx, StatTxIPIP, -1},
		{"first half /25", tcp("198.18.13.1", "198.18.0.99", 1000, 80), xdpDrop, StatDropFirewallRule, 8},
		{"second half /25 port", tcp("198.18.13.200", "198.18.0.10", 1000, 443), xdpDrop, StatDropFirewallRule, 9},
		{"second half /25 other port", tcp("198.18.13.200", "198.18.0.99", 1000, 80), xdpPass, StatPassStack, -1},
	}
	for _, c := range cases {
		before := stats(t, b)
		rb, _ := b.RuleCounters()
		ret, _ := run(t, b.Program(), c.pkt.build(t))
		if ret != c.want {
			t.Errorf("%s: verdict %d, want %d", c.name, ret, c.want)
			continue
		}
		after := stats(t, b)
		if d := after[c.reason] - before[c.reason]; d != 1 {
			t.Errorf("%s: counter %s moved by %d", c.name, c.reason, d)
		}
		ra, _ := b.RuleCounters()
		for i := range ra {
			d := ra[i] - rb[i]
			if (i == c.rule) != (d == 1) || d > 1 {
				t.Errorf("%s: rule %d counter moved by %d", c.name, i, d)
			}
		}
	}
}

func TestFirewallDefaultDenyAndSwap(t *testing.T) {
	b := newBalancer(t, testConfig())
	standardSetup(t, b)
	allowed := tcp("198.18.20.1", "198.18.0.10", 1000, 443)
	other := tcp("198.18.21.1", "198.18.0.10", 1000, 443)
	if err := b.SetRules([]Rule{{Prefixes: pfx("198.18.20.0/24")}}, true); err != nil {
		t.Fatal(err)
	}
	if ret, _ := run(t, b.Program(), allowed.build(t)); ret != xdpTx {
		t.Fatalf("allowed source: verdict %d", ret)
	}
	if ret, _ := run(t, b.Program(), other.build(t)); ret != xdpDrop {
		t.Fatalf("default deny: verdict %d", ret)
	}
	if s := stats(t, b); s[StatDropFirewallDefault] != 1 {
		t.Fatalf("drop_fw_default %d", s[StatDropFirewallDefault])
	}
	// The established flow is re-checked after a rule-set switch: a new
	// deny applies to it on its next packet.
	est := allowed
	est.syn, est.ack = false, true
	if ret, _ := run(t, b.Program(), est.build(t)); ret != xdpTx {
		t.Fatalf("established before switch: verdict %d", ret)
	}
	if err := b.SetRules([]Rule{{Deny: true, Prefixes: pfx("198.18.20.1/32")}}, false); err != nil {
		t.Fatal(err)
	}
	if ret, _ := run(t, b.Program(), est.build(t)); ret != xdpDrop {
		t.Fatalf("established after deny: verdict %d", ret)
	}
	if ret, _ := run(t, b.Program(), other.build(t)); ret != xdpTx {
		t.Fatalf("default allow after switch: verdict %d", ret)
	}
	// Empty rule set: everything allowed, no lookups installed.
	if err := b.SetRules(nil, false); err != nil {
		t.Fatal(err)
	}
	if ret, _ := run(t, b.Program(), est.build(t)); ret != xdpTx {
		t.Fatalf("after clearing rules: verdict %d", ret)
	}
}

func TestCompileRulesLimits(t *testing.T) {
	var r []Rule
	for i := 0; i < EntriesPerPrefix+1; i++ {
		r = append(r, Rule{Prefixes: pfx("198.18.0.0/16"), Ports: []uint16{uint16(i + 1)}})
	}
	if _, err := compileRules(r); err == nil {
		t.Fatal("a prefix with more entries than fit was accepted")
	}
	if _, err := compileRules([]Rule{{}}); err == nil {
		t.Fatal("a rule without prefixes was accepted")
	}
	// Covering prefixes' entries follow the prefix's own.
	tb, err := compileRules([]Rule{
		{Deny: true, Prefixes: pfx("198.18.0.0/16"), Protocol: 17},
		{Prefixes: pfx("198.18.1.0/24"), Ports: []uint16{80}},
	})
	if err != nil {
		t.Fatal(err)
	}
	v := tb.lpm4[balancerLpm4Key{Prefixlen: 24, Addr: addrWords(netip.MustParseAddr("198.18.1.0"))[0]}]
	if v.Count != 2 || v.E[0].RuleId != 1 || v.E[1].RuleId != 0 || v.E[1].Proto != 17 {
		t.Fatalf("entries of 198.18.1.0/24: %+v", v)
	}
}
