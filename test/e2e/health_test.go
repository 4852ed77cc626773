package e2e

import (
	"net/netip"
	"testing"
	"time"

	"github.com/infergate/infergate/agent/api"
	"github.com/infergate/infergate/test/e2e/lab"
)

// Health test bounds.
const (
	drainTimeout    = 10 * time.Second
	healthRequests  = 300
	healthParallel  = 8
	deadBackendHost = 1 // gpu-2
)

// TestBackendDiesAndReturns: when a GPU host's inference server dies, the
// balancer's health checks drain it (no new flows) and every new request is
// answered by the others; when it comes back it rejoins and takes new
// flows again.
func TestBackendDiesAndReturns(t *testing.T) {
	l := sharedLab(t)
	// The clients' ephemeral ports are the ones earlier tests used, so some
	// new connections reuse the 5-tuple of a closed flow to the dying host
	// that is still in the connection table: their SYNs must be steered
	// afresh, not to the drained backend.
	dead := l.GPUs[deadBackendHost].Name
	if err := l.KillBackend(deadBackendHost); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Leave the shared lab whole even when the test fails midway.
		if !backendHealthy(t, l, dead) {
			_ = l.StartBackend(deadBackendHost)
		}
	})
	start := time.Now()
	waitHealth(t, l, dead, false)
	t.Logf("%s drained %s after its server died", dead, time.Since(start).Round(time.Millisecond))

	d := dialer(t, l.Clients[0].NS)
	vips := []netip.Addr{lab.VIP4, lab.VIP6, lab.VIP4L2, lab.VIP6L2}
	tl := lab.Requests(ctxT(t, time.Minute), d.HTTPClient(false, 10*time.Second), vips, healthRequests, healthParallel)
	t.Logf("while %s is down: %d ok, %d failed, answered by %v", dead, tl.OK, tl.Failed, tl.ByBackend)
	if tl.Failed > 0 {
		t.Fatalf("%d requests failed with %s drained: %v", tl.Failed, dead, tl.FirstErr)
	}
	if tl.ByBackend[dead] > 0 {
		t.Fatalf("%s answered %d requests while down", dead, tl.ByBackend[dead])
	}

	if err := l.StartBackend(deadBackendHost); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	waitHealth(t, l, dead, true)
	t.Logf("%s rejoined %s after its server came back", dead, time.Since(start).Round(time.Millisecond))
	tl = lab.Requests(ctxT(t, time.Minute), d.HTTPClient(false, 10*time.Second), vips, healthRequests, healthParallel)
	t.Logf("after it returned: %d ok, %d failed, answered by %v", tl.OK, tl.Failed, tl.ByBackend)
	if tl.Failed > 0 {
		t.Fatalf("%d requests failed after %s returned: %v", tl.Failed, dead, tl.FirstErr)
	}
	// Equal weights: a third of healthRequests on average; a tenth
	// is far outside chance.
	if tl.ByBackend[dead] < healthRequests/10 {
		t.Fatalf("%s took %d of %d new requests after rejoining", dead, tl.ByBackend[dead], healthRequests)
	}
}

// backendHealthy reports whether every pool entry of a GPU host is healthy
// with a positive weight.
func backendHealthy(t *testing.T, l *lab.Lab, name string) bool {
	t.Helper()
	bs, err := l.Client(l.Balancer.Name).Backends(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return allMatch(bs, name, func(b api.Backend) bool { return b.Healthy && b.Weight > 0 })
}

func allMatch(bs []api.Backend, name string, f func(api.Backend) bool) bool {
	n := 0
	for _, b := range bs {
		if b.Name != name {
			continue
		}
		n++
		if !f(b) {
			return false
		}
	}
	return n > 0
}

// waitHealth waits until the balancer reports the host (in every pool) as
// healthy with a positive weight, or unhealthy with weight 0.
func waitHealth(t *testing.T, l *lab.Lab, name string, healthy bool) {
	t.Helper()
	deadline := time.Now().Add(drainTimeout)
	for {
		bs, err := l.Client(l.Balancer.Name).Backends(ctxT(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if allMatch(bs, name, func(b api.Backend) bool {
			if healthy {
				return b.Healthy && b.Weight > 0
			}
			return !b.Healthy && b.Weight == 0
		}) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not healthy=%v after %s: %+v", name, healthy, drainTimeout, bs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
