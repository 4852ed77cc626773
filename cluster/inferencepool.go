package cluster

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	infv1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"

	"github.com/infergate/infergate/policy"
)

// inferencePools turns each InferencePool into an L7 pool: the pods of its
// namespace its selector matches, at its target port. Ready pods take
// requests; pods being deleted drain. A pool with no such pod is left out
// (a model route naming it is then refused and reported, and the node
// keeps what it runs).
func inferencePools(ips []*infv1.InferencePool, pods []*corev1.Pod) ([]policy.Pool, []string) {
	var out []policy.Pool
	var warnings []string
	sorted := slices.Clone(ips)
	slices.SortFunc(sorted, func(a, b *infv1.InferencePool) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	for _, ip := range sorted {
		name := InferencePoolName(ip.Namespace, ip.Name)
		if len(ip.Spec.TargetPorts) == 0 {
			warnings = append(warnings, fmt.Sprintf("inferencepool %s/%s has no target port", ip.Namespace, ip.Name))
			continue
		}
		port := int(ip.Spec.TargetPorts[0].Number)
		set := labels.Set{}
		for k, v := range ip.Spec.Selector.MatchLabels {
			set[string(k)] = string(v)
		}
		// An empty selector would take every pod of the namespace; the
		// API's own validation asks for at least one label, and so do we.
		if len(set) == 0 {
			warnings = append(warnings, fmt.Sprintf("inferencepool %s/%s has an empty selector", ip.Namespace, ip.Name))
			continue
		}
		sel := labels.SelectorFromSet(set)
		pool := policy.Pool{Name: name}
		for _, p := range pods {
			if p.Namespace != ip.Namespace || !sel.Matches(labels.Set(p.Labels)) || p.Status.PodIP == "" {
				continue
			}
			a, err := netip.ParseAddr(p.Status.PodIP)
			if err != nil {
				continue
			}
			b := policy.Backend{Name: policyName(p.Name), Address: a.Unmap().String(), Port: port, Weight: policy.DefaultBackendWeight}
			switch {
			case p.DeletionTimestamp != nil:
				b.State = policy.StateDraining
			case !podReady(p):
				continue
			}
			pool.Backends = append(pool.Backends, b)
		}
		if len(pool.Backends) == 0 {
			warnings = append(warnings, fmt.Sprintf("inferencepool %s/%s selects no ready pod", ip.Namespace, ip.Name))
			continue
		}
		slices.SortFunc(pool.Backends, func(a, b policy.Backend) int { return cmp.Compare(a.Name, b.Name) })
		pool.Backends = uniqueNames(pool.Backends)
		out = append(out, pool)
	}
	return out, warnings
}

func podReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
