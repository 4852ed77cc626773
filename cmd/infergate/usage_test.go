package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/pgtest"
	"github.com/infergate/infergate/l7/ledger"
)

// usageEntries are three requests of two tenants and two models.
func usageEntries() []ledger.Entry {
	now := time.Now().UTC().Add(-time.Minute)
	return []ledger.Entry{
		{RequestID: "r1", Time: now, Tenant: "acme", Key: "k1", Model: "m1", Endpoint: "/v1/chat/completions", Status: 200, PromptTokens: 10, CompletionTokens: 20, CostUSD: 0.00033},
		{RequestID: "r2", Time: now, Tenant: "acme", Key: "k1", Model: "m1", Endpoint: "/v1/chat/completions", Status: 200, PromptTokens: 5, CompletionTokens: 7, CostUSD: 0.00012},
		{RequestID: "r3", Time: now, Tenant: "globex", Key: "k2", Model: "m2", Endpoint: "/v1/chat/completions", Status: 499, PromptTokens: 3, CompletionTokens: 1, CostUSD: 0.000024},
		// Older than --since: left out.
		{RequestID: "old", Time: now.Add(-48 * time.Hour), Tenant: "acme", Key: "k1", Model: "m1", Endpoint: "/v1/chat/completions", Status: 200, PromptTokens: 1000, CostUSD: 1},
	}
}

func writeSpool(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ledger.db")
	s, err := ledger.OpenSpool(path, 0, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range usageEntries() {
		if err := s.Append(&e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// infergate usage on a spool: goldens of each output format, and usage
// errors for a bad dimension or format.
func TestUsageCommandGolden(t *testing.T) {
	spool := writeSpool(t)
	for _, st := range []struct {
		name string
		args []string
	}{
		{"usage-spool", []string{"usage", "--spool", spool}},
		{"usage-spool-csv", []string{"usage", "--spool", spool, "--by", "tenant,key", "-o", "csv"}},
		{"usage-spool-json", []string{"usage", "--spool", spool, "--by", "model", "-o", "json"}},
		{"usage-bad-by", []string{"usage", "--spool", spool, "--by", "colour"}},
		{"usage-bad-output", []string{"usage", "--spool", spool, "-o", "xml"}},
		{"usage-no-ledger", []string{"usage"}},
	} {
		r := runCLI(t, "/nonexistent", "", st.args...)
		r.stdout = strings.ReplaceAll(r.stdout, spool, "$SPOOL")
		r.stderr = strings.ReplaceAll(r.stderr, spool, "$SPOOL")
		golden(t, st.name, "/nonexistent", r)
	}
}

// The same entries shipped to PostgreSQL give the same totals as the spool.
func TestUsageCommandPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	path := writeSpool(t)
	spool, err := ledger.OpenSpool(path, 0, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	sh, err := ledger.StartShipper(spool, pg.DSN, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for spool.Stats().Entries > 0 {
		if time.Now().After(deadline) {
			t.Fatal("not shipped")
		}
		time.Sleep(20 * time.Millisecond)
	}
	sh.Stop(context.Background())
	_ = spool.Close()
	dsn := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(dsn, []byte(pg.DSN), 0o600); err != nil {
		t.Fatal(err)
	}
	fromPG := runCLI(t, "/nonexistent", "", "usage", "--dsn-file", dsn, "--by", "tenant,model", "-o", "csv")
	want := "tenant,model,requests,prompt_tokens,completion_tokens,cached_tokens,cost_usd,feedback,feedback_score\n" +
		"acme,m1,2,15,27,0,0.000450,0,0.00\nglobex,m2,1,3,1,0,0.000024,0,0.00\n"
	if fromPG.code != exitOK || fromPG.stdout != want {
		t.Fatalf("usage from PostgreSQL: exit %d\n%s%s\nwant\n%s", fromPG.code, fromPG.stdout, fromPG.stderr, want)
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
