package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/privtest"
	"github.com/infergate/infergate/test/e2e/lab"
)

// Idle keep-alive connections across weight changes under table pressure.
const (
	keepAliveConns = 32
	// keepAliveMaxFlows is the balancer's LRU connection table, far below
	// one churn round.
	keepAliveMaxFlows = 2048
	churnRounds       = 4
	churnFlows        = 5000
	weightChanges     = 3 // per round
	// keepAliveBudget keeps the new-flow budget out of the way: the churn
	// must reach the connection table.
	keepAliveBudget = 1_000_000
)

// TestIdleKeepAliveSurvivesWeightChanges: keep-alive connections opened
// through the balancer stay idle while the pool's weights change again and
// again (each a new Maglev table) and bursts of new flows, each flow seen
// twice, push the balancer's connection table far past its size. Then each
// connection carries another request: every one is answered by its first
// GPU host on the same connection, none reset. The last weights put nearly
// every new flow on gpu-1, so a connection that lost its entry would be
// re-steered there and reset.
func TestIdleKeepAliveSurvivesWeightChanges(t *testing.T) {
	privtest.Tools(t, "hping3")
	l := newLab(t, lab.Config{Prefix: "igk", BalancerAgentArgs: []string{"--max-flows", strconv.Itoa(keepAliveMaxFlows)}})
	opts := func(name string, w []uint32) lab.PolicyOptions {
		return lab.PolicyOptions{Name: name, Weights: w, NewFlowBudget: keepAliveBudget}
	}
	startAll(t, l, "ka", opts("ka-0", nil))
	d := dialer(t, l.Clients[0].NS)
	type kaConn struct {
		c       net.Conn
		r       *bufio.Reader
		backend string
	}
	get := func(k *kaConn) (string, error) {
		if _, err := fmt.Fprintf(k.c, "GET /health HTTP/1.1\r\nHost: %s\r\n\r\n", lab.VIP4); err != nil {
			return "", err
		}
		_ = k.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(k.r, nil)
		if err != nil {
			return "", err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("status %d", resp.StatusCode)
		}
		return resp.Header.Get(lab.BackendHeader), nil
	}
	conns := make([]*kaConn, keepAliveConns)
	first := map[string]int{}
	for i := range conns {
		c, err := d.DialContext(ctxT(t, 10*time.Second), "tcp", fmt.Sprintf("%s:%d", lab.VIP4, lab.ServicePort))
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = &kaConn{c: c, r: bufio.NewReader(c)}
		if conns[i].backend, err = get(conns[i]); err != nil {
			t.Fatalf("connection %d, first request: %v", i, err)
		}
		first[conns[i].backend]++
	}
	t.Logf("%d keep-alive connections on %v", keepAliveConns, first)

	weights := [][]uint32{{100, 1, 100}, {1, 100, 100}, {100, 100, 1}, {50, 1, 1}, {1, 50, 1}, {1, 1, 50}}
	applied := 0
	start := time.Now()
	for r := 0; r < churnRounds; r++ {
		for w := 0; w < weightChanges; w++ {
			ws := weights[(r*weightChanges+w)%len(weights)]
			if r == churnRounds-1 && w == weightChanges-1 {
				ws = []uint32{100, 1, 1} // last: nearly every new flow to gpu-1
			}
			apply(t, l, opts(fmt.Sprintf("ka-%d", applied+1), ws))
			applied++
		}
		// Each flow twice (the same source ports), as a client whose SYN
		// is retransmitted: its entry is used as often as an idle
		// connection's was.
		for range 2 {
			out, err := exec.Command("ip", "netns", "exec", l.Attacker.NS, "timeout", "-s", "INT", "10",
				"hping3", "-q", "-S", "-p", strconv.Itoa(lab.ServicePort), "-s", "20000", "-c", strconv.Itoa(churnFlows),
				"-i", "u100", lab.VIP4.String()).CombinedOutput()
			if err != nil && len(out) == 0 {
				t.Fatalf("hping3: %v", err)
			}
		}
	}
	st := stats(t, l)
	var fill string
	for _, m := range st.Maps {
		fill += fmt.Sprintf(" %s %d/%d", m.Name, m.Entries, m.MaxEntries)
	}
	t.Logf("%d weight changes and %d rounds of %d new flows in %s; tables:%s", applied, churnRounds, churnFlows,
		time.Since(start).Round(time.Millisecond), fill)

	failed := 0
	for i, k := range conns {
		b, err := get(k)
		switch {
		case err != nil:
			failed++
			t.Errorf("connection %d (on %s): second request failed: %v", i, k.backend, err)
		case b != k.backend:
			failed++
			t.Errorf("connection %d answered by %s, was %s", i, b, k.backend)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d idle keep-alive connections lost after %d weight changes", failed, keepAliveConns, applied)
	}
}
