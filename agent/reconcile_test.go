package agent

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/infergate/infergate/policy"
)

var testBackends = []string{"198.18.1.1", "198.18.1.2", "198.18.1.3"}

// testCompiled is a small balancer policy: one rule, one class, one VIP
// over a pool of three backends.
func testCompiled() *policy.Compiled {
	var bs []policy.CompiledBackend
	for i, a := range testBackends {
		bs = append(bs, policy.CompiledBackend{Name: "gpu" + string(rune('a'+i)), Address: netip.MustParseAddr(a), Port: 8000, Weight: 100})
	}
	return &policy.Compiled{
		Name: "test", Version: "v1",
		Dataplane: policy.CompiledDataplane{
			Interfaces: []string{"eth0"},
			XDPMode:    policy.XDPModeNative,
			Rules: []policy.CompiledRule{{Name: "bad", Deny: true,
				Prefixes: []netip.Prefix{netip.MustParsePrefix("198.19.66.0/24")}}},
			AggregateV4: 32, AggregateV6: 64,
			Classes: []policy.CompiledClass{{Name: "all", Prefixes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, PacketsPerSecond: 1000, PacketBurst: 2000}},
			VIPs:    []policy.CompiledVIP{{Name: "llm", Address: netip.MustParseAddr("198.18.100.1"), Port: 80, Protocol: 6, Pool: 0, Forwarding: policy.ForwardIPIP}},
		},
		Pools: []policy.CompiledPool{{Name: "gpus", Backends: bs}},
	}
}

func buildFor(t *testing.T, c *policy.Compiled, r Resolver, ov map[string]Override) *Desired {
	t.Helper()
	d, err := Build(context.Background(), c, BuildOptions{Role: RoleBalancer, Resolver: r, Overrides: ov, MaxBackends: 63})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return d
}

func TestReconcileIdempotent(t *testing.T) {
	fd := newFakeDataplane()
	rec := NewReconciler(fd)
	res := onLinkResolver(testBackends...)
	d := buildFor(t, testCompiled(), res, nil)
	st, err := rec.Apply(d)
	if err != nil {
		t.Fatal(err)
	}
	// 3 backends + 1 VIP + firewall + classes.
	if st.Writes != 6 || fd.writes != 6 {
		t.Fatalf("first apply wrote %d (dataplane saw %d), want 6", st.Writes, fd.writes)
	}
	before := fd.snapshot()
	for range 3 {
		st, err = rec.Apply(buildFor(t, testCompiled(), res, nil))
		if err != nil {
			t.Fatal(err)
		}
		if st.Writes != 0 {
			t.Fatalf("same input wrote %d times", st.Writes)
		}
	}
	if fd.writes != 6 || fd.snapshot() != before {
		t.Fatalf("re-apply touched the data plane: %d writes", fd.writes)
	}
	tbl := fd.tables[VIPKey{netip.MustParseAddr("198.18.100.1"), 80, 6}]
	if len(tbl) < 300 {
		t.Fatalf("table of %d slots for 3 backends", len(tbl))
	}
	share := map[uint32]int{}
	for _, id := range tbl {
		share[id]++
	}
	if len(share) != 3 {
		t.Fatalf("table names %d backends, want 3", len(share))
	}
}

func TestReconcileDiffs(t *testing.T) {
	fd := newFakeDataplane()
	rec := NewReconciler(fd)
	res := onLinkResolver(append(testBackends, "198.18.1.4")...)
	if _, err := rec.Apply(buildFor(t, testCompiled(), res, nil)); err != nil {
		t.Fatal(err)
	}
	ids := rec.BackendIDs()

	// A weight change rewrites the table only.
	c := testCompiled()
	c.Pools[0].Backends[0].Weight = 300
	st, err := rec.Apply(buildFor(t, c, res, nil))
	if err != nil {
		t.Fatal(err)
	}
	if st.Writes != 1 {
		t.Fatalf("weight change wrote %d, want 1 (the VIP table)", st.Writes)
	}

	// A firewall change rewrites the rule set only.
	c.Dataplane.Rules[0].Prefixes = append(c.Dataplane.Rules[0].Prefixes, netip.MustParsePrefix("198.19.67.0/24"))
	if st, err = rec.Apply(buildFor(t, c, res, nil)); err != nil || st.Writes != 1 {
		t.Fatalf("rule change: %d writes, %v", st.Writes, err)
	}

	// Replacing a backend: the new one gets a fresh ID, the others keep
	// theirs, the old one is deleted after the table stops naming it.
	c.Pools[0].Backends[2].Address = netip.MustParseAddr("198.18.1.4")
	if st, err = rec.Apply(buildFor(t, c, res, nil)); err != nil {
		t.Fatal(err)
	}
	if st.Writes != 3 {
		t.Fatalf("backend swap wrote %d, want 3 (add, table, delete)", st.Writes)
	}
	now := rec.BackendIDs()
	for _, a := range testBackends[:2] {
		if now[netip.MustParseAddr(a)] != ids[netip.MustParseAddr(a)] {
			t.Fatalf("backend %s changed ID", a)
		}
	}
	newID := now[netip.MustParseAddr("198.18.1.4")]
	for _, id := range ids {
		if id == newID {
			t.Fatalf("new backend reused a freed ID %d", id)
		}
	}
	if _, ok := fd.backends[ids[netip.MustParseAddr(testBackends[2])]]; ok {
		t.Fatal("removed backend still in the data plane")
	}

	// Draining every backend but one by health keeps the others in the
	// backend table (established flows) but out of the Maglev table.
	ov := map[string]Override{"gpus/gpua": {Unhealthy: true}}
	if _, err = rec.Apply(buildFor(t, c, res, ov)); err != nil {
		t.Fatal(err)
	}
	drained := now[netip.MustParseAddr(testBackends[0])]
	if !fd.backends[drained].Draining {
		t.Fatal("unhealthy backend not marked draining")
	}
	for _, id := range fd.tables[VIPKey{netip.MustParseAddr("198.18.100.1"), 80, 6}] {
		if id == drained {
			t.Fatal("unhealthy backend still in the Maglev table")
		}
	}

	// Removing the VIP deletes it and then its backends.
	c.Dataplane.VIPs = nil
	if _, err = rec.Apply(buildFor(t, c, res, nil)); err != nil {
		t.Fatal(err)
	}
	if len(fd.vips) != 0 || len(fd.backends) != 0 {
		t.Fatalf("left %d VIPs and %d backends", len(fd.vips), len(fd.backends))
	}
}

func TestReconcileAllOrNothing(t *testing.T) {
	for _, failAt := range []string{"backend 198.18.1.4", "vip ", "delete backend", "firewall", "classes"} {
		t.Run(failAt, func(t *testing.T) {
			fd := newFakeDataplane()
			rec := NewReconciler(fd)
			res := onLinkResolver(append(testBackends, "198.18.1.4")...)
			if _, err := rec.Apply(buildFor(t, testCompiled(), res, nil)); err != nil {
				t.Fatal(err)
			}
			before := fd.snapshot()
			c := testCompiled()
			c.Pools[0].Backends[2].Address = netip.MustParseAddr("198.18.1.4")
			c.Pools[0].Backends[0].Weight = 50
			c.Dataplane.Rules[0].Deny = false
			c.Dataplane.Classes[0].PacketsPerSecond = 5
			armed := true
			fd.failOn = func(what string) error {
				if armed && strings.HasPrefix(what, failAt) {
					armed = false
					return errors.New("injected")
				}
				return nil
			}
			_, err := rec.Apply(buildFor(t, c, res, nil))
			if err == nil || !strings.Contains(err.Error(), "injected") || !strings.Contains(err.Error(), "previous state restored") {
				t.Fatalf("err = %v", err)
			}
			if got := fd.snapshot(); got != before {
				t.Fatalf("failed change left the data plane mixed:\nbefore %s\nafter  %s", before, got)
			}
			// The remembered state is the old one: the same change applies
			// cleanly now, and a re-run is a no-op.
			fd.failOn = nil
			if _, err := rec.Apply(buildFor(t, c, res, nil)); err != nil {
				t.Fatal(err)
			}
			if st, _ := rec.Apply(buildFor(t, c, res, nil)); st.Writes != 0 {
				t.Fatalf("re-run wrote %d", st.Writes)
			}
		})
	}
}

func TestReconcileAdopt(t *testing.T) {
	fd := newFakeDataplane()
	res := onLinkResolver(testBackends...)
	first := NewReconciler(fd)
	if _, err := first.Apply(buildFor(t, testCompiled(), res, nil)); err != nil {
		t.Fatal(err)
	}
	ids := first.BackendIDs()
	fd.writes = 0
	second := NewReconciler(fd)
	if err := second.Adopt(); err != nil {
		t.Fatal(err)
	}
	if _, err := second.Apply(buildFor(t, testCompiled(), res, nil)); err != nil {
		t.Fatal(err)
	}
	for a, id := range ids {
		if second.BackendIDs()[a] != id {
			t.Fatalf("adopting agent moved %s from ID %d", a, id)
		}
	}
	// Backends are read back, so only the unreadable parts are rewritten:
	// the table (same content), the firewall and the classes.
	if fd.writes != 3 {
		t.Fatalf("adoption rewrote %d entries, want 3", fd.writes)
	}
}
