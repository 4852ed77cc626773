package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infergate/infergate/internal/pgtest"
	"github.com/infergate/infergate/l7/audit"
	"github.com/infergate/infergate/l7/auth"
	"github.com/infergate/infergate/l7/ledger"
	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/mockllm"
)

// totals are what a ledger or an audit log adds up to.
type totals struct {
	Requests, Prompt, Completion, Cached int64
	// Hits are entries answered from the response cache (cached tokens
	// carried), Gone those the client left or cancelled (status 499).
	Hits, Gone int64
	Cost       float64
	IDs        map[string]int // request id -> rows
}

func (a totals) equal(b totals) bool {
	// Costs are summed in a different order on each side: equal to far
	// below a cent (a nano-dollar).
	return a.Requests == b.Requests && a.Prompt == b.Prompt && a.Completion == b.Completion && a.Cached == b.Cached &&
		a.Hits == b.Hits && a.Gone == b.Gone && math.Abs(a.Cost-b.Cost) < 1e-9
}

func (a totals) String() string {
	return fmt.Sprintf("%d requests (%d cache hits, %d client gone or cancelled), %d prompt, %d completion and %d cached tokens, $%.9f",
		a.Requests, a.Hits, a.Gone, a.Prompt, a.Completion, a.Cached, a.Cost)
}

// auditTotals sums audit logs' records.
func auditTotals(t *testing.T, paths ...string) totals {
	t.Helper()
	tot := totals{IDs: map[string]int{}}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var r audit.Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			tot.Requests++
			tot.Prompt += r.PromptTokens
			tot.Completion += r.CompletionTokens
			tot.Cached += r.CachedTokens
			tot.add(r.CachedTokens, r.Status)
			tot.Cost += r.CostUSD
			tot.IDs[r.ID]++
		}
		f.Close()
	}
	return tot
}

// add counts an entry's kind.
func (a *totals) add(cached int64, status int) {
	if cached > 0 {
		a.Hits++
	}
	if status == 499 {
		a.Gone++
	}
}

// ledgerTotals sums the ledger's rows; an error (the database restarting)
// is returned for the caller to retry.
func ledgerTotals(db *pgxpool.Pool) (totals, error) {
	tot := totals{IDs: map[string]int{}}
	ctx := context.Background()
	rows, err := db.Query(ctx, "SELECT request_id, status, prompt_tokens, completion_tokens, cached_tokens, cost_usd FROM infergate_usage")
	if err != nil {
		return tot, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var status int
		var p, c, cached int64
		var cost float64
		if err := rows.Scan(&id, &status, &p, &c, &cached, &cost); err != nil {
			return tot, err
		}
		tot.Requests++
		tot.Prompt += p
		tot.Completion += c
		tot.Cached += cached
		tot.add(cached, status)
		tot.Cost += cost
		tot.IDs[id]++
	}
	return tot, rows.Err()
}

// waitLedger waits until the ledger equals the audit logs (the audit log
// is flushed and the spool shipped on timers) and both stay so for a second
// (a request the client left is recorded when the gateway notices).
func waitLedger(t *testing.T, db *pgxpool.Pool, audits ...string) totals {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var equalSince time.Time
	var last totals
	for {
		want := auditTotals(t, audits...)
		got, err := ledgerTotals(db)
		if err != nil || !got.equal(want) || !got.equal(last) {
			equalSince = time.Time{}
		} else if equalSince.IsZero() {
			equalSince = time.Now()
		}
		last = got
		if !equalSince.IsZero() && time.Since(equalSince) >= time.Second && want.Requests > 0 {
			for id, n := range want.IDs {
				if got.IDs[id] != n {
					t.Fatalf("request %s: %d ledger rows, %d audit records", id, got.IDs[id], n)
				}
			}
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("ledger %v (%v), audit logs %v", got, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ledgerPolicy(t *testing.T, b backend, addr, auditPath, spool, dsnFile string) *policy.Compiled {
	c := testPolicy([]backend{b}, []uint32{100})
	c.Gateway.Listen = addr
	c.Gateway.Audit.Path = auditPath
	c.Gateway.Models[0].Price = policy.Price{InputPerMTok: 3, OutputPerMTok: 15}
	c.Gateway.Ledger = policy.Ledger{Spool: spool, Postgres: policy.LedgerPostgres{DSNFile: dsnFile}}
	return c
}

func writeDSN(t *testing.T, pg *pgtest.Server) string {
	p := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(p, []byte(pg.DSN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// mixedLoad sends n rounds of: a plain request, a streamed one, one the
// backend fails, and a stream the client leaves after its first event;
// requests reuse X-Request-Id values, as clients may.
func mixedLoad(t *testing.T, addr string, b backend, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("client-id-%d", i%3)
			send(addr, id, `{"model":"m","max_tokens":3,"messages":[{"role":"user","content":"plain"}]}`, false)
			send(addr, id, `{"model":"m","max_tokens":4,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"streamed"}]}`, false)
			send(addr, "", `{"model":"m","max_tokens":200,"stream":true,"messages":[{"role":"user","content":"the client leaves"}]}`, true)
		}()
	}
	wg.Wait()
	b.SetFailure(mockllm.Failure{Status: http.StatusInternalServerError, Count: n})
	for i := 0; i < n; i++ {
		send(addr, "", `{"model":"m","max_tokens":3,"messages":[{"role":"user","content":"failed"}]}`, false)
	}
	b.SetFailure(mockllm.Failure{})
}

// cachedLedgerPolicy is ledgerPolicy with the response cache on.
func cachedLedgerPolicy(t *testing.T, b backend, addr, auditPath, spool, dsnFile string) *policy.Compiled {
	c := ledgerPolicy(t, b, addr, auditPath, spool, dsnFile)
	c.Gateway.Cache = &policy.ResponseCache{}
	return c
}

// fullMixedLoad is mixedLoad plus, in each of n rounds, a repeated
// temperature-0 request plain and streamed (the response cache answers all
// but the first of each) and two requests the client cancels: one before
// the answer, one after the stream's first event.
func fullMixedLoad(t *testing.T, addr string, b backend, n int) {
	t.Helper()
	mixedLoad(t, addr, b, n)
	const (
		cached         = `{"model":"m","temperature":0,"max_tokens":5,"messages":[{"role":"user","content":"ask me again"}]}`
		cachedStreamed = `{"model":"m","temperature":0,"max_tokens":6,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"ask me again, streamed"}]}`
	)
	// Concurrent misses are all sent upstream: one answer first, so that
	// the rest are hits.
	send(addr, "", cached, false)
	send(addr, "", cachedStreamed, false)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			send(addr, fmt.Sprintf("client-id-%d", i%3), cached, false)
			send(addr, "", cachedStreamed, false)
			// 200 tokens at the mock's 400/s: the answer is half a second away.
			sendCancel(addr, `{"model":"m","max_tokens":200,"messages":[{"role":"user","content":"cancelled before the answer"}]}`, false)
			sendCancel(addr, `{"model":"m","max_tokens":200,"stream":true,"messages":[{"role":"user","content":"cancelled mid-stream"}]}`, true)
		}()
	}
	wg.Wait()
}

// sendCancel posts body and cancels the request: after the stream's first
// event (midStream) or 100 ms after sending, before any answer.
func sendCancel(addr, body string, midStream bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	if !midStream {
		timer := time.AfterFunc(100*time.Millisecond, cancel)
		defer timer.Stop()
	}
	resp, err := client.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if midStream {
		_, _ = bufio.NewReader(resp.Body).ReadString('\n')
		cancel()
	}
	_, _ = bufio.NewReader(resp.Body).WriteTo(discard{})
}

// wantKinds fails the test when fullMixedLoad's n rounds did not give
// 2n cache hits and 3n requests the client left: the equality would prove
// nothing about them.
func wantKinds(t *testing.T, got totals, n int64) {
	t.Helper()
	if got.Hits < 2*n || got.Cached == 0 || got.Gone < 3*n || got.Cost == 0 || got.Completion == 0 {
		t.Fatalf("the load lacks a kind (%v): the test proves nothing", got)
	}
}

// send posts body; leave reads one line of the response and hangs up.
func send(addr, id, body string, leave bool) {
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	if id != "" {
		req.Header.Set("X-Request-Id", id)
	}
	resp, err := client.Do(req)
	if err != nil {
		return
	}
	if leave {
		_, _ = bufio.NewReader(resp.Body).ReadString('\n')
	} else {
		_, _ = bufio.NewReader(resp.Body).WriteTo(discard{})
	}
	resp.Body.Close()
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// After a mixed load, across a restart of the gateway and with PostgreSQL
// stopped mid-load and started again, the ledger in PostgreSQL equals the
// audit log: every request once, to the token and the nano-dollar.
func TestLedgerEqualsAuditLog(t *testing.T) {
	pg := pgtest.Start(t)
	db := pg.Pool(t)
	b := newBackend(t, mockllm.Config{TokensPerSecond: 400})
	dir := t.TempDir()
	auditPath, spool, dsn := filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "ledger.db"), writeDSN(t, pg)
	addr := freeAddr(t)
	s := New(Options{ShutdownGrace: 5 * time.Second})
	if err := s.Apply(cachedLedgerPolicy(t, b, addr, auditPath, spool, dsn)); err != nil {
		t.Fatal(err)
	}
	fullMixedLoad(t, addr, b, 8)
	first := waitLedger(t, db, auditPath)
	wantKinds(t, first, 8)
	t.Logf("after the first load: %v", first)

	// PostgreSQL stopped mid-load, started again.
	pg.Stop()
	fullMixedLoad(t, addr, b, 6)
	time.Sleep(500 * time.Millisecond)
	pg.Start(t)
	waitLedger(t, db, auditPath)

	// A graceful restart of the gateway, the database away meanwhile: what
	// the old one spooled is shipped by the new one.
	pg.Stop()
	fullMixedLoad(t, addr, b, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	s = newServer(t, Options{})
	if err := s.Apply(cachedLedgerPolicy(t, b, addr, auditPath, spool, dsn)); err != nil {
		t.Fatal(err)
	}
	fullMixedLoad(t, addr, b, 4)
	pg.Start(t)
	got := waitLedger(t, db, auditPath)
	t.Logf("ledger = audit log: %v", got)
}

// Two gateways write one ledger: no duplicate, no gap.
func TestTwoGatewaysOneLedger(t *testing.T) {
	pg := pgtest.Start(t)
	db := pg.Pool(t)
	b := newBackend(t, mockllm.Config{TokensPerSecond: 400})
	dir := t.TempDir()
	dsn := writeDSN(t, pg)
	var audits []string
	var wg sync.WaitGroup
	for i := range 2 {
		a := filepath.Join(dir, fmt.Sprintf("audit%d.jsonl", i))
		audits = append(audits, a)
		addr := freeAddr(t)
		s := newServer(t, Options{})
		if err := s.Apply(ledgerPolicy(t, b, addr, a, filepath.Join(dir, fmt.Sprintf("ledger%d.db", i)), dsn)); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); mixedLoad(t, addr, b, 6) }()
	}
	wg.Wait()
	got := waitLedger(t, db, audits...)
	var hourly int64
	if err := db.QueryRow(context.Background(), "SELECT sum(requests) FROM infergate_usage_hourly WHERE tenant = 'acme' AND model = 'm'").Scan(&hourly); err != nil {
		t.Fatal(err)
	}
	if hourly != got.Requests {
		t.Fatalf("hourly rollup counts %d requests, the ledger %d", hourly, got.Requests)
	}
}

const otherKey = "ig-serve-test-other-0123456789abcdef0123456789abcdef"

// postFeedback posts body with key and returns the status.
func postFeedback(t *testing.T, addr, key, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/feedback", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Feedback is stored joined to the request, only by the request's own
// tenant (another tenant's id is 404 like an unknown one), bounded, and
// totalled per model.
func TestFeedback(t *testing.T) {
	pg := pgtest.Start(t)
	db := pg.Pool(t)
	b := newBackend(t, mockllm.Config{})
	dir := t.TempDir()
	addr := freeAddr(t)
	c := ledgerPolicy(t, b, addr, "", filepath.Join(dir, "ledger.db"), writeDSN(t, pg))
	c.Gateway.Tenants = append(c.Gateway.Tenants, policy.Tenant{Name: "globex"})
	c.Gateway.Keys = append(c.Gateway.Keys, policy.CompiledKey{Name: "g", Tenant: 1, Hash: auth.HashKey(otherKey)})
	s := newServer(t, Options{})
	if err := s.Apply(c); err != nil {
		t.Fatal(err)
	}
	send(addr, "acme-req-1", `{"model":"m","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}`, false)
	// The entry reaches PostgreSQL within a shipping interval.
	deadline := time.Now().Add(30 * time.Second)
	for postFeedback(t, addr, testKey, `{"request_id":"acme-req-1","score":1,"label":"good","comment":"secret words"}`) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("feedback on the tenant's own request was never accepted")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, tc := range []struct {
		name, key, body string
		want            int
	}{
		{"another tenant's request", otherKey, `{"request_id":"acme-req-1","score":-1}`, http.StatusNotFound},
		{"unknown request", testKey, `{"request_id":"nope","score":1}`, http.StatusNotFound},
		{"no score", testKey, `{"request_id":"acme-req-1"}`, http.StatusBadRequest},
		{"comment too long", testKey, `{"request_id":"acme-req-1","score":1,"comment":"` + strings.Repeat("x", 4097) + `"}`, http.StatusBadRequest},
		{"not authenticated", "wrong", `{"request_id":"acme-req-1","score":1}`, http.StatusUnauthorized},
	} {
		if got := postFeedback(t, addr, tc.key, tc.body); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
	var score float64
	var label, comment string
	if err := db.QueryRow(context.Background(), `SELECT f.score, f.label, f.comment FROM infergate_feedback f
		JOIN infergate_usage u USING (entry_id) WHERE u.request_id = 'acme-req-1' AND u.tenant = 'acme'`).Scan(&score, &label, &comment); err != nil {
		t.Fatal(err)
	}
	if score != 1 || label != "good" || comment != "secret words" {
		t.Fatalf("stored %v %q %q", score, label, comment)
	}
	rows, err := ledger.UsagePostgres(context.Background(), db, time.Now().Add(-time.Hour), []string{"model"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Group[0] != "m" || rows[0].Feedback != 1 || rows[0].FeedbackScore != 1 || rows[0].Requests != 1 {
		t.Fatalf("usage by model %+v", rows)
	}
}

// A reload that adds the database to a spool in force keeps the spool
// (bbolt locks the file: it cannot be opened twice) and ships what it held.
func TestLedgerReloadAddsDatabase(t *testing.T) {
	pg := pgtest.Start(t)
	db := pg.Pool(t)
	b := newBackend(t, mockllm.Config{})
	dir := t.TempDir()
	auditPath, spool := filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "ledger.db")
	addr := freeAddr(t)
	reg := prometheus.NewRegistry()
	s := newServer(t, Options{Registry: reg})
	if err := s.Apply(ledgerPolicy(t, b, addr, auditPath, spool, "")); err != nil {
		t.Fatal(err)
	}
	mixedLoad(t, addr, b, 2)
	// The requests whose client left finish when the gateway sees the
	// disconnect, which may be after mixedLoad returns.
	var n int64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if n = s.ledger.current().Spool.Stats().Entries; n >= 8 || time.Now().After(deadline) {
			break
		}
	}
	if n != 8 {
		t.Fatalf("%d entries spooled with no database, want 8", n)
	}
	if err := s.Apply(ledgerPolicy(t, b, addr, auditPath, spool, writeDSN(t, pg))); err != nil {
		t.Fatal(err)
	}
	mixedLoad(t, addr, b, 2)
	waitLedger(t, db, auditPath)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "infergate_ledger_shipped_total" {
			found = mf.GetMetric()[0].GetCounter().GetValue() == 16
		}
	}
	if !found {
		t.Fatal("infergate_ledger_shipped_total is not 16")
	}
}

// PostgreSQL stopped for a full minute in the middle of a steady load and
// started again: every request answered meanwhile waits in the spool, and
// then the ledger equals the audit log, each request once.
func TestLedgerAcrossMinuteOutage(t *testing.T) {
	const outage = time.Minute
	pg := pgtest.Start(t)
	db := pg.Pool(t)
	b := newBackend(t, mockllm.Config{TokensPerSecond: 400})
	dir := t.TempDir()
	auditPath := filepath.Join(dir, "audit.jsonl")
	addr := freeAddr(t)
	s := newServer(t, Options{})
	if err := s.Apply(cachedLedgerPolicy(t, b, addr, auditPath, filepath.Join(dir, "ledger.db"), writeDSN(t, pg))); err != nil {
		t.Fatal(err)
	}
	fullMixedLoad(t, addr, b, 2)
	before := waitLedger(t, db, auditPath)

	// The load: two rounds every two seconds, from before the stop to after
	// the start (bounded: about 40 bursts of 18 requests).
	stop := make(chan struct{})
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		for {
			fullMixedLoad(t, addr, b, 2)
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Second):
			}
		}
	}()
	time.Sleep(3 * time.Second)
	pg.Stop()
	stopped := time.Now()
	l := s.ledger.current()
	failures := l.Shipper.Failures()
	time.Sleep(outage)
	// Nothing answered during the outage reached the database: the spool
	// holds what the audit log gained since the last shipment.
	if got := l.Spool.Stats().Entries; got == 0 {
		t.Fatal("nothing spooled during a minute's outage under load")
	}
	if l.Shipper.Failures() == failures {
		t.Fatal("no failed shipping attempt counted during the outage")
	}
	spooled := l.Spool.Stats().Entries
	pg.Start(t)
	restarted := time.Now()
	time.Sleep(3 * time.Second)
	close(stop)
	<-loadDone
	got := waitLedger(t, db, auditPath)
	wantKinds(t, got, 2)
	t.Logf("PostgreSQL down %v, %d entries spooled when it came back, ledger = audit log %v after its start: %v (%d before the outage)",
		restarted.Sub(stopped).Round(time.Second), spooled, time.Since(restarted).Round(100*time.Millisecond), got, before.Requests)
}
