package cluster

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/infergate/infergate/internal/kubetest"
)

// The VIP allocator against a real API server, across a leader change: one
// writer at a time (the Lease holder), a Service keeps its VIP when the
// leader changes, a new Service never gets a taken address, and a deleted
// Service's address is given out again.
func TestVIPAllocatorHandover(t *testing.T) {
	srv := kubetest.Start(t)
	cs, dyn := clients(t, srv.Config())
	installCRDs(t, dyn)
	ctx := context.Background()
	pool := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "infergate.dev/v1alpha1", "kind": "VIPPool",
		"metadata": map[string]any{"name": "main"}, "spec": map[string]any{"cidrs": []any{"198.18.100.0/29"}}}}
	if _, err := dyn.Resource(VIPPoolGVR).Create(ctx, pool, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"ml", "infergate"} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	start := func(node string) context.CancelFunc {
		c, cancel := context.WithCancel(ctx)
		src, err := NewSource(Config{Client: cs, Dynamic: dyn, NodeName: node, Role: "balancer", Log: log,
			LoadBalancer: &LeaderConfig{Namespace: "infergate", Identity: node, LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 200 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = src.Run(c, func(context.Context, []byte) (string, error) { return "", nil }) }()
		return cancel
	}
	holder := func() string {
		l, err := cs.CoordinationV1().Leases("infergate").Get(ctx, LeaseName, metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return ptrOr(l.Spec.HolderIdentity, "")
	}
	vipOf := func(name string) string {
		s, err := cs.CoreV1().Services("ml").Get(ctx, name, metav1.GetOptions{})
		if err != nil || len(s.Status.LoadBalancer.Ingress) != 1 {
			return ""
		}
		return s.Status.LoadBalancer.Ingress[0].IP
	}
	create := func(name string) {
		class := LoadBalancerClass
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: name},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: &class, AllocateLoadBalancerNodePorts: new(bool),
				Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(80), Protocol: corev1.ProtocolTCP}}}}
		if _, err := cs.CoreV1().Services("ml").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	stop1 := start("n1")
	eventually(t, 15*time.Second, "n1 holds the Lease", func() bool { return holder() == "n1" })
	stop2 := start("n2")
	defer stop2()
	create("a")
	eventually(t, 10*time.Second, "a's VIP", func() bool { return vipOf("a") == "198.18.100.1" })

	// n1 goes away (its Lease is released on the way out); n2 takes over.
	stop1()
	eventually(t, 15*time.Second, "n2 holds the Lease", func() bool { return holder() == "n2" })
	create("b")
	eventually(t, 10*time.Second, "b's VIP", func() bool { return vipOf("b") != "" })
	if vipOf("b") == "198.18.100.1" || vipOf("a") != "198.18.100.1" {
		t.Fatalf("after the handover a has %s, b has %s", vipOf("a"), vipOf("b"))
	}
	// a deleted: its address is given out again.
	if err := cs.CoreV1().Services("ml").Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	create("c")
	eventually(t, 10*time.Second, "c gets a's released address", func() bool { return vipOf("c") == "198.18.100.1" })
}
