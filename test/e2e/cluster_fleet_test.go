package e2e

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/infergate/infergate/cluster"
	"github.com/infergate/infergate/internal/kubetest"
	"github.com/infergate/infergate/internal/privtest"
	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/e2e/lab"
)

// Cluster fleet settings.
const (
	// apiPort is where the API server is relayed on the store node.
	apiPort = 6443
	// svcNS/svcName is the LoadBalancer Service of the GPU hosts.
	svcNS, svcName = "ml", "inference"
	// agentNS holds the VIP allocator's Lease.
	agentNS = "infergate"
	// clusterWait bounds a change made through the API server reaching
	// every agent, the machine's load included.
	clusterWait = 30 * time.Second
	// Long streams on the host whose endpoint turns terminating: at
	// longTPS tokens per second each lasts longTokens/longTPS (8 s),
	// far longer than the change takes to reach the balancers.
	longTPS       = 50
	longTokens    = 400
	streamsOpened = 18
	// afterDrain new connections must all avoid the terminating host.
	afterDrain = 30
)

// TestClusterFleet: the fleet of TestBGPFleet (two balancer nodes behind a
// bird2 router with ECMP, three GPU hosts, redis) with every agent, the
// shipped binary, fed by ONE real API server (--source=cluster) instead of
// a policy file. The desired state is what an operator creates through the
// API server: the Policy object (the fleet's gateway, limits and BGP), a
// VIPPool, and a LoadBalancer Service of class infergate.dev/xdp with
// EndpointSlices naming the GPU hosts.
//   - The VIP: the allocator (bal-1's agent) writes the pool's address into
//     the Service's status; every node composes the VIP and its backends
//     from the Service and its slices, and every node reports the version
//     it applied in the Policy's status.
//   - Routes appear at the router as the balancer agents come up.
//   - Traffic from the client through the router's ECMP reaches every GPU
//     host, over both balancer nodes.
//   - A tenant's requests-per-minute limit, shared through Redis, admits
//     within 5% of the limit and never more than GCRA allows.
//   - Connections survive a flow moving between balancer nodes (bal-2
//     drains) and bal-1's agent being replaced, each kept on its backend:
//     both nodes compose the same tables from the cluster.
//   - With the API server away, routes and traffic stay, and a balancer
//     agent replaced meanwhile comes back with its stored version; once
//     the server is back, every agent's watches resume by themselves.
//   - A GPU host whose endpoint turns terminating (ready=false,
//     terminating=true, set through the API server) takes no new
//     connection and finishes every stream it had in flight.
//   - An IPv6 Service's VIP is announced over the IPv6 sessions and
//     reached through ECMP, as the IPv4 one.
func TestClusterFleet(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "ip", "nsenter", "sysctl", "ethtool", "taskset", "chrt", "bird", "birdc", "redis-server", "redis-cli", "etcd")
	start := time.Now()
	// Dual-stack Service addresses (allocated, never sent to), so that a
	// Service can be IPv6.
	srv := kubetest.StartWith(t, kubetest.Options{ExtraArgs: []string{"--service-cluster-ip-range=10.96.0.0/16,2001:db8:96::/112"}})
	t.Logf("API server ready after %s", time.Since(start).Round(time.Millisecond))
	inf, iglab := binaries(t)
	gpus := make([]lab.GPU, 3)
	for i := range gpus {
		gpus[i].TokensPerSecond = longTPS
	}
	f, err := lab.NewFleet(lab.Config{Prefix: "igc", Infergate: inf, Iglab: iglab, Dir: t.TempDir(), GPUs: gpus,
		GPUAgentArgs: []string{"--gateway=true", "--gateway-listen", fmt.Sprintf(":%d", lab.GatewayPort)}}, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpFleetLogs(t, f)
			if b, err := os.ReadFile(srv.LogFile); err == nil {
				t.Logf("--- kube-apiserver log (end) ---\n%s", b[max(0, len(b)-3000):])
			}
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
	// The agents reach the API server as a service on their segment.
	apiAddr := netip.AddrPortFrom(lab.StoreAddr4, apiPort)
	if err := f.RelayToHost(apiAddr, strings.TrimPrefix(srv.URL, "https://")); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(f.Cfg.Dir, "kubeconfig")
	if err := srv.WriteKubeconfig(kubeconfig, "https://"+apiAddr.String(), "localhost"); err != nil {
		t.Fatal(err)
	}
	f.NodeArgs = func(n lab.Node) []string {
		args := []string{"--source=cluster", "--kubeconfig", kubeconfig, "--node-name", n.Name,
			"--lease-namespace", agentNS, "--cluster-load-report-port=0"}
		if strings.HasPrefix(n.Name, "gpu-") {
			args = append(args, "--allocate-vips=false")
		}
		return args
	}

	srv.InstallCRDs(t, filepath.Join("..", "..", "deploy", "crds", "policy.yaml"), filepath.Join("..", "..", "deploy", "crds", "vippool.yaml"))
	rc := srv.Config()
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	key := newKey(t)
	createClusterState(t, f, cs, dyn, key)

	bal1, bal2 := f.Balancers[0], f.Balancers[1]
	if hops, err := f.NextHops(lab.VIP4); err != nil || len(hops) != 0 {
		t.Fatalf("before any balancer: next hops %v (%v)", hops, err)
	}
	if err := f.StartBalancer(bal1, ""); err != nil {
		t.Fatal(err)
	}
	waitServiceVIP(t, cs, svcName, lab.VIP4)
	waitHops(t, f, lab.VIP4, "bal-1 joined", bal1.V4)
	if err := f.StartBalancer(bal2, ""); err != nil {
		t.Fatal(err)
	}
	waitHops(t, f, lab.VIP4, "bal-2 joined", bal1.V4, bal2.V4)
	if err := f.StartGPUs(""); err != nil {
		t.Fatal(err)
	}
	for _, g := range f.GPUs {
		if err := f.WaitAttached(g); err != nil {
			t.Fatal(err)
		}
	}
	versions := waitPolicyStatus(t, dyn, f, nil)
	t.Logf("fleet up, fed by the API server, %s after the start", time.Since(start).Round(time.Millisecond))

	d := dialer(t, f.Clients[0].NS)
	// Each step starts from where the one before left the fleet.
	for _, step := range []struct {
		name string
		run  func(t *testing.T)
	}{
		{"traffic", func(t *testing.T) { clusterTraffic(t, f, d, lab.VIP4) }},
		{"fleet-wide limit", func(t *testing.T) { fleetLimit(t, f, d, key) }},
		{"flows move", func(t *testing.T) { moveFlows(t, f, d, func() error { return f.StartBalancer(bal1, "") }) }},
		{"API server away", func(t *testing.T) { apiServerAway(t, f, srv, dyn, d, versions) }},
		{"terminating endpoint", func(t *testing.T) { terminatingEndpoint(t, f, cs, d) }},
		{"ipv6", func(t *testing.T) { clusterIPv6(t, f, cs, d) }},
	} {
		if !t.Run(step.name, step.run) {
			t.FailNow()
		}
	}
	t.Logf("whole test %s", time.Since(start).Round(time.Millisecond))
}

// createClusterState creates, through the API server, what an operator
// would: the Policy (the fleet's document without VIPs, their pools and
// local VIPs, which the cluster gives), a VIPPool holding VIP4, and the
// LoadBalancer Service with one EndpointSlice of the three GPU hosts.
func createClusterState(t *testing.T, f *lab.Fleet, cs kubernetes.Interface, dyn dynamic.Interface, key string) {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	doc := f.FleetPolicy(lab.PolicyOptions{Name: cluster.DefaultPolicyName, Gateway: lab.AIGateway(lab.AITenant{Name: "acme", Key: key})})
	doc.Spec.Gateway.Tenants[0].Limits.RequestsPerMinute = fleetRPM
	doc.Spec.Gateway.Limits = policy.LimitStore{Redis: netip.AddrPortFrom(lab.StoreAddr4, lab.RedisPort).String()}
	doc.Spec.Dataplane.VIPs = nil
	doc.Spec.Dataplane.LocalVIPs = nil
	// The gateways' upstream: each GPU host's inference server.
	doc.Spec.Pools = slices.DeleteFunc(doc.Spec.Pools, func(p policy.Pool) bool { return p.Name != "gpu-v4" })
	b, err := policy.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var obj unstructured.Unstructured
	if err := yaml.Unmarshal(b, &obj.Object); err != nil {
		t.Fatal(err)
	}
	obj.Object["metadata"] = map[string]any{"name": cluster.DefaultPolicyName}
	if _, err := dyn.Resource(cluster.PolicyGVR).Create(ctx, &obj, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
		t.Fatalf("create the Policy: %v", err)
	}
	pool := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "infergate.dev/v1alpha1", "kind": "VIPPool",
		"metadata": map[string]any{"name": "lab"}, "spec": map[string]any{"cidrs": []any{
			netip.PrefixFrom(lab.VIP4, 32).String(), netip.PrefixFrom(lab.VIP6, 128).String()}}}}
	if _, err := dyn.Resource(cluster.VIPPoolGVR).Create(ctx, pool, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create the VIPPool: %v", err)
	}
	for _, ns := range []string{svcNS, agentNS} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	createService(t, f, cs, svcName, corev1.IPv4Protocol)
}

// createService creates a LoadBalancer Service of class
// infergate.dev/xdp in one address family, with the service port and the
// gateway port, and one EndpointSlice naming every GPU host, ready.
func createService(t *testing.T, f *lab.Fleet, cs kubernetes.Interface, name string, family corev1.IPFamily) {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	class := cluster.LoadBalancerClass
	noNodePorts := false
	single := corev1.IPFamilyPolicySingleStack
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: svcNS},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: &class, AllocateLoadBalancerNodePorts: &noNodePorts,
			IPFamilyPolicy: &single, IPFamilies: []corev1.IPFamily{family},
			Ports: []corev1.ServicePort{
				{Name: "http", Protocol: corev1.ProtocolTCP, Port: lab.ServicePort, TargetPort: intstr.FromInt32(lab.ServicePort)},
				{Name: "gateway", Protocol: corev1.ProtocolTCP, Port: lab.GatewayPort, TargetPort: intstr.FromInt32(lab.GatewayPort)},
			}}}
	if _, err := cs.CoreV1().Services(svcNS).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create the Service %s: %v", name, err)
	}
	port := func(name string, p int32) discoveryv1.EndpointPort {
		tcp := corev1.ProtocolTCP
		return discoveryv1.EndpointPort{Name: &name, Port: &p, Protocol: &tcp}
	}
	at, suffix := discoveryv1.AddressTypeIPv4, "-v4"
	if family == corev1.IPv6Protocol {
		at, suffix = discoveryv1.AddressTypeIPv6, "-v6"
	}
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name + suffix, Namespace: svcNS,
			Labels: map[string]string{discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "infergate-e2e"}},
		AddressType: at,
		Ports:       []discoveryv1.EndpointPort{port("http", lab.ServicePort), port("gateway", lab.GatewayPort)},
	}
	for _, g := range f.GPUs {
		yes, no := true, false
		addr := g.V4
		if family == corev1.IPv6Protocol {
			addr = g.V6
		}
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{addr.String()}, NodeName: &g.Name,
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: svcNS, Name: g.Name},
			Conditions: discoveryv1.EndpointConditions{Ready: &yes, Serving: &yes, Terminating: &no}})
	}
	if _, err := cs.DiscoveryV1().EndpointSlices(svcNS).Create(ctx, es, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create the EndpointSlice of %s: %v", name, err)
	}
}

// waitServiceVIP polls the Service until its status names vip.
func waitServiceVIP(t *testing.T, cs kubernetes.Interface, name string, vip netip.Addr) {
	t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		svc, err := cs.CoreV1().Services(svcNS).Get(ctxT(t, 5*time.Second), name, metav1.GetOptions{})
		if err == nil && slices.Equal(cluster.IngressVIPs(svc), []netip.Addr{vip}) {
			return
		}
		if time.Now().After(deadline) {
			var st any = err
			if svc != nil {
				st = svc.Status.LoadBalancer
			}
			t.Fatalf("the status of Service %s never named %s: %v", name, vip, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitPolicyStatus polls the Policy until every node's entry says it
// accepted and applied it, in a version other than the one in old, and
// returns each node's version.
func waitPolicyStatus(t *testing.T, dyn dynamic.Interface, f *lab.Fleet, old map[string]string) map[string]string {
	t.Helper()
	want := []string{}
	for _, n := range append(slices.Clone(f.Balancers), f.GPUs...) {
		want = append(want, n.Name)
	}
	slices.Sort(want)
	deadline := time.Now().Add(clusterWait)
	for {
		var got []string
		versions := map[string]string{}
		u, err := dyn.Resource(cluster.PolicyGVR).Get(ctxT(t, 5*time.Second), cluster.DefaultPolicyName, metav1.GetOptions{})
		if err == nil {
			nodes, _, _ := unstructured.NestedSlice(u.Object, "status", "nodes")
			for _, n := range nodes {
				m, _ := n.(map[string]any)
				node, _ := m["node"].(string)
				v, _ := m["appliedVersion"].(string)
				if m["accepted"] == true && v != "" && v != old[node] {
					got = append(got, node)
					versions[node] = v
				}
			}
		}
		slices.Sort(got)
		if slices.Equal(got, want) {
			return versions
		}
		if time.Now().After(deadline) {
			var st any
			if u != nil {
				st = u.Object["status"]
			}
			t.Fatalf("the Policy's status: nodes that applied it %v, want %v (%v)\n%v", got, want, err, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clusterTraffic: new connections from the client through the router to
// a Service's VIP reach every GPU host, over both balancer nodes.
func clusterTraffic(t *testing.T, f *lab.Fleet, d *lab.Dialer, vip netip.Addr) {
	const n = 30
	before := newFlowsPerNode(t, f)
	tally := lab.Requests(ctxT(t, time.Minute), d.HTTPClient(false, 20*time.Second), []netip.Addr{vip}, n, 6)
	after := newFlowsPerNode(t, f)
	t.Logf("%s: %d requests: %d ok, %d failed (%v), by backend %v; new flows per balancer %v -> %v",
		vip, n, tally.OK, tally.Failed, tally.FirstErr, tally.ByBackend, before, after)
	if tally.Failed > 0 {
		t.Fatalf("%d of %d requests to the Service's VIP failed: %v", tally.Failed, n, tally.FirstErr)
	}
	for _, g := range f.GPUs {
		if tally.ByBackend[g.Name] == 0 {
			t.Fatalf("%s answered none of %d requests: %v", g.Name, n, tally.ByBackend)
		}
	}
	for i := range after {
		if after[i] == before[i] {
			t.Fatalf("balancer %d carried none of the requests: ECMP did not spread them", i+1)
		}
	}
}

// streamResult is one long stream: who answered and what arrived.
type streamResult struct {
	backend string
	events  int
	done    bool
	err     error
}

// terminatingEndpoint opens long streams through the VIP, turns the
// endpoint of the host holding the most of them terminating through the
// API server, and checks that the change reaches both balancer nodes while
// the streams run, that new connections all go to the other hosts, and
// that every stream ends in full.
func terminatingEndpoint(t *testing.T, f *lab.Fleet, cs kubernetes.Interface, d *lab.Dialer) {
	hc := d.HTTPClient(false, 2*time.Minute)
	ctx := ctxT(t, 2*time.Minute)
	started := make(chan string, streamsOpened)
	results := make(chan streamResult, streamsOpened)
	var mu sync.Mutex
	finished := map[string]int{}
	for i := 0; i < streamsOpened; i++ {
		go func() {
			r := longStream(ctx, hc, started)
			if r.done {
				mu.Lock()
				finished[r.backend]++
				mu.Unlock()
			}
			results <- r
		}()
	}
	byHost := map[string]int{}
	for range streamsOpened {
		select {
		case b := <-started:
			byHost[b]++
		case r := <-results:
			t.Fatalf("a stream ended before its answer started: %v", r.err)
		case <-time.After(clusterWait):
			t.Fatalf("streams not started within %s: %v", clusterWait, byHost)
		}
	}
	host := ""
	for _, g := range f.GPUs {
		if host == "" || byHost[g.Name] > byHost[host] {
			host = g.Name
		}
	}
	t.Logf("%d streams in flight by host %v; %s's endpoint turns terminating", streamsOpened, byHost, host)
	if byHost[host] < 2 {
		t.Fatalf("no host holds two streams: %v", byHost)
	}

	setTerminating(t, cs, host)
	changed := time.Now()
	pool := cluster.ServicePoolName(svcNS, svcName, "http")
	states := map[string]string{}
	for _, b := range f.Balancers {
		states[b.Name] = waitBackendInactive(t, f, b.Name, pool, host)
	}
	t.Logf("%s no longer active on the balancer nodes %s after the change: %v", host, time.Since(changed).Round(time.Millisecond), states)
	mu.Lock()
	early := finished[host]
	mu.Unlock()
	if early > 0 {
		t.Fatalf("%d of %s's streams ended before the change reached the balancers: the test shows nothing", early, host)
	}

	tally := lab.Requests(ctx, d.HTTPClient(false, 20*time.Second), []netip.Addr{lab.VIP4}, afterDrain, 6)
	t.Logf("%d new connections after the change: by backend %v, %d failed (%v)", afterDrain, tally.ByBackend, tally.Failed, tally.FirstErr)
	if tally.Failed > 0 {
		t.Fatalf("%d new connections failed: %v", tally.Failed, tally.FirstErr)
	}
	if tally.ByBackend[host] > 0 {
		t.Fatalf("terminating %s took %d of %d new connections", host, tally.ByBackend[host], afterDrain)
	}
	if len(tally.ByBackend) < 2 {
		t.Fatalf("new connections went to %v only: want both remaining hosts", tally.ByBackend)
	}

	full := map[string]int{}
	for range streamsOpened {
		r := <-results
		if r.err != nil || !r.done || r.events != longTokens+2 {
			t.Fatalf("a stream from %s ended after %d of %d events (done %v): %v", r.backend, r.events, longTokens+2, r.done, r.err)
		}
		full[r.backend]++
	}
	if !maps.Equal(full, byHost) {
		t.Fatalf("streams completed by host %v, started %v", full, byHost)
	}
	t.Logf("every stream completed in full (%d tokens each), %d of them on terminating %s", longTokens, full[host], host)
}

// longStream posts a streaming chat request for longTokens tokens to
// VIP4's service port, sends the answering host on started once the
// answer begins, and reads the event stream to its end.
func longStream(ctx context.Context, hc *http.Client, started chan<- string) streamResult {
	body := fmt.Sprintf(`{"model":%q,"stream":true,"messages":[{"role":"user","content":"hello"}],"max_tokens":%d}`, lab.AIModel, longTokens)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, lab.URL(lab.VIP4, "/v1/chat/completions"), strings.NewReader(body))
	if err != nil {
		return streamResult{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return streamResult{err: err}
	}
	defer resp.Body.Close()
	r := streamResult{backend: resp.Header.Get(lab.BackendHeader)}
	if resp.StatusCode != http.StatusOK {
		r.err = fmt.Errorf("status %d from %s", resp.StatusCode, r.backend)
		return r
	}
	started <- r.backend
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		if line == "data: [DONE]" {
			r.done = true
			return r
		}
		r.events++
	}
	r.err = sc.Err()
	if r.err == nil {
		r.err = fmt.Errorf("stream from %s ended without [DONE]", r.backend)
	}
	return r
}

// setTerminating marks host's endpoint as a terminating pod's: not ready,
// still serving.
func setTerminating(t *testing.T, cs kubernetes.Interface, host string) {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	es, err := cs.DiscoveryV1().EndpointSlices(svcNS).Get(ctx, svcName+"-v4", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for i := range es.Endpoints {
		if ep := &es.Endpoints[i]; ep.TargetRef != nil && ep.TargetRef.Name == host {
			yes, no := true, false
			ep.Conditions = discoveryv1.EndpointConditions{Ready: &no, Serving: &yes, Terminating: &yes}
			found = true
		}
	}
	if !found {
		t.Fatalf("no endpoint of %s in the slice", host)
	}
	if _, err := cs.DiscoveryV1().EndpointSlices(svcNS).Update(ctx, es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitBackendInactive polls a node's agent until backend name of pool
// takes no new flows (draining, or gone from the pool: which one is for
// the traffic to judge) and returns its state.
func waitBackendInactive(t *testing.T, f *lab.Fleet, node, pool, name string) string {
	t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		bs, err := f.Client(node).Backends(ctxT(t, 5*time.Second))
		if err == nil {
			state := "gone"
			for _, b := range bs {
				if b.Pool == pool && b.Name == name {
					state = b.State
				}
			}
			if state != policy.StateActive {
				return state
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: backend %s of pool %s still takes new flows %s after its endpoint turned terminating: %+v (%v)", node, name, pool, clusterWait, bs, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clusterIPv6: an IPv6 LoadBalancer Service gets its VIP from the pool's
// IPv6 prefix; both balancer nodes announce it on their IPv6 sessions,
// the router spreads connections over them by ECMP, and they reach every
// GPU host (IPv6-in-IPv6 to the hosts, answered directly).
func clusterIPv6(t *testing.T, f *lab.Fleet, cs kubernetes.Interface, d *lab.Dialer) {
	const name = svcName + "6"
	if hops, err := f.NextHops(lab.VIP6); err != nil || len(hops) != 0 {
		t.Fatalf("before the IPv6 Service: next hops %v (%v)", hops, err)
	}
	createService(t, f, cs, name, corev1.IPv6Protocol)
	waitServiceVIP(t, cs, name, lab.VIP6)
	waitHops(t, f, lab.VIP6, "the IPv6 Service's VIP announced", f.Balancers[0].V6, f.Balancers[1].V6)
	clusterTraffic(t, f, d, lab.VIP6)
}

// apiServerAway stops the API server: routes and traffic stay as they
// were, and bal-1's agent, replaced meanwhile, comes back with the version
// it stored and announces again without having seen the server. Once it is
// back, a change to the Policy (a label: a new document
// version, the same data plane) reaches every node, so each agent's
// watches resumed on their own.
func apiServerAway(t *testing.T, f *lab.Fleet, srv *kubetest.Server, dyn dynamic.Interface, d *lab.Dialer, versions map[string]string) {
	srv.StopAPIServer()
	back := false
	defer func() {
		if !back {
			srv.StartAPIServer(t)
		}
	}()
	stopped := time.Now()
	bal1, bal2 := f.Balancers[0], f.Balancers[1]
	waitHops(t, f, lab.VIP4, "the API server away", bal1.V4, bal2.V4)
	if err := f.KillAgent(bal1.Name, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitHops(t, f, lab.VIP4, "bal-1's agent stopped, the API server away", bal2.V4)
	if err := f.StartBalancer(bal1, ""); err != nil {
		t.Fatal(err)
	}
	waitHops(t, f, lab.VIP4, "bal-1's agent back, the API server away", bal1.V4, bal2.V4)
	st, err := f.Client(bal1.Name).Status(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if st.Policy.Version != versions[bal1.Name] {
		t.Fatalf("bal-1's agent came back without the API server running version %q, want the one it applied before, %q", st.Policy.Version, versions[bal1.Name])
	}
	clusterTraffic(t, f, d, lab.VIP4)
	srv.StartAPIServer(t)
	back = true
	t.Logf("API server back %s after it stopped", time.Since(stopped).Round(time.Millisecond))
	patch := []byte(`{"metadata":{"labels":{"infergate.dev/e2e":"after-restart"}}}`)
	if _, err := dyn.Resource(cluster.PolicyGVR).Patch(ctxT(t, 30*time.Second), cluster.DefaultPolicyName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	waitPolicyStatus(t, dyn, f, versions)
	t.Logf("every node applied the Policy changed after the restart, %s after the change", time.Since(changed).Round(time.Millisecond))
}
