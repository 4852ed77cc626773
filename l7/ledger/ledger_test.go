package ledger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/pgtest"
	"github.com/jackc/pgx/v5/pgxpool"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func entry(i int) *Entry {
	return &Entry{RequestID: fmt.Sprintf("req-%d", i%7), Time: time.Now().UTC(), Tenant: "acme", Key: "k1",
		Model: "m", Endpoint: "/v1/chat/completions", Status: 200, PromptTokens: int64(i), CompletionTokens: 2 * int64(i),
		CostUSD: float64(i) / 1000}
}

// rows counts the ledger's rows and sums their prompt tokens.
func rows(t *testing.T, db *pgxpool.Pool) (n, prompt int64) {
	t.Helper()
	err := db.QueryRow(context.Background(), "SELECT count(*), coalesce(sum(prompt_tokens),0) FROM infergate_usage").Scan(&n, &prompt)
	if err != nil {
		t.Fatal(err)
	}
	return n, prompt
}

func waitShipped(t *testing.T, s *Spool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for s.Stats().Entries > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d entries still spooled", s.Stats().Entries)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Requests repeating one X-Request-Id are distinct entries (each billed),
// and a batch shipped twice (a crash between the commit and the trim) is
// in the ledger once.
func TestShipExactlyOnce(t *testing.T) {
	pg := pgtest.Start(t)
	db := pg.Pool(t)
	s, err := OpenSpool(filepath.Join(t.TempDir(), "ledger.db"), 0, "n1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var want int64
	for i := 1; i <= 50; i++ {
		if err := s.Append(entry(i)); err != nil {
			t.Fatal(err)
		}
		want += int64(i)
	}
	if err := Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	batch, err := s.head(shipBatch)
	if err != nil || len(batch) != 50 {
		t.Fatalf("head = %d entries, %v", len(batch), err)
	}
	// The crash: committed, not trimmed.
	if err := insert(context.Background(), db, batch[:20]); err != nil {
		t.Fatal(err)
	}
	sh, err := StartShipper(s, pg.DSN, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Stop(context.Background())
	waitShipped(t, s)
	if n, p := rows(t, db); n != 50 || p != want {
		t.Fatalf("ledger has %d rows, %d prompt tokens; want 50, %d", n, p, want)
	}
}

// PostgreSQL stopped: entries wait in the spool and arrive when it is back.
func TestShipAcrossOutage(t *testing.T) {
	pg := pgtest.Start(t)
	s, err := OpenSpool(filepath.Join(t.TempDir(), "ledger.db"), 0, "n1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sh, err := StartShipper(s, pg.DSN, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Stop(context.Background())
	for i := 1; i <= 10; i++ {
		_ = s.Append(entry(i))
	}
	waitShipped(t, s)
	pg.Stop()
	for i := 11; i <= 40; i++ {
		if err := s.Append(entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	if s.Stats().Entries != 30 {
		t.Fatalf("%d entries spooled while the database was down, want 30", s.Stats().Entries)
	}
	if sh.Failures() == 0 {
		t.Fatal("no failed shipping attempt counted while the database was down")
	}
	pg.Start(t)
	waitShipped(t, s)
	if n, p := rows(t, pg.Pool(t)); n != 40 || p != 40*41/2 {
		t.Fatalf("ledger has %d rows, %d prompt tokens; want 40, %d", n, p, 40*41/2)
	}
}

// A full spool refuses and counts; concurrent appends share commits and
// none is lost.
func TestSpoolBoundAndConcurrency(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s, err := OpenSpool(path, 100, "n1")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 10; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				if err := s.Append(entry(i)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if err := s.Append(entry(1)); !errors.Is(err, ErrSpoolFull) {
		t.Fatalf("append to a full spool: %v", err)
	}
	if st := s.Stats(); st.Entries != 100 || st.Dropped != 1 {
		t.Fatalf("stats %+v, want 100 entries, 1 dropped", st)
	}
	s.Close()
	// Durable: reopened, the count is read back from the file.
	s, err = OpenSpool(path, 100, "n1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := 0
	_ = s.Each(func(*Entry) error { n++; return nil })
	if n != 100 || s.Stats().Entries != 100 {
		t.Fatalf("reopened spool: %d entries read, %d counted; want 100", n, s.Stats().Entries)
	}
}
