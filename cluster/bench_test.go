package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/infergate/infergate/internal/kubetest"
	"github.com/infergate/infergate/policy"
)

// Scale of the cluster benchmark: 200 LoadBalancer Services, endpoints in
// slices of 10.
const (
	benchServices     = 200
	benchSliceEndings = 10
)

// benchAddr is the i-th endpoint's address, unique within 198.18.0.0/15.
func benchAddr(i int) string { return fmt.Sprintf("198.19.%d.%d", i/250, i%250+1) }

// populate creates the Policy, a VIPPool, the Services (with their VIPs
// already in status, as a running allocator leaves them) and n endpoints.
func populate(b *testing.B, cs kubernetes.Interface, dyn dynamic.Interface, n int) []*discoveryv1.EndpointSlice {
	ctx := context.Background()
	if _, err := dyn.Resource(PolicyGVR).Create(ctx, policyObject("default", baseSpec), metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	class := LoadBalancerClass
	par := func(count int, f func(i int) error) {
		var wg sync.WaitGroup
		errc := make(chan error, count)
		sem := make(chan struct{}, 16)
		for i := range count {
			wg.Add(1)
			sem <- struct{}{}
			go func() { defer wg.Done(); defer func() { <-sem }(); errc <- f(i) }()
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	par(benchServices, func(i int) error {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: "s" + strconv.Itoa(i)},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: &class, AllocateLoadBalancerNodePorts: new(bool),
				Ports: []corev1.ServicePort{{Port: 8000, TargetPort: intstr.FromInt32(8000), Protocol: corev1.ProtocolTCP}}}}
		s, err := cs.CoreV1().Services("bench").Create(ctx, svc, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: fmt.Sprintf("198.18.%d.%d", 100+i/250, i%250+1)}}
		_, err = cs.CoreV1().Services("bench").UpdateStatus(ctx, s, metav1.UpdateOptions{})
		return err
	})
	nSlices := n / benchSliceEndings
	out := make([]*discoveryv1.EndpointSlice, nSlices)
	par(nSlices, func(i int) error {
		var eps []ep
		for j := range benchSliceEndings {
			eps = append(eps, ep{addr: benchAddr(i*benchSliceEndings + j), ready: true, serving: true})
		}
		es, err := cs.DiscoveryV1().EndpointSlices("bench").Create(ctx, endpointSlice("bench", "s"+strconv.Itoa(i%benchServices), "e"+strconv.Itoa(i), 8000, eps...), metav1.CreateOptions{})
		out[i] = es
		return err
	})
	return out
}

func countBackends(d *policy.Document) int {
	n := 0
	for _, p := range d.Spec.Pools {
		for _, b := range p.Backends {
			if b.State == "" {
				n++
			}
		}
	}
	return n
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func rssBytes() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb * 1024
		}
	}
	return 0
}

// BenchmarkClusterScale: a real API server holding 200 LoadBalancer
// Services and n endpoints (slices of 10), a real agent over the loaded BPF
// maps. Each iteration turns one endpoint not ready and measures from the
// EndpointSlice update's call to the agent's maps being written
// (change-p50-ms, change-p99-ms); resync-ms is a cold start (new informers
// listing everything, compose, apply into a fresh agent); heap-MiB and
// rss-MiB are the process (agent, source and the benchmark's client) after
// it.
func BenchmarkClusterScale(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run("endpoints="+strconv.Itoa(n), func(b *testing.B) { benchScale(b, n) })
	}
}

func benchScale(b *testing.B, n int) {
	srv := kubetest.Start(b)
	cs, dyn := clients(b, srv.Config())
	installCRDs(b, dyn)
	ess := populate(b, cs, dyn, n)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

	// Cold: a fresh agent and source, timed until the agent runs every
	// endpoint.
	a, _ := realAgent(b, 16384)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type applied struct {
		at    time.Time
		ready int
	}
	appliedc := make(chan applied, 64)
	src, err := NewSource(Config{Client: cs, Dynamic: dyn, NodeName: "lb-1", Role: "balancer", Log: log,
		OnApplied: func(_ string, d *policy.Document, _ time.Time) {
			select {
			case appliedc <- applied{time.Now(), countBackends(d)}:
			default: // nobody reads after the benchmark
			}
		}})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	go func() { _ = src.Run(ctx, a.ApplyFromSource) }()
	var resync time.Duration
	for r := range appliedc {
		if r.ready == n {
			resync = r.at.Sub(start)
			break
		}
	}
	if got := len(a.Backends()); got != n {
		b.Fatalf("the agent runs %d backends, want %d", got, n)
	}

	b.ResetTimer()
	var lat []time.Duration
	ready := n
	for i := 0; i < b.N; i++ {
		es := ess[i%len(ess)]
		j := (i / len(ess)) % len(es.Endpoints)
		c := &es.Endpoints[j].Conditions
		r := !(c.Ready == nil || *c.Ready)
		c.Ready, c.Serving = &r, &r
		if r {
			ready++
		} else {
			ready--
		}
		t0 := time.Now()
		upd, err := cs.DiscoveryV1().EndpointSlices("bench").Update(ctx, es, metav1.UpdateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		ess[i%len(ess)] = upd
		for rr := range appliedc {
			if rr.ready == ready {
				lat = append(lat, rr.at.Sub(t0))
				break
			}
		}
	}
	b.StopTimer()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "change-p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "change-p99-ms")
	b.ReportMetric(float64(resync.Milliseconds()), "resync-ms")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
	b.ReportMetric(rssBytes()/(1<<20), "rss-MiB")
}
