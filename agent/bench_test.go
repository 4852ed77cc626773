package agent

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/infergate/infergate/policy"
)

// benchBackends is the production-scale pool: 1,000 backends
// behind one VIP.
const benchBackends = 1000

func benchPolicy(weight0 uint32) (*policy.Compiled, fakeResolver) {
	c := testCompiled()
	var addrs []string
	c.Pools[0].Backends = nil
	for i := range benchBackends {
		a := fmt.Sprintf("198.18.%d.%d", 10+i/250, 1+i%250)
		addrs = append(addrs, a)
		c.Pools[0].Backends = append(c.Pools[0].Backends, policy.CompiledBackend{
			Name: fmt.Sprintf("g%d", i), Address: netip.MustParseAddr(a), Port: 8000, Weight: 100})
	}
	c.Pools[0].Backends[0].Weight = weight0
	return c, onLinkResolver(addrs...)
}

// BenchmarkReconcileNoChange is the resync cost with nothing to do: build
// desired state for 1,000 backends, rebuild the Maglev table, diff.
func BenchmarkReconcileNoChange(b *testing.B) {
	fd := newFakeDataplane()
	fd.maxBackends = 4096
	rec := NewReconciler(fd)
	c, res := benchPolicy(100)
	d, err := Build(context.Background(), c, BuildOptions{Role: RoleBalancer, Resolver: res})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := rec.Apply(d); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		d, _ := Build(context.Background(), c, BuildOptions{Role: RoleBalancer, Resolver: res})
		if st, err := rec.Apply(d); err != nil || st.Writes != 0 {
			b.Fatalf("%d writes, %v", st.Writes, err)
		}
	}
}

// BenchmarkReconcileWeightChange alternates one backend's weight, so every
// pass rebuilds and swaps the table.
func BenchmarkReconcileWeightChange(b *testing.B) {
	fd := newFakeDataplane()
	fd.maxBackends = 4096
	rec := NewReconciler(fd)
	ca, res := benchPolicy(100)
	cb, _ := benchPolicy(300)
	i := 0
	for b.Loop() {
		c := ca
		if i%2 == 1 {
			c = cb
		}
		i++
		d, _ := Build(context.Background(), c, BuildOptions{Role: RoleBalancer, Resolver: res})
		if _, err := rec.Apply(d); err != nil {
			b.Fatal(err)
		}
	}
}
