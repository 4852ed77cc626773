package cluster

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	infv1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"

	"github.com/infergate/infergate/policy"
)

// LoadBalancerClass is the spec.loadBalancerClass of the Services
// infergate serves.
const LoadBalancerClass = "infergate.dev/xdp"

// ForwardingAnnotation on a Service chooses how its VIP reaches the
// backends: ipip (default) or l2, as a policy VIP's forwarding.
const ForwardingAnnotation = "infergate.dev/forwarding"

// Snapshot is what the informers hold, as Compose reads it.
type Snapshot struct {
	// Policy is the cluster's Policy object turned into a document; nil
	// when there is none.
	Policy *policy.Document
	// Services are every Service; Compose keeps the LoadBalancer Services
	// of LoadBalancerClass that have a VIP in their status.
	Services []*corev1.Service
	Slices   []*discoveryv1.EndpointSlice
	Nodes    []*corev1.Node
	Pools    []*infv1.InferencePool
	Pods     []*corev1.Pod
}

// ComposeOptions are this node's facts.
type ComposeOptions struct {
	// Role is agent.RoleBalancer or agent.RoleGPUHost ("balancer",
	// "gpu-host"): a GPU host accepts, as localVIPs, the VIPs of Services
	// with an endpoint on it.
	Role string
	// NodeName is this node's name.
	NodeName string
	// LoadReportPort, when set, gives each Service backend the load report
	// of its node's agent (http://<node InternalIP>:<port>/load), and the
	// pool loadReports when every backend has one.
	LoadReportPort int
}

// Compose builds the policy document this node applies: the cluster's
// Policy, plus one pool and VIP per port of each LoadBalancer Service with
// a VIP, plus one pool per InferencePool. It is pure: the same snapshot
// gives the same bytes after policy.Marshal, so an unchanged cluster is
// never applied twice. Warnings are things left out, for the log.
func Compose(s Snapshot, o ComposeOptions) (doc *policy.Document, warnings []string) {
	return (&composer{}).compose(s, o)
}

// composer is Compose with a memory: each Service's pools and VIPs are
// kept with the resource versions they were built from (the Service's and
// its EndpointSlices'), so composing after one endpoint changed rebuilds
// one Service's pools, not every Service's. Objects without a resource
// version (built in memory, not read from the API server) are never
// remembered. The document is the same as Compose's for the same snapshot.
type composer struct {
	nodes string // fingerprint of the node addresses the cache was built with
	opts  ComposeOptions
	svcs  map[string]servicePart // by namespace/name
}

// servicePart is what one Service adds to the document.
type servicePart struct {
	key      string // resource versions it was built from
	pools    []policy.Pool
	vips     []policy.VIP
	local    []netip.Addr
	warnings []string
}

func (c *composer) compose(s Snapshot, o ComposeOptions) (doc *policy.Document, warnings []string) {
	d := &policy.Document{APIVersion: policy.APIVersion, Kind: policy.Kind, Metadata: policy.Metadata{Name: "cluster"}}
	if s.Policy != nil {
		cp := *s.Policy
		cp.Spec.Pools = slices.Clone(cp.Spec.Pools)
		cp.Spec.Dataplane.VIPs = slices.Clone(cp.Spec.Dataplane.VIPs)
		cp.Spec.Dataplane.LocalVIPs = slices.Clone(cp.Spec.Dataplane.LocalVIPs)
		d = &cp
	}
	nodeAddr := map[string]netip.Addr{}
	var nodeKey strings.Builder
	for _, n := range s.Nodes {
		if a, ok := nodeInternalIP(n); ok {
			nodeAddr[n.Name] = a
		}
	}
	for _, name := range slices.Sorted(maps.Keys(nodeAddr)) {
		nodeKey.WriteString(name + "=" + nodeAddr[name].String() + ",")
	}
	if c.svcs == nil || c.nodes != nodeKey.String() || c.opts != o {
		c.svcs = map[string]servicePart{}
		c.nodes, c.opts = nodeKey.String(), o
	}
	slicesOf := map[string][]*discoveryv1.EndpointSlice{}
	for _, es := range s.Slices {
		svc := es.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		k := es.Namespace + "/" + svc
		slicesOf[k] = append(slicesOf[k], es)
	}
	svcs := slices.Clone(s.Services)
	slices.SortFunc(svcs, func(a, b *corev1.Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	local := map[netip.Addr]bool{}
	for _, a := range d.Spec.Dataplane.LocalVIPs {
		if p, err := netip.ParseAddr(a); err == nil {
			local[p] = true
		}
	}
	seen := make(map[string]bool, len(svcs))
	for _, svc := range svcs {
		if !Ours(svc) {
			continue
		}
		id := svc.Namespace + "/" + svc.Name
		seen[id] = true
		ess := slicesOf[id]
		key, cacheable := versionKey(svc, ess)
		part, ok := c.svcs[id]
		if !ok || !cacheable || part.key != key {
			part = servicePart{key: key}
			part.pools, part.vips, part.local, part.warnings = composeService(svc, ess, nodeAddr, o)
			if cacheable {
				c.svcs[id] = part
			} else {
				delete(c.svcs, id)
			}
		}
		for _, a := range part.local {
			local[a] = true
		}
		d.Spec.Pools = append(d.Spec.Pools, part.pools...)
		d.Spec.Dataplane.VIPs = append(d.Spec.Dataplane.VIPs, part.vips...)
		warnings = append(warnings, part.warnings...)
	}
	for id := range c.svcs {
		if !seen[id] {
			delete(c.svcs, id)
		}
	}
	pools, w := inferencePools(s.Pools, s.Pods)
	d.Spec.Pools = append(d.Spec.Pools, pools...)
	warnings = append(warnings, w...)
	if o.Role == "gpu-host" {
		have := map[string]bool{}
		for _, a := range d.Spec.Dataplane.LocalVIPs {
			have[a] = true
		}
		var add []string
		for a := range local {
			if !have[a.String()] {
				add = append(add, a.String())
			}
		}
		slices.Sort(add)
		d.Spec.Dataplane.LocalVIPs = append(d.Spec.Dataplane.LocalVIPs, add...)
	}
	return d, warnings
}

// versionKey names the versions of a Service and its EndpointSlices, the
// slices sorted (the informer's cache lists them in no fixed order). It is
// not cacheable when an object has no resource version or UID, as objects
// built in memory do.
func versionKey(svc *corev1.Service, ess []*discoveryv1.EndpointSlice) (string, bool) {
	if svc.ResourceVersion == "" || svc.UID == "" {
		return "", false
	}
	vs := make([]string, 0, len(ess))
	for _, es := range ess {
		if es.ResourceVersion == "" || es.UID == "" {
			return "", false
		}
		vs = append(vs, string(es.UID)+"@"+es.ResourceVersion)
	}
	slices.Sort(vs)
	return string(svc.UID) + "@" + svc.ResourceVersion + "," + strings.Join(vs, ","), true
}

// composeService is one LoadBalancer Service's pools and VIPs, the VIPs
// it has an endpoint for on this node, and what it leaves out.
func composeService(svc *corev1.Service, ess []*discoveryv1.EndpointSlice, nodeAddr map[string]netip.Addr,
	o ComposeOptions) (pools []policy.Pool, vips []policy.VIP, local []netip.Addr, warnings []string) {
	addrs := IngressVIPs(svc)
	if len(addrs) == 0 {
		return nil, nil, nil, nil // no VIP allocated yet
	}
	fwd := svc.Annotations[ForwardingAnnotation]
	for _, sp := range svc.Spec.Ports {
		proto := strings.ToLower(string(cmp.Or(sp.Protocol, corev1.ProtocolTCP)))
		if proto != "tcp" && proto != "udp" {
			warnings = append(warnings, fmt.Sprintf("service %s/%s port %d: protocol %s is not steered", svc.Namespace, svc.Name, sp.Port, sp.Protocol))
			continue
		}
		for _, vip := range addrs {
			name := ServicePoolName(svc.Namespace, svc.Name, sp.Name)
			if len(addrs) > 1 {
				name = policyName(name, familyOf(vip))
			}
			pool, onNode := servicePool(name, sp, vip, ess, nodeAddr, o)
			if onNode[o.NodeName] {
				local = append(local, vip)
			}
			if len(pool.Backends) == 0 {
				continue // nothing to steer to: the VIP is left out
			}
			if sp.TargetPort.IntValue() != 0 && sp.TargetPort.IntValue() != int(sp.Port) {
				warnings = append(warnings, fmt.Sprintf("service %s/%s port %d: targetPort %d differs; direct server return keeps the destination port, so backends must listen on %d too",
					svc.Namespace, svc.Name, sp.Port, sp.TargetPort.IntValue(), sp.Port))
			}
			pools = append(pools, pool)
			vips = append(vips, policy.VIP{
				Name: name, Address: vip.String(), Port: int(sp.Port), Protocol: proto, Pool: name, Forwarding: fwd,
			})
		}
	}
	return pools, vips, local, warnings
}

// Ours reports whether infergate serves a Service: type LoadBalancer and
// class LoadBalancerClass.
func Ours(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.LoadBalancerClass != nil &&
		*svc.Spec.LoadBalancerClass == LoadBalancerClass
}

// IngressVIPs are the addresses in a Service's status.loadBalancer.ingress.
func IngressVIPs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}

func familyOf(a netip.Addr) string {
	if a.Is4() {
		return "v4"
	}
	return "v6"
}

// servicePool turns the EndpointSlices of one Service port into a pool for
// one VIP's family. Ready endpoints are active; terminating ones drain
// (they keep their flows and take no new ones). When no endpoint is ready,
// the serving terminating ones take new flows, as kube-proxy does
// (ProxyTerminatingEndpoints), rather than the VIP steering nothing.
// onNode lists the nodes holding an endpoint.
func servicePool(name string, sp corev1.ServicePort, vip netip.Addr, ess []*discoveryv1.EndpointSlice,
	nodeAddr map[string]netip.Addr, o ComposeOptions) (policy.Pool, map[string]bool) {
	type cand struct {
		b       policy.Backend
		ready   bool
		serving bool
		node    string
	}
	byAddr := map[netip.Addr]cand{}
	onNode := map[string]bool{}
	for _, es := range ess {
		if string(es.AddressType) != familyAddressType(vip) {
			continue
		}
		port := 0
		for _, p := range es.Ports {
			if ptrOr(p.Name, "") == sp.Name && p.Port != nil {
				port = int(*p.Port)
			}
		}
		if port == 0 {
			continue
		}
		for _, ep := range es.Endpoints {
			ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			terminating := ep.Conditions.Terminating != nil && *ep.Conditions.Terminating
			serving := ep.Conditions.Serving == nil && ready || ep.Conditions.Serving != nil && *ep.Conditions.Serving
			if terminating {
				ready = false
			}
			if !ready && !terminating {
				continue // not started, or failing its readiness probe
			}
			node := ptrOr(ep.NodeName, "")
			for _, s := range ep.Addresses {
				a, err := netip.ParseAddr(s)
				if err != nil || a.Unmap().Is4() != vip.Is4() {
					continue
				}
				a = a.Unmap()
				c := cand{ready: ready, serving: serving, node: node,
					b: policy.Backend{Name: backendName(ep, a), Address: a.String(), Port: port, Weight: policy.DefaultBackendWeight}}
				if prev, ok := byAddr[a]; ok && (prev.ready || !ready) {
					continue // the same address in two slices: the ready one counts
				}
				byAddr[a] = c
				if node != "" {
					onNode[node] = true
				}
			}
		}
	}
	anyReady := false
	for _, c := range byAddr {
		anyReady = anyReady || c.ready
	}
	pool := policy.Pool{Name: name}
	allReports := o.LoadReportPort > 0
	for _, c := range byAddr {
		switch {
		case c.ready:
		case !anyReady && c.serving:
		default:
			if !anyReady {
				continue // terminating and no longer serving: nothing to keep
			}
			c.b.State = policy.StateDraining
		}
		if na, ok := nodeAddr[c.node]; ok && o.LoadReportPort > 0 {
			c.b.LoadReportURL = "http://" + netip.AddrPortFrom(na, uint16(o.LoadReportPort)).String() + "/load"
		} else {
			allReports = false
		}
		pool.Backends = append(pool.Backends, c.b)
	}
	slices.SortFunc(pool.Backends, func(a, b policy.Backend) int { return cmp.Compare(a.Name, b.Name) })
	pool.Backends = uniqueNames(pool.Backends)
	pool.LoadReports = allReports && len(pool.Backends) > 0
	return pool, onNode
}

// backendName names an endpoint by its pod when it has one, else by its
// address.
func backendName(ep discoveryv1.Endpoint, a netip.Addr) string {
	if ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" && ep.TargetRef.Name != "" {
		return policyName(ep.TargetRef.Name)
	}
	return policyName(a.StringExpanded())
}

// uniqueNames suffixes names that repeat (a pod with an address per
// family, or two truncated names), keeping the sorted order's first.
func uniqueNames(bs []policy.Backend) []policy.Backend {
	seen := map[string]int{}
	for i := range bs {
		n := bs[i].Name
		seen[n]++
		if seen[n] > 1 {
			bs[i].Name = policyName(n, strconv.Itoa(seen[n]))
		}
	}
	return bs
}

func familyAddressType(a netip.Addr) string {
	if a.Is4() {
		return string(discoveryv1.AddressTypeIPv4)
	}
	return string(discoveryv1.AddressTypeIPv6)
}

func nodeInternalIP(n *corev1.Node) (netip.Addr, bool) {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			if p, err := netip.ParseAddr(a.Address); err == nil {
				return p.Unmap(), true
			}
		}
	}
	return netip.Addr{}, false
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
