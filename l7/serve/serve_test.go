package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/infergate/infergate/internal/redistest"
	"github.com/infergate/infergate/l7/auth"
	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/mockllm"
)

const testKey = "ig-serve-test-key-0123456789abcdef0123456789abcdef"

// backend is a mock inference server on loopback.
type backend struct {
	*mockllm.Server
	addr netip.AddrPort
}

func newBackend(t *testing.T, cfg mockllm.Config) backend {
	t.Helper()
	s := mockllm.New(cfg)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return backend{s, mustAddrPort(t, ts.URL)}
}

func mustAddrPort(t testing.TB, url string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// testPolicy: tenant acme with key testKey, model m served by pool p of
// the given backends with the given static weights.
func testPolicy(bs []backend, weights []uint32) *policy.Compiled {
	p := policy.CompiledPool{Name: "p"}
	for i, b := range bs {
		p.Backends = append(p.Backends, policy.CompiledBackend{Name: fmt.Sprintf("b%d", i), Address: b.addr.Addr(),
			Port: b.addr.Port(), Weight: weights[i]})
	}
	c := &policy.Compiled{Name: "t", Version: "1", Pools: []policy.CompiledPool{p}}
	c.Gateway.Tenants = []policy.Tenant{{Name: "acme"}}
	c.Gateway.Keys = []policy.CompiledKey{{Name: "k", Tenant: 0, Hash: auth.HashKey(testKey)}}
	c.Gateway.Models = []policy.CompiledModel{{Name: "m", Encoding: "o200k_base",
		Routes: []policy.CompiledRoute{{Pool: 0, Provider: -1, Weight: 1}}}}
	return c
}

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func newServer(t *testing.T, o Options) *Server {
	t.Helper()
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	o.ShutdownGrace = 5 * time.Second
	s := New(o)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s
}

var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// chat sends one chat completion to addr and returns the status.
func chat(t *testing.T, addr, text string) int {
	t.Helper()
	status, err := tryChat(addr, text)
	if err != nil {
		t.Fatal(err)
	}
	return status
}

func tryChat(addr, text string) (int, error) {
	body := fmt.Sprintf(`{"model":"m","max_tokens":2,"messages":[{"role":"user","content":%q}]}`, text)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func auditLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// waitAudit waits for the audit log at path to hold n lines (it is
// flushed on a timer).
func waitAudit(t *testing.T, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for auditLines(t, path) < n {
		if time.Now().After(deadline) {
			t.Fatalf("audit log %s: %d lines, want %d", path, auditLines(t, path), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A reload that changes every gateway field (listen address, limit store
// and failOpen, audit path, stages) applies each of them.
func TestApplyChangesEveryField(t *testing.T) {
	b := newBackend(t, mockllm.Config{})
	dir := t.TempDir()
	auditA, auditB := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
	addrA, addrB := freeAddr(t), freeAddr(t)
	s := newServer(t, Options{})

	v1 := testPolicy([]backend{b}, []uint32{100})
	v1.Gateway.Listen = addrA
	v1.Gateway.Audit.Path = auditA
	if err := s.Apply(v1); err != nil {
		t.Fatal(err)
	}
	if got := chat(t, addrA, "forbidden words"); got != http.StatusOK {
		t.Fatalf("v1: status %d", got)
	}
	waitAudit(t, auditA, 1)

	// v2: another address, a Redis limit store with a limit of one
	// request a minute, another audit log, an inspection rule.
	rs := redistest.Start(t)
	v2 := testPolicy([]backend{b}, []uint32{100})
	v2.Gateway.Listen = addrB
	v2.Gateway.Audit.Path = auditB
	v2.Gateway.LimitStore = policy.LimitStore{Redis: rs.Addr}
	v2.Gateway.Tenants[0].Limits.RequestsPerMinute = 1
	v2.Gateway.Inspection.Rules = []policy.InspectionRule{{Name: "deny", Detector: "deny-list", Words: []string{"forbidden"}, Action: "block"}}
	if err := s.Apply(v2); err != nil {
		t.Fatal(err)
	}
	// listen: the new address serves, the old one is closed.
	if got := chat(t, addrB, "hello"); got != http.StatusOK {
		t.Fatalf("v2 on the new address: status %d", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := tryChat(addrA, "hello"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the old address still serves after the reload")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// limit store: the limit's state is in Redis, and it limits.
	rc := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer rc.Close()
	if n, err := rc.DBSize(context.Background()).Result(); err != nil || n == 0 {
		t.Fatalf("redis holds %d keys (%v): the limit store was not switched", n, err)
	}
	if got := chat(t, addrB, "hello"); got != http.StatusTooManyRequests {
		t.Fatalf("second request within the minute: status %d, want 429", got)
	}
	// stages: the inspection rule blocks (the limit would refuse it as
	// well; a fresh tenant bucket is not needed to see a 400 first).
	v2b := *v2
	v2b.Gateway.Tenants = []policy.Tenant{{Name: "acme"}}
	if err := s.Apply(&v2b); err != nil {
		t.Fatal(err)
	}
	if got := chat(t, addrB, "forbidden words"); got != http.StatusBadRequest {
		t.Fatalf("inspection rule: status %d, want 400", got)
	}
	// audit: the new log gets the lines, the old one none.
	waitAudit(t, auditB, 3)
	if n := auditLines(t, auditA); n != 1 {
		t.Fatalf("old audit log has %d lines, want 1", n)
	}

	// failOpen: with the limit store unreachable, fail closed answers 503
	// and fail open serves.
	dead := freeAddr(t)
	v3 := v2b
	v3.Gateway.LimitStore = policy.LimitStore{Redis: dead}
	v3.Gateway.Inspection = policy.Inspection{}
	v3.Gateway.Tenants = []policy.Tenant{{Name: "acme", Limits: policy.Limits{RequestsPerMinute: 1000}}}
	if err := s.Apply(&v3); err != nil {
		t.Fatal(err)
	}
	if got := chat(t, addrB, "hello"); got != http.StatusServiceUnavailable {
		t.Fatalf("unreachable store, fail closed: status %d, want 503", got)
	}
	v4 := v3
	v4.Gateway.LimitStore.FailOpen = true
	if err := s.Apply(&v4); err != nil {
		t.Fatal(err)
	}
	if got := chat(t, addrB, "hello"); got != http.StatusOK {
		t.Fatalf("unreachable store, fail open: status %d, want 200", got)
	}
}

// A policy whose listener cannot bind is refused whole: its other changes
// (audit path, inspection) are not applied and the old policy keeps
// serving on its address.
func TestApplyRefusedWhenListenerCannotBind(t *testing.T) {
	b := newBackend(t, mockllm.Config{})
	dir := t.TempDir()
	auditA, auditB := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
	addrA := freeAddr(t)
	s := newServer(t, Options{})
	v1 := testPolicy([]backend{b}, []uint32{100})
	v1.Gateway.Listen = addrA
	v1.Gateway.Audit.Path = auditA
	if err := s.Apply(v1); err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	v2 := testPolicy([]backend{b}, []uint32{100})
	v2.Gateway.Listen = taken.Addr().String()
	v2.Gateway.Audit.Path = auditB
	v2.Gateway.Inspection.Rules = []policy.InspectionRule{{Name: "deny", Detector: "deny-list", Words: []string{"forbidden"}, Action: "block"}}
	err = s.Apply(v2)
	if err == nil || !strings.Contains(err.Error(), "gateway.listen") {
		t.Fatalf("apply with a taken address: %v, want a gateway.listen error", err)
	}
	if got := chat(t, addrA, "forbidden words"); got != http.StatusOK {
		t.Fatalf("after the refused apply: status %d, want 200 (old policy, no inspection)", got)
	}
	waitAudit(t, auditA, 1)
	if _, err := os.Stat(auditB); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused policy's audit log exists (%v)", err)
	}
	if s.Addr() != addrA {
		t.Fatalf("listening on %s, want %s", s.Addr(), addrA)
	}
}

// An audit log that cannot be opened refuses the policy too.
func TestApplyRefusedWhenAuditCannotOpen(t *testing.T) {
	b := newBackend(t, mockllm.Config{})
	addr := freeAddr(t)
	s := newServer(t, Options{})
	v1 := testPolicy([]backend{b}, []uint32{100})
	v1.Gateway.Listen = addr
	if err := s.Apply(v1); err != nil {
		t.Fatal(err)
	}
	v2 := testPolicy([]backend{b}, []uint32{100})
	v2.Gateway.Listen = addr
	v2.Gateway.Audit.Path = filepath.Join(t.TempDir(), "missing", "dir", "a.jsonl")
	v2.Gateway.Inspection.Rules = []policy.InspectionRule{{Name: "deny", Detector: "deny-list", Words: []string{"forbidden"}, Action: "block"}}
	if err := s.Apply(v2); err == nil || !strings.Contains(err.Error(), "gateway.audit.path") {
		t.Fatalf("apply with an unopenable audit log: %v", err)
	}
	if got := chat(t, addr, "forbidden words"); got != http.StatusOK {
		t.Fatalf("after the refused apply: status %d, want 200", got)
	}
}

// Static weights hold through the production assembly (serve with its
// load source and picker, a pool with loadReports on): weight 0 gets
// nothing and 100:900 splits about 1:9 under concurrent load.
func TestStaticWeightsThroughAssembly(t *testing.T) {
	// Requests take a while so that in-flight counts, which the picker
	// balances per unit of weight, build up.
	slow := mockllm.Config{TTFT: 5 * time.Millisecond}
	for _, tc := range []struct {
		name    string
		weights []uint32
		check   func(t *testing.T, n [2]int64)
	}{
		{"zero", []uint32{0, 100}, func(t *testing.T, n [2]int64) {
			if n[0] != 0 {
				t.Fatalf("weight 0 backend got %d of %d", n[0], n[0]+n[1])
			}
		}},
		{"100:900", []uint32{100, 900}, func(t *testing.T, n [2]int64) {
			share := float64(n[0]) / float64(n[0]+n[1])
			if share < 0.03 || share > 0.25 {
				t.Fatalf("100:900 came out %d:%d (share %.3f, want about 0.1)", n[0], n[1], share)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bs := []backend{newBackend(t, slow), newBackend(t, slow)}
			c := testPolicy(bs, tc.weights)
			c.Pools[0].LoadReports = true
			c.Gateway.Listen = "127.0.0.1:0"
			s := newServer(t, Options{PollLoadReports: &LoadsConfig{}})
			if err := s.Apply(c); err != nil {
				t.Fatal(err)
			}
			if !s.Picking() {
				t.Fatal("the load picker is not in use")
			}
			addr := s.Addr()
			var wg sync.WaitGroup
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 25 {
						if st, err := tryChat(addr, "hello"); err != nil || st != http.StatusOK {
							t.Errorf("status %d, %v", st, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			tc.check(t, [2]int64{bs[0].Stats().Total, bs[1].Stats().Total})
		})
	}
}

// A reload that turns loadReports on for a pool starts the load source and
// gives the gateway the picker, without a restart; turning it off again
// takes the picker away (no prompt assembly for affinity).
func TestApplyTurnsLoadReportsOnAndOff(t *testing.T) {
	b := newBackend(t, mockllm.Config{})
	s := newServer(t, Options{PollLoadReports: &LoadsConfig{}})
	off := testPolicy([]backend{b}, []uint32{100})
	off.Gateway.Listen = "127.0.0.1:0"
	if err := s.Apply(off); err != nil {
		t.Fatal(err)
	}
	if s.Loads() != nil || s.Picking() {
		t.Fatal("a load source for a policy without loadReports")
	}
	on := testPolicy([]backend{b}, []uint32{100})
	on.Gateway.Listen = "127.0.0.1:0"
	on.Pools[0].LoadReports = true
	if err := s.Apply(on); err != nil {
		t.Fatal(err)
	}
	if s.Loads() == nil || !s.Picking() {
		t.Fatal("loadReports turned on by a reload: no picker")
	}
	if got := chat(t, s.Addr(), "hello"); got != http.StatusOK {
		t.Fatalf("status %d", got)
	}
	if err := s.Apply(off); err != nil {
		t.Fatal(err)
	}
	if s.Picking() {
		t.Fatal("loadReports turned off: the gateway still picks by load")
	}
	if got := chat(t, s.Addr(), "hello"); got != http.StatusOK {
		t.Fatalf("status %d", got)
	}
}
