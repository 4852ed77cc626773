package cluster

import (
	"bytes"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/infergate/infergate/policy"
)

// versioned gives in-memory objects what the API server would: a UID and
// a resource version, bumped by each change.
type versioned struct{ rv int }

func (v *versioned) stamp(o interface {
	GetName() string
	SetUID(types.UID)
	SetResourceVersion(string)
}) {
	v.rv++
	o.SetUID(types.UID("uid-" + o.GetName()))
	o.SetResourceVersion(strconv.Itoa(v.rv))
}

// The composer that remembers each Service's part gives the same document
// as a fresh Compose after every kind of change (an endpoint flipped, a
// slice added and removed, a Service's VIP changed or the Service gone, a
// node's address moved, the options changed), and really reuses the parts
// of Services that did not change.
func TestComposerIncrementalAsCompose(t *testing.T) {
	var v versioned
	snap := Snapshot{Policy: basePolicy()}
	for i := range 4 {
		svc := lbService("ml", "s"+strconv.Itoa(i), "198.18.100."+strconv.Itoa(i+1), 8000)
		v.stamp(svc)
		snap.Services = append(snap.Services, svc)
		for j := range 2 {
			es := slice("ml", svc.Name, svc.Name+"-"+strconv.Itoa(j), 8000,
				ep{addr: "198.19." + strconv.Itoa(i) + "." + strconv.Itoa(2*j+1), node: "gpu-" + strconv.Itoa(j), ready: true, serving: true},
				ep{addr: "198.19." + strconv.Itoa(i) + "." + strconv.Itoa(2*j+2), node: "gpu-" + strconv.Itoa(j), ready: true, serving: true})
			v.stamp(es)
			snap.Slices = append(snap.Slices, es)
		}
	}
	for j := range 2 {
		n := &corev1.Node{}
		n.Name = "gpu-" + strconv.Itoa(j)
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.18.0." + strconv.Itoa(10+j)}}
		snap.Nodes = append(snap.Nodes, n)
	}
	opts := ComposeOptions{Role: "gpu-host", NodeName: "gpu-1", LoadReportPort: 9100}
	var c composer
	check := func(step string) *policy.Document {
		t.Helper()
		got, gw := c.compose(snap, opts)
		want, ww := Compose(snap, opts)
		gb, err := marshalDocument(got)
		if err != nil {
			t.Fatal(err)
		}
		wb, _ := marshalDocument(want)
		if !bytes.Equal(gb, wb) {
			t.Fatalf("%s: the incremental document differs from Compose's:\n got %s\nwant %s", step, gb, wb)
		}
		if len(gw) != len(ww) {
			t.Fatalf("%s: warnings %q, want %q", step, gw, ww)
		}
		return got
	}
	poolOf := func(d *policy.Document, name string) policy.Pool {
		for _, p := range d.Spec.Pools {
			if p.Name == name {
				return p
			}
		}
		t.Fatalf("no pool %s", name)
		return policy.Pool{}
	}
	first := check("first")

	// One endpoint turns not ready: only s0's part is rebuilt.
	es := snap.Slices[0].DeepCopy()
	f := false
	es.Endpoints[0].Conditions.Ready, es.Endpoints[0].Conditions.Serving = &f, &f
	v.stamp(es)
	snap.Slices[0] = es
	second := check("endpoint not ready")
	p0, p1 := ServicePoolName("ml", "s0", ""), ServicePoolName("ml", "s1", "")
	if len(poolOf(second, p0).Backends) != 3 {
		t.Fatalf("s0 has %d backends after one turned not ready, want 3", len(poolOf(second, p0).Backends))
	}
	if &poolOf(second, p1).Backends[0] != &poolOf(first, p1).Backends[0] {
		t.Fatal("s1 did not change but its pool was rebuilt")
	}
	if &poolOf(second, p0).Backends[0] == &poolOf(first, p0).Backends[0] {
		t.Fatal("s0 changed but its remembered pool was reused")
	}

	// The cache lists slices in no fixed order: a reordering is no change.
	snap.Slices[0], snap.Slices[1] = snap.Slices[1], snap.Slices[0]
	third := check("slices reordered")
	if &poolOf(third, p0).Backends[0] != &poolOf(second, p0).Backends[0] {
		t.Fatal("reordered slices rebuilt the pool")
	}

	// A slice added, then one removed.
	add := slice("ml", "s2", "s2-extra", 8000, ep{addr: "198.19.2.99", node: "gpu-1", ready: true, serving: true})
	v.stamp(add)
	snap.Slices = append(snap.Slices, add)
	check("slice added")
	snap.Slices = snap.Slices[:len(snap.Slices)-1]
	snap.Slices = append(snap.Slices[:2], snap.Slices[3:]...)
	check("slices removed")

	// A Service's VIP moves; another Service goes away.
	svc := snap.Services[3].DeepCopy()
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.18.100.77"}}
	v.stamp(svc)
	snap.Services[3] = svc
	check("VIP moved")
	snap.Services = snap.Services[1:]
	check("service deleted")

	// A node's address moves: every load report URL on it follows.
	n := snap.Nodes[1].DeepCopy()
	n.Status.Addresses[0].Address = "198.18.0.99"
	snap.Nodes[1] = n
	check("node address moved")

	// Other options.
	opts = ComposeOptions{Role: "balancer"}
	check("options changed")

	// Objects without versions are composed every time.
	snap.Slices = append(snap.Slices, slice("ml", "s1", "s1-unversioned", 8000, ep{addr: "198.19.1.50", ready: true, serving: true}))
	check("unversioned slice")
	snap.Slices[len(snap.Slices)-1].Endpoints[0].Addresses[0] = "198.19.1.51"
	check("unversioned slice changed in place")
	_ = discoveryv1.AddressTypeIPv4
}
