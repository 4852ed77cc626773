package cluster

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/infergate/infergate/agent"
	"github.com/infergate/infergate/internal/kubetest"
	"github.com/infergate/infergate/loader"
	"github.com/infergate/infergate/policy"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

func clients(t testing.TB, rc *rest.Config) (kubernetes.Interface, dynamic.Interface) {
	t.Helper()
	rc.QPS, rc.Burst = 500, 1000
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return cs, dyn
}

// installCRDs creates deploy/crds and the InferencePool CRD shipped in the
// gateway-api-inference-extension module, and waits until they serve.
func installCRDs(t testing.TB, dyn dynamic.Interface) {
	t.Helper()
	files := []string{filepath.Join("..", "deploy", "crds", "policy.yaml"), filepath.Join("..", "deploy", "crds", "vippool.yaml")}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api-inference-extension").Output()
	if err != nil {
		t.Fatalf("find the inference extension module: %v", err)
	}
	files = append(files, filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "bases", "inference.networking.k8s.io_inferencepools.yaml"))
	kubetest.InstallCRDs(t, dyn, files...)
}

func eventually(t testing.TB, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func policyObject(name string, spec string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	doc := fmt.Sprintf("apiVersion: infergate.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: %s\nspec:\n%s", name, spec)
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		panic(err)
	}
	return u
}

const baseSpec = "  dataplane:\n    interfaces: [eth0]\n"

// backendStates reads what the agent runs for one pool: address -> state.
func backendStates(a *agent.Agent, pool string) map[string]string {
	out := map[string]string{}
	for _, b := range a.Backends() {
		if b.Pool == pool {
			out[b.Address] = b.State
		}
	}
	return out
}

func endpointSlice(ns, svc, name string, port int32, eps ...ep) *discoveryv1.EndpointSlice {
	es := slice(ns, svc, name, port, eps...)
	es.Labels[discoveryv1.LabelManagedBy] = "infergate-test"
	return es
}

// The cluster source against a real kube-apiserver, into a real agent's
// maps: CRDs served and checked, VIPs allocated and written back,
// EndpointSlice changes reaching the agent, per-node status, problems
// reported, InferencePools honoured, and an API server restart survived.
func TestClusterAgainstAPIServer(t *testing.T) {
	a, lb := realAgent(t, 0)
	srv := kubetest.Start(t)
	cs, dyn := clients(t, srv.Config())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	installCRDs(t, dyn)

	t.Run("SchemaRefusesBadPolicy", func(t *testing.T) {
		// Port 70000 is over the policy schema's maximum; an unknown field
		// is refused by strict field validation (kubectl's default).
		for spec, want := range map[string]string{
			baseSpec + "    vips:\n    - {name: v, address: 198.18.100.9, port: 70000, pool: p}\n": "70000",
			baseSpec + "    bogus: 1\n": "bogus",
			"  pools:\n  - {name: p, backends: [{name: b, address: 198.18.1.1, state: sleeping}]}\n": "sleeping",
		} {
			_, err := dyn.Resource(PolicyGVR).Create(ctx, policyObject("bad", spec), metav1.CreateOptions{FieldValidation: "Strict"})
			if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), want) {
				t.Errorf("bad policy (%s) not refused as invalid: %v", want, err)
			}
		}
		if _, err := dyn.Resource(PolicyGVR).Create(ctx, policyObject("bad-name_", baseSpec), metav1.CreateOptions{}); err == nil {
			t.Error("a Policy whose name the policy document refuses was accepted")
		}
	})

	if _, err := dyn.Resource(PolicyGVR).Create(ctx, policyObject("default", baseSpec), metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
		t.Fatal(err)
	}
	pool := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "infergate.dev/v1alpha1", "kind": "VIPPool",
		"metadata": map[string]any{"name": "main"}, "spec": map[string]any{"cidrs": []any{"198.18.100.0/30"}}}}
	if _, err := dyn.Resource(VIPPoolGVR).Create(ctx, pool, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	badPool := pool.DeepCopy()
	badPool.SetName("bad")
	_ = unstructured.SetNestedStringSlice(badPool.Object, []string{"not-a-cidr"}, "spec", "cidrs")
	if _, err := dyn.Resource(VIPPoolGVR).Create(ctx, badPool, metav1.CreateOptions{}); err == nil {
		t.Error("a VIPPool with a CIDR that does not parse was accepted")
	}
	for _, ns := range []string{"ml", "infergate"} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cs.CoreV1().ServiceAccounts("ml").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The balancer node runs the real agent and the VIP allocator; a GPU
	// node's source runs beside it against the same Policy, to show the two
	// nodes' status entries kept apart.
	var mu sync.Mutex
	applies := 0
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	src, err := NewSource(Config{Client: cs, Dynamic: dyn, NodeName: "lb-1", Role: "balancer", Debounce: 10 * time.Millisecond, Log: log,
		LoadBalancer: &LeaderConfig{Namespace: "infergate", Identity: "lb-1", LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 200 * time.Millisecond},
		OnApplied:    func(string, *policy.Document, time.Time) { mu.Lock(); applies++; mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = src.Run(ctx, a.ApplyFromSource) }()
	var gpuDoc struct {
		sync.Mutex
		d *policy.Document
	}
	gpu, err := NewSource(Config{Client: cs, Dynamic: dyn, NodeName: "gpu-1", Role: "gpu-host", Debounce: 10 * time.Millisecond, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = gpu.Run(ctx, func(_ context.Context, doc []byte) (string, error) {
			d, err := policy.Decode(bytes.NewReader(doc))
			if err != nil {
				return "", err
			}
			c, err := policy.Compile(d)
			if err != nil {
				return "", err
			}
			gpuDoc.Lock()
			gpuDoc.d = d
			gpuDoc.Unlock()
			return c.Version, nil
		})
	}()

	svcPool := ServicePoolName("ml", "llm", "")
	t.Run("LoadBalancerServiceGetsVIP", func(t *testing.T) {
		class := LoadBalancerClass
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: "llm"},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: &class, AllocateLoadBalancerNodePorts: new(bool),
				Ports: []corev1.ServicePort{{Port: 8000, TargetPort: intstr.FromInt32(8000), Protocol: corev1.ProtocolTCP}}}}
		if _, err := cs.CoreV1().Services("ml").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		other := svc.DeepCopy()
		other.Name = "other"
		oc := "example.com/other"
		other.Spec.LoadBalancerClass = &oc
		if _, err := cs.CoreV1().Services("ml").Create(ctx, other, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 15*time.Second, "the Service's VIP in its status", func() bool {
			s, err := cs.CoreV1().Services("ml").Get(ctx, "llm", metav1.GetOptions{})
			return err == nil && len(s.Status.LoadBalancer.Ingress) == 1 && s.Status.LoadBalancer.Ingress[0].IP == "198.18.100.1"
		})
		time.Sleep(300 * time.Millisecond)
		if s, _ := cs.CoreV1().Services("ml").Get(ctx, "other", metav1.GetOptions{}); len(s.Status.LoadBalancer.Ingress) != 0 {
			t.Errorf("a Service of another class got %v", s.Status.LoadBalancer.Ingress)
		}
		if l, err := cs.CoordinationV1().Leases("infergate").Get(ctx, LeaseName, metav1.GetOptions{}); err != nil || ptrOr(l.Spec.HolderIdentity, "") != "lb-1" {
			t.Errorf("lease %v %v", l, err)
		}
	})

	t.Run("EndpointSlices", func(t *testing.T) {
		es := endpointSlice("ml", "llm", "llm-1", 8000,
			ep{addr: "198.18.1.1", pod: "llm-a", node: "gpu-1", ready: true, serving: true},
			ep{addr: "198.18.1.2", pod: "llm-b", node: "gpu-2", ready: true, serving: true})
		es, err := cs.DiscoveryV1().EndpointSlices("ml").Create(ctx, es, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wait := func(what string, want map[string]string) {
			t.Helper()
			eventually(t, 5*time.Second, what, func() bool {
				got := backendStates(a, svcPool)
				return len(got) == len(want) && func() bool {
					for k, v := range want {
						if got[k] != v {
							return false
						}
					}
					return true
				}()
			})
		}
		wait("two ready endpoints active", map[string]string{"198.18.1.1": "active", "198.18.1.2": "active"})
		// Scale up: a second slice of the same Service.
		es2 := endpointSlice("ml", "llm", "llm-2", 8000, ep{addr: "198.18.1.3", pod: "llm-c", node: "gpu-3", ready: true, serving: true})
		if _, err := cs.DiscoveryV1().EndpointSlices("ml").Create(ctx, es2, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		wait("scale up to three", map[string]string{"198.18.1.1": "active", "198.18.1.2": "active", "198.18.1.3": "active"})
		// In the kernel: the VIP, and the three backends taking new flows.
		vips, err := lb.VIPs()
		if err != nil || len(vips) != 1 || vips[0].Addr.String() != "198.18.100.1" || vips[0].Port != 8000 {
			t.Fatalf("kernel VIPs %+v %v", vips, err)
		}
		if kb := kernelBackends(t, lb); kb["198.18.1.1"] || kb["198.18.1.2"] || kb["198.18.1.3"] || len(kb) != 3 {
			t.Fatalf("kernel backends (address: draining) %v", kb)
		}
		// Terminating: llm-b drains (no new flows, its flows finish).
		f, tr := false, true
		es.Endpoints[1].Conditions = discoveryv1.EndpointConditions{Ready: &f, Serving: &tr, Terminating: &tr}
		if es, err = cs.DiscoveryV1().EndpointSlices("ml").Update(ctx, es, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		wait("a terminating endpoint drains", map[string]string{"198.18.1.1": "active", "198.18.1.2": "draining", "198.18.1.3": "active"})
		if kb := kernelBackends(t, lb); !kb["198.18.1.2"] || kb["198.18.1.1"] || kb["198.18.1.3"] {
			t.Fatalf("kernel backends (address: draining) %v: the terminating one should drain", kb)
		}
		// Scale down: llm-b gone.
		es.Endpoints = es.Endpoints[:1]
		if _, err = cs.DiscoveryV1().EndpointSlices("ml").Update(ctx, es, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		wait("scale down", map[string]string{"198.18.1.1": "active", "198.18.1.3": "active"})
		// The GPU node with an endpoint accepts the VIP.
		eventually(t, 5*time.Second, "gpu-1's localVIPs", func() bool {
			gpuDoc.Lock()
			defer gpuDoc.Unlock()
			return gpuDoc.d != nil && slices.Contains(gpuDoc.d.Spec.Dataplane.LocalVIPs, "198.18.100.1")
		})
	})

	nodeStatus := func(node string) map[string]any {
		u, err := dyn.Resource(PolicyGVR).Get(ctx, "default", metav1.GetOptions{})
		if err != nil {
			return nil
		}
		nodes, _, _ := unstructured.NestedSlice(u.Object, "status", "nodes")
		for _, n := range nodes {
			if m := n.(map[string]any); m["node"] == node {
				return m
			}
		}
		return nil
	}
	t.Run("StatusPerNode", func(t *testing.T) {
		sp, _, ok := a.Current()
		if !ok {
			t.Fatal("the agent runs no policy")
		}
		eventually(t, 5*time.Second, "both nodes' entries, lb-1 at the agent's version", func() bool {
			lb, g := nodeStatus("lb-1"), nodeStatus("gpu-1")
			return lb != nil && g != nil && lb["appliedVersion"] == sp.Version && lb["accepted"] == true && g["accepted"] == true
		})
		u, _ := dyn.Resource(PolicyGVR).Get(ctx, "default", metav1.GetOptions{})
		managers := map[string]bool{}
		for _, mf := range u.GetManagedFields() {
			if mf.Subresource == "status" {
				managers[mf.Manager] = true
			}
		}
		if !managers[FieldManager("lb-1")] || !managers[FieldManager("gpu-1")] {
			t.Errorf("status field managers %v", managers)
		}
	})

	t.Run("ProblemReportedInStatus", func(t *testing.T) {
		before, _, _ := a.Current()
		// Valid by the schema, refused by the policy's own validation: a
		// model routed to a pool that does not exist.
		u, err := dyn.Resource(PolicyGVR).Get(ctx, "default", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		bad := policyObject("default", baseSpec+"  gateway:\n    models:\n    - name: m\n      routes: [{pool: nowhere}]\n")
		bad.SetResourceVersion(u.GetResourceVersion())
		if _, err := dyn.Resource(PolicyGVR).Update(ctx, bad, metav1.UpdateOptions{FieldValidation: "Strict"}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "lb-1 reports the problem", func() bool {
			m := nodeStatus("lb-1")
			errs, _ := m["errors"].([]any)
			return m != nil && m["accepted"] == false && len(errs) > 0 && strings.Contains(fmt.Sprint(errs), "nowhere")
		})
		if now, _, _ := a.Current(); now.Version != before.Version || nodeStatus("lb-1")["appliedVersion"] != before.Version {
			t.Errorf("a refused document changed what runs: %s -> %s", before.Version, now.Version)
		}
		if got := backendStates(a, svcPool); len(got) != 2 {
			t.Errorf("backends after a refused document: %v", got)
		}
	})

	t.Run("InferencePool", func(t *testing.T) {
		// Routes to the InferencePool's pool: the Policy becomes valid once
		// the pool has a ready pod.
		u, _ := dyn.Resource(PolicyGVR).Get(ctx, "default", metav1.GetOptions{})
		ipName := InferencePoolName("ml", "llama")
		good := policyObject("default", baseSpec+"  gateway:\n    models:\n    - name: m\n      routes: [{pool: "+ipName+"}]\n")
		good.SetResourceVersion(u.GetResourceVersion())
		if _, err := dyn.Resource(PolicyGVR).Update(ctx, good, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		ip := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool",
			"metadata": map[string]any{"name": "llama", "namespace": "ml"},
			"spec": map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"app": "llama"}},
				"targetPorts":       []any{map[string]any{"number": int64(8000)}},
				"endpointPickerRef": map[string]any{"name": "epp", "port": map[string]any{"number": int64(9002)}}}}}
		if _, err := dyn.Resource(InferencePoolGVR).Namespace("ml").Create(ctx, ip, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for i, addr := range []string{"198.18.2.1", "198.18.2.2"} {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: fmt.Sprintf("llama-%d", i), Labels: map[string]string{"app": "llama"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "m", Image: "example.invalid/m"}}}}
			p, err := cs.CoreV1().Pods("ml").Create(ctx, p, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: addr, PodIPs: []corev1.PodIP{{IP: addr}},
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
			if i == 1 {
				p.Status.Conditions[0].Status = corev1.ConditionFalse
			}
			if _, err := cs.CoreV1().Pods("ml").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, 5*time.Second, "the InferencePool's ready pod in the applied policy", func() bool {
			_, c, ok := a.Current()
			if !ok {
				return false
			}
			for _, p := range c.Pools {
				if p.Name == ipName {
					return len(p.Backends) == 1 && p.Backends[0].Address.String() == "198.18.2.1" && p.Backends[0].Port == 8000
				}
			}
			return false
		})
		eventually(t, 5*time.Second, "lb-1 accepted again", func() bool { m := nodeStatus("lb-1"); return m != nil && m["accepted"] == true })
	})

	t.Run("APIServerRestart", func(t *testing.T) {
		before, _, _ := a.Current()
		beforeBackends := backendStates(a, svcPool)
		mu.Lock()
		n0 := applies
		mu.Unlock()
		srv.StopAPIServer()
		time.Sleep(3 * time.Second) // watches fail and retry meanwhile
		if now, _, _ := a.Current(); now.Version != before.Version || !mapsEqual(backendStates(a, svcPool), beforeBackends) {
			t.Fatalf("the data plane changed while the API server was away")
		}
		srv.StartAPIServer(t)
		cs2, _ := clients(t, srv.Config())
		// The watches resume: a change made after the restart arrives.
		es, err := cs2.DiscoveryV1().EndpointSlices("ml").Get(ctx, "llm-2", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tr := true
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{"198.18.1.4"}, Conditions: discoveryv1.EndpointConditions{Ready: &tr}})
		if _, err := cs2.DiscoveryV1().EndpointSlices("ml").Update(ctx, es, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "a change after the restart", func() bool { return backendStates(a, svcPool)["198.18.1.4"] == "active" })
		mu.Lock()
		n1 := applies
		mu.Unlock()
		if n1 != n0+1 {
			t.Errorf("%d applies across the restart, want exactly the one change", n1-n0)
		}
		if s, _ := cs2.CoreV1().Services("ml").Get(ctx, "llm", metav1.GetOptions{}); len(s.Status.LoadBalancer.Ingress) != 1 || s.Status.LoadBalancer.Ingress[0].IP != "198.18.100.1" {
			t.Errorf("the VIP moved across the restart: %v", s.Status.LoadBalancer.Ingress)
		}
	})
}

// kernelBackends reads the balancer's backend table back from the kernel:
// address -> draining.
func kernelBackends(t *testing.T, lb *loader.Balancer) map[string]bool {
	t.Helper()
	bs, err := lb.Backends()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, b := range bs {
		out[b.Addr.String()] = b.Draining
	}
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
