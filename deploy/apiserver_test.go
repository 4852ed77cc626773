package deploy

import (
	"context"
	"testing"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	"github.com/infergate/infergate/internal/kubetest"
)

const testFieldManager = "infergate-deploy-test"

// cluster is a client of a kubetest server with what applying manifests
// needs.
type cluster struct {
	dyn    dynamic.Interface
	cs     *kubernetes.Clientset
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func newCluster(t *testing.T, s *kubetest.Server) *cluster {
	t.Helper()
	cfg := s.Config()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{dyn: dyn, cs: cs, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}
}

// apply server-side applies o, for real or as a dry run.
func (c *cluster) apply(ctx context.Context, t *testing.T, o object, dryRun bool) error {
	t.Helper()
	u := &unstructured.Unstructured{Object: jsonMap(t, o)}
	gvk := u.GroupVersionKind()
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return err
	}
	var ri dynamic.ResourceInterface = c.dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ri = c.dyn.Resource(m.Resource).Namespace(u.GetNamespace())
	}
	opts := metav1.ApplyOptions{FieldManager: testFieldManager, Force: true}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	_, err = ri.Apply(ctx, u.GetName(), u, opts)
	return err
}

// installPrerequisites applies the CRDs and the Namespace for real (a dry
// run of a namespaced object or a custom resource needs them to exist) and
// waits until the CRDs are established.
func (c *cluster) installPrerequisites(ctx context.Context, t *testing.T, objs []object, kinds ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, k := range kinds {
		want[k] = true
	}
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	var crds []string
	for _, o := range objs {
		if !want[o.kind()] {
			continue
		}
		if err := c.apply(ctx, t, o, false); err != nil {
			t.Fatalf("apply %s %s: %v", o.kind(), o.name(), err)
		}
		if o.kind() == "CustomResourceDefinition" {
			crds = append(crds, o.name())
		}
	}
	for _, name := range crds {
		deadline := time.Now().Add(30 * time.Second)
		for {
			u, err := c.dyn.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
			if err == nil && established(u) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("CRD %s not established: %v", name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	c.mapper.Reset()
}

func established(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// TestManifestsServerSideDryRun: every rendered object is accepted by a
// real API server's validation and admission (server-side apply, dry run),
// after the CRDs and the namespace are installed; and the server does
// refuse what it should (a DaemonSet asking for Bidirectional mount
// propagation without privilege), so acceptance means something.
func TestManifestsServerSideDryRun(t *testing.T) {
	s := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := newCluster(t, s)
	objs := renderDeploy(t)
	c.installPrerequisites(ctx, t, objs, "CustomResourceDefinition", "Namespace")
	for _, o := range objs {
		if err := c.apply(ctx, t, o, true); err != nil {
			t.Errorf("server-side dry run of %s %s/%s: %v", o.kind(), o.namespace(), o.name(), err)
		}
	}
	// A dry run stores nothing.
	if _, err := c.cs.AppsV1().DaemonSets("infergate-system").Get(ctx, "infergate-balancer", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after a dry run the DaemonSet exists (err %v)", err)
	}

	for _, o := range objs {
		if o.kind() != "DaemonSet" {
			continue
		}
		bad := object(jsonMap(t, o))
		ctrs, _, _ := unstructured.NestedSlice(bad, "spec", "template", "spec", "containers")
		mounts, _, _ := unstructured.NestedSlice(ctrs[0].(map[string]any), "volumeMounts")
		mounts[0].(map[string]any)["mountPropagation"] = "Bidirectional"
		_ = unstructured.SetNestedSlice(ctrs[0].(map[string]any), mounts, "volumeMounts")
		_ = unstructured.SetNestedSlice(bad, ctrs, "spec", "template", "spec", "containers")
		if err := c.apply(ctx, t, bad, true); !apierrors.IsInvalid(err) {
			t.Errorf("%s with Bidirectional propagation, unprivileged: err %v, want Invalid", o.name(), err)
		}
		break
	}
}

// TestRBACRules: with the RBAC authorizer, the agent's ServiceAccount may
// do what the agent does and nothing else this test names: each rule of
// deploy/rbac.yaml is needed by a row below, and the rows that must be
// refused are the nearest things an over-broad rule would allow.
func TestRBACRules(t *testing.T) {
	s := kubetest.StartWith(t, kubetest.Options{RBAC: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := newCluster(t, s)
	objs := renderDeploy(t)
	c.installPrerequisites(ctx, t, objs, "CustomResourceDefinition", "Namespace", "ServiceAccount",
		"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")

	const ns = "infergate-system"
	type row struct {
		verb, group, resource, sub, namespace, name string
	}
	allowed := []row{
		{"list", "", "services", "", "", ""},
		{"watch", "", "services", "", "", ""},
		{"update", "", "services", "status", "tenant-a", "vllm"},
		{"list", "discovery.k8s.io", "endpointslices", "", "", ""},
		{"watch", "discovery.k8s.io", "endpointslices", "", "", ""},
		{"list", "", "nodes", "", "", ""},
		{"watch", "", "pods", "", "", ""},
		{"list", "inference.networking.k8s.io", "inferencepools", "", "", ""},
		{"watch", "infergate.dev", "policies", "", "", ""},
		{"list", "infergate.dev", "vippools", "", "", ""},
		{"patch", "infergate.dev", "policies", "status", "", "default"},
		{"create", "coordination.k8s.io", "leases", "", ns, ""},
		{"get", "coordination.k8s.io", "leases", "", ns, "infergate-vip-allocator"},
		{"update", "coordination.k8s.io", "leases", "", ns, "infergate-vip-allocator"},
	}
	denied := []row{
		{"list", "", "secrets", "", "", ""},
		{"get", "", "secrets", "", ns, "any"},
		{"list", "", "configmaps", "", "", ""},
		{"update", "", "services", "", "tenant-a", "vllm"},
		{"patch", "", "services", "", "tenant-a", "vllm"},
		{"delete", "", "services", "", "tenant-a", "vllm"},
		{"create", "", "services", "", "tenant-a", ""},
		{"update", "", "pods", "", "tenant-a", "x"},
		{"patch", "", "nodes", "", "", "node-1"},
		{"update", "infergate.dev", "policies", "", "", "default"},
		{"delete", "infergate.dev", "policies", "", "", "default"},
		{"create", "infergate.dev", "vippools", "", "", ""},
		{"update", "discovery.k8s.io", "endpointslices", "", "tenant-a", "x"},
		{"update", "coordination.k8s.io", "leases", "", ns, "someone-elses-lease"},
		{"create", "coordination.k8s.io", "leases", "", "kube-system", ""},
		{"delete", "coordination.k8s.io", "leases", "", ns, "infergate-vip-allocator"},
	}
	user := "system:serviceaccount:" + ns + ":infergate-agent"
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
	can := func(r row) (bool, error) {
		sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{User: user, Groups: groups,
			ResourceAttributes: &authzv1.ResourceAttributes{Verb: r.verb, Group: r.group, Resource: r.resource,
				Subresource: r.sub, Namespace: r.namespace, Name: r.name}}}
		got, err := c.cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		return got.Status.Allowed, nil
	}
	// The authorizer learns of new roles through its informers: wait until
	// the first rule holds before judging the rest.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := can(allowed[0])
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ServiceAccount never got %+v", allowed[0])
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, r := range allowed {
		if ok, err := can(r); err != nil || !ok {
			t.Errorf("agent may not %+v (err %v); the agent needs it", r, err)
		}
	}
	for _, r := range denied {
		if ok, err := can(r); err != nil || ok {
			t.Errorf("agent may %+v (err %v); least privilege says no", r, err)
		}
	}

	// The same through the API as the ServiceAccount, by impersonation.
	sa, err := kubernetes.NewForConfig(s.ServiceAccount(ns, "infergate-agent"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sa.CoreV1().Services("").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("list services as the agent: %v", err)
	}
	if _, err := sa.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list secrets as the agent: err %v, want Forbidden", err)
	}
}
