package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/privtest"
	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/e2e/lab"
)

// Fleet test settings.
const (
	// fleetRPM is the tenant's requests per minute, shared by every
	// gateway through Redis; fleetRequests are sent at once, twice that.
	fleetRPM      = 40
	fleetRequests = 2 * fleetRPM
	fleetWorkers  = 8
	// heldConns are long-lived client connections that must survive the
	// router moving them between balancer nodes.
	heldConns = 16
	// heldEvery is how often each sends a request on its connection.
	heldEvery = 50 * time.Millisecond
	// routeWait bounds how long a BGP change takes to reach the router's
	// kernel table.
	routeWait = 30 * time.Second
)

// TestBGPFleet: two balancer nodes running the real agent announce the
// VIPs to a router (bird2) that spreads connections over them by ECMP.
//   - Routes: the router's kernel route to the VIP gains a next hop as
//     each node joins and loses it when the node drains.
//   - A tenant's requests-per-minute limit, in Redis shared by the three
//     GPU hosts' gateways (the L7 gateway runs on the GPU hosts, so the
//     fleet-wide limit is shown across gateways reached through both
//     balancer nodes), admits within 5% of the limit and never more than
//     GCRA allows.
//   - Long-lived connections keep working, each on its backend, while a
//     node drains and comes back (their flows move to the other node,
//     which has no connection entry for them) and while a node's agent is
//     replaced (stopped: its sessions close and the router moves the
//     flows; restarted: it adopts its pinned state and announces again).
func TestBGPFleet(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "ip", "nsenter", "sysctl", "ethtool", "taskset", "chrt", "bird", "birdc", "redis-server", "redis-cli")
	inf, iglab := binaries(t)
	f, err := lab.NewFleet(lab.Config{Prefix: "igb", Infergate: inf, Iglab: iglab, Dir: t.TempDir(),
		GPUAgentArgs: []string{"--gateway=true", "--gateway-listen", fmt.Sprintf(":%d", lab.GatewayPort)}}, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpFleetLogs(t, f)
		}
		if err := f.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	if err := f.StartRouter(); err != nil {
		t.Fatal(err)
	}
	if err := f.StartStore(); err != nil {
		t.Fatal(err)
	}
	key := newKey(t)
	o := lab.PolicyOptions{Name: "fleet", HealthCheck: true, GatewayVIP: true,
		Gateway: lab.AIGateway(lab.AITenant{Name: "acme", Key: key})}
	doc := f.FleetPolicy(o)
	doc.Spec.Gateway.Tenants[0].Limits.RequestsPerMinute = fleetRPM
	doc.Spec.Gateway.Limits = policy.LimitStore{Redis: netip.AddrPortFrom(lab.StoreAddr4, lab.RedisPort).String()}
	b, err := policy.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := f.WritePolicy("fleet", b)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.StartGPUs(pf); err != nil {
		t.Fatal(err)
	}
	bal1, bal2 := f.Balancers[0], f.Balancers[1]

	// Joining: no route, then one next hop, then two.
	if hops, err := f.NextHops(lab.VIP4); err != nil || len(hops) != 0 {
		t.Fatalf("before any balancer: next hops %v (%v)", hops, err)
	}
	if err := f.StartBalancer(bal1, pf); err != nil {
		t.Fatal(err)
	}
	waitHops(t, f, lab.VIP4, "bal-1 joined", bal1.V4)
	if err := f.StartBalancer(bal2, pf); err != nil {
		t.Fatal(err)
	}
	waitHops(t, f, lab.VIP4, "bal-2 joined", bal1.V4, bal2.V4)
	if out, err := f.Topo.Output(f.Router.NS, "ip", "route", "show", lab.VIP4.String()); err == nil {
		t.Logf("router's kernel table:\n%s", out)
	}

	d := dialer(t, f.Clients[0].NS)
	t.Run("fleet-wide limit", func(t *testing.T) { fleetLimit(t, f, d, key) })
	moveFlows(t, f, d, func() error { return f.StartBalancer(bal1, pf) })
}

// waitHops polls the router's kernel route to vip until its next hops are
// want.
func waitHops(t *testing.T, f *lab.Fleet, vip netip.Addr, what string, want ...netip.Addr) {
	t.Helper()
	slices.SortFunc(want, netip.Addr.Compare)
	deadline := time.Now().Add(routeWait)
	for {
		got, err := f.NextHops(vip)
		if err == nil && slices.Equal(got, want) {
			t.Logf("router: %s via %v", vip, got)
			return
		}
		if time.Now().After(deadline) {
			out, _ := f.Birdc("show", "protocols")
			t.Fatalf("%s: the router's next hops for %s are %v (%v), want %v\n%s", what, vip, got, err, want, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// moveFlows holds heldConns connections to VIP4's service port, spread by
// the router over both balancer nodes, while bal-2 drains and comes back
// (its flows move to bal-1, which has no connection entry for them) and
// while bal-1's agent is replaced (stopped: its sessions close and the
// router moves the flows; restarted by restart: it adopts its pinned state
// and announces again). Every connection must keep answering, each always
// from the same backend.
func moveFlows(t *testing.T, f *lab.Fleet, d *lab.Dialer, restart func() error) {
	t.Helper()
	bal1, bal2 := f.Balancers[0], f.Balancers[1]
	held := holdConnections(t, d)
	defer held.stop()
	held.wait(t, "every held connection answered once", func() bool { return held.answered() == heldConns })
	perNode := newFlowsPerNode(t, f)
	if perNode[0] == 0 || perNode[1] == 0 {
		t.Fatalf("ECMP sent every held connection through one node: new flows per node %v", perNode)
	}

	// Draining bal-2: it withdraws, the router moves its flows to bal-1.
	if _, err := f.Client(bal2.Name).Drain(ctxT(t, 5*time.Second), true); err != nil {
		t.Fatal(err)
	}
	waitHops(t, f, lab.VIP4, "bal-2 drained", bal1.V4)
	held.wait(t, "every connection answered after the drain", held.progressed())
	if _, err := f.Client(bal2.Name).Drain(ctxT(t, 5*time.Second), false); err != nil {
		t.Fatal(err)
	}
	waitHops(t, f, lab.VIP4, "bal-2 undrained", bal1.V4, bal2.V4)
	held.wait(t, "every connection answered after the undrain", held.progressed())

	// Replacing bal-1's agent: stopped, its session closes and the router
	// moves every flow to bal-2; restarted, it adopts its pinned maps.
	if err := f.KillAgent(bal1.Name, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitHops(t, f, lab.VIP4, "bal-1's agent stopped", bal2.V4)
	held.wait(t, "every connection answered with bal-1's agent away", held.progressed())
	if err := restart(); err != nil {
		t.Fatal(err)
	}
	waitHops(t, f, lab.VIP4, "bal-1's agent back", bal1.V4, bal2.V4)
	held.wait(t, "every connection answered after bal-1's agent came back", held.progressed())

	held.stop()
	if err := held.err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d held connections answered %d requests, each always from the same backend", heldConns, held.total())
}

// fleetLimit sends twice the tenant's per-minute limit at once through
// the gateway VIP: the router spreads the connections over both balancer
// nodes, which spread them over three gateways sharing Redis.
func fleetLimit(t *testing.T, f *lab.Fleet, d *lab.Dialer, key string) {
	before := newFlowsPerNode(t, f)
	hc := d.HTTPClient(false, 20*time.Second)
	var (
		next, ok, refused, other atomic.Int64
		wg                       sync.WaitGroup
	)
	start := time.Now()
	for w := 0; w < fleetWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= fleetRequests {
				r, err := lab.AIChat(context.Background(), hc, lab.GatewayURL(), key, "hello", false, 4)
				switch {
				case err == nil && r.Status == http.StatusOK:
					ok.Add(1)
				case r.Status == http.StatusTooManyRequests:
					refused.Add(1)
				default:
					other.Add(1)
					t.Logf("request: status %d, %v", r.Status, err)
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	after := newFlowsPerNode(t, f)
	// GCRA refills L per minute continuously: over the run it may admit
	// L plus what refilled meanwhile, never more.
	bound := fleetRPM + int64(float64(fleetRPM)*took.Minutes()+1)
	t.Logf("admitted %d, refused %d, other %d of %d in %s (limit %d/min, bound %d); new flows per balancer %v -> %v",
		ok.Load(), refused.Load(), other.Load(), fleetRequests, took.Round(time.Millisecond), fleetRPM, bound, before, after)
	if other.Load() > 0 {
		t.Fatalf("%d requests neither admitted nor refused", other.Load())
	}
	if ok.Load() > bound {
		t.Fatalf("admitted %d: over the fleet-wide limit (%d, %d with what refilled)", ok.Load(), fleetRPM, bound)
	}
	if float64(ok.Load()) < 0.95*fleetRPM {
		t.Fatalf("admitted %d: more than 5%% under the limit %d", ok.Load(), fleetRPM)
	}
	for i := range after {
		if after[i] == before[i] {
			t.Fatalf("balancer %d carried none of the requests: ECMP did not spread them", i+1)
		}
	}
	served := 0
	for _, g := range f.GPUs {
		if gatewayRequests(t, f, g.Name) > 0 {
			served++
		}
	}
	if served < 2 {
		t.Fatalf("only %d gateway(s) served requests: the shared limit is not shown", served)
	}
}

// gatewayRequests is how many requests a GPU host's gateway forwarded.
func gatewayRequests(t *testing.T, f *lab.Fleet, node string) uint64 {
	bs, err := f.Client(node).Backends(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, b := range bs {
		if b.L7 != nil {
			n += b.L7.Requests
		}
	}
	return n
}

// newFlowsPerNode reads each balancer node's new flows over every VIP.
func newFlowsPerNode(t *testing.T, f *lab.Fleet) []uint64 {
	out := make([]uint64, len(f.Balancers))
	for i, b := range f.Balancers {
		st, err := f.Client(b.Name).Stats(ctxT(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range st.VIPs {
			out[i] += v.NewFlows
		}
	}
	return out
}

// heldSet is heldConns TCP connections to VIP4's service port, each
// sending GET /health every heldEvery and checking that the same backend
// answers every time.
type heldSet struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	counts [heldConns]atomic.Int64
	mu     sync.Mutex
	first  error
}

func holdConnections(t *testing.T, d *lab.Dialer) *heldSet {
	ctx, cancel := context.WithCancel(context.Background())
	h := &heldSet{cancel: cancel}
	addr := netip.AddrPortFrom(lab.VIP4, lab.ServicePort).String()
	for i := 0; i < heldConns; i++ {
		c, err := d.DialContext(ctxT(t, 5*time.Second), "tcp", addr)
		if err != nil {
			cancel()
			t.Fatalf("connection %d: %v", i, err)
		}
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			defer c.Close()
			br := bufio.NewReader(c)
			backend := ""
			for ctx.Err() == nil {
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := fmt.Fprintf(c, "GET /health HTTP/1.1\r\nHost: %s\r\n\r\n", addr); err != nil {
					h.fail(fmt.Errorf("connection %d after %d answers: write: %w", i, h.counts[i].Load(), err))
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					h.fail(fmt.Errorf("connection %d after %d answers: read: %w", i, h.counts[i].Load(), err))
					return
				}
				resp.Body.Close()
				got := resp.Header.Get(lab.BackendHeader)
				if backend == "" {
					backend = got
				} else if got != backend {
					h.fail(fmt.Errorf("connection %d: answered by %s, then by %s", i, backend, got))
					return
				}
				h.counts[i].Add(1)
				select {
				case <-ctx.Done():
				case <-time.After(heldEvery):
				}
			}
		}()
	}
	return h
}

func (h *heldSet) fail(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.first == nil {
		h.first = err
	}
}

func (h *heldSet) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.first
}

func (h *heldSet) stop() {
	h.cancel()
	h.wg.Wait()
}

// answered counts connections that got at least one answer.
func (h *heldSet) answered() int {
	n := 0
	for i := range h.counts {
		if h.counts[i].Load() > 0 {
			n++
		}
	}
	return n
}

func (h *heldSet) total() int64 {
	var n int64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// progressed returns a condition that holds once every connection has
// answered twice more than now.
func (h *heldSet) progressed() func() bool {
	var base [heldConns]int64
	for i := range h.counts {
		base[i] = h.counts[i].Load()
	}
	return func() bool {
		for i := range h.counts {
			if h.counts[i].Load() < base[i]+2 {
				return false
			}
		}
		return true
	}
}

// wait polls cond, failing at once when a connection broke.
func (h *heldSet) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(routeWait)
	for !cond() {
		if err := h.err(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := h.err(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// dumpFleetLogs prints the tails of the balancer agents' and bird's logs.
func dumpFleetLogs(t *testing.T, f *lab.Fleet) {
	t.Helper()
	paths := []string{f.RouterLog()}
	for _, b := range f.Balancers {
		paths = append(paths, f.AgentLog(b.Name))
	}
	for _, g := range f.GPUs {
		paths = append(paths, f.AgentLog(g.Name))
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		const keep = 3000
		if len(b) > keep {
			b = b[len(b)-keep:]
		}
		t.Logf("--- %s ---\n%s", p, b)
	}
}
