package e2e

import (
	"net/netip"
	"testing"
	"time"

	"github.com/infergate/infergate/test/e2e/lab"
)

// spoofedEncap is how many encapsulated SYNs the attacker sends per family.
const spoofedEncap = 50

// TestDecapRefusesSpoofedEncap: the attacker wraps SYNs for the VIPs in
// IPIP and IPv6-in-IPv6 itself and sends them straight to a GPU host,
// skipping the balancer. The host's decapsulator drops every one and counts
// it as an untrusted source, while the balancer's encapsulated traffic is
// still decapsulated and served.
func TestDecapRefusesSpoofedEncap(t *testing.T) {
	l := sharedLab(t)
	gpu := l.GPUs[0]
	gpuStats := func() (untrusted, decapsulated uint64) {
		st, err := l.Client(gpu.Name).Stats(ctxT(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return st.Drops["drop_untrusted_source"], st.Verdicts["decapsulated"]
	}
	u0, _ := gpuStats()
	n4, err := lab.SpoofEncap(l.Attacker.NS, gpu.V4, l.Attacker.V4, lab.VIP4, lab.ServicePort, spoofedEncap)
	if err != nil {
		t.Fatal(err)
	}
	n6, err := lab.SpoofEncap(l.Attacker.NS, gpu.V6, l.Attacker.V6, lab.VIP6, lab.ServicePort, spoofedEncap)
	if err != nil {
		t.Fatal(err)
	}
	// The counters are read through the agent: wait for the last packets.
	var u1 uint64
	deadline := time.Now().Add(5 * time.Second)
	for {
		u1, _ = gpuStats()
		if u1-u0 >= uint64(n4+n6) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, d0 := gpuStats()
	t.Logf("sent %d IPIP and %d IPv6-in-IPv6 packets from the attacker; %s dropped %d as from an untrusted source", n4, n6, gpu.Name, u1-u0)
	if u1-u0 != uint64(n4+n6) {
		t.Fatalf("%s dropped %d encapsulated packets from the attacker as untrusted; it sent %d", gpu.Name, u1-u0, n4+n6)
	}
	// The balancer's encapsulated traffic is still delivered, to every GPU
	// host over both families.
	d := dialer(t, l.Clients[0].NS)
	tl := lab.Requests(ctxT(t, time.Minute), d.HTTPClient(false, 10*time.Second), []netip.Addr{lab.VIP4, lab.VIP6}, 60, 4)
	if tl.Failed > 0 || tl.OK != 60 {
		t.Fatalf("legitimate requests through the balancer: %d ok, %d failed: %v", tl.OK, tl.Failed, tl.FirstErr)
	}
	if _, d1 := gpuStats(); d1 == d0 {
		t.Fatalf("%s decapsulated nothing from the balancer (%v)", gpu.Name, tl.ByBackend)
	}
}
