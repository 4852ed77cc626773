package cluster

import (
	"context"
	"slices"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// benchSnapshot is the cluster of BenchmarkClusterScale in memory.
func benchSnapshot(n int) Snapshot {
	s := Snapshot{Policy: basePolicy()}
	for i := range benchServices {
		s.Services = append(s.Services, lbService("bench", "s"+strconv.Itoa(i), "198.18."+strconv.Itoa(100+i/250)+"."+strconv.Itoa(i%250+1), 8000))
	}
	for i := range n / benchSliceEndings {
		var eps []ep
		for j := range benchSliceEndings {
			eps = append(eps, ep{addr: benchAddr(i*benchSliceEndings + j), ready: true, serving: true})
		}
		s.Slices = append(s.Slices, slice("bench", "s"+strconv.Itoa(i%benchServices), "e"+strconv.Itoa(i), 8000, eps...))
	}
	return s
}

// BenchmarkComposeApply splits the in-process part of an endpoint change:
// compose and marshal alone, and compose, marshal and the agent's apply
// into loaded BPF maps (root), one endpoint flipped per iteration.
func BenchmarkComposeApply(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		snap := benchSnapshot(n)
		flip := func(i int) {
			es := snap.Slices[i%len(snap.Slices)]
			c := &es.Endpoints[0].Conditions
			r := !*c.Ready
			c.Ready = &r
		}
		b.Run("compose/endpoints="+strconv.Itoa(n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				flip(i)
				d, _ := Compose(snap, ComposeOptions{Role: "balancer"})
				if _, err := marshalDocument(d); err != nil {
					b.Fatal(err)
				}
			}
		})
		// As the source composes: objects carry versions, a change
		// replaces one slice with a new version, and the composer
		// rebuilds only that Service's part.
		b.Run("compose-incremental/endpoints="+strconv.Itoa(n), func(b *testing.B) {
			var v versioned
			vs := snap
			vs.Services = slices.Clone(snap.Services)
			vs.Slices = slices.Clone(snap.Slices)
			for i := range vs.Services {
				vs.Services[i] = vs.Services[i].DeepCopy()
				v.stamp(vs.Services[i])
			}
			for i := range vs.Slices {
				vs.Slices[i] = vs.Slices[i].DeepCopy()
				v.stamp(vs.Slices[i])
			}
			var c composer
			c.compose(vs, ComposeOptions{Role: "balancer"})
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := i % len(vs.Slices)
				es := vs.Slices[k].DeepCopy()
				cond := &es.Endpoints[0].Conditions
				r := !*cond.Ready
				cond.Ready = &r
				v.stamp(es)
				vs.Slices[k] = es
				d, _ := c.compose(vs, ComposeOptions{Role: "balancer"})
				if _, err := marshalDocument(d); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("apply/endpoints="+strconv.Itoa(n), func(b *testing.B) {
			a, _ := realAgent(b, 16384)
			ctx := context.Background()
			for i := 0; i < b.N; i++ {
				flip(i)
				d, _ := Compose(snap, ComposeOptions{Role: "balancer"})
				doc, err := marshalDocument(d)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := a.ApplyFromSource(ctx, doc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	_ = corev1.ServiceTypeLoadBalancer
	_ = discoveryv1.AddressTypeIPv4
}
