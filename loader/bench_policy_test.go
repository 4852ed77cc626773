package loader

import "testing"

// The established L2 path (frame reusable, so timed by repetition) with no
// policy, host-address rules, rate-limit classes, or both: what each costs.

func BenchmarkEstablishedFlowByPolicy(b *testing.B) {
	for _, mode := range []string{"bare", "rules", "classes", "both"} {
		b.Run(mode, func(b *testing.B) {
			bl := newBalancer(b, testConfig())
			standardSetup(b, bl)
			if mode == "rules" || mode == "both" {
				bl.SetRules([]Rule{{Deny: true, Prefixes: pfx("198.18.9.9/32")}}, false)
			}
			if mode == "classes" || mode == "both" {
				bl.SetClasses(Limits{PacketsPerSecond: 1e9, PacketBurst: 1e9}, nil)
			}
			bl.SetBackend(20, Backend{Addr: backendAddr(0), MAC: []byte{2, 0, 0, 0, 0xbe, 1}})
			bl.UpsertVIP(VIP{ID: 6, Addr: vip4.Addr, Port: 8443, Protocol: 6, L2: true}, []uint32{20})
			p := tcp("198.18.5.5", "198.18.0.10", 40000, 8443)
			p.syn, p.ack = false, true
			pkt := p.build(b)
			run(b, bl.Program(), pkt)
			run(b, bl.Program(), pkt)
			benchRepeat(b, bl.Program(), pkt, xdpTx)
		})
	}
}

// newFlowTable sizes the connection table of the new-flow benchmarks.
var newFlowTable uint32 = 1 << 20

// New flows (IPIP) with no policy, host and prefix rules, rate-limit
// classes, or both; a fresh 1M-slot connection table per b.N round.
func BenchmarkNewFlowByPolicy(b *testing.B) {
	for _, mode := range []string{"bare", "rules", "classes", "both"} {
		b.Run(mode, func(b *testing.B) {
			cfg := testConfig()
			cfg.MaxFlows = newFlowTable
			bl := newBalancer(b, cfg)
			standardSetup(b, bl)
			if mode == "rules" || mode == "both" {
				bl.SetRules([]Rule{{Deny: true, Prefixes: pfx("198.18.9.9/32")}, {Deny: true, Prefixes: pfx("198.18.100.0/24")}}, false)
			}
			if mode == "classes" || mode == "both" {
				bl.SetClasses(Limits{PacketsPerSecond: 1e9, PacketBurst: 1e9, NewConnsPerSecond: 1e9, NewConnBurst: 1e9}, nil)
			}
			tmpl := tcp("198.19.0.0", "198.18.0.10", 0, 443).build(b)
			benchSingle(b, bl.Program(), func(i int) []byte { return flowPacket(tmpl, i, true) }, xdpTx)
		})
	}
}
