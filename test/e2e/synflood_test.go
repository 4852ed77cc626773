package e2e

import (
	"context"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/privtest"
	"github.com/infergate/infergate/test/e2e/lab"
)

// Spoofed-source SYN flood: hping3 --rand-source from the attacker's
// namespace at VIP4, bounded by count and time.
const (
	spoofFloodCount   = 20000
	spoofFloodSeconds = 5
	spoofFloodGap     = "u100" // 10,000 packets/s at most
	// spoofBudget is the VIPs' new-flow budget per second (and burst) in
	// this test.
	spoofBudget = 200
	// spoofLegit is how many requests (one new connection each) the
	// legitimate client sends during the flood.
	spoofLegit = 100
	// spoofRaceSlack allows for two CPUs spending one token: the bucket is
	// updated without a lock.
	spoofRaceSlack = 1.25
)

var hpingSent = regexp.MustCompile(`(\d+) packets tra(?:ns)?mitted`)

// TestSpoofedSYNFloodBounded: during a spoofed-source SYN flood at VIP4, the
// balancer forwards at most the VIP's new-flow budget of it to the GPU hosts
// (the budget's burst plus its rate over the time elapsed, counted both as
// the VIP's new flows and as packets the GPU hosts decapsulated), drops the
// rest as drop_vip_budget, and a legitimate client known from an earlier
// connection opens every one of its new connections meanwhile.
func TestSpoofedSYNFloodBounded(t *testing.T) {
	l := sharedLab(t)
	privtest.Tools(t, "hping3", "timeout")
	o := standardPolicy()
	o.Name, o.NewFlowBudget = "syn-budget", spoofBudget
	apply(t, l, o)
	restoreStandard(t, l)

	d := dialer(t, l.Clients[0].NS)
	hc := d.HTTPClient(false, 10*time.Second)
	// The client completes a connection first: from then on it is known.
	if _, err := lab.Chat(ctxT(t, 10*time.Second), hc, lab.VIP4); err != nil {
		t.Fatalf("before the flood: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // the budget refills its burst

	gpuDecap := func() uint64 {
		var n uint64
		for _, g := range l.GPUs {
			st, err := l.Client(g.Name).Stats(ctxT(t, 5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			n += st.Verdicts["decapsulated"]
		}
		return n
	}
	vipFlows := func() uint64 {
		for _, v := range stats(t, l).VIPs {
			if v.Name == "inference-v4" {
				return v.NewFlows
			}
		}
		t.Fatal("no inference-v4 in the balancer's stats")
		return 0
	}
	st0, flows0, decap0 := stats(t, l), vipFlows(), gpuDecap()
	legit0 := txPackets(t, l, l.Clients[0].NS)
	start := time.Now()

	ctx, cancel := context.WithTimeout(context.Background(), (spoofFloodSeconds+10)*time.Second)
	defer cancel()
	flood := exec.CommandContext(ctx, "ip", "netns", "exec", l.Attacker.NS,
		"timeout", "-s", "INT", strconv.Itoa(spoofFloodSeconds), "hping3", "-q", "-S", "--rand-source",
		"-i", spoofFloodGap, "-c", strconv.Itoa(spoofFloodCount), "-p", strconv.Itoa(lab.ServicePort), lab.VIP4.String())
	out := make(chan []byte, 1)
	go func() {
		b, _ := flood.CombinedOutput() // hping3 exits non-zero when nothing answers
		out <- b
	}()
	time.Sleep(time.Second) // the flood spends the burst first
	tl := lab.Requests(ctxT(t, time.Minute), hc, []netip.Addr{lab.VIP4}, spoofLegit, 4)
	hout := <-out
	elapsed := time.Since(start)
	st1, flows1, decap1 := stats(t, l), vipFlows(), gpuDecap()
	legit := txPackets(t, l, l.Clients[0].NS) - legit0

	sent := -1
	if m := hpingSent.FindSubmatch(hout); m != nil {
		sent, _ = strconv.Atoi(string(m[1]))
	}
	dropped := st1.Drops["drop_vip_budget"] - st0.Drops["drop_vip_budget"]
	flows := flows1 - flows0
	decap := decap1 - decap0
	// At most the burst and the rate over the whole time measured (which
	// includes the legitimate requests' time), with a quarter more for
	// CPUs racing on the bucket, plus the client's own new connections,
	// which do not spend the budget. Without the budget the VIP takes in
	// the whole flood, ten times this.
	bound := uint64(float64(spoofBudget)*(1+elapsed.Seconds())*spoofRaceSlack) + spoofLegit
	t.Logf("hping3 sent %d SYNs in %s; budget drops %d; VIP new flows %d (bound %d); GPU hosts decapsulated %d packets "+
		"(client sent %d); legitimate: %d ok, %d failed %v", sent, elapsed.Round(time.Millisecond), dropped, flows, bound,
		decap, legit, tl.OK, tl.Failed, tl.ByBackend)
	if tl.Failed > 0 || tl.OK != spoofLegit {
		t.Errorf("legitimate client during the flood: %d ok, %d failed: %v", tl.OK, tl.Failed, tl.FirstErr)
	}
	// The flood must dwarf the budget for the test to say anything.
	if dropped+flows < 4*bound {
		t.Fatalf("only %d flood SYNs reached the balancer's XDP program (hping3: %s); need %d", dropped+flows, hout, 4*bound)
	}
	if flows > bound {
		t.Errorf("the balancer forwarded %d new flows to the GPU hosts during the flood; the budget allows %d", flows, bound)
	}
	if decap > bound+legit+backgroundPackets {
		t.Errorf("the GPU hosts decapsulated %d packets during the flood; the budget and the client allow %d", decap, bound+legit+backgroundPackets)
	}
}
