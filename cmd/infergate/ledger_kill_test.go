package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/pgtest"
	"github.com/infergate/infergate/internal/syncbuf"
	"github.com/infergate/infergate/l7/audit"
	"github.com/infergate/infergate/test/mockllm"
)

const ledgerKey = "sk-ledger-kill-test-0123456789abcdef"

// The shipped binary killed with SIGKILL mid-load, then started again on
// the same spool: every request the client was answered is in the
// PostgreSQL ledger exactly once, and every request both the ledger and
// the audit log hold has the same tokens and cost in each. (The audit
// log, buffered for 200 ms, may lose its last lines to SIGKILL; the
// ledger's entries are on disk before the handler returns.)
func TestLedgerSurvivesKill9(t *testing.T) {
	pg := pgtest.Start(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "infergate")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	be := httptest.NewServer(mockllm.New(mockllm.Config{TokensPerSecond: 400}).Handler())
	defer be.Close()
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(be.URL, "http://"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dsn := filepath.Join(dir, "dsn")
	if err := os.WriteFile(dsn, []byte(pg.DSN), 0o600); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte(ledgerKey))
	auditPath, spool := filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "state", "ledger.db")
	doc := fmt.Sprintf(`apiVersion: infergate.dev/v1alpha1
kind: Policy
metadata: {name: ledger}
spec:
  pools:
    - name: local
      backends: [{name: m1, address: %s, port: %s}]
  gateway:
    listen: %s
    tenants: [{name: acme}]
    keys: [{name: k1, tenant: acme, hash: "sha256:%s"}]
    models:
      - name: m
        price: {inputPerMTok: 3, outputPerMTok: 15}
        routes: [{pool: local}]
    audit: {path: %s}
    ledger:
      spool: %s
      postgres: {dsnFile: %s}
`, host, port, addr, hex.EncodeToString(h[:]), auditPath, spool, dsn)
	pol := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(pol, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	start := func() *exec.Cmd {
		var logs syncbuf.Buffer
		cmd := exec.Command(bin, "gateway", "-f", pol)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				return cmd
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Fatalf("the gateway did not listen: %s", logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	var seq atomic.Int64
	var mu sync.Mutex
	answered := map[string]bool{} // ids whose whole answer the client read
	load := func(stop <-chan struct{}) {
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("kill-%d", seq.Add(1))
					stream := seq.Load()%2 == 0
					body := fmt.Sprintf(`{"model":"m","max_tokens":3,"stream":%v,"messages":[{"role":"user","content":"hi"}]}`, stream)
					req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/chat/completions", strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+ledgerKey)
					req.Header.Set("X-Request-Id", id)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						time.Sleep(5 * time.Millisecond)
						continue
					}
					b, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					complete := err == nil && resp.StatusCode == http.StatusOK && (!stream || strings.Contains(string(b), "[DONE]"))
					if complete && !stream {
						mu.Lock()
						answered[id] = true
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
	}

	gw := start()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { load(stop); close(done) }()
	time.Sleep(1500 * time.Millisecond)
	if err := gw.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = gw.Wait()
	time.Sleep(200 * time.Millisecond)
	gw = start()
	time.Sleep(time.Second)
	close(stop)
	<-done
	_ = gw.Process.Signal(syscall.SIGTERM)
	_ = gw.Wait()

	// The stopped gateway shipped what it could; start one more to ship
	// the rest, if any, and stop it.
	db := pg.Pool(t)
	type row struct {
		n    int
		p, c int64
		cost float64
	}
	ledger := map[string]*row{}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ledger = map[string]*row{}
		rows, err := db.Query(context.Background(), "SELECT request_id, prompt_tokens, completion_tokens, cost_usd FROM infergate_usage")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			var r row
			if err := rows.Scan(&id, &r.p, &r.c, &r.cost); err != nil {
				t.Fatal(err)
			}
			if old := ledger[id]; old != nil {
				old.n++
				continue
			}
			r.n = 1
			ledger[id] = &r
		}
		rows.Close()
		missing := 0
		mu.Lock()
		for id := range answered {
			if ledger[id] == nil {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d answered requests are not in the ledger", missing)
		}
		// What the killed gateway spooled is shipped by the next one.
		gw = start()
		time.Sleep(time.Second)
		_ = gw.Process.Signal(syscall.SIGTERM)
		_ = gw.Wait()
	}
	for id, r := range ledger {
		if r.n != 1 {
			t.Fatalf("request %s is in the ledger %d times", id, r.n)
		}
	}
	f, err := os.Open(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	both := 0
	for sc.Scan() {
		var a audit.Record
		if json.Unmarshal(sc.Bytes(), &a) != nil {
			continue // a line cut by SIGKILL
		}
		r := ledger[a.ID]
		if r == nil {
			t.Fatalf("audit record %s (status %d) is not in the ledger", a.ID, a.Status)
		}
		if r.p != a.PromptTokens || r.c != a.CompletionTokens || r.cost != a.CostUSD {
			t.Fatalf("request %s: ledger %d/%d/$%v, audit %d/%d/$%v", a.ID, r.p, r.c, r.cost, a.PromptTokens, a.CompletionTokens, a.CostUSD)
		}
		both++
	}
	if len(answered) < 20 || both < 20 {
		t.Fatalf("only %d answered requests, %d audit records: the test proves little", len(answered), both)
	}
	t.Logf("%d requests answered in full, %d ledger rows, %d audit records", len(answered), len(ledger), both)
}
