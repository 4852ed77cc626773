package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/e2e/lab"
)

// Hot-apply test timing.
const (
	applyWorkers      = 8
	applyStreamTokens = 60
	trafficBefore     = 1500 * time.Millisecond
	trafficAfter      = 2 * time.Second
	tenant            = "acme"
)

// TestHotApplyUnderStreams (issue 7): under steady streaming traffic, both
// straight to the GPU hosts' inference servers and through their L7
// gateways, a policy that changes weights, adds a tenant key and adds a
// firewall rule is applied to every agent: the key works at once, the rule
// takes effect at once, the weights are in force, and no request fails.
func TestHotApplyUnderStreams(t *testing.T) {
	gpus := make([]lab.GPU, 3)
	for i := range gpus {
		gpus[i] = lab.GPU{TokensPerSecond: sharedTokensPerSecond}
	}
	l := newLab(t, lab.Config{Prefix: "iga", GPUs: gpus,
		GPUAgentArgs: []string{"--gateway=true", "--gateway-listen", fmt.Sprintf(":%d", lab.GatewayPort)}})
	key1, key2 := newKey(t), newKey(t)
	o := standardPolicy()
	o.Name = "before"
	o.GatewayVIP = true
	o.Gateway = gatewaySection(map[string]string{"acme-ci": key1})
	startAll(t, l, "before", o)
	gwURL := fmt.Sprintf("http://%s/v1/chat/completions", netip.AddrPortFrom(lab.VIP4, lab.GatewayPort))
	d1 := dialer(t, l.Clients[0].NS)
	probe := d1.HTTPClient(false, 10*time.Second)
	if _, _, err := lab.StreamURL(ctxT(t, 10*time.Second), probe, gwURL, key1, 4); err != nil {
		t.Fatalf("the gateway does not serve the first key: %v", err)
	}
	if a, _, err := lab.StreamURL(ctxT(t, 10*time.Second), probe, gwURL, key2, 4); err == nil || a.Status != http.StatusUnauthorized {
		t.Fatalf("the second key before it exists: status %d, %v; want 401", a.Status, err)
	}
	att := dialer(t, l.Attacker.NS)
	if !canConnect(att, lab.VIP4) {
		t.Fatalf("the attacker's address cannot connect before the rule exists")
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var (
		ok, failed atomic.Int64
		mu         sync.Mutex
		firstErr   error
		wg         sync.WaitGroup
	)
	for w := 0; w < applyWorkers; w++ {
		cl := l.Clients[w%len(l.Clients)]
		hc := dialer(t, cl.NS).HTTPClient(w%4 < 2, 30*time.Second)
		url, key := gwURL, key1
		if w%2 == 1 {
			url, key = lab.URL([]netip.Addr{lab.VIP4, lab.VIP6}[w/2%2], "/v1/chat/completions"), ""
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, _, err := lab.StreamURL(context.Background(), hc, url, key, applyStreamTokens); err != nil {
					failed.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("%s: %w", url, err)
					}
					mu.Unlock()
					continue
				}
				ok.Add(1)
			}
		}()
	}
	time.Sleep(trafficBefore)

	o.Name = "after"
	o.Weights = []uint32{100, 200, 300}
	o.Gateway = gatewaySection(map[string]string{"acme-ci": key1, "acme-new": key2})
	o.ExtraDeny = []string{netip.PrefixFrom(l.Attacker.V4, 32).String()}
	doc, err := l.PolicyYAML(o)
	if err != nil {
		t.Fatal(err)
	}
	applyStart := time.Now()
	for _, n := range append(append([]lab.Node{}, l.GPUs...), l.Balancer) {
		if _, err := l.Client(n.Name).ApplyPolicy(ctxT(t, 30*time.Second), doc, false); err != nil {
			t.Fatalf("apply on %s: %v", n.Name, err)
		}
	}
	t.Logf("applied to 4 agents in %s", time.Since(applyStart).Round(time.Millisecond))
	// At once: the first request with the new key, the first connection
	// attempt from the newly denied address.
	if _, _, err := lab.StreamURL(ctxT(t, 10*time.Second), probe, gwURL, key2, 4); err != nil {
		t.Errorf("the new key does not work right after the apply: %v", err)
	}
	if canConnect(att, lab.VIP4) {
		t.Errorf("the newly denied address still connects right after the apply")
	}
	bs, err := l.Client(l.Balancer.Name).Backends(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.Pool != "gpu-v4" {
			continue
		}
		want := map[string]uint32{"gpu-1": 100, "gpu-2": 200, "gpu-3": 300}[b.Name]
		if b.ConfiguredWeight != want || b.Weight != want {
			t.Errorf("%s/%s weight %d (configured %d), want %d", b.Pool, b.Name, b.Weight, b.ConfiguredWeight, want)
		}
	}
	time.Sleep(trafficAfter)
	stop()
	wg.Wait()
	t.Logf("streams across the apply: %d completed, %d failed", ok.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Fatalf("%d streams failed across the apply; first: %v", failed.Load(), firstErr)
	}
	if ok.Load() < applyWorkers {
		t.Fatalf("only %d streams completed", ok.Load())
	}
}

// gatewaySection is a gateway serving mock-model from pool gpu-v4 to tenant
// acme, with the given keys (name to plaintext; only hashes go in).
func gatewaySection(keys map[string]string) *policy.Gateway {
	g := &policy.Gateway{
		Listen:  fmt.Sprintf(":%d", lab.GatewayPort),
		Tenants: []policy.Tenant{{Name: tenant}},
		Models:  []policy.Model{{Name: "mock-model", Routes: []policy.Route{{Pool: "gpu-v4", Weight: 100}}}},
	}
	for _, name := range []string{"acme-ci", "acme-new"} {
		k, ok := keys[name]
		if !ok {
			continue
		}
		sum := sha256.Sum256([]byte(k))
		g.Keys = append(g.Keys, policy.APIKey{Name: name, Tenant: tenant, Hash: "sha256:" + hex.EncodeToString(sum[:])})
	}
	return g
}

func newKey(t *testing.T) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "ig-e2e-" + hex.EncodeToString(b[:])
}

// canConnect reports whether a TCP connection to the VIP's service port
// completes from d's namespace within deniedDialTimeout.
func canConnect(d *lab.Dialer, vip netip.Addr) bool {
	ctx, cancel := context.WithTimeout(context.Background(), deniedDialTimeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(vip, lab.ServicePort).String())
	if err != nil {
		return false
	}
	c.Close()
	return true
}
