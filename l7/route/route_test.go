package route

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infergate/infergate/policy"
)

func compiled() *policy.Compiled {
	c := &policy.Compiled{}
	for _, name := range []string{"a", "b"} {
		p := policy.CompiledPool{Name: name}
		for i := range 3 {
			p.Backends = append(p.Backends, policy.CompiledBackend{Name: name + string(rune('0'+i)),
				Address: netip.MustParseAddr("198.18.0.1"), Port: uint16(8000 + i + 10*len(c.Pools)), Weight: 100})
		}
		c.Pools = append(c.Pools, p)
	}
	c.Gateway.Providers = []policy.Provider{{Name: "ext", BaseURL: "https://198.18.0.9/v1/", APIKeyEnv: "K"}}
	c.Gateway.Models = []policy.CompiledModel{{Name: "m", Aliases: []string{"m-alias"},
		Routes:   []policy.CompiledRoute{{Pool: 0, Provider: -1, Weight: 90}, {Pool: 1, Provider: -1, Weight: 10, UpstreamModel: "m2"}},
		Fallback: []policy.CompiledRoute{{Pool: -1, Provider: 0}, {Pool: 1, Provider: -1}}}}
	return c
}

func env(k string) string {
	if k == "K" {
		return "secret"
	}
	return ""
}

func TestLookupPlanWeights(t *testing.T) {
	tb, err := New(compiled(), Options{Getenv: env})
	if err != nil {
		t.Fatal(err)
	}
	m, ok := tb.Lookup("m-alias")
	if !ok || m.Name != "m" {
		t.Fatal("alias not found")
	}
	if _, ok := tb.Lookup("nope"); ok {
		t.Fatal("unknown model found")
	}
	counts := map[string]int{}
	var plan []*Route
	for range 10000 {
		plan = m.Plan(plan, 1)
		if len(plan) != 2 || plan[1].Provider == nil || plan[1].Provider.Key() != "secret" {
			t.Fatalf("plan %+v", plan)
		}
		counts[plan[0].Label()]++
	}
	if a := counts["pool/a"]; a < 8700 || a > 9300 {
		t.Fatalf("weighted split %v, want about 90/10", counts)
	}
	if p := m.Plan(nil, 0); len(p) != 1 {
		t.Fatalf("retries 0 plan %d", len(p))
	}
	if p := m.Plan(nil, 5); len(p) != 3 {
		t.Fatalf("plan longer than routes+fallback: %d", len(p))
	}
}

func TestPowerOfTwoPrefersIdleAndSkipsDraining(t *testing.T) {
	tb, err := New(compiled(), Options{Getenv: env})
	if err != nil {
		t.Fatal(err)
	}
	bs := tb.list[0].Routes[0].Pool.Backends
	for range 5 {
		bs[0].Acquire()
		bs[1].Acquire()
	}
	// With two of three busy, the idle one wins every pair it is in: about
	// two thirds of picks.
	idle := 0
	for range 3000 {
		if PowerOfTwo(bs) == bs[2] {
			idle++
		}
	}
	if idle < 1800 || idle > 2200 {
		t.Fatalf("idle picked %d of 3000", idle)
	}
	bs[2].Draining = true
	for range 100 {
		if PowerOfTwo(bs) == bs[2] {
			t.Fatal("draining backend picked while others are active")
		}
	}
}

func TestPowerOfTwoFollowsWeights(t *testing.T) {
	tb, err := New(compiled(), Options{Getenv: env})
	if err != nil {
		t.Fatal(err)
	}
	bs := tb.list[0].Routes[0].Pool.Backends
	if len(bs) != 3 {
		t.Fatalf("want 3 backends, have %d", len(bs))
	}
	// Weights 1:2:5 with requests held open as they are picked, as in a
	// steady stream: in-flight counts settle in proportion to weight.
	bs[0].Weight, bs[1].Weight, bs[2].Weight = 100, 200, 500
	const n = 8000
	for range n {
		PowerOfTwo(bs).Acquire()
	}
	want := []float64{1.0 / 8, 2.0 / 8, 5.0 / 8}
	for i, b := range bs {
		got := float64(b.InFlight()) / n
		if got < want[i]-0.02 || got > want[i]+0.02 {
			t.Errorf("backend %d (weight %d): share %.3f, want %.3f±0.02", i, b.Weight, got, want[i])
		}
	}
	// A zero-weight backend gets nothing while others can serve.
	bs[2].Weight = 0
	for range 200 {
		if PowerOfTwo(bs) == bs[2] {
			t.Fatal("zero-weight backend picked")
		}
	}
	// With nothing eligible the pool still answers.
	for _, b := range bs {
		b.Draining = true
	}
	if PowerOfTwo(bs) == nil {
		t.Fatal("all-draining pool returned no backend")
	}
}

type picker struct{}

func (picker) Pick(pool string, bs []*Backend) int {
	if pool == "a" {
		return 2
	}
	return -1
}

func TestPickerAndSharedInFlight(t *testing.T) {
	shared := &InFlight{}
	t1, _ := New(compiled(), Options{Getenv: env, Picker: picker{}, InFlight: shared})
	t2, _ := New(compiled(), Options{Getenv: env, InFlight: shared})
	r := &t1.list[0].Routes[0]
	b := t1.Backend(r)
	if b.Name != "a2" {
		t.Fatalf("picker ignored: %s", b.Name)
	}
	done := b.Acquire()
	if got := t2.list[0].Routes[0].Pool.Backends[2].InFlight(); got != 1 {
		t.Fatalf("in-flight not shared across tables: %d", got)
	}
	done()
}

func TestProviderKeyFileAndErrors(t *testing.T) {
	c := compiled()
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte("sk-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.Gateway.Providers[0] = policy.Provider{Name: "ext", BaseURL: "https://x/v1", APIKeyFile: path}
	tb, err := New(c, Options{})
	if err != nil || tb.list[0].Fallback[0].Provider.Key() != "sk-file" {
		t.Fatalf("key file: %v", err)
	}
	c.Gateway.Providers[0] = policy.Provider{Name: "ext", BaseURL: "https://x/v1", APIKeyEnv: "MISSING"}
	if _, err := New(c, Options{Getenv: env}); err == nil || !strings.Contains(err.Error(), "MISSING") {
		t.Fatalf("missing env key: %v", err)
	}
	c = compiled()
	c.Gateway.Models = append(c.Gateway.Models, policy.CompiledModel{Name: "m-alias", Routes: []policy.CompiledRoute{{Pool: 0, Provider: -1}}})
	if _, err := New(c, Options{Getenv: env}); err == nil {
		t.Fatal("duplicate model name accepted")
	}
	c = compiled()
	c.Gateway.Models[0].Routes = nil
	if _, err := New(c, Options{Getenv: env, ReadFile: func(string) ([]byte, error) { return nil, errors.New("x") }}); err == nil {
		t.Fatal("model without routes accepted")
	}
}
