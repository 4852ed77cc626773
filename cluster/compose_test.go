package cluster

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	infv1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"

	"github.com/infergate/infergate/policy"
)

func lbService(ns, name string, vip string, ports ...int32) *corev1.Service {
	class := LoadBalancerClass
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: &class}}
	for _, p := range ports {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Port: p, TargetPort: intstr.FromInt32(p), Protocol: corev1.ProtocolTCP})
	}
	if vip != "" {
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: vip}}
	}
	return s
}

type ep struct {
	addr, pod, node             string
	ready, serving, terminating bool
}

func slice(ns, svc, name string, port int32, eps ...ep) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
		Labels: map[string]string{discoveryv1.LabelServiceName: svc}}, AddressType: discoveryv1.AddressTypeIPv4}
	pn := ""
	es.Ports = []discoveryv1.EndpointPort{{Name: &pn, Port: &port}}
	for _, e := range eps {
		e := e
		x := discoveryv1.Endpoint{Addresses: []string{e.addr},
			Conditions: discoveryv1.EndpointConditions{Ready: &e.ready, Serving: &e.serving, Terminating: &e.terminating}}
		if e.pod != "" {
			x.TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: e.pod}
		}
		if e.node != "" {
			x.NodeName = &e.node
		}
		es.Endpoints = append(es.Endpoints, x)
	}
	return es
}

func basePolicy() *policy.Document {
	return &policy.Document{APIVersion: policy.APIVersion, Kind: policy.Kind, Metadata: policy.Metadata{Name: "default"},
		Spec: policy.Spec{Dataplane: policy.Dataplane{Interfaces: []string{"eth0"}}}}
}

func backends(t *testing.T, d *policy.Document, pool string) map[string]string {
	t.Helper()
	for _, p := range d.Spec.Pools {
		if p.Name == pool {
			out := map[string]string{}
			for _, b := range p.Backends {
				out[b.Address] = b.State
			}
			return out
		}
	}
	return nil
}

// Ready endpoints are active, terminating ones drain, not-ready ones are
// left out; the VIP steers the Service's port to the pool; the result
// validates and compiles as a policy file would.
func TestComposeServiceEndpoints(t *testing.T) {
	svc := lbService("ml", "llm", "198.18.100.1", 8000)
	es := slice("ml", "llm", "llm-abc", 8000,
		ep{addr: "198.18.1.1", pod: "llm-0", node: "gpu-1", ready: true, serving: true},
		ep{addr: "198.18.1.2", pod: "llm-1", node: "gpu-2", ready: false, serving: true, terminating: true},
		ep{addr: "198.18.1.3", pod: "llm-2", node: "gpu-3", ready: false})
	nodes := []*corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "gpu-1"},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.18.1.1"}}}}}
	d, _ := Compose(Snapshot{Policy: basePolicy(), Services: []*corev1.Service{svc}, Slices: []*discoveryv1.EndpointSlice{es}, Nodes: nodes},
		ComposeOptions{Role: "balancer", NodeName: "lb-1", LoadReportPort: 9400})
	name := ServicePoolName("ml", "llm", "")
	got := backends(t, d, name)
	want := map[string]string{"198.18.1.1": "", "198.18.1.2": policy.StateDraining}
	if len(got) != len(want) || got["198.18.1.1"] != want["198.18.1.1"] || got["198.18.1.2"] != want["198.18.1.2"] {
		t.Fatalf("backends %v, want %v", got, want)
	}
	if len(d.Spec.Dataplane.VIPs) != 1 || d.Spec.Dataplane.VIPs[0].Address != "198.18.100.1" || d.Spec.Dataplane.VIPs[0].Port != 8000 || d.Spec.Dataplane.VIPs[0].Pool != name {
		t.Fatalf("vips %+v", d.Spec.Dataplane.VIPs)
	}
	if u := d.Spec.Pools[0].Backends[0].LoadReportURL; u != "http://198.18.1.1:9400/load" {
		t.Fatalf("load report URL %q", u)
	}
	if d.Spec.Pools[0].LoadReports {
		t.Fatal("loadReports on although gpu-2 has no known address")
	}
	b, err := policy.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	pd, err := policy.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("composed document refused: %v\n%s", err, b)
	}
	if _, err := policy.Compile(pd); err != nil {
		t.Fatal(err)
	}
}

// With no ready endpoint, serving terminating ones take new flows (as
// kube-proxy does) rather than the VIP steering nothing; with none
// serving either the VIP is left out.
func TestComposeOnlyTerminating(t *testing.T) {
	svc := lbService("ml", "llm", "198.18.100.1", 8000)
	es := slice("ml", "llm", "a", 8000,
		ep{addr: "198.18.1.1", ready: false, serving: true, terminating: true},
		ep{addr: "198.18.1.2", ready: false, serving: false, terminating: true})
	d, _ := Compose(Snapshot{Services: []*corev1.Service{svc}, Slices: []*discoveryv1.EndpointSlice{es}}, ComposeOptions{Role: "balancer"})
	got := backends(t, d, ServicePoolName("ml", "llm", ""))
	if len(got) != 1 || got["198.18.1.1"] != "" {
		t.Fatalf("backends %v, want only the serving one, active", got)
	}
	es = slice("ml", "llm", "a", 8000, ep{addr: "198.18.1.2", ready: false, serving: false, terminating: true})
	d, _ = Compose(Snapshot{Services: []*corev1.Service{svc}, Slices: []*discoveryv1.EndpointSlice{es}}, ComposeOptions{Role: "balancer"})
	if len(d.Spec.Dataplane.VIPs) != 0 || len(d.Spec.Pools) != 0 {
		t.Fatalf("a Service with nothing serving still steered: %+v", d.Spec)
	}
}

// Services of another class, of another type, or without a VIP yet are
// not steered; the same address in two slices counts once.
func TestComposeSelection(t *testing.T) {
	other := lbService("ml", "other", "198.18.100.2", 80)
	oc := "example.com/other"
	other.Spec.LoadBalancerClass = &oc
	cip := lbService("ml", "cip", "198.18.100.3", 80)
	cip.Spec.Type = corev1.ServiceTypeClusterIP
	novip := lbService("ml", "novip", "", 80)
	ours := lbService("ml", "ours", "198.18.100.4", 80)
	ss := []*discoveryv1.EndpointSlice{
		slice("ml", "other", "o", 80, ep{addr: "198.18.1.1", ready: true}),
		slice("ml", "cip", "c", 80, ep{addr: "198.18.1.1", ready: true}),
		slice("ml", "novip", "n", 80, ep{addr: "198.18.1.1", ready: true}),
		slice("ml", "ours", "x", 80, ep{addr: "198.18.1.1", ready: true}),
		slice("ml", "ours", "y", 80, ep{addr: "198.18.1.1", ready: false, terminating: true}),
	}
	d, _ := Compose(Snapshot{Services: []*corev1.Service{other, cip, novip, ours}, Slices: ss}, ComposeOptions{Role: "balancer"})
	if len(d.Spec.Dataplane.VIPs) != 1 || d.Spec.Dataplane.VIPs[0].Address != "198.18.100.4" {
		t.Fatalf("vips %+v", d.Spec.Dataplane.VIPs)
	}
	if got := backends(t, d, ServicePoolName("ml", "ours", "")); len(got) != 1 || got["198.18.1.1"] != "" {
		t.Fatalf("backends %v", got)
	}
}

// A GPU host accepts the VIPs of Services with an endpoint on it, and no
// others.
func TestComposeGPUHostLocalVIPs(t *testing.T) {
	a := lbService("ml", "a", "198.18.100.1", 80)
	b := lbService("ml", "b", "198.18.100.2", 80)
	ss := []*discoveryv1.EndpointSlice{
		slice("ml", "a", "a", 80, ep{addr: "198.18.1.1", node: "gpu-1", ready: true}),
		slice("ml", "b", "b", 80, ep{addr: "198.18.1.2", node: "gpu-2", ready: true}),
	}
	d, _ := Compose(Snapshot{Services: []*corev1.Service{a, b}, Slices: ss}, ComposeOptions{Role: "gpu-host", NodeName: "gpu-1"})
	if strings.Join(d.Spec.Dataplane.LocalVIPs, ",") != "198.18.100.1" {
		t.Fatalf("localVIPs %v", d.Spec.Dataplane.LocalVIPs)
	}
}

// An InferencePool's ready pods at its target port become an L7 pool;
// pods of another namespace, unready or unmatched pods are not in it, and
// a pod being deleted drains.
func TestComposeInferencePool(t *testing.T) {
	ip := &infv1.InferencePool{ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: "llama"},
		Spec: infv1.InferencePoolSpec{Selector: infv1.LabelSelector{MatchLabels: map[infv1.LabelKey]infv1.LabelValue{"app": "llama"}},
			TargetPorts: []infv1.Port{{Number: 8000}}}}
	pod := func(ns, name, addr string, lbl string, ready bool) *corev1.Pod {
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": lbl}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: addr, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}}}
	}
	gone := pod("ml", "llama-3", "198.18.2.4", "llama", true)
	now := metav1.Now()
	gone.DeletionTimestamp = &now
	pods := []*corev1.Pod{pod("ml", "llama-1", "198.18.2.1", "llama", true), pod("ml", "llama-2", "198.18.2.2", "llama", false),
		pod("other", "llama-x", "198.18.2.3", "llama", true), pod("ml", "mistral", "198.18.2.5", "mistral", true), gone}
	d, _ := Compose(Snapshot{Pools: []*infv1.InferencePool{ip}, Pods: pods}, ComposeOptions{Role: "gpu-host"})
	got := backends(t, d, InferencePoolName("ml", "llama"))
	if len(got) != 2 || got["198.18.2.1"] != "" || got["198.18.2.4"] != policy.StateDraining {
		t.Fatalf("backends %v", got)
	}
	if d.Spec.Pools[0].Backends[0].Port != 8000 {
		t.Fatalf("port %d", d.Spec.Pools[0].Backends[0].Port)
	}
}

// Names fit the policy's rules; long ones stay distinct.
func TestPolicyName(t *testing.T) {
	long := strings.Repeat("a", 60)
	a, b := ServicePoolName("ns", long+"x", ""), ServicePoolName("ns", long+"y", "")
	if a == b || len(a) > policy.MaxNameLen {
		t.Fatalf("%q %q", a, b)
	}
	if n := policyName("Pod_Name:1"); n != "pod_name-1" {
		t.Fatalf("%q", n)
	}
	if n := ServicePoolName("ml", "llm", "http"); n != "llm.ml.svc.http" {
		t.Fatalf("%q", n)
	}
	_ = netip.Addr{}
}
