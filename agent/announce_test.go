package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/infergate/infergate/agent/bgp"
	"github.com/infergate/infergate/agent/bgp/bgptest"
)

const testASN = 64512

// bgpPolicy announces VIP vip (default prefix) to the router at r; extra
// is appended to the peer's line.
func bgpPolicy(vip string, r *bgptest.Router, extra string) []byte {
	return fmt.Appendf(nil, `apiVersion: infergate.dev/v1alpha1
kind: Policy
metadata: {name: bgp}
spec:
  dataplane:
    interfaces: [eth0]
    vips:
      - {name: llm, address: %s, port: 80, pool: gpus}
    bgp:
      localASN: %d
      peers:
        - {address: %s, asn: %d, port: %d, holdTime: 9s%s}
  pools:
    - name: gpus
      backends:
        - {name: gpu1, address: 198.18.1.1, port: 8000}
        - {name: gpu2, address: 198.18.1.2, port: 8000}
`, vip, testASN, r.Addr.Addr(), bgptest.ASN, r.Addr.Port(), extra)
}

// newBGPAgent starts a balancer agent with a real speaker, drain state in
// dir, and its local API on a socket.
func newBGPAgent(t *testing.T, dir string, dp *fakeDataplane) (*Agent, *http.Client) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sp := bgp.New(log)
	t.Cleanup(sp.Close)
	a, err := New(Options{Role: RoleBalancer, Dataplane: dp, Resolver: onLinkResolver("198.18.1.1", "198.18.1.2"),
		Store: newMemStore(), Logger: log, BGP: sp, DrainFile: filepath.Join(dir, "drained")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	t.Cleanup(a.Close)
	if err := a.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	go Serve(ctx, ln, a.Handler(), a.log)
	return a, &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
}

func drain(t *testing.T, c *http.Client, on bool) {
	t.Helper()
	resp, err := c.Post(fmt.Sprintf("http://agent/v1/drain?on=%t", on), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("drain %t: %s", on, resp.Status)
	}
}

// TestDrainWithdraws: a balancer announces its VIP from the policy; a
// drain through the local API withdraws it while the session stays up,
// the next agent on the node stays drained, and an undrain announces again.
// A new policy moves the announcement to its VIP.
func TestDrainWithdraws(t *testing.T) {
	r := bgptest.New(t, "127.0.0.2", "127.0.0.1", testASN)
	dir := t.TempDir()
	a, c := newBGPAgent(t, dir, newFakeDataplane())
	ctx := context.Background()
	if _, err := a.Apply(ctx, bgpPolicy("198.18.100.1", r, ""), false); err != nil {
		t.Fatal(err)
	}
	bgptest.Wait(t, "the router learns the VIP", func() bool { return bgptest.HasExactly(r.Routes(t), "198.18.100.1/32") })
	if st := a.Status().BGP; st == nil || len(st.Announced) != 1 || st.Withdrawn != "" || len(st.Peers) != 1 {
		t.Fatalf("status %+v", st)
	}

	wantMetrics(t, a, "infergate_bgp_routes_announced 1", "infergate_bgp_withdrawn 0",
		`infergate_bgp_session_established{peer="127.0.0.2"} 1`)

	drain(t, c, true)
	bgptest.Wait(t, "a drained node's route is withdrawn", func() bool { return len(r.Routes(t)) == 0 })
	wantMetrics(t, a, "infergate_bgp_routes_announced 0", "infergate_bgp_withdrawn 1")
	if !r.Established(t) {
		t.Fatal("draining closed the session")
	}
	if st := a.Status().BGP; !st.Draining || st.Withdrawn != "node drained" {
		t.Fatalf("status while drained %+v", st)
	}

	// The next agent of this node (same state directory) starts drained.
	a.o.BGP.Close()
	bgptest.Wait(t, "the first agent's session is gone", func() bool { return !r.Established(t) })
	a2, c2 := newBGPAgent(t, dir, newFakeDataplane())
	if _, err := a2.Apply(ctx, bgpPolicy("198.18.100.1", r, ""), false); err != nil {
		t.Fatal(err)
	}
	bgptest.Wait(t, "the restarted agent's session is up", func() bool { return r.Established(t) })
	if got := r.Routes(t); len(got) != 0 {
		t.Fatalf("a drained node's next agent announced %v", got)
	}
	drain(t, c2, false)
	bgptest.Wait(t, "undrained, the route is back", func() bool { return bgptest.HasExactly(r.Routes(t), "198.18.100.1/32") })
	if _, err := os.Stat(filepath.Join(dir, "drained")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("drain file left after undrain: %v", err)
	}

	if _, err := a2.Apply(ctx, bgpPolicy("198.18.100.2", r, ""), false); err != nil {
		t.Fatal(err)
	}
	bgptest.Wait(t, "a reload moves the route to the new VIP", func() bool { return bgptest.HasExactly(r.Routes(t), "198.18.100.2/32") })
	if err := a2.DeletePolicy(ctx); err != nil {
		t.Fatal(err)
	}
	bgptest.Wait(t, "deleting the policy withdraws and stops", func() bool { return len(r.Routes(t)) == 0 && !r.Established(t) })
}

// TestUnhealthyDataplaneWithdraws: a failed map update withdraws the
// routes; the next good one announces them again.
func TestUnhealthyDataplaneWithdraws(t *testing.T) {
	r := bgptest.New(t, "127.0.0.2", "127.0.0.1", testASN)
	dp := newFakeDataplane()
	a, _ := newBGPAgent(t, t.TempDir(), dp)
	ctx := context.Background()
	if _, err := a.Apply(ctx, bgpPolicy("198.18.100.1", r, ""), false); err != nil {
		t.Fatal(err)
	}
	bgptest.Wait(t, "the router learns the VIP", func() bool { return len(r.Routes(t)) == 1 })

	dp.mu.Lock()
	dp.failOn = func(string) error { return errors.New("map full") }
	dp.mu.Unlock()
	if _, err := a.Apply(ctx, bgpPolicy("198.18.100.2", r, ""), false); err == nil {
		t.Fatal("the map update did not fail")
	}
	bgptest.Wait(t, "an unhealthy node withdraws", func() bool { return len(r.Routes(t)) == 0 })
	if w := a.Status().BGP.Withdrawn; w == "" {
		t.Fatal("status does not say why the routes are withdrawn")
	}
	dp.mu.Lock()
	dp.failOn = nil
	dp.mu.Unlock()
	if err := a.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	bgptest.Wait(t, "healthy again, the node announces", func() bool { return len(r.Routes(t)) == 1 })
}

// TestBGPApplyAllOrNothing: a policy whose BGP part cannot be put in
// force (an unreadable password file; a listener on a taken port) is
// refused, and the kernel maps, the version in force and the announcement
// stay as they were.
func TestBGPApplyAllOrNothing(t *testing.T) {
	r := bgptest.New(t, "127.0.0.2", "127.0.0.1", testASN)
	dp := newFakeDataplane()
	a, _ := newBGPAgent(t, t.TempDir(), dp)
	ctx := context.Background()
	res, err := a.Apply(ctx, bgpPolicy("198.18.100.1", r, ""), false)
	if err != nil {
		t.Fatal(err)
	}
	bgptest.Wait(t, "the router learns the VIP", func() bool { return len(r.Routes(t)) == 1 })
	vipsBefore := func() int { dp.mu.Lock(); defer dp.mu.Unlock(); return len(dp.vips) }()

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	bad := [][]byte{
		bgpPolicy("198.18.100.9", r, ", passwordFile: "+filepath.Join(t.TempDir(), "missing")),
		// A listener on a taken port.
		[]byte(strings.Replace(string(bgpPolicy("198.18.100.9", r, "")), "      localASN:", "      listen: "+taken.Addr().String()+"\n      localASN:", 1)),
	}
	for i, doc := range bad {
		if _, err := a.Apply(ctx, doc, false); err == nil {
			t.Fatalf("bad document %d applied", i)
		}
		if _, c, _ := a.Current(); c.Version != res.Version {
			t.Fatalf("document %d: version in force changed to %s", i, c.Version)
		}
		dp.mu.Lock()
		_, has9 := dp.vips[VIPKey{netip.MustParseAddr("198.18.100.9"), 80, 6}]
		n := len(dp.vips)
		dp.mu.Unlock()
		if has9 || n != vipsBefore {
			t.Fatalf("document %d: the refused VIP is in the kernel maps", i)
		}
		bgptest.Wait(t, "the previous announcement stands", func() bool { return bgptest.HasExactly(r.Routes(t), "198.18.100.1/32") })
	}
}

// wantMetrics scrapes a's collector and requires each line.
func wantMetrics(t *testing.T, a *Agent, lines ...string) {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(a))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range lines {
		if !strings.Contains(b.String(), l) {
			t.Fatalf("metrics lack %q:\n%s", l, b.String())
		}
	}
}
