package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// testHealthWait bounds how long a test waits for a health flip to reach
// the dataplane.
const testHealthWait = 5 * time.Second

// startHealthAgent starts a balancer agent with health checks on the fake
// dataplane dp, resolving addrs on link, with gw as its L7 gateway (nil:
// none); it stops when the test ends.
func startHealthAgent(t *testing.T, dp *fakeDataplane, gw Gateway, addrs ...string) (*Agent, context.Context) {
	t.Helper()
	a, err := New(Options{Role: RoleBalancer, Dataplane: dp, Resolver: onLinkResolver(addrs...), Store: newMemStore(),
		HealthChecks: true, Gateway: gw, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		a.Close()
	})
	if err := a.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	return a, ctx
}

// waitHealth waits up to testHealthWait for cond, failing the test with
// what it waited for.
func waitHealth(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(testHealthWait); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// TestHealthDrainsInDataplane: a backend whose listener goes away is
// drained by the agent (kept in the backend table for established flows,
// out of the Maglev table), comes back when the listener returns, and a
// load report's weight reaches the table.
func TestHealthDrainsInDataplane(t *testing.T) {
	addrs := []string{"127.0.0.11", "127.0.0.12"}
	var lns []net.Listener
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a+":0")
		if err != nil {
			t.Fatalf("loopback %s: %v", a, err)
		}
		lns = append(lns, ln)
		go acceptAll(ln)
	}
	port := lns[0].Addr().(*net.TCPAddr).Port
	lns[1].Close()
	ln1, err := net.Listen("tcp", fmt.Sprintf("%s:%d", addrs[1], port))
	if err != nil {
		t.Fatal(err)
	}
	go acceptAll(ln1)
	lns[1] = ln1
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()

	dp := newFakeDataplane()
	a, ctx := startHealthAgent(t, dp, nil, addrs...)
	doc := fmt.Sprintf(`apiVersion: infergate.dev/v1alpha1
kind: Policy
metadata: {name: hc}
spec:
  dataplane:
    interfaces: [eth0]
    vips:
      - {name: llm, address: 198.18.100.1, port: 80, pool: gpus}
  pools:
    - name: gpus
      loadReports: true
      healthCheck: {type: tcp, interval: 100ms, timeout: 80ms, rise: 2, fall: 2}
      backends:
        - {name: a, address: %s, port: %d}
        - {name: b, address: %s, port: %d}
`, addrs[0], port, addrs[1], port)
	if _, err := a.Apply(ctx, []byte(doc), false); err != nil {
		t.Fatal(err)
	}
	vip := VIPKey{netip.MustParseAddr("198.18.100.1"), 80, 6}
	idB := a.rec.BackendIDs()[netip.MustParseAddr(addrs[1])]
	inTable := func() bool {
		dp.mu.Lock()
		defer dp.mu.Unlock()
		for _, id := range dp.tables[vip] {
			if id == idB {
				return true
			}
		}
		return false
	}
	waitFor := func(what string, cond func() bool) { t.Helper(); waitHealth(t, what, cond) }
	if !inTable() {
		t.Fatal("healthy backend b not in the table")
	}

	lns[1].Close()
	waitFor("b is drained", func() bool {
		dp.mu.Lock()
		e, ok := dp.backends[idB]
		dp.mu.Unlock()
		return ok && e.Draining && !inTable()
	})
	for _, b := range a.Backends() {
		if b.Name == "b" && (b.Healthy || b.State != "draining" || b.Weight != 0) {
			t.Fatalf("backends view of b: %+v", b)
		}
	}

	ln2, err := net.Listen("tcp", fmt.Sprintf("%s:%d", addrs[1], port))
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	go acceptAll(ln2)
	waitFor("b is back", func() bool {
		dp.mu.Lock()
		e := dp.backends[idB]
		dp.mu.Unlock()
		return !e.Draining && inTable()
	})

	// A load report weighting a down to 10 of 100 moves most slots to b.
	a.SetLoad("gpus/a", 10, false, nil)
	waitFor("the table follows the load-report weight", func() bool {
		dp.mu.Lock()
		defer dp.mu.Unlock()
		n := 0
		for _, id := range dp.tables[vip] {
			if id == idB {
				n++
			}
		}
		return n > len(dp.tables[vip])*8/10
	})
}

// lockedResolver lets a test change answers while the agent resolves.
type lockedResolver struct {
	mu sync.Mutex
	r  fakeResolver
}

func (l *lockedResolver) Interface(n string) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Interface(n)
}

func (l *lockedResolver) NextHop(ctx context.Context, a netip.Addr) (Hop, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.NextHop(ctx, a)
}

// TestUnresolvedNeighbourRetried: a backend whose neighbour is silent at
// apply time takes no new flows, and joins within seconds once it answers,
// without waiting for the periodic resync.
func TestUnresolvedNeighbourRetried(t *testing.T) {
	res := &lockedResolver{r: onLinkResolver(testBackends...)}
	silent := netip.MustParseAddr(testBackends[2])
	h := res.r.hops[silent]
	mac := h.MAC
	h.MAC = nil
	res.r.hops[silent] = h
	dp := newFakeDataplane()
	a, err := New(Options{Role: RoleBalancer, Dataplane: dp, Resolver: res, Store: newMemStore(),
		Resync: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := a.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(ctx, policyDoc(100), false); err != nil {
		t.Fatal(err)
	}
	id := a.rec.BackendIDs()[silent]
	vip := VIPKey{netip.MustParseAddr("198.18.100.1"), 80, 6}
	inTable := func() bool {
		dp.mu.Lock()
		defer dp.mu.Unlock()
		return slices.Contains(dp.tables[vip], id)
	}
	if inTable() {
		t.Fatal("backend with a silent neighbour takes new flows")
	}
	res.mu.Lock()
	h.MAC = mac
	res.r.hops[silent] = h
	res.mu.Unlock()
	deadline := time.Now().Add(testHealthWait)
	for !inTable() {
		if time.Now().After(deadline) {
			t.Fatal("backend did not join after its neighbour answered")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func acceptAll(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}
