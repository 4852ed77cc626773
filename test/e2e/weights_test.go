package e2e

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infergate/infergate/test/e2e/lab"
)

// Weight test sizes.
const (
	weightConnections = 3000
	weightConcurrency = 16
	// weightTolerance is how far (in percentage points) a backend's share
	// of new connections may be from its share of the weights.
	weightTolerance = 5.0
	heldConnections = 24
)

// countingDialer counts the TCP connections a client opened.
type countingDialer struct {
	d     *lab.Dialer
	dials atomic.Int64
}

func (c *countingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c.dials.Add(1)
	return c.d.DialContext(ctx, network, addr)
}

// TestWeights: new connections split across the GPU hosts as the weights
// say (within weightTolerance points over weightConnections connections);
// applying new weights through the agent's API moves new flows only: each
// held-open connection keeps answering from the same GPU host over the same
// TCP connection.
func TestWeights(t *testing.T) {
	l := sharedLab(t)
	restoreStandard(t, l)
	o := standardPolicy()

	// Connections opened under equal weights, held open across the change.
	type held struct {
		cd      *countingDialer
		backend string
		vip     netip.Addr
	}
	// Each phase draws client ports from its own range: a port reused
	// from an earlier phase would hit that phase's connection-table entry
	// and go where the old weights sent it, which is right for the
	// balancer but not what a split of new connections measures.
	t.Cleanup(func() { portRange(t, l, defaultPortLow, defaultPortHigh) })
	portRange(t, l, heldPortLow, heldPortLow+portSpan-1)
	var hs []held
	for i := 0; i < heldConnections; i++ {
		cl := l.Clients[i%len(l.Clients)]
		cd := &countingDialer{d: dialer(t, cl.NS)}
		vip := []netip.Addr{lab.VIP4, lab.VIP6, lab.VIP4L2, lab.VIP6L2}[i%4]
		hc := keepAliveClient(cd)
		a, err := lab.Chat(ctxT(t, 10*time.Second), hc, vip)
		if err != nil {
			t.Fatalf("held connection %d: %v", i, err)
		}
		hs = append(hs, held{cd: cd, backend: a.Backend, vip: vip})
		t.Cleanup(hc.CloseIdleConnections)
	}

	for phase, weights := range [][]uint32{{100, 200, 300}, {300, 100, 0}} {
		lo := heldPortLow + portSpan*(phase+1)
		portRange(t, l, lo, lo+portSpan-1)
		o.Name = "weights"
		o.Weights = weights
		apply(t, l, o)
		var total uint32
		for _, w := range weights {
			total += w
		}
		// New connections from both clients to both IPIP VIPs.
		var mu sync.Mutex
		got := map[string]int{}
		ok := 0
		var wg sync.WaitGroup
		for _, cl := range l.Clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := dialer(t, cl.NS)
				tl := lab.Requests(ctxT(t, time.Minute), d.HTTPClient(false, 10*time.Second),
					[]netip.Addr{lab.VIP4, lab.VIP6}, weightConnections/len(l.Clients), weightConcurrency/len(l.Clients))
				mu.Lock()
				defer mu.Unlock()
				for k, v := range tl.ByBackend {
					got[k] += v
				}
				ok += tl.OK
				if tl.Failed > 0 {
					t.Errorf("%d of %d requests from %s failed: %v", tl.Failed, tl.Failed+tl.OK, cl.Name, tl.FirstErr)
				}
			}()
		}
		wg.Wait()
		for i, g := range l.GPUs {
			want := 100 * float64(weights[i]) / float64(total)
			share := 100 * float64(got[g.Name]) / float64(ok)
			t.Logf("weights %v: %s weight %d took %d of %d new connections: %.1f%% (want %.1f%%)", weights, g.Name, weights[i], got[g.Name], ok, share, want)
			if weights[i] == 0 && got[g.Name] > 0 {
				t.Errorf("%s has weight 0 but took %d new connections", g.Name, got[g.Name])
			}
			if math.Abs(share-want) > weightTolerance {
				t.Errorf("%s took %.1f%% of new connections, want %.1f%% ± %.0f points", g.Name, share, want, weightTolerance)
			}
		}

		// The held connections still answer, from the same host, without
		// a new TCP connection.
		for i, h := range hs {
			a, err := lab.Chat(ctxT(t, 10*time.Second), keepAliveClientReuse(h.cd), h.vip)
			if err != nil {
				t.Fatalf("held connection %d broke after the weights changed to %v: %v", i, weights, err)
			}
			if a.Backend != h.backend {
				t.Errorf("held connection %d moved from %s to %s", i, h.backend, a.Backend)
			}
			if n := h.cd.dials.Load(); n != 1 {
				t.Errorf("held connection %d: the client dialled %d times; the connection was not kept", i, n)
			}
		}
	}
}

var (
	clientsMu sync.Mutex
	clients   = map[*countingDialer]*http.Client{}
)

// keepAliveClient is one HTTP client holding one TCP connection.
func keepAliveClient(cd *countingDialer) *http.Client {
	clientsMu.Lock()
	defer clientsMu.Unlock()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: cd.DialContext, MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, IdleConnTimeout: 5 * time.Minute}}
	clients[cd] = c
	return c
}

func keepAliveClientReuse(cd *countingDialer) *http.Client {
	clientsMu.Lock()
	defer clientsMu.Unlock()
	return clients[cd]
}

// Client port ranges: the weight test's phases use ranges below the
// kernel's default one (which the other tests use), apart from each other.
const (
	defaultPortLow, defaultPortHigh = 32768, 60999
	heldPortLow                     = 8000
	portSpan                        = 8000
)

// portRange makes the clients draw ephemeral ports from [lo, hi].
func portRange(t *testing.T, l *lab.Lab, lo, hi int) {
	t.Helper()
	for _, c := range l.Clients {
		if err := l.Topo.Exec(c.NS, "sysctl", "-qw", fmt.Sprintf("net.ipv4.ip_local_port_range=%d %d", lo, hi)); err != nil {
			t.Fatal(err)
		}
	}
}
