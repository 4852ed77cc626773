package loader

import (
	"testing"
)

// spoofedSYNs builds n SYNs to dst:dport, each from its own source in
// 198.19.0.0/16 (as a --rand-source flood sends).
func spoofedSYNs(t *testing.T, dst string, dport uint16, n int) [][]byte {
	t.Helper()
	tmpl := tcp("198.19.0.0", dst, 7, dport).build(t)
	var out [][]byte
	for i := 0; i < n; i++ {
		p := append([]byte(nil), tmpl...)
		p[28], p[29] = byte(i>>8), byte(i) // source address, low half
		out = append(out, p)
	}
	return out
}

// TestVIPNewFlowBudget: a spoofed-source SYN flood spends the VIP's new-flow
// budget and no more reaches the backends (the burst; the rate is too slow
// to add a token during the test), while a client known from an earlier
// established flow still opens new connections, and a VIP without a budget
// is not limited. No class has limits: the budget turns client tracking on.
func TestVIPNewFlowBudget(t *testing.T) {
	b := newBalancer(t, testConfig())
	standardSetup(t, b)
	const burst = 20
	v := vip4
	v.NewFlowBudget, v.NewFlowBudgetBurst = 1, burst
	if err := b.UpsertVIP(v, buildTable(t, ids(0, 4), nil)); err != nil {
		t.Fatal(err)
	}
	const T, D = xdpTx, xdpDrop
	// A real client completes a handshake before the flood: its ACK
	// promotes it to a known source.
	known := tcp("198.18.60.1", "198.18.0.10", 2000, 443)
	knownAck := known
	knownAck.syn, knownAck.ack = false, true
	wantVerdicts(t, "known client's first connection", verdicts(t, b, known, knownAck), T, T)

	s0 := stats(t, b)
	tx := 0
	for _, p := range spoofedSYNs(t, "198.18.0.10", 443, 2000) {
		if ret, _ := run(t, b.Program(), p); ret == xdpTx {
			tx++
		}
	}
	s1 := stats(t, b)
	budgetDrops := s1[StatDropVIPBudget] - s0[StatDropVIPBudget]
	t.Logf("spoofed SYNs: %d forwarded, %d dropped by the budget", tx, budgetDrops)
	// The known client's connection spent one token of the burst.
	if tx > burst || int(budgetDrops) != 2000-tx || tx < burst/2 {
		t.Fatalf("%d of 2000 spoofed SYNs forwarded, %d budget drops; budget burst %d", tx, budgetDrops, burst)
	}
	// The known client's new connections go through the spent budget.
	var again []pktSpec
	for p := uint16(2001); p < 2011; p++ {
		again = append(again, tcp("198.18.60.1", "198.18.0.10", p, 443))
	}
	wantVerdicts(t, "known client during the flood", verdicts(t, b, again...), T, T, T, T, T, T, T, T, T, T)
	// An unknown client meets the spent budget like the flood.
	wantVerdicts(t, "new client during the flood", verdicts(t, b, tcp("198.18.60.2", "198.18.0.10", 2000, 443)), D)
	// Another VIP without a budget is not limited.
	wantVerdicts(t, "VIP without a budget", verdicts(t, b, udp("198.18.60.3", "198.18.0.11", 1, 53)), T)

	// Removing the budget lifts it.
	v.NewFlowBudget, v.NewFlowBudgetBurst = 0, 0
	if err := b.UpsertVIP(v, buildTable(t, ids(0, 4), nil)); err != nil {
		t.Fatal(err)
	}
	wantVerdicts(t, "no budget", verdicts(t, b, tcp("198.18.60.4", "198.18.0.10", 2000, 443)), T)
	if b.conf.RlEnabled != 0 {
		t.Fatal("client tracking left on with no budget and no class limits")
	}
}
