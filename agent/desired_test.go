package agent

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/infergate/infergate/policy"
)

func TestBuildRefusesBadState(t *testing.T) {
	res := onLinkResolver(testBackends...)
	// One backend is routed through a gateway, not on-link.
	routed := netip.MustParseAddr("198.18.9.9")
	res.hops[routed] = Hop{Ifindex: 2, Ifname: "eth0", SrcMAC: testSrcMAC, MAC: testGwMAC, Source: netip.MustParseAddr("198.18.0.1")}
	other := netip.MustParseAddr("198.18.8.8")
	res.hops[other] = Hop{Ifindex: 3, Ifname: "eth1", SrcMAC: testSrcMAC, MAC: testGwMAC, OnLink: true}
	cases := []struct {
		name   string
		mutate func(c *policy.Compiled)
		role   string
		want   []string // every fragment must appear
	}{
		{"unknown interface", func(c *policy.Compiled) { c.Dataplane.Interfaces = []string{"eth0", "nosuch0"} },
			RoleBalancer, []string{"spec.dataplane.interfaces[1]", `unknown interface "nosuch0"`}},
		{"unknown decap interface", func(c *policy.Compiled) { c.Dataplane.DecapInterfaces = []string{"nosuch1"} },
			RoleGPUHost, []string{"spec.dataplane.decapInterfaces[0]", `"nosuch1"`}},
		{"duplicate VIP", func(c *policy.Compiled) {
			v := c.Dataplane.VIPs[0]
			v.Name = "again"
			c.Dataplane.VIPs = append(c.Dataplane.VIPs, v)
		}, RoleBalancer, []string{"spec.dataplane.vips[1]", "duplicate VIP 198.18.100.1:80/tcp", "llm"}},
		{"backend without route", func(c *policy.Compiled) { c.Pools[0].Backends[1].Address = netip.MustParseAddr("198.18.50.50") },
			RoleBalancer, []string{"spec.pools[0].backends[1]", "gpub (198.18.50.50) has no route"}},
		{"zero-weight-only pool", func(c *policy.Compiled) {
			for i := range c.Pools[0].Backends {
				c.Pools[0].Backends[i].Weight = 0
			}
		}, RoleBalancer, []string{"spec.dataplane.vips[0]", "pool gpus has no backend with a positive weight"}},
		{"all draining pool", func(c *policy.Compiled) {
			for i := range c.Pools[0].Backends {
				c.Pools[0].Backends[i].Draining = true
			}
		}, RoleBalancer, []string{"pool gpus has no backend with a positive weight"}},
		{"family mismatch", func(c *policy.Compiled) { c.Pools[0].Backends[0].Address = netip.MustParseAddr("2001:db8::1") },
			RoleBalancer, []string{"spec.pools[0].backends[0]", "different address families"}},
		{"l2 to a routed backend", func(c *policy.Compiled) {
			c.Dataplane.VIPs[0].Forwarding = policy.ForwardL2
			c.Pools[0].Backends[0].Address = routed
		}, RoleBalancer, []string{"spec.pools[0].backends[0]", "not on-link", "l2 forwarding"}},
		{"backend behind another interface", func(c *policy.Compiled) { c.Pools[0].Backends[2].Address = other },
			RoleBalancer, []string{"spec.pools[0].backends[2]", "reached through eth1, which the balancer is not attached to"}},
		{"repeated backend address", func(c *policy.Compiled) { c.Pools[0].Backends[1].Address = c.Pools[0].Backends[0].Address },
			RoleBalancer, []string{"spec.pools[0].backends[1]", "repeats address 198.18.1.1"}},
		{"nine-port rule", func(c *policy.Compiled) {
			c.Dataplane.Rules = []policy.CompiledRule{{Name: "ports", Deny: true, Protocol: policy.ProtoTCP,
				Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.66.0/24")}, Ports: []uint16{1, 2, 3, 4, 5, 6, 7, 8, 9}}}
		}, RoleBalancer, []string{"spec.dataplane.firewall.rules[0].sources[0]", "carries 9 firewall entries"}},
		{"several problems at once", func(c *policy.Compiled) {
			c.Dataplane.Interfaces = []string{"nosuch0"}
			c.Pools[0].Backends[1].Address = netip.MustParseAddr("198.18.50.50")
		}, RoleBalancer, []string{`"nosuch0"`, "198.18.50.50"}},
		{"unknown role", func(*policy.Compiled) {}, "router", []string{`unknown agent role "router"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := testCompiled()
			tc.mutate(c)
			_, err := Build(context.Background(), c, BuildOptions{Role: tc.role, Resolver: res, MaxBackends: 63})
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("err = %v, want *InvalidError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	// The same resolver accepts the unchanged policy: the refusals above
	// come from the mutations, not the fixture.
	if _, err := Build(context.Background(), testCompiled(), BuildOptions{Role: RoleBalancer, Resolver: res}); err != nil {
		t.Fatal(err)
	}
}

func TestBuildWeights(t *testing.T) {
	res := onLinkResolver(testBackends...)
	c := testCompiled()
	c.Pools[0].LoadReports = true
	c.Pools[0].HealthCheck = &policy.CompiledHealthCheck{Interval: 1, Timeout: 1, Rise: 1, Fall: 1}
	ov := map[string]Override{
		"gpus/gpua": {Weight: 40, HasWeight: true},
		"gpus/gpub": {ReportDrain: true, Weight: 70, HasWeight: true},
	}
	d := buildFor(t, c, res, ov)
	if d.Effective["gpus/gpua"] != 40 || d.Effective["gpus/gpub"] != 0 || d.Effective["gpus/gpuc"] != 100 {
		t.Fatalf("effective = %v", d.Effective)
	}
	// Every backend failing its health check: the pool keeps its
	// configured weights (panic mode) rather than steer nothing.
	ov = map[string]Override{"gpus/gpua": {Unhealthy: true}, "gpus/gpub": {Unhealthy: true}, "gpus/gpuc": {Unhealthy: true}}
	d = buildFor(t, c, res, ov)
	if len(d.Panic) != 1 || d.Effective["gpus/gpuc"] != 100 {
		t.Fatalf("panic = %v, effective = %v", d.Panic, d.Effective)
	}
	// Every backend drained by its load report, behind two VIPs: each VIP
	// spreads over all (weight 1), and the pool is listed once.
	c.Dataplane.VIPs = append(c.Dataplane.VIPs, c.Dataplane.VIPs[0])
	c.Dataplane.VIPs[1].Port = 443
	ov = map[string]Override{"gpus/gpua": {ReportDrain: true}, "gpus/gpub": {ReportDrain: true}, "gpus/gpuc": {ReportDrain: true}}
	d = buildFor(t, c, res, ov)
	if w := d.VIPs[VIPKey{netip.MustParseAddr("198.18.100.1"), 443, 6}].Weights[netip.MustParseAddr(testBackends[0])]; len(d.Panic) != 1 || w != 1 {
		t.Fatalf("panic = %v, effective = %v", d.Panic, d.Effective)
	}
	// A neighbour that does not answer takes the backend out of new flows
	// without refusing the policy.
	h := res.hops[netip.MustParseAddr(testBackends[0])]
	h.MAC = nil
	res.hops[netip.MustParseAddr(testBackends[0])] = h
	d = buildFor(t, testCompiled(), res, nil)
	if w := d.VIPs[VIPKey{netip.MustParseAddr("198.18.100.1"), 80, 6}].Weights[netip.MustParseAddr(testBackends[0])]; w != 0 {
		t.Fatalf("unresolved backend has weight %d", w)
	}
}

func TestDeniedBackends(t *testing.T) {
	c := testCompiled()
	if got := deniedBackends(c); got != nil {
		t.Fatalf("default allow: %v", got)
	}
	c.Dataplane.DefaultDeny = true
	c.Dataplane.Rules = append(c.Dataplane.Rules,
		policy.CompiledRule{Name: "gpus", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.1.0/30")}},
		policy.CompiledRule{Name: "no-gpu3", Deny: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.1.3/32")}},
		policy.CompiledRule{Name: "web-only", Prefixes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, Ports: []uint16{443}, Protocol: 6})
	got := deniedBackends(c)
	if len(got) != 1 || got[0] != "gpus/gpuc" {
		t.Fatalf("denied = %v, want [gpus/gpuc]", got)
	}
}

func TestProblemLines(t *testing.T) {
	doc := policyDoc(100)
	ta := newTestAgent(t, nil, nil)
	bad := strings.Replace(string(doc), "198.18.1.2", "198.18.77.2", 1)
	bad = strings.Replace(bad, "[eth0]", "[eth0, nosuch3]", 1)
	_, err := ta.Apply(context.Background(), []byte(bad), false)
	var ie *InvalidError
	if !errors.As(err, &ie) || len(ie.Problems) != 2 {
		t.Fatalf("err = %v", err)
	}
	lines := strings.Split(bad, "\n")
	for _, p := range ie.Problems {
		if p.Line == 0 {
			t.Fatalf("%s has no line", p.Path)
		}
		text := lines[p.Line-1]
		if strings.Contains(p.Path, "backends[1]") && !strings.Contains(text, "gpu2") {
			t.Errorf("%s at line %d: %q", p.Path, p.Line, text)
		}
		if strings.Contains(p.Path, "interfaces") && !strings.Contains(text, "interfaces") {
			t.Errorf("%s at line %d: %q", p.Path, p.Line, text)
		}
	}
}

// The Maglev weights combine static and load weights by score.Effective,
// as the L7 picker does: the operator's 0 stays 0 whatever the report
// says, and 100:900 stays 1:9 when both hosts report the same load.
func TestBuildWeightsKeepStaticShares(t *testing.T) {
	res := onLinkResolver(testBackends...)
	c := testCompiled()
	c.Pools[0].LoadReports = true
	c.Pools[0].Backends[0].Weight = 100
	c.Pools[0].Backends[1].Weight = 900
	c.Pools[0].Backends[2].Weight = 0
	ov := map[string]Override{
		"gpus/gpua": {Weight: 60, HasWeight: true},
		"gpus/gpub": {Weight: 60, HasWeight: true},
		"gpus/gpuc": {Weight: 500, HasWeight: true},
	}
	d := buildFor(t, c, res, ov)
	if a, b, z := d.Effective["gpus/gpua"], d.Effective["gpus/gpub"], d.Effective["gpus/gpuc"]; a != 60 || b != 540 || z != 0 {
		t.Fatalf("effective a=%d b=%d c=%d, want 60, 540 (1:9) and 0", a, b, z)
	}
}
