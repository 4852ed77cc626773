package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/infergate/infergate/agent/api"
	"github.com/infergate/infergate/policy"
)

// memStore keeps versions in memory; failNext makes the next Save fail.
type memStore struct {
	mu       sync.Mutex
	hist     []StoredPolicy // oldest first
	current  int            // index into hist, -1 none
	failNext bool
}

func newMemStore() *memStore { return &memStore{current: -1} }

func (s *memStore) Save(p StoredPolicy) (StoredPolicy, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failNext {
		s.failNext = false
		return StoredPolicy{}, errors.New("disk full")
	}
	s.hist = append(s.hist, p)
	s.current = len(s.hist) - 1
	return p, nil
}

func (s *memStore) Current() (StoredPolicy, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current < 0 {
		return StoredPolicy{}, false, nil
	}
	return s.hist[s.current], true, nil
}

func (s *memStore) History() ([]StoredPolicy, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.hist)
	for i := range out {
		out[i].Current = i == s.current
		out[i].Document = nil
	}
	slices.Reverse(out)
	return out, nil
}

func (s *memStore) Get(v string) (StoredPolicy, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.hist) - 1; i >= 0; i-- {
		if strings.HasPrefix(s.hist[i].Version, v) {
			return s.hist[i], true, nil
		}
	}
	return StoredPolicy{}, false, nil
}

func (s *memStore) ClearCurrent() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.current = -1
	return nil
}

type fakeGateway struct {
	mu       sync.Mutex
	applied  []string
	failNext bool
}

func (g *fakeGateway) Apply(c *policy.Compiled) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failNext {
		g.failNext = false
		return errors.New("bad inspection regex")
	}
	g.applied = append(g.applied, c.Version)
	return nil
}

const testPolicy = `apiVersion: infergate.dev/v1alpha1
kind: Policy
metadata:
  name: edge
spec:
  dataplane:
    interfaces: [eth0]
    firewall:
      rules:
        - name: scanners
          action: deny
          sources: [198.19.66.0/24]
    vips:
      - name: llm
        address: 198.18.100.1
        port: 80
        pool: gpus
  pools:
    - name: gpus
      backends:
        - {name: gpu1, address: 198.18.1.1, port: 8000, weight: %d}
        - {name: gpu2, address: 198.18.1.2, port: 8000}
        - {name: gpu3, address: 198.18.1.3, port: 8000}
  gateway:
    tenants:
      - name: acme
`

func policyDoc(w int) []byte { return []byte(fmt.Sprintf(testPolicy, w)) }

type testAgent struct {
	*Agent
	dp     *fakeDataplane
	store  *memStore
	gw     *fakeGateway
	client *http.Client
	sock   string
}

func newTestAgent(t *testing.T, store *memStore, dp *fakeDataplane) *testAgent {
	t.Helper()
	if store == nil {
		store = newMemStore()
	}
	ta := newTestAgentWith(t, store, dp)
	ta.store = store
	return ta
}

func newTestAgentWith(t *testing.T, store PolicyStore, dp *fakeDataplane) *testAgent {
	t.Helper()
	if dp == nil {
		dp = newFakeDataplane()
	}
	gw := &fakeGateway{}
	a, err := New(Options{Role: RoleBalancer, Version: "test", Dataplane: dp, Resolver: onLinkResolver(testBackends...),
		Store: store, Gateway: gw, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	t.Cleanup(a.Close)
	if err := a.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "run", "agent.sock")
	ln, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	go Serve(ctx, ln, a.Handler(), a.log)
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	return &testAgent{Agent: a, dp: dp, gw: gw, client: client, sock: sock}
}

func (ta *testAgent) call(t *testing.T, method, path string, body []byte, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, "http://agent"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ta.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

func TestAPISocketPermissions(t *testing.T) {
	ta := newTestAgent(t, nil, nil)
	fi, err := os.Stat(ta.sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want socket 0600", fi.Mode())
	}
	di, err := os.Stat(filepath.Dir(ta.sock))
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory mode %v, %v", di.Mode(), err)
	}
	// An existing directory keeps its mode.
	shared := t.TempDir()
	if err := os.Chmod(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	l0, err := ListenUnix(filepath.Join(shared, "a.sock"))
	if err != nil {
		t.Fatal(err)
	}
	l0.Close()
	if si, _ := os.Stat(shared); si.Mode().Perm() != 0o755 {
		t.Fatalf("existing directory changed to %v", si.Mode().Perm())
	}
	// A live socket is not taken over.
	if _, err := ListenUnix(ta.sock); err == nil || !strings.Contains(err.Error(), "another agent") {
		t.Fatalf("second listener on a live socket: %v", err)
	}
	// A stale one (no listener) is replaced.
	stale := filepath.Join(t.TempDir(), "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l2, err := ListenUnix(stale)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l2.Close()
	// Something that is not a socket is never removed.
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("x"), 0o600)
	if _, err := ListenUnix(file); err == nil {
		t.Fatal("regular file replaced by a socket")
	}
}

func TestAPIApplyAndRefuse(t *testing.T) {
	ta := newTestAgent(t, nil, nil)
	var pv PolicyVersion
	if code := ta.call(t, "GET", "/v1/policy", nil, &pv); code != http.StatusNotFound {
		t.Fatalf("GET policy with none applied: %d", code)
	}

	// Dry run: validated and checked against the node, nothing written.
	writes := ta.dp.writes
	var res ApplyResult
	if code := ta.call(t, "POST", "/v1/policy?dryRun=true", policyDoc(100), &res); code != 200 || !res.DryRun {
		t.Fatalf("dry run: %d %+v", code, res)
	}
	if ta.dp.writes != writes || len(ta.store.hist) != 0 {
		t.Fatal("dry run wrote something")
	}

	if code := ta.call(t, "POST", "/v1/policy", policyDoc(100), &res); code != 200 || !res.Changed || res.Name != "edge" {
		t.Fatalf("apply: %d %+v", code, res)
	}
	first := res.Version
	if len(ta.dp.vips) != 1 || len(ta.dp.backends) != 3 || len(ta.gw.applied) != 1 {
		t.Fatalf("apply left %d VIPs, %d backends, gateway %v", len(ta.dp.vips), len(ta.dp.backends), ta.gw.applied)
	}
	// The same document again changes nothing and writes nothing.
	writes = ta.dp.writes
	if code := ta.call(t, "POST", "/v1/policy", policyDoc(100), &res); code != 200 || res.Changed {
		t.Fatalf("re-apply: %d %+v", code, res)
	}
	if ta.dp.writes != writes || len(ta.store.hist) != 1 {
		t.Fatalf("re-apply wrote %d entries, %d versions stored", ta.dp.writes-writes, len(ta.store.hist))
	}

	snap := ta.dp.snapshot()
	refused := []struct {
		name string
		doc  string
		want string
	}{
		{"schema", strings.Replace(string(policyDoc(100)), "port: 80", "port: 70000", 1), "spec.dataplane.vips[0].port"},
		{"unknown field", strings.Replace(string(policyDoc(100)), "name: edge", "name: edge\n  color: red", 1), "color"},
		{"unknown interface", strings.Replace(string(policyDoc(100)), "[eth0]", "[eth0, nosuch9]", 1), `unknown interface "nosuch9"`},
		{"no route", strings.Replace(string(policyDoc(100)), "198.18.1.3", "198.18.77.3", 1), "has no route"},
	}
	for _, tc := range refused {
		var er ErrorResponse
		code := ta.call(t, "POST", "/v1/policy", []byte(tc.doc), &er)
		if code != http.StatusBadRequest || !strings.Contains(er.Error, tc.want) || len(er.Problems) == 0 {
			t.Errorf("%s: %d %+v, want 400 naming %q", tc.name, code, er, tc.want)
		}
	}
	if ta.dp.snapshot() != snap {
		t.Fatal("a refused policy changed the data plane")
	}

	// The gateway refusing a policy leaves the previous one in force in the
	// kernel too.
	ta.gw.failNext = true
	var er ErrorResponse
	if code := ta.call(t, "POST", "/v1/policy", policyDoc(300), &er); code != 500 || !strings.Contains(er.Error, "L7 gateway") {
		t.Fatalf("gateway failure: %d %+v", code, er)
	}
	if ta.dp.snapshot() != snap {
		t.Fatal("a policy the gateway refused stayed in the data plane")
	}
	// So does the store failing.
	ta.store.failNext = true
	if code := ta.call(t, "POST", "/v1/policy", policyDoc(300), &er); code != 500 || !strings.Contains(er.Error, "disk full") {
		t.Fatalf("store failure: %d %+v", code, er)
	}
	if ta.dp.snapshot() != snap {
		t.Fatal("a policy the store refused stayed in the data plane")
	}
	var st Status
	ta.call(t, "GET", "/v1/status", nil, &st)
	if st.Policy.Version != first || st.ReconcileErrors == 0 || st.LastError == "" {
		t.Fatalf("status after failures: %+v", st)
	}

	// A real change, then history and rollback.
	if code := ta.call(t, "POST", "/v1/policy", policyDoc(300), &res); code != 200 || !res.Changed {
		t.Fatalf("second apply: %d", code)
	}
	second := res.Version
	var hist []PolicyVersion
	ta.call(t, "GET", "/v1/policy/history", nil, &hist)
	if len(hist) != 2 || hist[0].Version != second || !hist[0].Current || hist[1].Version != first || hist[0].Document != "" {
		t.Fatalf("history: %+v", hist)
	}
	var bs []api.Backend
	ta.call(t, "GET", "/v1/backends", nil, &bs)
	if len(bs) != 3 || bs[0].Weight != 300 || bs[0].ConfiguredWeight != 300 || bs[0].State != "active" {
		t.Fatalf("backends: %+v", bs)
	}
	if code := ta.call(t, "POST", "/v1/policy/rollback?to=previous", nil, &res); code != 200 || res.Version != first {
		t.Fatalf("rollback: %d %+v", code, res)
	}
	if code := ta.call(t, "POST", "/v1/policy/rollback?to=ffffffff", nil, &er); code != 404 {
		t.Fatalf("rollback to nothing: %d", code)
	}
	if code := ta.call(t, "POST", "/v1/policy/rollback?to="+second[:8], nil, &res); code != 200 || res.Version != second {
		t.Fatalf("rollback to a version: %d %+v", code, res)
	}

	// Delete: nothing steered.
	if code := ta.call(t, "DELETE", "/v1/policy", nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	if len(ta.dp.vips) != 0 || len(ta.dp.backends) != 0 {
		t.Fatal("delete left steering in place")
	}
}

func TestAPIKeys(t *testing.T) {
	ta := newTestAgent(t, nil, nil)
	var res ApplyResult
	ta.call(t, "POST", "/v1/policy", policyDoc(100), &res)
	var ck CreatedKey
	if code := ta.call(t, "POST", "/v1/keys", []byte(`{"name":"ci","tenant":"acme"}`), &ck); code != http.StatusCreated || !strings.HasPrefix(ck.Key, keyPrefix) {
		t.Fatalf("create: %d %+v", code, ck)
	}
	sum := sha256.Sum256([]byte(ck.Key))
	var pv PolicyVersion
	ta.call(t, "GET", "/v1/policy", nil, &pv)
	if strings.Contains(pv.Document, ck.Key) || !strings.Contains(pv.Document, hex.EncodeToString(sum[:])) {
		t.Fatalf("stored document must hold the hash and not the key:\n%s", pv.Document)
	}
	for _, h := range ta.store.hist {
		if bytes.Contains(h.Document, []byte(ck.Key)) {
			t.Fatal("key text stored")
		}
	}
	_, c, _ := ta.Current()
	if len(c.Gateway.Keys) != 1 || c.Gateway.Keys[0].Hash != sum {
		t.Fatal("key hash not in the compiled policy in force")
	}
	var keys []api.Key
	ta.call(t, "GET", "/v1/keys", nil, &keys)
	if len(keys) != 1 || keys[0].Tenant != "acme" || keys[0].HashPrefix != hex.EncodeToString(sum[:])[:hashPrefixLen] {
		t.Fatalf("keys: %+v", keys)
	}
	var er ErrorResponse
	if code := ta.call(t, "POST", "/v1/keys", []byte(`{"name":"ci","tenant":"acme"}`), &er); code != 400 {
		t.Fatalf("duplicate key: %d", code)
	}
	if code := ta.call(t, "POST", "/v1/keys", []byte(`{"name":"x","tenant":"nobody"}`), &er); code != 400 || len(er.Problems) == 0 {
		t.Fatalf("key for an unknown tenant: %d %+v", code, er)
	}
	if code := ta.call(t, "DELETE", "/v1/keys/ci", nil, nil); code != http.StatusNoContent {
		t.Fatalf("revoke: %d", code)
	}
	if code := ta.call(t, "DELETE", "/v1/keys/ci", nil, &er); code != 404 {
		t.Fatalf("revoke twice: %d", code)
	}
	if len(ta.Keys()) != 0 {
		t.Fatal("key still listed")
	}
}

func TestAgentRestoresStoredPolicy(t *testing.T) {
	store := newMemStore()
	dp := newFakeDataplane()
	ta := newTestAgent(t, store, dp)
	var res ApplyResult
	ta.call(t, "POST", "/v1/policy", policyDoc(200), &res)
	ids := ta.rec.BackendIDs()

	// A second agent on the same store and pinned maps brings the version
	// back, keeps backend IDs and stores nothing new.
	a2, err := New(Options{Role: RoleBalancer, Dataplane: dp, Resolver: onLinkResolver(testBackends...), Store: store,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	if err := a2.Adopt(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := a2.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	sp, _, ok := a2.Current()
	if !ok || sp.Version != res.Version || len(store.hist) != 1 {
		t.Fatalf("restored %+v (%v), %d versions stored", sp, ok, len(store.hist))
	}
	for a, id := range ids {
		if a2.rec.BackendIDs()[a] != id {
			t.Fatalf("backend %s moved", a)
		}
	}
}

func TestConcurrentAppliesSerialised(t *testing.T) {
	ta := newTestAgent(t, nil, nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := ta.Apply(context.Background(), policyDoc(100+i), false); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// Whatever order they ran in, the data plane matches the version in
	// force exactly: re-running it writes nothing.
	if err := ta.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	w := ta.dp.writes
	if err := ta.Reconcile(context.Background()); err != nil || ta.dp.writes != w {
		t.Fatalf("state after concurrent applies is not converged: %v", err)
	}
	if len(ta.store.hist) != 8 {
		t.Fatalf("%d versions stored, want 8", len(ta.store.hist))
	}
}

func TestConcurrentKeysNotLost(t *testing.T) {
	ta := newTestAgent(t, nil, nil)
	if _, err := ta.Apply(context.Background(), policyDoc(100), false); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := ta.CreateKey(context.Background(), fmt.Sprintf("k%d", i), "acme"); err != nil {
				t.Error(err)
			}
		}()
	}
	// Each creation reads the document in force and applies it with one
	// more key; serialised, none overwrites another's.
	wg.Wait()
	if n := len(ta.Keys()); n != 6 {
		t.Fatalf("%d keys after 6 concurrent creations", n)
	}
}
