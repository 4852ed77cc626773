// Package apitest is an in-memory stand-in for the node agent's local API,
// served on a unix socket, for testing clients (the CLI) without a kernel.
// Policies are really decoded, validated and compiled; nothing is attached.
package apitest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/agent/api"
	"github.com/infergate/infergate/policy"
)

// Agent is a fake agent. Set Backends and Stats (under Lock) to what the
// test wants served; policies and keys behave like the real thing.
type Agent struct {
	Socket string

	mu       sync.Mutex
	status   api.Status
	backends []api.Backend
	stats    api.Stats
	history  []api.PolicyVersion // newest first; Document kept
	keys     []api.Key
	now      func() time.Time
	requests int
}

// Start serves a fake agent on a socket in t.TempDir(), stopped at cleanup.
// Times it reports come from a clock starting at a fixed instant, stepping a
// minute per apply, so golden output is stable.
func Start(t testing.TB) *Agent {
	t.Helper()
	a := &Agent{Socket: filepath.Join(t.TempDir(), "agent.sock")}
	clock := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	a.now = func() time.Time { clock = clock.Add(time.Minute); return clock }
	a.status = api.Status{Version: "test", Role: "balancer", StartedAt: a.StartedAt()}
	l, err := net.Listen("unix", a.Socket)
	if err != nil {
		t.Fatalf("listening on %s: %v", a.Socket, err)
	}
	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return a
}

// StartedAt is the fixed start time the fake reports.
func (a *Agent) StartedAt() time.Time { return time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC) }

// SetBackends replaces what GET /v1/backends serves.
func (a *Agent) SetBackends(b []api.Backend) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.backends = make([]api.Backend, len(b))
	for i, x := range b {
		// Deep copies: callers keep mutating theirs.
		if x.Load != nil {
			l := *x.Load
			x.Load = &l
		}
		if x.L7 != nil {
			l := *x.L7
			x.L7 = &l
		}
		a.backends[i] = x
	}
}

// SetStats replaces what GET /v1/stats serves.
func (a *Agent) SetStats(s api.Stats) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s.Verdicts = copyCounts(s.Verdicts)
	s.Drops = copyCounts(s.Drops)
	s.VIPs = append([]api.VIPStats(nil), s.VIPs...)
	s.Maps = append([]api.MapStats(nil), s.Maps...)
	a.stats = s
}

func copyCounts(m map[string]uint64) map[string]uint64 {
	if m == nil {
		return nil
	}
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// SetStatus replaces the status (the policy reference is filled in).
func (a *Agent) SetStatus(s api.Status) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.status = s
}

// Requests counts requests served.
func (a *Agent) Requests() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.requests
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, msg string, problems []policy.Problem) {
	writeJSON(w, code, api.ErrorResponse{Error: msg, Problems: problems})
}

func (a *Agent) current() *api.PolicyVersion {
	for i := range a.history {
		if a.history[i].Current {
			return &a.history[i]
		}
	}
	return nil
}

func (a *Agent) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathStatus, func(w http.ResponseWriter, _ *http.Request) {
		s := a.status
		if c := a.current(); c != nil {
			s.Policy = api.PolicyRef{Name: c.Name, Version: c.Version}
		}
		writeJSON(w, 200, s)
	})
	mux.HandleFunc("GET "+api.PathBackends, func(w http.ResponseWriter, _ *http.Request) {
		b := a.backends
		if b == nil {
			b = []api.Backend{}
		}
		writeJSON(w, 200, b)
	})
	mux.HandleFunc("GET "+api.PathStats, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, a.stats) })
	mux.HandleFunc("GET "+api.PathPolicy, func(w http.ResponseWriter, _ *http.Request) {
		c := a.current()
		if c == nil {
			writeErr(w, 404, "no policy is applied", nil)
			return
		}
		writeJSON(w, 200, c)
	})
	mux.HandleFunc("POST "+api.PathPolicy, func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, policy.MaxDocumentBytes+1))
		if err != nil {
			writeErr(w, 400, err.Error(), nil)
			return
		}
		_, c, err := policy.Load(bytes.NewReader(body))
		if err != nil {
			var ve *policy.ValidationError
			if errors.As(err, &ve) {
				writeErr(w, 400, "policy refused", ve.Problems)
				return
			}
			writeErr(w, 400, err.Error(), nil)
			return
		}
		cur := a.current()
		changed := cur == nil || cur.Version != c.Version
		dry := r.URL.Query().Get("dryRun") == "true"
		if !dry && changed {
			a.push(api.PolicyVersion{Name: c.Name, Version: c.Version, Document: string(body)})
		}
		writeJSON(w, 200, api.ApplyResult{Name: c.Name, Version: c.Version, Changed: changed, DryRun: dry})
	})
	mux.HandleFunc("DELETE "+api.PathPolicy, func(w http.ResponseWriter, _ *http.Request) {
		c := a.current()
		if c == nil {
			writeErr(w, 404, "no policy is applied", nil)
			return
		}
		c.Current = false
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET "+api.PathHistory, func(w http.ResponseWriter, _ *http.Request) {
		out := make([]api.PolicyVersion, len(a.history))
		for i, h := range a.history {
			h.Document = ""
			out[i] = h
		}
		writeJSON(w, 200, out)
	})
	mux.HandleFunc("POST "+api.PathRollback, func(w http.ResponseWriter, r *http.Request) {
		to := r.URL.Query().Get("to")
		cur := a.current()
		var target *api.PolicyVersion
		for i := range a.history {
			h := &a.history[i]
			if to == api.RollbackPrevious {
				if cur != nil && h.Version != cur.Version && !h.Current {
					target = h
					break
				}
			} else if h.Version == to {
				target = h
				break
			}
		}
		if target == nil {
			writeErr(w, 404, "no version "+to+" in history", nil)
			return
		}
		t := *target
		a.push(api.PolicyVersion{Name: t.Name, Version: t.Version, Document: t.Document})
		writeJSON(w, 200, api.ApplyResult{Name: t.Name, Version: t.Version, Changed: cur == nil || cur.Version != t.Version})
	})
	mux.HandleFunc("POST "+api.PathKeys, func(w http.ResponseWriter, r *http.Request) {
		var kr api.KeyRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&kr); err != nil || kr.Name == "" || kr.Tenant == "" {
			writeErr(w, 400, "name and tenant are required", nil)
			return
		}
		for _, k := range a.keys {
			if k.Name == kr.Name {
				writeErr(w, 409, "key "+kr.Name+" exists", nil)
				return
			}
		}
		// Deterministic so golden files hold still; the real agent uses
		// crypto/rand.
		key := "ig_test_" + kr.Name
		sum := sha256.Sum256([]byte(key))
		a.keys = append(a.keys, api.Key{Name: kr.Name, Tenant: kr.Tenant, HashPrefix: hex.EncodeToString(sum[:])[:12]})
		writeJSON(w, 201, api.CreatedKey{Name: kr.Name, Tenant: kr.Tenant, Key: key})
	})
	mux.HandleFunc("GET "+api.PathKeys, func(w http.ResponseWriter, _ *http.Request) {
		k := a.keys
		if k == nil {
			k = []api.Key{}
		}
		writeJSON(w, 200, k)
	})
	mux.HandleFunc("DELETE "+api.PathKeys+"/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		for i, k := range a.keys {
			if k.Name == name {
				a.keys = append(a.keys[:i], a.keys[i+1:]...)
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		writeErr(w, 404, "no key named "+name, nil)
	})
	mux.HandleFunc("POST "+api.PathDrain, func(w http.ResponseWriter, r *http.Request) {
		on := r.URL.Query().Get("on")
		if on != "true" && on != "false" {
			writeErr(w, 400, "on must be true or false", nil)
			return
		}
		if a.status.BGP == nil {
			a.status.BGP = &api.BGPStatus{Announced: []string{}, Peers: []api.BGPPeer{}}
		}
		a.status.BGP.Draining = on == "true"
		a.status.BGP.Withdrawn = ""
		if a.status.BGP.Draining {
			a.status.BGP.Withdrawn = "node drained"
		}
		writeJSON(w, 200, a.status)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.requests++
		if !strings.HasPrefix(r.URL.Path, "/v1/") {
			writeErr(w, 404, "not found", nil)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// push makes v the current version at the top of history.
func (a *Agent) push(v api.PolicyVersion) {
	for i := range a.history {
		a.history[i].Current = false
	}
	v.AppliedAt = a.now()
	v.Current = true
	a.history = append([]api.PolicyVersion{v}, a.history...)
}
