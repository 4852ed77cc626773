package e2e

import (
	"context"
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/infergate/infergate/test/e2e/lab"
)

// Abuse test sizes: bounded floods, and a legitimate client busy meanwhile.
const (
	deniedTries       = 6
	deniedDialTimeout = 500 * time.Millisecond
	floodPackets      = 40_000
	floodDuration     = 4 * time.Second
	// floodPPS paces each flood: ten times the attacker's allowance, and
	// slow enough that the veth in front of the balancer does not drop it
	// before XDP sees it.
	floodPPS         = 20_000
	legitRequests    = 400
	legitConcurrency = 8
)

// TestDeniedPrefix: a client whose address is in a firewall-denied prefix
// gets no connection through, over IPv4 and IPv6, and the balancer counts
// the drops as firewall-rule drops.
func TestDeniedPrefix(t *testing.T) {
	l := sharedLab(t)
	d := dialer(t, l.Attacker.NS)
	before := stats(t, l).Drops["drop_fw_rule"]
	for _, src := range []struct{ from, vip netip.Addr }{{lab.DeniedAddr4, lab.VIP4}, {lab.DeniedAddr6, lab.VIP6}, {lab.DeniedAddr4, lab.VIP4L2}} {
		dd := d.WithLocal(src.from)
		for i := 0; i < deniedTries/3; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), deniedDialTimeout)
			c, err := dd.DialContext(ctx, "tcp", netip.AddrPortFrom(src.vip, lab.ServicePort).String())
			cancel()
			if err == nil {
				c.Close()
				t.Fatalf("denied source %s connected to %s", src.from, src.vip)
			}
		}
	}
	// The same namespace from an allowed address is served: the drops are
	// the rule's doing, not the attacker namespace's plumbing.
	if _, err := lab.Chat(ctxT(t, 10*time.Second), d.WithLocal(l.Attacker.V4).HTTPClient(false, 5*time.Second), lab.VIP4); err != nil {
		t.Fatalf("the attacker namespace's allowed address is not served either: %v", err)
	}
	got := stats(t, l).Drops["drop_fw_rule"] - before
	t.Logf("firewall-rule drops: %d (from %d connection attempts, SYN retransmits included)", got, deniedTries)
	if got < deniedTries {
		t.Fatalf("balancer counted %d firewall-rule drops for %d denied connection attempts", got, deniedTries)
	}
}

// TestFloodRateLimited: while the attacker sends a bounded SYN flood and a
// bounded UDP flood at the VIP, every request of a legitimate client
// succeeds, and the balancer drops the floods by the attacker class's
// packet and new-connection limits.
func TestFloodRateLimited(t *testing.T) {
	l := sharedLab(t)
	st0 := stats(t, l)
	legit0 := txPackets(t, l, l.Clients[0].NS)
	fc := l.Attack(floodPackets, floodPPS, floodDuration)
	d := dialer(t, l.Clients[0].NS)
	tl := lab.Requests(ctxT(t, time.Minute), d.HTTPClient(false, 10*time.Second),
		[]netip.Addr{lab.VIP4, lab.VIP6, lab.VIP4L2, lab.VIP6L2}, legitRequests, legitConcurrency)
	sent := 0
	var longest time.Duration
	for i := 0; i < 2; i++ {
		f := <-fc
		if f.Err != nil {
			t.Fatalf("%s flood: %v", f.Kind, f.Err)
		}
		t.Logf("%s flood: %d packets in %s", f.Kind, f.Sent, f.Elapsed)
		sent += f.Sent
		longest = max(longest, f.Elapsed)
	}
	st1 := stats(t, l)
	legit := txPackets(t, l, l.Clients[0].NS) - legit0
	pk := st1.Drops["drop_rate_packets"] - st0.Drops["drop_rate_packets"]
	cn := st1.Drops["drop_rate_conns"] - st0.Drops["drop_rate_conns"]
	var seen uint64
	for k, v := range st1.Verdicts {
		seen += v - st0.Verdicts[k]
	}
	// What XDP let through that was not the legitimate client's: the
	// attacker's allowance, plus a little background (health checks'
	// answers, neighbour discovery).
	passed := int64(seen) - int64(legit) - int64(pk+cn)
	budget := int64(attackerPPS) + int64(float64(attackerPPS)*(longest+floodSlack).Seconds()) + backgroundPackets
	t.Logf("legitimate client: %d ok, %d failed (%v); the balancer saw %d packets (%d from the legitimate client); "+
		"rate-limit drops: %d by packets/s, %d by new connections/s; let through besides the client: %d (allowance %d); floods sent %d",
		tl.OK, tl.Failed, tl.ByBackend, seen, legit, pk, cn, passed, budget, sent)
	if tl.Failed > 0 {
		t.Errorf("%d of %d legitimate requests failed during the flood: %v", tl.Failed, legitRequests, tl.FirstErr)
	}
	// The veth in front of the balancer drops part of a flood when the
	// machine is busy; what reached XDP must still dwarf the allowance for
	// the test to say anything.
	reached := int64(seen) - int64(legit)
	if reached < 2*budget {
		t.Fatalf("only %d flood packets reached the balancer's XDP program (of %d sent); need %d to test the limits", reached, sent, 2*budget)
	}
	if pk == 0 || int64(pk+cn) < reached/2 {
		t.Errorf("rate limits dropped %d of the %d flood packets that reached XDP (%d by packets/s); want most, some by packets/s", pk+cn, reached, pk)
	}
	if passed > budget {
		t.Errorf("%d packets besides the legitimate client's got through the attacker's %d packets/s limit; allowance %d", passed, attackerPPS, budget)
	}
}

// Flood accounting.
const (
	// floodSlack covers the time between the floods' end and the read of
	// the counters.
	floodSlack = 2 * time.Second
	// backgroundPackets bounds health-check and neighbour traffic.
	backgroundPackets = 2000
)

// txPackets reads eth0's transmitted-packet counter in ns.
func txPackets(t *testing.T, l *lab.Lab, ns string) uint64 {
	t.Helper()
	out, err := l.Topo.Output(ns, "ip", "-s", "-j", "link", "show", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	var links []struct {
		Stats struct {
			TX struct {
				Packets uint64 `json:"packets"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -s -j link show eth0: %v: %s", err, out)
	}
	return links[0].Stats.TX.Packets
}
