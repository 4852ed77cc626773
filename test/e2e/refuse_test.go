package e2e

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/agent/api"
	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/e2e/lab"
)

// refusedRequests is the traffic checked after each refused apply.
const refusedRequests = 60

// TestBadDesiredStateRefused: policies that validate as documents but
// cannot be realised on the balancer are refused with a message naming the
// problem; the policy in force stays, and traffic flows as before.
func TestBadDesiredStateRefused(t *testing.T) {
	l := sharedLab(t)
	c := l.Client(l.Balancer.Name)
	cur, err := c.GetPolicy(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	d := dialer(t, l.Clients[0].NS)
	vips := []netip.Addr{lab.VIP4, lab.VIP6, lab.VIP4L2, lab.VIP6L2}
	for _, tc := range []struct {
		name   string
		mutate func(*policy.Document)
		// want are substrings the refusal must contain.
		want []string
	}{
		{"unknown interface", func(d *policy.Document) { d.Spec.Dataplane.Interfaces = []string{"eth0", "ig-nosuch0"} },
			[]string{"spec.dataplane.interfaces[1]", "ig-nosuch0"}},
		{"duplicate VIP", func(d *policy.Document) {
			v := d.Spec.Dataplane.VIPs[0]
			v.Name = "inference-v4-again"
			d.Spec.Dataplane.VIPs = append(d.Spec.Dataplane.VIPs, v)
		}, []string{"duplicate", lab.VIP4.String()}},
		{"backend with no route", func(d *policy.Document) {
			d.Spec.Pools[0].Backends = append(d.Spec.Pools[0].Backends,
				policy.Backend{Name: "gpu-far", Address: "198.19.7.7", Port: lab.ServicePort, Weight: 100})
		}, []string{"gpu-far", "198.19.7.7", "no route"}},
		{"zero-weight-only pool", func(d *policy.Document) {
			for i := range d.Spec.Pools[0].Backends {
				d.Spec.Pools[0].Backends[i].Weight = 0
			}
		}, []string{"spec.pools[0].backends", "weight 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := l.Policy(standardPolicy())
			doc.Metadata.Name = "bad"
			tc.mutate(doc)
			b, err := policy.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.ApplyPolicy(ctxT(t, 30*time.Second), b, false)
			if err == nil {
				t.Fatalf("the agent accepted a policy with a %s", tc.name)
			}
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Status/100 != 4 {
				t.Fatalf("want a 4xx refusal, got %v", err)
			}
			t.Logf("refused: %v", err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("refusal does not name %q: %v", w, err)
				}
			}
			now, err := c.GetPolicy(ctxT(t, 5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if now.Version != cur.Version || now.Name != cur.Name {
				t.Fatalf("policy in force changed from %s %s to %s %s", cur.Name, cur.Version, now.Name, now.Version)
			}
			tl := lab.Requests(ctxT(t, time.Minute), d.HTTPClient(false, 10*time.Second), vips, refusedRequests, 4)
			if tl.Failed > 0 || len(tl.ByBackend) != len(l.GPUs) {
				t.Fatalf("traffic after the refusal: %d ok, %d failed (%v), answered by %v", tl.OK, tl.Failed, tl.FirstErr, tl.ByBackend)
			}
		})
	}
}
